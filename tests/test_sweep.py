"""Sweeps: grid round trip, chunking invariance, resume, one compilation, executors."""

import concurrent.futures
import json

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import init, simulate, sweep, tasks
from linsolve.sweep import _run

GRID = sweep.Grid(a=[1.0, 2.0, 3.0], b=sweep.logspace(0.1, 1.0, 5), c=[0, 1])


def quadratic(a, b, c, key):
    return {"value": a * b + c, "noise": jr.normal(key, (3,)), "pair": jnp.stack([a, b])}


def test_grid_round_trip():
    assert GRID.shape == (3, 5, 2) and GRID.size == 30 and GRID.names == ("a", "b", "c")
    flat = GRID.flat()
    for i in [0, 7, 29]:
        point = GRID.point(i)
        assert all(point[n] == flat[n][i] for n in GRID.names)
        assert np.unravel_index(i, GRID.shape) == tuple(
            int(np.nonzero(GRID.axes[n] == point[n])[0][0]) for n in GRID.names
        )
    values = np.arange(30 * 2).reshape(30, 2)
    np.testing.assert_array_equal(GRID.unflatten(values).reshape(30, 2), values)
    assert sweep.Grid.from_dict(json.loads(json.dumps(GRID.to_dict()))) == GRID
    taken = GRID.take([7, 0, 29])
    assert all(np.array_equal(taken[n], flat[n][[7, 0, 29]]) for n in GRID.names)
    with pytest.raises(ValueError, match=r"`index` must lie in \[0, 30\)"):
        GRID.take([30])
    keys_all = GRID.keys(jr.PRNGKey(3))
    np.testing.assert_array_equal(GRID.keys(jr.PRNGKey(3), 10, 20), keys_all[10:20])


def test_grid_errors():
    with pytest.raises(ValueError, match=r"axis `lr` must be a non-empty 1-D array"):
        sweep.Grid(lr=[])
    with pytest.raises(ValueError, match=r"axis `lr` must be finite"):
        sweep.Grid(lr=[0.1, np.nan])
    with pytest.raises(ValueError, match=r"needs at least one named axis"):
        sweep.Grid()


@pytest.mark.parametrize("chunk_size", [1, 7, 30])
def test_results_independent_of_chunking(chunk_size):
    ref = sweep.run(quadratic, GRID, chunk_size=30, progress=False)
    got = sweep.run(quadratic, GRID, chunk_size=chunk_size, progress=False)
    for name in ("value", "noise", "pair"):
        np.testing.assert_array_equal(got[name], ref[name])
    assert got["pair"].shape == (3, 5, 2, 2)
    expected = GRID.axes["a"][:, None, None] * GRID.axes["b"][None, :, None] + GRID.axes["c"]
    np.testing.assert_allclose(got["value"], expected, rtol=1e-15)


def test_one_compilation_for_the_whole_sweep(compilations):
    def fn(a, b, c):  # a fresh function: nothing cached
        return {"y": jnp.sin(a) * b - c}

    with compilations() as events:
        sweep.run(fn, GRID, chunk_size=4, progress=False)
    assert len(events) == 1


def test_resume_after_interruption(tmp_path, monkeypatch):
    calls = []
    real = _run._evaluate_chunk

    def failing(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the sweep is interrupted while computing chunk 3
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(_run, "_evaluate_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(quadratic, GRID, chunk_size=4, out=str(tmp_path), progress=False)
    assert len(list((tmp_path / "chunks").glob("points_*.npz"))) == 3
    assert not (tmp_path / "lock").exists()  # released on KeyboardInterrupt
    calls.clear()
    monkeypatch.setattr(_run, "_evaluate_chunk", lambda *a: calls.append(1) or real(*a))
    resumed = sweep.run(quadratic, GRID, chunk_size=4, out=str(tmp_path), progress=False)
    assert len(calls) == 8 - 3  # finished chunks are not recomputed
    ref = sweep.run(quadratic, GRID, chunk_size=4, progress=False)
    for name in ("value", "noise"):
        np.testing.assert_array_equal(resumed[name], ref[name])
    loaded = sweep.SweepResult.load(str(tmp_path))
    np.testing.assert_array_equal(loaded["noise"], ref["noise"])
    assert loaded.meta["dtype"] == "float64" and loaded.meta["versions"]["jax"] == jax.__version__
    calls.clear()  # another chunk size reuses every stored point
    again = sweep.run(quadratic, GRID, chunk_size=5, out=str(tmp_path), progress=False)
    assert calls == []
    np.testing.assert_array_equal(again["noise"], ref["noise"])


def test_result_selection_and_storage(tmp_path):
    result = sweep.run(quadratic, GRID, chunk_size=8, progress=False)
    one = result.sel(a=2.0, c=1)
    assert one["pair"].shape == (5, 2) and list(one.axes) == ["b"]
    np.testing.assert_allclose(one["value"], 2.0 * GRID.axes["b"] + 1)
    near = result.sel(b=[0.11, 0.99], method="nearest")
    assert near["value"].shape == (3, 2, 2)
    path = result.save(str(tmp_path / "r.npz"))
    back = sweep.SweepResult.load(path)
    np.testing.assert_array_equal(back["noise"], result["noise"])
    with pytest.raises(KeyError, match=r"axis `a` has no value 5.0"):
        result.sel(a=5.0)


def test_thread_pool_executor_matches_local():
    ref = sweep.run(quadratic, GRID, chunk_size=7, progress=False)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = sweep.run(quadratic, GRID, chunk_size=7, executor=pool, progress=False)
    np.testing.assert_array_equal(got["noise"], ref["noise"])


def _train(lr, scale):
    task = tasks.teacher(jr.PRNGKey(0), 3, 2, jnp.array([2.0, 1.0]))
    params0 = tuple(scale * W for W in init.random(jr.PRNGKey(1), (3, 4, 2), 1.0))
    traj = simulate.gradient_descent(params0, task, lrs=lr, steps=50, record_every=50)
    return {"loss": traj.loss[-1], "diverged": traj.diverged, "at": traj.diverged_at}


def test_diverging_points_are_flagged_without_poisoning_neighbours():
    grid = sweep.Grid(lr=[0.01, 0.1, 5.0], scale=[0.1, 0.5])
    result = sweep.run(_train, grid, chunk_size=6, progress=False)
    assert result["diverged"][2].all() and not result["diverged"][:2].any()
    assert np.isfinite(result["loss"][:2]).all() and np.isinf(result["loss"][2]).all()
    alone = sweep.run(_train, sweep.Grid(lr=[0.1], scale=[0.1, 0.5]), progress=False)
    # The covariance-form loss carries an absolute round-off of ~eps tr(Syy).
    np.testing.assert_allclose(alone["loss"][0], result["loss"][1], rtol=1e-12, atol=1e-14)


def _gd_point(scale, ratio, key):
    task = tasks.teacher(jr.PRNGKey(0), 5, 3, jnp.array([2.0, 1.0]), n=20, whiten=False)
    params0 = init.random(key, (5, 6, 3), scale)
    traj = simulate.gradient_descent(
        params0, task, lrs=jnp.stack([0.05, 0.05 * ratio]), steps=60, record_every=20, record_params=False
    )
    return {"loss": traj.loss, "W1": traj.params[0]}


@pytest.mark.parametrize("batch_size,devices", [(3, 2), (8, 1), (None, 2)])
def test_fast_paths_match_the_plain_vmap(batch_size, devices):
    """Sharding over devices and lax.map over vmapped groups give the plain vmap's numbers."""
    grid = sweep.Grid(scale=[0.1, 0.3, 0.5], ratio=[0.5, 1.0, 2.0, 4.0])
    plain = sweep.run(_gd_point, grid, chunk_size=5, batch_size=None, devices=1, progress=False)
    fast = sweep.run(_gd_point, grid, chunk_size=5, batch_size=batch_size, devices=devices, progress=False)
    for name in ("loss", "W1"):
        np.testing.assert_allclose(fast[name], plain[name], rtol=1e-12, atol=1e-14)


def test_sweep_options_are_checked():
    with pytest.raises(ValueError, match=r"`devices` must be in \[1, 2\]"):
        sweep.run(quadratic, GRID, devices=3, progress=False)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        sweep.run(quadratic, GRID, batch_size=0, progress=False)
    with pytest.raises(RuntimeError, match="already started with 2 CPU device"):
        sweep.cpu_devices(3)
    assert sweep.cpu_devices(2) == 2
