"""The classroom explorers: their curves are the closed forms they name, a float64 simulation of the
full weights follows them, the HTML page is self-contained and embeds the computed grid, the CLI
and the notebook widget work."""

import json
import re

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import cli, exact, explore
from linsolve.explore import _lazy_rich, _stages, _width_phase

_DATA = re.compile(r'<script type="application/json" id="explorer-data">(.*?)</script>', re.DOTALL)


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def test_names_and_bad_name():
    assert list(explore.list_explorers()) == ["saxe-stages", "lazy-rich", "width-phase"]
    assert set(explore.EXPLORERS) == set(explore.list_explorers())
    for call in (explore.get_explorer, explore.write_html, explore.explorer_widget,
                 explore.precompute):
        with pytest.raises(ValueError, match=r"`name` must be one of .*'lazy-rich'.*got 'nope'"):
            call("nope")
    with pytest.raises(ValueError, match="`u0`"):
        _stages.stage_curves(u0=-1.0, depth=2)
    with pytest.raises(ValueError, match="`depth`"):
        _stages.stage_curves(u0=1e-3, depth=2.5)
    with pytest.raises(ValueError, match="`scale`"):
        _lazy_rich.lazy_rich_curves(lam=0.0, scale=0.0)
    with pytest.raises(ValueError, match="`lr_ratio`"):
        _width_phase.width_phase_curves(lr_ratio=-1.0)


def test_settings_walk_the_grid_in_c_order():
    e = explore.get_explorer("saxe-stages")
    settings = e.settings()
    assert len(settings) == 11 * 4 * 4
    assert settings[1] == {"u0": 1e-6, "depth": 2, "weight_decay": 0.05}
    smoke = e.grid_sliders(smoke=True)
    assert all(len(s.values) <= 3 for s in smoke)
    assert [s.values[s.default] for s in smoke] == [s.values[s.default] for s in e.sliders]


def test_stage_curves_are_saxe_modes_and_gradient_flow_follows_them():
    setting = {"u0": 1e-2, "depth": 3, "weight_decay": 0.05}
    data = _stages.stage_curves(**setting)
    s = np.asarray(_stages.SINGULAR_VALUES)
    for a, s_a in enumerate(s):
        u = exact.saxe_mode(data["t"], s=s_a, u0=1e-2, depth=3, weight_decay=0.05)
        np.testing.assert_allclose(data[f"mode{a}"], np.asarray(u) / s_a, rtol=1e-12, atol=0)
    u = np.stack([data[f"mode{a}"] * s_a for a, s_a in enumerate(s)], axis=1)
    np.testing.assert_allclose(data["loss"], 0.5 * np.sum((s - u) ** 2, axis=1), rtol=1e-12)
    # The horizon fits the plateaus: 1.25 x the exact decay-free time of the weakest mode.
    T = float(exact.saxe_time(1e-2, 0.99 * s[-1], s=s[-1], depth=3))
    assert abs(data["t"][-1] / (1.25 * T) - 1) < 1e-2
    sim = _stages.stage_simulation(**setting)
    assert sim["diverged"] == 0
    np.testing.assert_array_equal(sim["t"], data["t"])
    for key in ("mode0", "mode1", "mode2", "mode3", "loss"):
        assert _rel(sim[key], data[key]) < 1e-6, key


def test_lazy_rich_curves_are_the_riccati_solution_and_gradient_flow_follows_them():
    data = _lazy_rich.lazy_rich_curves(lam=1.0, scale=0.1)
    task, W1, W2, t = _lazy_rich._setup(1.0, 0.1)
    assert np.isclose(float(jnp.trace(W2.T @ W2 - W1 @ W1.T)) / 3, 1.0, rtol=1e-10)
    sol = exact.lambda_balanced(t, W1, W2, task)
    np.testing.assert_allclose(data["loss"], np.asarray(sol.loss), rtol=1e-12)
    K = np.asarray(sol.ntk)
    change = np.linalg.norm((K - K[0]).reshape(len(t), -1), axis=1) / np.linalg.norm(K[0])
    np.testing.assert_allclose(data["ntk"], change, rtol=1e-10, atol=1e-14)
    assert data["ntk"][0] == 0 and data["ntk"][-1] > 0.1  # lam = 1 < s: the kernel moves
    sim = _lazy_rich.lazy_rich_simulation(lam=1.0, scale=0.1)
    assert sim["diverged"] == 0
    for key in ("loss", "ntk", "input", "output"):
        assert _rel(sim[key], data[key]) < 1e-6, key


def test_width_phase_is_the_exact_regime_at_every_point():
    data = _width_phase.width_phase_curves(lr_ratio=4.0, init_exponent=0.5)
    assert data["log_change"].shape == (len(_width_phase.OUTPUT_EXPONENTS), len(_width_phase.WIDTHS))
    d_max = max(_width_phase.WIDTHS)
    xi, zeta = jr.normal(jr.PRNGKey(0), (2, d_max))
    for i, j in [(0, 0), (3, 5), (10, 8), (5, 2)]:
        d, c = _width_phase.WIDTHS[j], _width_phase.OUTPUT_EXPONENTS[i]
        mask = jnp.arange(d_max) < d  # zero-padded to one shape: one compilation of regime
        u0, w0 = d**-0.25 * xi * mask, d**-0.25 * zeta * mask
        kappa, eta_u, eta_w = d**-c, 0.5, 2.0
        info = exact.regime(u0, w0, s=1.0, kappa=kappa, eta_u=eta_u, eta_w=eta_w)
        assert np.isclose(data["log_change"][i, j], np.log10(abs(float(info.kernel_ratio) - 1)),
                          rtol=1e-9, atol=1e-12)
        # Independently, in NumPy: K(inf)/K(0) = sqrt(1+r^2)/sqrt(1+r0^2), B the nuclear norm of
        # the rank-2 eta_w u u^T - eta_u w w^T (the eigenvalues of diag(eta_w, -eta_u) Gram(u, w)).
        u, w = np.asarray(xi[:d]) * d**-0.25, np.asarray(zeta[:d]) * d**-0.25
        gram = np.array([[u @ u, u @ w], [w @ u, w @ w]])
        B = np.sum(np.abs(np.linalg.eigvals(np.diag([eta_w, -eta_u]) @ gram)))
        A = 2 * np.sqrt(eta_u * eta_w) / kappa
        r, r0 = A / B, A * abs(kappa * u @ w) / B
        ratio = np.sqrt(1 + r**2) / np.sqrt(1 + r0**2)
        assert np.isclose(data["log_change"][i, j], np.log10(abs(ratio - 1)), rtol=1e-6)
        assert np.isclose(data["log_r"][i, j], np.log10(r), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_width_phase_simulation_matches_the_cuts():
    data = _width_phase.width_phase_curves(lr_ratio=1.0)
    sim = _width_phase.width_phase_simulation(lr_ratio=1.0)
    assert sim["diverged"] == 0
    for key in ("cut0", "cut1", "cut2"):
        assert _rel(sim[key], data[key]) < 1e-6, key


def test_html_page_is_self_contained_and_embeds_the_grid(tmp_path):
    pytest.importorskip("plotly")
    from plotly.offline import get_plotlyjs

    path = explore.write_html("width-phase", tmp_path / "page.html", smoke=True)
    text = open(path, encoding="utf-8").read()
    assert get_plotlyjs()[:2000] in text and "Plotly.react" in text
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", text, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*[\"']?https?:", text)
    data = json.loads(_DATA.search(text).group(1))
    grid = explore.precompute("width-phase", smoke=True)
    sliders = explore.get_explorer("width-phase").grid_sliders(smoke=True)
    assert [s["values"] for s in data["sliders"]] == [list(s.values) for s in sliders]
    assert text.count('type="range"') == len(sliders)
    assert len(data["points"]) == len(grid.points) == int(np.prod([len(s.values) for s in sliders]))
    for embedded, point in zip(data["points"], grid.points):
        assert set(embedded) == set(point)
        for key, value in point.items():
            got = np.asarray(embedded[key], dtype=float)  # None (non-finite) -> nan
            finite = np.isfinite(value)
            np.testing.assert_array_equal(np.isfinite(got), finite)
            np.testing.assert_allclose(got[finite], value[finite], rtol=6e-4, atol=0)


def test_cli_list_bad_name_and_page(tmp_path, capsys):
    assert cli.main(["explore", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("saxe-stages", "lazy-rich", "width-phase"))
    assert cli.main(["explore", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no explorer 'nope'" in err and "lazy-rich" in err
    assert cli.main(["explore", "lazy-rich", "--out", str(tmp_path)]) == 2  # a folder
    assert "is a folder" in capsys.readouterr().err
    out_file = tmp_path / "lazy.html"
    assert cli.main(["explore", "lazy-rich", "--smoke", "--out", str(out_file)]) == 0
    assert out_file.stat().st_size > 1_000_000 and str(out_file) in capsys.readouterr().out


def test_widget_redraws_on_slider_moves_and_overlays_the_simulation():
    pytest.importorskip("ipywidgets")
    box = explore.explorer_widget("lazy-rich", smoke=True)
    first = box.redraw()
    np.testing.assert_allclose(first["ntk"], _lazy_rich.lazy_rich_curves(lam=0.0, scale=0.1)["ntk"])
    lines_before = len(box.figure.axes[0].lines)
    box.sliders["lam"].value = box.sliders["lam"].options[-1][1]  # observe -> redraw
    moved = box.figure.axes[1].lines[0].get_ydata()
    assert not np.allclose(moved[1:], first["ntk"][1:])
    sim = box.simulate()
    assert sim["diverged"] == 0 and len(box.figure.axes[0].lines) == 2 * lines_before
    box.sliders["scale"].value = box.sliders["scale"].options[0][1]  # a move drops the overlay
    assert len(box.figure.axes[0].lines) == lines_before
    heat = explore.explorer_widget("width-phase", smoke=True)
    assert len(heat.figure.axes) == 3  # heat map, its colour bar, the cuts
    # What the widget shows is a PNG (any front end, any matplotlib backend), redrawn on a move.
    png = box.image.data
    assert png.startswith(b"\x89PNG") and box.image.format == "png"
    box.sliders["lam"].value = box.sliders["lam"].options[0][1]
    assert box.image.data != png
