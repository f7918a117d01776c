"""Built-in studies, TOML configs and the `linsolve sweep` / `linsolve plot` round trip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsolve import cli, sweep
from linsolve.simulate import DIVERGED
from linsolve.sweep import ConfigError, _classify, parse_config, run_config, time_to_learn

TINY = """
study = "one-hidden-layer"
chunk_size = 4

[axes]
width = [4, 16, 64]
output_exponent = { lin = [0.0, 1.0, 3] }

[params]
n_times = 24
"""


def test_one_hidden_layer_study_theory_matches_simulation():
    config = parse_config(
        {
            "study": "one-hidden-layer",
            "axes": {
                "width": [2, 8, 32],
                "output_exponent": [0.0, 0.5, 1.0],
                "init_exponent": [0.0, 1.0],
                "lr_ratio": [0.25, 4.0],
            },
            "params": {"n_times": 24},
        }
    )
    result = run_config(config, progress=False)
    assert (result["status"] == 0).all() and not result["diverged"].any()
    assert float(result["error"].max()) < 1e-8
    np.testing.assert_allclose(result["ntk_change"], result["theory_ntk_change"], rtol=1e-7, atol=1e-9)
    # Learned: the loss at the horizon is tiny everywhere.
    assert float(result["loss"].max()) < 1e-8
    labels = sweep.classify(result, mechanisms=True)
    assert labels.shape == result.grid.shape
    assert set(np.unique(labels)) <= {"kernel", "alignment", "disalignment", "rescaling"}
    plain = sweep.classify(result)
    np.testing.assert_array_equal(plain == "kernel", result["ntk_change"] < 0.1)
    # The predicted exponent rho = c + a - 1 is what the grid implies.
    rho = result["rho"][0, :, :, 0]
    np.testing.assert_allclose(rho, np.add.outer([0.0, 0.5, 1.0], [0.0, 1.0]) - 1)


def test_parametrizations_kernel_limit_vs_feature_learning():
    names = sweep.STUDIES["parametrizations"].plot["labels"]["parametrization"]
    config = parse_config(
        {
            "study": "parametrizations",
            "axes": {
                "parametrization": [names.index("ntk"), names.index("mean_field")],
                "width": [16, 256, 4096],
            },
            "params": {"n_times": 16},
        }
    )
    result = run_config(config, progress=False)
    ntk_param, mean_field = result["ntk_change"]
    assert ntk_param[0] > 4 * ntk_param[1] > 16 * ntk_param[2]  # -> 0 like d^-1/2
    assert ntk_param[2] < 0.05
    assert (mean_field > 0.3).all()  # O(1) at every width
    labels = sweep.classify(result)
    assert labels[0, -1] == "kernel" and (labels[1] == "feature learning").all()
    assert float(result["error"].max()) < 1e-8


def test_shipped_configs_load():
    for name in sweep.STUDIES:
        config = sweep.load_config(name)
        assert config.study.name == name and config.grid.size > 1
        # Never one chunk for the whole grid (a kill would lose everything): the store picks ~20.
        assert config.chunk_size is None or config.chunk_size <= config.grid.size // 10


_ONE_D = {"study": "one-hidden-layer", "axes": {"width": [4]}}
_PRESETS = {"study": "parametrizations", "axes": {"width": [4]}}
_NEURON = {"study": "unbalanced", "axes": {"delta": [0.0]}}
_LAMBDA = {"study": "lambda", "axes": {"lam": [0.0]}}


@pytest.mark.parametrize(
    "raw, match",
    [
        ({**_ONE_D, "colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({**_ONE_D, "study": "nope"}, r"`study` must be one of"),
        ({**_ONE_D, "study": ["one-hidden-layer"]}, r"`study` must be one of"),
        ({**_ONE_D, "description": 3}, r"`description` must be a string"),
        ({**_ONE_D, "axes": {"depth": [1]}}, r"unknown axis \['depth'\]"),
        ({**_ONE_D, "axes": {"width": []}}, r"`axes.width` must not be empty"),
        ({**_ONE_D, "axes": {"width": [0, 4]}}, r"`axes.width` must be a positive integer; got \[0, 4\]"),
        ({**_ONE_D, "axes": {"width": [4.5]}}, r"`axes.width` must be a positive integer; got \[4.5\]"),
        ({**_ONE_D, "axes": {"lr_ratio": [0.0, 1.0]}}, r"`axes.lr_ratio` must be positive"),
        ({**_ONE_D, "axes": {"lr_ratio": {"log": [0.0, 1.0, 3]}}}, r"`axes.lr_ratio.log` needs positive"),
        ({**_ONE_D, "axes": {"output_exponent": [float("inf")]}}, r"`axes.output_exponent` must be finite"),
        (
            {**_ONE_D, "axes": {"init_exponent": {"lin": [0.0, float("nan"), 3]}}},
            r"`axes.init_exponent` must be finite",
        ),
        ({**_ONE_D, "axes": {"width": {"lin": [1, 2]}}}, r"`axes.width.lin` must be \[start, stop, num\]"),
        ({**_ONE_D, "params": {"s": "one"}}, r"`params.s` must be of type float; got 'one'"),
        ({**_ONE_D, "params": {"s": float("nan")}}, r"`params.s` must be finite"),
        ({**_ONE_D, "params": {"m2": -1.0}}, r"`params.m2` must be positive"),
        ({**_ONE_D, "params": {"lr": 0.0}}, r"`params.lr` must be positive"),
        ({**_ONE_D, "params": {"horizon": float("inf")}}, r"`params.horizon` must be finite"),
        ({**_ONE_D, "params": {"n_times": 1}}, r"`params.n_times` must be an integer >= 2"),
        ({**_ONE_D, "params": {"n_times": 0}}, r"`params.n_times` must be an integer >= 2"),
        ({**_ONE_D, "params": {"n_times": 8.0}}, r"`params.n_times` must be of type int"),
        ({**_ONE_D, "params": {"n_times": True}}, r"`params.n_times` must be of type int"),
        ({**_ONE_D, "params": {"depth": 3}}, r"unknown parameter \['depth'\]"),
        ({**_ONE_D, "chunk_size": 0}, r"`chunk_size` must be a positive integer"),
        ({**_ONE_D, "seed": -1}, r"`seed` must be an integer in 0..2\*\*32-1"),
        ({**_ONE_D, "seed": 2**32}, r"`seed` must be an integer in 0..2\*\*32-1"),
        # parametrizations: the index names the presets (7 and -1 used to run "standard" silently).
        (
            {**_PRESETS, "axes": {"parametrization": [7, -1]}},
            r"`axes.parametrization` must be integer indices 0..4 \(0 = mean_field, 1 = mup, 2 = ntk, "
            r"3 = small_init, 4 = standard\); got \[7, -1\]",
        ),
        ({**_PRESETS, "axes": {"parametrization": [1.5]}}, r"`axes.parametrization` must be integer indices"),
        ({**_PRESETS, "params": {"n_times": 1}}, r"`params.n_times` must be an integer >= 2"),
        # unbalanced: target = 0 used to give NaN; init_scale must be positive.
        ({**_NEURON, "params": {"target": 0.0}}, r"`params.target` must be non-zero: the neuron learns"),
        ({**_NEURON, "axes": {"init_scale": [0.0]}}, r"`axes.init_scale` must be positive"),
        ({**_NEURON, "axes": {"delta": [float("-inf")]}}, r"`axes.delta` must be finite"),
        ({**_NEURON, "params": {"horizon": -1.0}}, r"`params.horizon` must be positive"),
        ({**_NEURON, "params": {"n_times": 1}}, r"`params.n_times` must be an integer >= 2"),
        # lambda: size = 0 used to crash.
        ({**_LAMBDA, "params": {"size": 0}}, r"`params.size` must be a positive integer; got 0"),
        ({**_LAMBDA, "params": {"size": 2.5}}, r"`params.size` must be of type int"),
        ({**_LAMBDA, "params": {"s_max": 0.0}}, r"`params.s_max` must be positive"),
        ({**_LAMBDA, "params": {"task_seed": -3}}, r"`params.task_seed` must be an integer in 0..2\*\*32-1"),
        ({**_LAMBDA, "params": {"n_times": 1}}, r"`params.n_times` must be an integer >= 2"),
        ({**_LAMBDA, "axes": {"init_scale": [-0.1, 0.1]}}, r"`axes.init_scale` must be positive"),
    ],
)
def test_config_errors_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


def test_valid_edge_values_are_accepted():
    # Negative targets and exponents, lambda of both signs, the smallest n_times: all meaningful.
    parse_config({**_ONE_D, "axes": {"output_exponent": [-1.0, 2.0]}, "params": {"s": -2.0, "n_times": 2}})
    parse_config({**_PRESETS, "axes": {"parametrization": [0, 4]}})
    parse_config({**_NEURON, "params": {"target": -1.0}})
    parse_config(
        {**_LAMBDA, "axes": {"lam": [-3.0, 0.0, 3.0]}, "params": {"size": 1, "task_seed": 2**32 - 1}}
    )


def _synthetic(data):
    grid_axes = {"a": np.array([1.0, 2.0]), "b": np.array([0.0, 1.0, 2.0])}
    return sweep.SweepResult(grid_axes, data, {})


def test_classify_and_outcomes_keep_step_limit_apart_from_divergence():
    ntk = np.array([[0.01, 0.5, 0.5], [0.01, 0.5, 0.02]])
    status = np.array([[0, 1, 2], [0, 0, 2]], np.int32)
    result = _synthetic({"ntk_change": ntk, "status": status, "diverged": status == 1})
    expected = [["kernel", "diverged", "step limit"], ["kernel", "feature learning", "step limit"]]
    np.testing.assert_array_equal(sweep.classify(result), expected)
    np.testing.assert_array_equal(_classify.outcomes(result), np.asarray(_classify.OUTCOMES)[status])
    # Results of older versions carry only `diverged`.
    old = _synthetic({"ntk_change": ntk, "diverged": status == 1})
    np.testing.assert_array_equal(_classify.outcomes(old)[0], ["converged", "diverged", "converged"])
    with pytest.raises(ValueError, match=r"`status` must hold one code in 0..2"):
        _classify.outcomes(_synthetic({"ntk_change": ntk, "status": status + 5}))


def test_time_to_learn_float32():
    # log-linear interpolation is exact for an exponential: exp(-t) reaches 1% at t = ln 100.
    ts = jnp.linspace(0.0, 10.0, 11, dtype=jnp.float32)
    np.testing.assert_allclose(float(time_to_learn(ts, jnp.exp(-ts))), np.log(100.0), rtol=1e-5)
    # A loss that hits exactly 0 (float32 does) gives a finite time in the right interval.
    t = float(time_to_learn(ts[:4], jnp.array([1.0, 0.1, 0.0, 0.0], jnp.float32)))
    assert 1.0 <= t <= 2.0
    assert float(time_to_learn(ts[:3], jnp.array([1.0, 0.5, 0.2], jnp.float32))) == np.inf


def test_lambda_study_float32_converges_and_agrees():
    """The CLI's default dtype: no divergence, no step limit, theory and flow agree to ~1e-5."""
    config = parse_config(
        {
            "study": "lambda",
            "axes": {"lam": [-4, 0, 4], "init_scale": [1e-3, 1.0]},  # integer lists are fine too
            "params": {"n_times": 16},
        }
    )
    with jax.enable_x64(False):
        result = run_config(config, progress=False)
    assert result["error"].dtype == np.float32 and result["status"].dtype == np.int32
    counts = {name: int(np.sum(_classify.outcomes(result) == name)) for name in _classify.OUTCOMES}
    assert counts == {"converged": 6, "diverged": 0, "step_limit": 0}
    np.testing.assert_array_equal(result["diverged"], result["status"] == DIVERGED)
    assert float(result["error"].max()) < 1e-3
    assert float(result["loss"].max()) < 1e-4  # learned


def test_cli_sweep_then_plot(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    assert cli.main(["sweep", str(config), "--out", str(out), "--x64", "--quiet"]) == 0
    assert (out / "result.npz").exists() and (out / "meta.json").exists()
    # The summary counts the outcomes and gives the largest theory-vs-simulation error.
    summary = capsys.readouterr().out
    assert "converged 9, diverged 0, step_limit 0; max error" in summary
    result = sweep.SweepResult.load(str(out))
    assert f"{float(result['error'].max()):.1e}" in summary
    # A second run into the same folder needs --resume; with it, nothing is recomputed.
    assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    assert cli.main(["sweep", str(config), "--out", str(out), "--x64", "--quiet", "--resume"]) == 0
    # Another sweep (here another seed) into the same folder: one line, exit 2; --overwrite recomputes.
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace('chunk_size = 4', 'chunk_size = 4\nseed = 1'))
    capsys.readouterr()
    assert cli.main(["sweep", str(other), "--out", str(out), "--x64", "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--overwrite" in err and "Traceback" not in err
    assert cli.main(["sweep", str(other), "--out", str(out), "--x64", "--quiet", "--overwrite"]) == 0
    assert sweep.SweepResult.load(str(out)).meta["config"]["seed"] == 1
    capsys.readouterr()
    assert cli.main(["plot", str(out)]) == 0
    paths = capsys.readouterr().out.split()
    pngs = [p for p in paths if p.endswith(".png")]
    assert len(pngs) == 3
    for p in pngs:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('study = "one-hidden-layer"\n[axes]\nwidth = [4]\nlearning_rate = [1.0]\n')
    assert cli.main(["sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "learning_rate" in capsys.readouterr().err
    assert cli.main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "no config file" in capsys.readouterr().err


def test_unbalanced_order_parameters_hold_in_float32():
    """Lazy points move the kernel by ~1e-11: float32 must resolve that (1 - cos would give ~1e-7
    of rounding noise). The unbalanced study's initialisation is deterministic, so float64 is the
    independent reference for the same point."""
    config = parse_config({"study": "unbalanced", "axes": {"delta": [0.0]}, "params": {"n_times": 8}})
    point = jax.jit(sweep.STUDIES["unbalanced"].make(config.params, config.grid.axes))
    cases = [(1.0, 4.0), (3.0, 1000.0)]  # kernel distance ~1.5e-3 and ~1.2e-11
    with jax.enable_x64(False):
        single = [jax.device_get(point(np.float32(a), np.float32(b))) for a, b in cases]
    double = [jax.device_get(point(np.float64(a), np.float64(b))) for a, b in cases]
    for lo, hi in zip(single, double):
        assert lo["kernel_distance"].dtype == np.float32 and int(lo["status"]) == 0
        np.testing.assert_allclose(lo["kernel_distance"], hi["kernel_distance"], rtol=1e-2)
        np.testing.assert_allclose(lo["time_to_learn"], hi["time_to_learn"], rtol=1e-3)
        assert float(lo["error"]) < 1e-5 and float(hi["error"]) < 1e-9


def test_learning_rate_study_phases_float32_and_float64():
    """GD of the full vectors beside the exact map: the same lazy / catapult / divergent phases,
    the boundaries near 2 and 4 (s = 0), in the CLI's float32 and in float64."""
    config = parse_config(
        {
            "study": "learning-rate",
            "axes": {"width": [16, 1024], "lr_lambda0": [1.0, 3.0, 4.6], "lr_ratio": [1.0, 4.0]},
            "params": {"steps": 400},
        }
    )
    for x64, tol in ((False, 1e-4), (True, 1e-9)):
        with jax.enable_x64(x64):
            result = run_config(config, progress=False)
        np.testing.assert_array_equal(result["phase"], result["theory_phase"])
        labels = sweep.classify(result)  # the GD phases by default for this study
        assert (labels[:, 0] == "lazy").all() and (labels[:, 1] == "catapult").all()
        assert (labels[:, 2] == "diverged").all()
        np.testing.assert_array_equal(result["diverged"], labels == "diverged")
        live = ~result["diverged"]
        assert float(result["error"][live].max()) < tol
        assert (result["lr_lambda_final"][live] < 2).all()  # stable minima
        assert (result["peak_loss_ratio"][:, 1] > 1).all() and (result["peak_loss_ratio"][:, 0] <= 1).all()
        assert np.all(np.abs(result["x_diverge"] - 4) < 1e-3)
        # O(1/d) from 2 (either side at small width: the loss may spike a little below 2).
        assert np.all(np.abs(result["x_catapult"] - 2) < 0.3)
        assert np.all(np.abs(result["x_catapult"][1] - 2) < 0.01)  # width 1024
        np.testing.assert_array_equal(sweep.classify(result, value="theory_phase"), labels)
    # The figures draw both boundaries (one contour of catapult_window = 1).
    from linsolve.plot import phase_figures

    figures = phase_figures(result, sweep.STUDIES["learning-rate"].plot)
    assert {"lr_lambda_final_simulation", "lr_lambda_final_theory"} <= set(figures)
