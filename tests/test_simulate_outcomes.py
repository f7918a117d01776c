"""Outcomes of the simulators: converged / diverged / step limit, steady-state stop, dtype-aware
tolerances, argument checks and dtype promotion. Closed forms (``exact.saxe_mode``,
``exact.lambda_balanced``) are the independent reference for every accuracy claim."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import exact, init, simulate, tasks
from linsolve.simulate._steady import steady_state_test

F32, F64 = jnp.float32, jnp.float64


def cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


@pytest.fixture(scope="module")
def full_rank():
    """5 -> 4 teacher with four non-zero modes: every mode of a (5, 8, 4) net is rewarded."""
    return tasks.teacher(jr.PRNGKey(0), 5, 4, jnp.array([3.0, 2.0, 1.0, 0.5]))


def modes(traj, task):
    U, _, Vt = task.svd()
    P = traj.product().astype(F64)
    return jnp.einsum("oa,toi,ai->ta", U.astype(F64), P, Vt.astype(F64))


def test_status_codes_are_exported():
    assert (simulate.CONVERGED, simulate.DIVERGED, simulate.STEP_LIMIT) == (0, 1, 2)
    assert simulate.STATUS_NAMES[simulate.STEP_LIMIT] == "step_limit"


# --- dtype-aware tolerances ------------------------------------------------------------------------


def test_float32_flow_matches_lambda_balanced_with_fewer_steps():
    # The failure of the issue: float32 with float64 tolerances ground to the step limit.
    task = tasks.teacher(jr.PRNGKey(0), 4, 4, jnp.array([3.0, 2.0, 1.0]))
    W1, W2 = init.lambda_balanced(jr.PRNGKey(1), (4, 3, 4), 1.0, 0.1, dtype=F64)
    ts = jnp.linspace(0.0, 12.0, 25)
    theory = exact.lambda_balanced(ts, W1, W2, task).product
    runs = {}
    for dtype in (F32, F64):
        traj = simulate.gradient_flow(cast((W1, W2), dtype), cast(task, dtype), ts)
        assert traj.params[0].dtype == dtype
        assert int(traj.status) == simulate.CONVERGED and not bool(traj.diverged)
        error = float(jnp.max(jnp.abs(traj.product().astype(F64) - theory)) / jnp.max(jnp.abs(theory)))
        runs[dtype] = (error, int(traj.stats["num_steps"]))
    assert runs[F32][0] < 1e-4, runs
    assert runs[F64][0] < 1e-8, runs
    assert runs[F32][1] < runs[F64][1], runs


def test_tolerance_tighter_than_the_dtype_warns_and_is_raised(full_rank):
    p0 = cast(init.aligned(full_rank, (5, 8, 4), 0.1), F32)
    task32 = cast(full_rank, F32)
    ts = jnp.linspace(0.0, 10.0, 5)
    with pytest.warns(UserWarning, match="`rtol`=1e-10 is tighter than float32"):
        tight = simulate.gradient_flow(p0, task32, ts, rtol=1e-10)
    assert int(tight.status) == simulate.CONVERGED
    assert int(tight.stats["num_steps"]) < 2000  # not a grind to max_steps
    np.testing.assert_allclose(modes(tight, full_rank)[-1], [3.0, 2.0, 1.0, 0.5], atol=1e-4)


@pytest.mark.parametrize(
    "name,value", [("rtol", 0.0), ("rtol", -1e-8), ("atol", float("nan")), ("rtol", "x")]
)
def test_bad_tolerances_raise(full_rank, name, value):
    p0 = init.aligned(full_rank, (5, 8, 4), 0.1)
    with pytest.raises(ValueError, match=f"`{name}`"):
        simulate.gradient_flow(p0, full_rank, jnp.array([0.0, 1.0]), **{name: value})


# --- steady state -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol,max_steps", [(F64, 1e-8, 400), (F32, 1e-4, 200)])
def test_long_horizon_stops_at_the_steady_state(full_rank, dtype, tol, max_steps):
    ts = jnp.concatenate([jnp.linspace(0.0, 15.0, 31), jnp.array([1e3, 1e6])])
    p0, task = cast(init.aligned(full_rank, (5, 8, 4), 1e-3), dtype), cast(full_rank, dtype)
    traj = simulate.gradient_flow(p0, task, ts)
    assert int(traj.status) == simulate.CONVERGED and bool(traj.stats["steady_state"])
    assert int(traj.stats["num_steps"]) < max_steps, traj.stats
    t_final = float(traj.stats["t_final"])
    assert 15.0 < t_final < 1e3
    for W in traj.params:  # saves after the stop hold the final state
        assert bool(jnp.all(W[-1] == W[-2]))
    exact_modes = exact.saxe_mode(ts[:, None], s=jnp.array([3.0, 2.0, 1.0, 0.5]), u0=1e-3)
    assert float(jnp.max(jnp.abs(modes(traj, full_rank) - exact_modes))) < tol


def test_slow_drift_of_an_unrewarded_mode_stops_with_a_looser_test():
    # The README task: a rank-3 teacher, and the aligned init also gives the fourth (zero) mode
    # u0 = 1e-3, which decays only like u0 / (1 + 2 u0 t). A looser steady-state test freezes it
    # cheaply while the three learned modes stay exact.
    task = tasks.teacher(jr.PRNGKey(0), 5, 4, jnp.array([3.0, 2.0, 1.0]))
    ts = jnp.concatenate([jnp.linspace(0.0, 15.0, 31), jnp.array([1e3, 1e6])])
    traj = simulate.gradient_flow(init.aligned(task, (5, 8, 4), 1e-3), task, ts, steady_state=1e-5)
    assert int(traj.status) == simulate.CONVERGED and int(traj.stats["num_steps"]) < 400
    s = jnp.array([3.0, 2.0, 1.0, 0.0])
    err = jnp.abs(modes(traj, task) - exact.saxe_mode(ts[:, None], s=s, u0=1e-3))
    assert float(jnp.max(err[:, :3])) < 1e-8
    assert float(jnp.max(err[:-2, 3])) < 1e-8  # the drift is exact until the stop ...
    assert 1e-4 < float(err[-1, 3]) < 1e-3  # ... and frozen after it (u4(t_final) vs 5e-7)


def test_float64_long_horizon_with_an_algebraic_drift_is_exact_and_cheap():
    # The README task to t = 1e6 in float64 with the defaults: the zero mode's algebraic decay
    # u0 / (1 + 2 u0 t) never lets the strict test fire early, and explicit steps are capped by
    # stability (~1 time unit), so this once ran out of 200,000 steps at t ~ 1.6e5. The implicit
    # tail follows the drift in a few hundred steps, exact at every save out to 1e6.
    task = tasks.teacher(jr.PRNGKey(0), 5, 4, jnp.array([3.0, 2.0, 1.0]))
    ts = jnp.concatenate([jnp.linspace(0.0, 15.0, 16), jnp.geomspace(20.0, 1e6, 12)])
    s = jnp.array([3.0, 2.0, 1.0, 0.0])
    # Under vmap over initialisations too (traced parameters, one compilation).
    u0s = jnp.array([1e-3, 3e-3])
    batch = jax.vmap(lambda u0: simulate.gradient_flow(init.aligned(task, (5, 8, 4), u0), task, ts))(u0s)
    assert bool(jnp.all(batch.status == simulate.CONVERGED)), batch.stats
    assert int(jnp.max(batch.stats["num_steps"])) < 1000, batch.stats
    for i, u0 in enumerate(u0s):
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], batch)
        err = jnp.abs(modes(one, task) - exact.saxe_mode(ts[:, None], s=s, u0=u0))
        assert float(jnp.max(err)) < 1e-8, (float(u0), err)
        assert float(err[-1, 3]) < 1e-10 and float(modes(one, task)[-1, 3]) > 1e-7  # still drifting


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-8), (F32, 2e-4)])
def test_small_initialisation_is_not_stopped_at_the_saddle(full_rank, dtype, tol):
    # u0 = 1e-6 starts next to the saddle at the origin, gradient ~1e-6; every mode must still be
    # learned on time, even with a steady-state tolerance far looser than the gradient there.
    ts = jnp.linspace(0.0, 30.0, 61)
    s = jnp.array([3.0, 2.0, 1.0, 0.5])
    p0, task = cast(init.aligned(full_rank, (5, 8, 4), 1e-6), dtype), cast(full_rank, dtype)
    exact_modes = exact.saxe_mode(ts[:, None], s=s, u0=1e-6)
    half_time = float(jnp.log(0.5 / 1e-6 - 1) / (2 * 0.5))  # the slowest mode's u(t) = s/2 (~13)
    for steady_state in (True, 1e-2):
        traj = simulate.gradient_flow(p0, task, ts, steady_state=steady_state)
        assert int(traj.status) == simulate.CONVERGED
        t_final = float(traj.stats["t_final"])
        assert t_final > half_time, (steady_state, t_final)
        err = jnp.abs(modes(traj, full_rank) - exact_modes)
        assert float(jnp.max(err[ts <= t_final])) < 10 * tol, (steady_state, err)
        if steady_state is True:
            assert float(jnp.max(err)) < tol


@pytest.mark.parametrize("dtype", [F64, F32])
def test_steady_state_test_rejects_every_saddle(full_rank, dtype):
    # Critical points of the deep linear net: the end-to-end map learns a subset of the modes. The
    # vector field vanishes at each; the test must fire at the minimum only, whatever its tolerance.
    task = cast(full_rank, dtype)
    U, s, Vt = task.svd()
    rates = (jnp.asarray(1.0, dtype),) * 2

    def balanced(strengths):
        return init.decoupled(U, strengths.astype(dtype), Vt.T, (5, 8, 4))

    subsets = [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 0, 1]]
    for tol in (1e-6, 1.0):
        cond = steady_state_test(balanced(s), task, jnp.asarray(1.0, dtype), rates, tol, 1e-12)
        assert bool(cond(0.0, balanced(s), None))
        for subset in subsets:
            y = balanced(s * jnp.asarray(subset, dtype) + 1e-6 * (1 - jnp.asarray(subset, dtype)))
            assert not bool(cond(0.0, y, None)), (tol, subset)


# --- three outcomes -------------------------------------------------------------------------------


def test_step_limit_is_its_own_outcome(full_rank):
    p0 = init.aligned(full_rank, (5, 8, 4), 0.1)
    ts = jnp.linspace(0.0, 20.0, 41)
    traj = simulate.gradient_flow(p0, full_rank, ts, max_steps=10)
    assert int(traj.status) == simulate.STEP_LIMIT
    assert not bool(traj.diverged) and float(traj.diverged_at) == float("inf")
    t_final = float(traj.stats["t_final"])
    assert 0.0 < t_final < 20.0
    assert bool(jnp.all(jnp.isfinite(traj.loss)))
    full = simulate.gradient_flow(p0, full_rank, ts)
    reached = ts <= t_final
    assert 1 < int(jnp.sum(reached)) < 41
    for W, Wf in zip(traj.params, full.params):
        np.testing.assert_allclose(W[reached], Wf[reached], atol=1e-9)  # saves reached are exact
        assert bool(jnp.all(W[~reached] == W[-1]))  # later saves hold the last state reached
    assert float(traj.loss[-1]) > float(full.loss[-1])


def test_gradient_descent_reports_divergence_in_its_status(full_rank):
    p0 = init.random(jr.PRNGKey(4), (5, 8, 4), 0.5)
    run = jax.vmap(
        lambda lr: simulate.gradient_descent(p0, full_rank, lrs=lr, steps=100, record_every=100).status
    )
    status = run(jnp.array([0.01, 0.05, 3.0]))
    assert status.dtype == jnp.int32
    assert status.tolist() == [simulate.CONVERGED, simulate.CONVERGED, simulate.DIVERGED]
    bad = simulate.gradient_descent(p0, full_rank, lrs=3.0, steps=100, record_every=10)
    assert bool(bad.diverged) and int(bad.status) == simulate.DIVERGED


def test_gradient_flow_status_is_vmappable(full_rank):
    p0 = init.aligned(full_rank, (5, 8, 4), 0.1)
    ts = jnp.linspace(0.0, 5.0, 3)
    status = jax.vmap(lambda lr: simulate.gradient_flow(p0, full_rank, ts, lrs=lr, max_steps=40).status)(
        jnp.array([0.01, 50.0])
    )
    assert status.dtype == jnp.int32
    assert status.tolist() == [simulate.CONVERGED, simulate.STEP_LIMIT]


# --- argument checks and dtype promotion ------------------------------------------------------------


@pytest.fixture(scope="module")
def data_task():
    return tasks.teacher(jr.PRNGKey(8), 3, 2, jnp.array([1.0, 0.5]), n=10, noise=0.1)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"batch_size": 5.5}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 11}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": "4"}, "batch_size"),
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"record_every": 0}, "record_every"),
        ({"unroll": 0}, "unroll"),
        ({"lrs": float("nan")}, "lrs"),
        ({"lrs": -0.1}, "lrs"),
        ({"record_at": [0.0, float("nan")]}, "record_at"),
        ({"divergence_factor": 0.0}, "divergence_factor"),
        ({"observe": 3}, "observe"),
    ],
)
def test_gradient_descent_rejects_bad_arguments(data_task, kwargs, name):
    p0 = init.random(jr.PRNGKey(9), (3, 4, 2), 0.3)
    args = {"lrs": 0.1, "steps": 10, "key": jr.PRNGKey(0)} | kwargs
    with pytest.raises(ValueError, match=f"`{name}`"):
        simulate.gradient_descent(p0, data_task, **args)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"ts": jnp.array([0.0, jnp.nan])}, "ts"),
        ({"ts": jnp.array([1.0, 0.5])}, "ts"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 1.5}, "max_steps"),
        ({"solver": "dopri8"}, "solver"),
        ({"steady_state": -1.0}, "steady_state"),
        ({"observe": "loss"}, "observe"),
        ({"lrs": (1.0, 0.0)}, "lrs"),
    ],
)
def test_gradient_flow_rejects_bad_arguments(data_task, kwargs, name):
    p0 = init.random(jr.PRNGKey(9), (3, 4, 2), 0.3)
    args = {"ts": jnp.array([0.0, 1.0])} | kwargs
    with pytest.raises(ValueError, match=f"`{name}`"):
        simulate.gradient_flow(p0, data_task, **args)


def test_mixed_precision_promotes_to_the_widest_dtype(data_task):
    p64 = init.random(jr.PRNGKey(9), (3, 4, 2), 0.3)
    p32 = cast(p64, F32)
    ts = jnp.array([0.0, 1.0])
    exact64 = simulate.gradient_flow(cast(p32, F64), data_task, ts)  # the same numbers, in float64
    for params, task in [(p32, data_task), ((p32[0], cast(p32[1], F64)), cast(data_task, F32))]:
        traj = simulate.gradient_flow(params, task, ts)
        assert all(W.dtype == F64 for W in traj.params) and traj.loss.dtype == F64
        if task is data_task:
            for W, We in zip(traj.params, exact64.params):
                np.testing.assert_array_equal(W, We)
    task32 = cast(data_task, F32)
    gd = simulate.gradient_descent(p64, task32, lrs=0.1, steps=5)
    assert gd.params[0].dtype == F64 and gd.loss.dtype == F64
    gd32 = simulate.gradient_descent(p32, task32, lrs=0.1, steps=5)
    assert gd32.params[0].dtype == F32
