"""`linsolve plot` and `linsolve.plot`: small multiples, --select, labels, outcome marks, theory boundary."""

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from linsolve import cli
from linsolve.plot import Label, heatmap, phase_figures
from linsolve.plot._facets import parse_select
from linsolve.plot._labels import label_of, value_text
from linsolve.sweep import STUDIES, SweepResult

matplotlib.use("Agg")

WIDTHS = [8.0, 32.0, 128.0]
EXPONENTS = [0.0, 0.4, 1.0]
RATIOS = [0.25, 4.0]
DIVERGED_AT = (2, 2, 0, 1)  # (width, output_exponent, init_exponent, lr_ratio) indices
STEP_LIMIT_AT = (0, 2, 0, 0)
LAYOUT = STUDIES["one-hidden-layer"].plot


def _result(*, status=True, extra=None):
    """A synthetic one-hidden-layer sweep: width x output_exponent x (fixed) init_exponent x lr_ratio.

    The phase ratio is r = 10^(c - 1/2) at every width and rate, so its level 1 lies between the
    exponents 0.4 (log10 r = -0.1) and 1.0 (log10 r = 0.5), at row index 1 + 0.1/0.6.
    """
    axes = {
        "width": np.array(WIDTHS),
        "output_exponent": np.array(EXPONENTS),
        "init_exponent": np.array([0.0]),
        "lr_ratio": np.array(RATIOS),
        **(extra or {}),
    }
    shape = tuple(len(v) for v in axes.values())
    c = np.array(EXPONENTS).reshape((1, -1) + (1,) * (len(shape) - 2))
    r = np.broadcast_to(10.0 ** (c - 0.5), shape).copy()
    width = np.array(WIDTHS).reshape((-1,) + (1,) * (len(shape) - 1))
    data = {
        "r": r,
        "theory_ntk_change": r / (1 + r) * width**-0.1,
        "ntk_change": r / (1 + r) * width**-0.1 * 1.001,
        "error": np.full(shape, 1e-9),
    }
    codes = np.zeros(shape, np.int32)
    codes[DIVERGED_AT] = 1
    codes[STEP_LIMIT_AT] = 2
    if status:
        data["status"] = codes
        data["diverged"] = codes == 1
    else:  # a result written before the `status` output existed
        data["diverged"] = codes == 1
    return SweepResult(axes, data, {"config": {"study": "one-hidden-layer"}})


def _panels(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_visible()]


def _marks(ax):
    """Offsets of the scatter marks of a panel, by colour-coded kind ('x' red / square orange)."""
    found = []
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            found.extend(tuple(map(float, p)) for p in coll.get_offsets())
    return sorted(found)


def _texts(fig):
    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    texts += [ax.get_title() for ax in fig.axes]
    return " | ".join(texts)


def test_cli_plot_three_axes_writes_small_multiples(tmp_path, capsys):
    _result().save(str(tmp_path))
    assert cli.main(["plot", str(tmp_path)]) == 0
    paths = capsys.readouterr().out.split()
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == ["ntk_change_simulation.png", "ntk_change_theory.png", "theory_vs_simulation_error.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_small_multiples_one_panel_per_value_with_titles_and_labels():
    figures = phase_figures(_result(), LAYOUT)  # labels: the study's, found from result.meta
    sim = figures["ntk_change_simulation"]
    panels = _panels(sim)
    assert len(panels) == len(RATIOS)
    ratio_text = STUDIES["one-hidden-layer"].labels["lr_ratio"].text
    assert [ax.get_title() for ax in panels] == [f"{ratio_text} = 0.25", f"{ratio_text} = 4"]
    assert panels[0].get_xlabel() == "width d" and panels[0].get_ylabel().startswith("output exponent c")
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["8", "32", "128"]
    # The fixed axis is named in the figure title, the colour bar carries the output's label.
    assert "init exponent a" in sim._suptitle.get_text()
    bar = [ax for ax in sim.axes if not ax.images][0]
    assert bar.get_ylabel() == STUDIES["one-hidden-layer"].labels["ntk_change"].text


def test_marks_only_on_simulation_with_legend():
    figures = phase_figures(_result(), LAYOUT)
    sim, theory = figures["ntk_change_simulation"], figures["ntk_change_theory"]
    w, c, _, q = DIVERGED_AT
    ws, cs, _, qs = STEP_LIMIT_AT
    expected = {q: [(float(w), float(c))], qs: [(float(ws), float(cs))]}
    for k, ax in enumerate(_panels(sim)):
        assert _marks(ax) == expected[k]
    for ax in _panels(theory):
        assert _marks(ax) == []
    sim_legend = [t.get_text() for t in sim.legends[0].get_texts()]
    assert sim_legend == ["theory: r = 1 (kernel \u2194 rich)", "diverged", "step limit reached"]
    theory_legend = [t.get_text() for t in theory.legends[0].get_texts()]
    assert theory_legend == ["theory: r = 1 (kernel \u2194 rich)"]
    # Simulation and exact solution share one colour scale.
    n1, n2 = _panels(sim)[0].images[0].norm, _panels(theory)[0].images[0].norm
    assert (n1.vmin, n1.vmax) == (n2.vmin, n2.vmax)


def test_old_results_with_only_a_diverged_flag_are_marked():
    sim = phase_figures(_result(status=False), LAYOUT)["ntk_change_simulation"]
    w, c, _, q = DIVERGED_AT
    assert _marks(_panels(sim)[q]) == [(float(w), float(c))]
    assert [t.get_text() for t in sim.legends[0].get_texts()][1:] == ["diverged"]


def test_theory_boundary_is_one_contour_across_the_panel():
    theory = phase_figures(_result(), LAYOUT)["ntk_change_theory"]
    ax = _panels(theory)[0]
    contours = [coll for coll in ax.collections if not isinstance(coll, PathCollection)]
    assert len(contours) == 1
    vertices = np.concatenate([p.vertices for p in contours[0].get_paths()])
    # Runs past both sides of the panel (cells span -0.5 .. n - 0.5) ...
    assert vertices[:, 0].min() <= -0.5 and vertices[:, 0].max() >= len(WIDTHS) - 0.5
    # ... at the row where log10 r crosses 0 by linear interpolation between the cell centres.
    np.testing.assert_allclose(vertices[:, 1], 1 + 0.1 / 0.6, rtol=1e-12)
    assert ax.get_xlim() == (-0.5, len(WIDTHS) - 0.5)


def test_cli_select_picks_the_nearest_slice(tmp_path, capsys):
    _result().save(str(tmp_path))
    out = tmp_path / "sel"
    assert cli.main(["plot", str(tmp_path), "--select", "lr_ratio=3", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.split()) == 3 and all(
        (out / p.rsplit("/", 1)[-1]).exists() for p in captured.out.split()
    )
    assert "using 4" in captured.err
    assert all(p.endswith("_lr_ratio-4.png") for p in captured.out.split())  # never the full figures
    figures = phase_figures(_result(), LAYOUT, select={"lr_ratio": 3.0})
    sim = figures["ntk_change_simulation_lr_ratio-4"]
    assert len(_panels(sim)) == 1
    ratio_text = STUDIES["one-hidden-layer"].labels["lr_ratio"].text
    assert f"{ratio_text} = 4" in _texts(sim)
    assert _marks(_panels(sim)[0]) == [(float(DIVERGED_AT[0]), float(DIVERGED_AT[1]))]


@pytest.mark.parametrize(
    "select, message",
    [
        ("depth=3", "unknown axis 'depth'"),
        ("lr_ratio=fast", "expected a number"),
        ("lr_ratio", "expects AXIS=VALUE"),
        ("lr_ratio=nan", "finite number"),
    ],
)
def test_cli_bad_select_exits_2_with_one_line(tmp_path, capsys, select, message):
    _result().save(str(tmp_path))
    assert cli.main(["plot", str(tmp_path), "--select", select]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("linsolve plot: error:") and message in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "figures").exists()


def test_extra_axes_go_to_rows_then_one_figure_per_value():
    extra = {"repeat": np.array([0.0, 1.0])}
    figures = phase_figures(_result(extra=extra), LAYOUT)
    assert len(_panels(figures["ntk_change_simulation"])) == 4  # lr_ratio columns x repeat rows
    assert "repeat = 1, " in _texts(figures["ntk_change_simulation"])
    paged = phase_figures(_result(extra=extra), LAYOUT, max_panels=2)
    assert sorted(paged) == sorted(
        f"{kind}_repeat-{s}"
        for kind in ("ntk_change_simulation", "ntk_change_theory", "theory_vs_simulation_error")
        for s in (0, 1)
    )
    assert "repeat = 1" in _texts(paged["ntk_change_simulation_repeat-1"])
    with pytest.raises(ValueError, match=r"axes \['repeat'\] would need one figure per value"):
        heatmap(_result(extra=extra), "width", "output_exponent", "ntk_change", max_panels=2)


def test_labels_fallback_and_categories():
    assert label_of("time_to_learn_fast").text == "time to learn fast"
    label = Label("parametrization", ticks=("mean_field", "ntk"))
    assert value_text("parametrization", 1, {"parametrization": label}) == "parametrization = ntk"
    axes = {"parametrization": np.arange(2.0), "width": np.array([4.0, 8.0])}
    selection = parse_select(["parametrization=ntk", "width=5"], axes, {"parametrization": label})
    assert selection == {"parametrization": 1.0, "width": 5.0}


def test_every_study_labels_its_axes_and_plotted_outputs():
    for name, study in STUDIES.items():
        layout = study.plot
        names = list(study.axes) + [layout[k] for k in ("value", "theory", "boundary") if layout.get(k)]
        missing = [n for n in names + ["error", "status"] if n not in study.labels]
        assert not missing, f"study {name} has no label for {missing}"


def test_many_values_of_one_axis_wrap_into_a_grid():
    ratios = np.array([0.1, 0.3, 1.0, 3.0, 10.0])
    base = _result().sel(lr_ratio=[4.0])
    data = {k: np.repeat(v, len(ratios), axis=3) for k, v in base.data.items()}
    result = SweepResult({**base.axes, "lr_ratio": ratios}, data, base.meta)
    fig = phase_figures(result, LAYOUT)["ntk_change_simulation"]
    panels = _panels(fig)
    assert len(panels) == 5 and sum(not ax.get_visible() for ax in fig.axes) == 1
    assert panels[-1].get_title().endswith("= 10")
    assert panels[2].get_xlabel() == "width d"  # above the hidden cell: the column's bottom panel


def test_outcome_codes_match_the_simulators():
    from linsolve.plot import _phase
    from linsolve.simulate import STATUS_NAMES

    assert (_phase.DIVERGED, _phase.STEP_LIMIT) == (
        STATUS_NAMES.index("diverged"),
        STATUS_NAMES.index("step_limit"),
    )
    for study in STUDIES.values():
        assert study.labels["status"].ticks == STATUS_NAMES
