"""Built-in studies, TOML configs and the `linsolve sweep` / `linsolve plot` round trip."""

import numpy as np
import pytest

from linsolve import cli, sweep
from linsolve.sweep import ConfigError, parse_config, run_config

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
    ok = ~result["diverged"]
    assert ok.all()
    assert float(result["error"][ok].max()) < 1e-6
    np.testing.assert_allclose(result["ntk_change"], result["theory_ntk_change"], rtol=1e-6, atol=1e-9)
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
    assert float(result["error"].max()) < 1e-6


def test_shipped_configs_load():
    for name in sweep.STUDIES:
        config = sweep.load_config(name)
        assert config.study.name == name and config.grid.size > 1


def test_config_errors_name_the_key():
    base = {"study": "one-hidden-layer", "axes": {"width": [4]}}
    cases = [
        ({**base, "colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({**base, "study": "nope"}, r"`study` must be one of"),
        ({**base, "axes": {"depth": [1]}}, r"unknown axis \['depth'\]"),
        ({**base, "axes": {"width": []}}, r"`axes.width` must not be empty"),
        ({**base, "axes": {"width": [0, 4]}}, r"`axes.width` must be positive; got \[0, 4\]"),
        ({**base, "axes": {"width": [4.5]}}, r"`axes.width` must hold integers"),
        ({**base, "axes": {"lr_ratio": {"log": [0.0, 1.0, 3]}}}, r"`axes.lr_ratio.log` needs positive"),
        ({**base, "axes": {"width": {"lin": [1, 2]}}}, r"`axes.width.lin` must be \[start, stop, num\]"),
        ({**base, "params": {"s": "one"}}, r"`params.s` must be of type float; got 'one'"),
        ({**base, "params": {"m2": -1.0}}, r"`params.m2` must be positive"),
        ({**base, "params": {"depth": 3}}, r"unknown parameter \['depth'\]"),
        ({**base, "chunk_size": 0}, r"`chunk_size` must be a positive integer"),
    ]
    for raw, match in cases:
        with pytest.raises(ConfigError, match=match):
            parse_config(raw)


def test_cli_sweep_then_plot(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    assert cli.main(["sweep", str(config), "--out", str(out), "--x64", "--quiet"]) == 0
    assert (out / "result.npz").exists() and (out / "meta.json").exists()
    # A second run into the same folder needs --resume; with it, nothing is recomputed.
    assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    assert cli.main(["sweep", str(config), "--out", str(out), "--x64", "--quiet", "--resume"]) == 0
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
