"""The `sgd` study, seeds as a sweep axis (`SweepResult.over_seeds`, `{range = n}`), and plots
that reduce a seed axis."""

import jax
import numpy as np
import pytest

from linsolve import cli, sweep
from linsolve.simulate import CONVERGED, DIVERGED, STEP_LIMIT
from linsolve.sweep import ConfigError, SweepResult, parse_config, run_config

TINY = {
    "study": "sgd",
    "axes": {"lr_fraction": [0.03, 0.1, 2.0], "batch_size": [1, 8], "seed": {"range": 64}},
    "params": {"d": 16, "steps": 40, "noise": 0.3},
}


def _seeded_result():
    """Axes (a: 2, seed: 4, b: 3) with known draws: a float output with an inf, a bool, status."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(2, 4, 3))
    values[0, 1, 2] = np.inf
    values[1, :, 0] = np.nan  # no finite draw at all
    flags = np.zeros((2, 4, 3), bool)
    flags[1, 2, 1] = flags[1, 3, 1] = True
    status = np.zeros((2, 4, 3), np.int32)
    status[0, 0, 0], status[0, 3, 0] = STEP_LIMIT, DIVERGED  # diverged is worse than step limit
    status[0, 2, 1] = STEP_LIMIT
    phase = np.array([0, 2, 2, 1], np.int32)[None, :, None] * np.ones((2, 1, 3), np.int32)
    axes = {"a": [1.0, 2.0], "seed": np.arange(4), "b": [0.1, 0.2, 0.3]}
    data = {"x": values, "diverged": flags, "status": status, "phase": phase}
    return SweepResult(axes, data, {"config": {"study": "sgd"}}), values


def test_over_seeds_statistics():
    result, values = _seeded_result()
    reduced = result.over_seeds()
    assert list(reduced.axes) == ["a", "b"] and reduced.meta["over_seeds"] == {"axis": "seed", "n": 4}
    # Finite draws only: an independent computation point by point.
    for i in range(2):
        for k in range(3):
            draws = values[i, :, k]
            finite = draws[np.isfinite(draws)]
            assert reduced["x_count"][i, k] == finite.size
            if finite.size == 0:
                assert np.isnan(reduced["x"][i, k]) and np.isnan(reduced["x_std"][i, k])
                continue
            np.testing.assert_allclose(reduced["x"][i, k], finite.mean(), rtol=1e-13)
            np.testing.assert_allclose(reduced["x_std"][i, k], finite.std(ddof=1), rtol=1e-12)
            np.testing.assert_allclose(
                reduced["x_sem"][i, k], finite.std(ddof=1) / np.sqrt(finite.size), rtol=1e-12
            )
    np.testing.assert_array_equal(reduced["diverged"], [[False] * 3, [False, True, False]])
    np.testing.assert_array_equal(reduced["diverged_fraction"], [[0, 0, 0], [0, 0.5, 0]])
    np.testing.assert_array_equal(
        reduced["status"], [[DIVERGED, STEP_LIMIT, CONVERGED], [CONVERGED] * 3]
    )
    np.testing.assert_array_equal(reduced["phase"], np.full((2, 3), 2))  # the most common code
    assert reduced["status"].dtype == np.int32 and reduced["x"].dtype == np.float64
    # The only axis reduced: a placeholder axis, like `sel` of every axis.
    single = result.sel(a=1.0, b=0.1).over_seeds()
    assert list(single.axes) == ["point"] and single["x"].shape == (1,)
    with pytest.raises(KeyError, match="no axis 'seeds'"):
        result.over_seeds("seeds")


def test_config_seed_axis_range():
    config = parse_config(TINY)
    np.testing.assert_array_equal(config.grid.axes["seed"], np.arange(64))
    assert config.grid.names == ("lr_fraction", "batch_size", "seed")
    listed = parse_config({**TINY, "axes": {**TINY["axes"], "seed": [3, 5]}})
    np.testing.assert_array_equal(listed.grid.axes["seed"], [3, 5])
    for bad, match in [
        ({"range": 0}, r"`axes.seed.range` must be an integer n >= 1"),
        ({"range": 2.5}, r"`axes.seed.range` must be an integer n >= 1"),
        ({"range": True}, r"`axes.seed.range` must be an integer n >= 1"),
        ({"range": 4, "lin": [0, 1, 2]}, "one key 'lin', 'log' or 'range'"),
        ([0.5, 1], r"`axes.seed` must be an integer >= 0"),
        ([-1, 0], r"`axes.seed` must be an integer >= 0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_config({**TINY, "axes": {**TINY["axes"], "seed": bad}})
    # Another study has no seed axis: the usual unknown-axis error.
    with pytest.raises(ConfigError, match=r"unknown axis \['seed'\]"):
        parse_config({"study": "unbalanced", "axes": {"delta": [0.0], "seed": {"range": 2}}})
    for key, value, match in [
        ("batch_size", [0, 1], "`axes.batch_size` must be a positive integer"),
        ("lr_fraction", [-0.1], "`axes.lr_fraction` must be positive"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_config({**TINY, "axes": {**TINY["axes"], key: value}})
    with pytest.raises(ConfigError, match="`params.noise` must be non-negative"):
        parse_config({**TINY, "params": {"noise": -0.1}})


@pytest.mark.parametrize("x64", [False, True])
def test_sgd_study_mean_over_seeds_matches_theory_and_diverges_past_the_edge(x64):
    config = parse_config(TINY)
    with jax.enable_x64(x64):
        result = run_config(config, progress=False)
    dtype = np.float64 if x64 else np.float32
    assert result["risk"].dtype == dtype and result["risk"].shape == (3, 2, 64)
    reduced = result.over_seeds()
    ratio, theory = reduced["edge_ratio"], reduced["theory_risk"]
    stable = ratio < 0.6
    assert stable.sum() == 4 and np.all(ratio[2] > 1.5)  # lr_fraction 2: beyond the edge for both B
    z = (reduced["risk"][stable] - theory[stable]) / reduced["risk_sem"][stable]
    assert np.all(np.abs(z) < 4), z
    # The test can fail: the risk fell from its start by many standard errors.
    assert np.all(reduced["risk0"][stable] - theory[stable] > 20 * reduced["risk_sem"][stable])
    assert not reduced["diverged"][stable].any()
    assert np.all(reduced["diverged_fraction"][2] == 1) and np.all(reduced["status"][2] == DIVERGED)
    assert np.all(np.isinf(result["risk"][2])) and np.all(np.isinf(theory[2]))
    assert np.all(reduced["spectral_radius"][stable] < 1) and np.all(reduced["spectral_radius"][2] > 1)
    # SGD's edge grows with the batch size, below gradient descent's 2 / lam_max = 2.
    edge = reduced["edge"][0]
    assert edge[0] < edge[1] < 2
    np.testing.assert_allclose(reduced["lr"], 2 * np.asarray(TINY["axes"]["lr_fraction"])[:, None]
                               * np.ones((1, 2)), rtol=1e-6)


def test_cli_plot_reduces_the_seed_axis(tmp_path, capsys):
    config = tmp_path / "sgd.toml"
    config.write_text(
        'study = "sgd"\n[axes]\nlr_fraction = [0.05, 0.2, 2.0]\nbatch_size = [1, 4]\n'
        "seed = { range = 6 }\n[params]\nd = 8\nsteps = 20\n"
    )
    out = tmp_path / "run"
    assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["plot", str(out)]) == 0
    pngs = sorted(p for p in capsys.readouterr().out.split() if p.endswith(".png"))
    # One simulation and one theory figure: the seeds are averaged, not drawn as small multiples.
    assert [p.rsplit("/", 1)[1] for p in pngs] == ["risk_simulation.png", "risk_theory.png"]
    from linsolve.plot import phase_figures

    result = SweepResult.load(str(out))
    figures = phase_figures(result, sweep.STUDIES["sgd"].plot)
    assert set(figures) == {"risk_simulation", "risk_theory"}
    assert len(figures["risk_simulation"].axes) == 2  # one panel and its colour bar
    assert "mean over 6 seeds" in figures["risk_simulation"].axes[0].get_title()
    # Selecting one seed plots that draw alone.
    one = phase_figures(result, sweep.STUDIES["sgd"].plot, select={"seed": 2})
    assert set(one) == {"risk_simulation_seed-2", "risk_theory_seed-2"}
