"""The standard figures of a study's sweep: simulation, exact solution and their disagreement."""

from __future__ import annotations

import os

from ._facets import pages, plan_facets, select_nearest
from ._labels import axis_text, format_value, label_of
from ._phase import color_norm, heatmap, normalize_labels, wants_log

__all__ = ["phase_figures", "sweep_figures", "SEED_AXIS"]

#: The axis of independent repetitions that the figures reduce (mean over seeds).
SEED_AXIS = "seed"


def _plotted_axes(axes, layout) -> tuple[str, str]:
    """The layout's (x, y), replaced by other swept axes where the layout's axis has one value."""
    x, y = layout["x"], layout["y"]
    chosen = {"x": x, "y": y}
    for which, other in (("x", "y"), ("y", "x")):
        if len(axes[chosen[which]]) < 2:
            swept = [a for a, v in axes.items() if len(v) > 1 and a not in (chosen[other], x, y)]
            swept = swept or [a for a, v in axes.items() if len(v) > 1 and a != chosen[other]]
            if swept:
                chosen[which] = swept[0]
    return chosen["x"], chosen["y"]


def _study_labels(result) -> dict:
    """The labels of the built-in study named in ``result.meta["config"]["study"]`` ({} if none)."""
    from ..sweep import STUDIES

    study = STUDIES.get(str((result.meta.get("config") or {}).get("study", "")))
    return dict(study.labels) if study is not None else {}


def _page_suffix(axes, where, labels) -> str:
    return "".join(f"_{a}-{format_value(axes[a][i], label_of(a, labels))}" for a, i in where.items())


def phase_figures(result, layout: dict, *, labels=None, select=None, max_panels: int = 16) -> dict:
    """The standard figures of a sweep as ``{file stem: matplotlib Figure}``.

    For the simulated order parameter ``layout["value"]``: ``<value>_simulation`` (with
    divergence / step-limit marks), ``<value>_theory`` when ``layout["theory"]`` names its exact
    counterpart (no marks; same colour scale as the simulation), and ``theory_vs_simulation_error``
    when the result has an ``error`` output. Axes beyond `x`, `y` become small multiples (columns,
    then rows, at most `max_panels` panels a figure); further axes give one figure per value, the
    stem then ending in ``_<axis>-<value>``.

    **Arguments:**

    - `result`: a `SweepResult`.
    - `layout`: ``x``, ``y`` (axes; when one has a single value another swept axis is used),
      ``value``; optional ``theory``, ``boundary`` (an output whose level 1 is the theory's phase
      boundary), ``boundary_label`` (its legend text), ``labels`` (category names of index axes).
    - `labels`: ``{name: Label}`` for axes and outputs (see `Label`); default: those of the
      built-in study named in ``result.meta["config"]["study"]``, if any.
    - `select`: ``{axis: value}``: keep only the grid value nearest to each; titles name the
      values kept and file stems end in ``_<axis>-<value>`` (so slices never overwrite the full
      figures).

    An axis named ``seed`` (independent repetitions) is not drawn as small multiples: it is reduced
    first by ``SweepResult.over_seeds`` (the figures show the mean over the finite draws, marked
    diverged where any draw diverged), unless `select` picks one seed.
    """
    if labels is None:
        labels = _study_labels(result)
    seeds = ""
    if SEED_AXIS in result.axes and SEED_AXIS not in (select or {}):
        seeds = f", mean over {len(result.axes[SEED_AXIS])} seeds"
        result = result.over_seeds(SEED_AXIS)
    labels = {**normalize_labels(layout.get("labels")), **normalize_labels(labels)}
    result, _ = select_nearest(result, select or {}, labels)
    chosen = {a: 0 for a in (select or {})}  # each selected axis now holds its one chosen value
    fixed_stem = _page_suffix(result.axes, chosen, labels)
    # Selected axes now hold one value: `heatmap` names them under the heading with the other
    # single-valued axes.
    x, y = _plotted_axes(result.axes, layout)
    value, theory = layout["value"], layout.get("theory")
    theory = theory if theory and theory in result else None
    boundary = layout.get("boundary")
    common = {
        "boundary": boundary if boundary in result else None,
        "boundary_label": layout.get("boundary_label"),
        "labels": labels,
        "max_panels": max_panels,
    }
    value_label = label_of(value, labels)
    norm = color_norm([result[value]] + ([result[theory]] if theory else []), wants_log(value, labels))
    error_norm = color_norm([result["error"]], wants_log("error", labels)) if "error" in result else None
    facets = plan_facets(result.axes, x, y, max_panels)
    figures = {}
    for where in pages(result.axes, facets):
        page = result.sel(**{a: [result.axes[a][i]] for a, i in where.items()}) if where else result
        suffix = fixed_stem + _page_suffix(result.axes, where, labels)
        name = axis_text(value_label)
        figures[f"{value}_simulation{suffix}"] = heatmap(
            page, x, y, value, norm=norm, marks=True, title=f"{name}: simulation{seeds}", **common
        )
        if theory:
            figures[f"{value}_theory{suffix}"] = heatmap(
                page, x, y, theory, norm=norm, marks=False,
                title=f"{name}: exact solution", **common,
            )
        if error_norm is not None:
            figures[f"theory_vs_simulation_error{suffix}"] = heatmap(
                page,
                x,
                y,
                "error",
                norm=error_norm,
                marks=True,
                title=axis_text(label_of('error', labels)),
                **{**common, "boundary": None},
            )
    return figures


def sweep_figures(result, out: str, layout: dict, *, labels=None, select=None, max_panels: int = 16) -> list:
    """Write the figures of `phase_figures` as PNGs into folder `out`; returns their paths."""
    os.makedirs(out, exist_ok=True)
    paths = []
    for stem, fig in phase_figures(
        result, layout, labels=labels, select=select, max_panels=max_panels
    ).items():
        path = os.path.join(out, f"{stem}.png")
        fig.savefig(path)
        paths.append(path)
    return paths
