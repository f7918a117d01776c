"""Phase-diagram heat maps of a sweep: small multiples over the extra axes, theory boundary, outcome marks.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no backend switch), so they
work in scripts, on headless machines and in notebooks alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._facets import describe, panels, plan_facets, select_nearest, slice2d
from ._labels import Label, axis_text, format_value, label_of, tick_texts

__all__ = ["heatmap", "color_norm", "normalize_labels", "DIVERGED", "STEP_LIMIT"]

# Trajectory outcome codes of the `status` output (as `linsolve.simulate.STATUS_NAMES`).
DIVERGED, STEP_LIMIT = 1, 2
_MARKS = {
    DIVERGED: {"marker": "x", "color": "#d62728", "s": 36, "linewidths": 1.8, "label": "diverged"},
    STEP_LIMIT: {
        "marker": "s",
        "facecolors": "none",
        "edgecolors": "#ff7f0e",
        "s": 40,
        "linewidths": 1.6,
        "label": "step limit reached",
    },
}
_BAD_COLOR = "0.82"
_LOG = Label("", log=True)


def normalize_labels(labels) -> dict[str, Label]:
    """``{name: Label}`` from a mapping whose values are a Label or a list of category names."""
    out = {}
    for name, value in (labels or {}).items():
        if isinstance(value, Label):
            out[name] = value
        elif isinstance(value, str):
            out[name] = Label(value)
        else:
            out[name] = label_of(name)._replace(ticks=tuple(str(v) for v in value))
    return out


def wants_log(name: str, labels: Mapping[str, Label]) -> bool:
    """Logarithmic colours for output `name`: its label's choice; True (when positive) without one."""
    return labels[name].log if name in labels else True


def color_norm(arrays, log: bool):
    """A matplotlib norm spanning the finite values of `arrays`; logarithmic when `log` and all positive."""
    from matplotlib.colors import LogNorm, Normalize

    finite = np.concatenate([np.asarray(a, float)[np.isfinite(a)].ravel() for a in arrays] + [np.zeros(0)])
    if finite.size == 0:
        return Normalize(0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if log and lo > 0:
        return LogNorm(lo, hi if hi > lo else lo * 10)
    return Normalize(lo, hi if hi > lo else lo + 1)


def _outcomes(result, x, y, where) -> np.ndarray | None:
    """Outcome codes (len(y), len(x)) from `status`, or from an older result's `diverged` flag."""
    if "status" in result:
        return slice2d(result, "status", x, y, where).astype(int)
    if "diverged" in result:
        return slice2d(result, "diverged", x, y, where).astype(bool).astype(int) * DIVERGED
    return None


def _boundary(ax, ratio: np.ndarray) -> bool:
    """Contour ``ratio = 1`` across the whole panel; True when the panel has the level.

    The contour is of ``log10(ratio)`` on cell centres, extended half a cell past the edges by
    linear extrapolation, so the line runs to the panel's border instead of stopping at the
    outermost centres.
    """
    import matplotlib.patheffects as pe

    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.log10(np.where(ratio > 0, ratio, np.nan))
    level = np.where(np.isfinite(level), level, np.nan)
    if not (np.nanmin(level, initial=np.inf) < 0 < np.nanmax(level, initial=-np.inf)):
        return False
    padded = level
    for axis in (0, 1):
        mode = {"mode": "reflect", "reflect_type": "odd"} if level.shape[axis] > 1 else {"mode": "edge"}
        widths = [(0, 0), (0, 0)]
        widths[axis] = (1, 1)
        padded = np.pad(padded, widths, **mode)
    ny, nx = level.shape
    xs, ys = np.arange(-1, nx + 1), np.arange(-1, ny + 1)
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    ax.contour(
        xs,
        ys,
        padded,
        levels=[0.0],
        colors="white",
        linewidths=2.2,
        path_effects=[pe.withStroke(linewidth=4, foreground="0.15")],
    )
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    return True


def _legend_handles(boundary_label, boundary_drawn, shown_codes, any_missing):
    import matplotlib.patheffects as pe
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    if boundary_drawn:
        stroke = [pe.withStroke(linewidth=4, foreground="0.15")]
        handles.append(Line2D([], [], color="white", lw=2.2, path_effects=stroke, label=boundary_label))
    for code in (DIVERGED, STEP_LIMIT):
        if code in shown_codes:
            style = dict(_MARKS[code])
            label = style.pop("label")
            color = style.get("color", style.get("edgecolors"))
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="none",
                    marker=style["marker"],
                    mec=color,
                    mfc="none",
                    mew=1.6,
                    ms=7,
                    label=label,
                )
            )
    if any_missing:
        handles.append(Patch(facecolor=_BAD_COLOR, edgecolor="0.5", label="no finite value"))
    return handles


def _colorbar(fig, artist, axs, text):
    """A labelled colour bar; a logarithmic one gets plain-number ticks at 1, 2, 5 x 10^k (short
    ranges) or at the decades, without minor-tick clutter."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    bar = fig.colorbar(artist, ax=axs, label=text)
    norm = artist.norm
    if isinstance(norm, LogNorm):
        decades = np.log10(norm.vmax / norm.vmin)
        subs = (1.0,) if decades > 4 else (1.0, 2.0, 5.0) if decades > 1 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        bar.ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        bar.ax.yaxis.set_minor_locator(NullLocator())
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, _LOG)))
    return bar


def _draw_panel(ax, image, norm, cmap, outcomes, boundary_ratio):
    """One heat map (by index) with its marks; returns (image artist, boundary drawn, codes shown)."""
    im = ax.imshow(image, origin="lower", aspect="auto", cmap=cmap, norm=norm, interpolation="nearest")
    drawn = _boundary(ax, boundary_ratio) if boundary_ratio is not None else False
    codes = set()
    if outcomes is not None:
        for code, style in _MARKS.items():
            j, i = np.nonzero(outcomes == code)
            if len(i):
                style = {k: v for k, v in style.items() if k != "label"}
                ax.scatter(i, j, zorder=3, **style)
                codes.add(code)
    return im, drawn, codes


def _axis_ticks(ax, xs, ys, x_label, y_label, *, bottom: bool, left: bool, narrow: bool) -> None:
    """Ticks by index labelled by value; axis titles on the bottom row and the left column only."""
    ticks, texts = tick_texts(xs, x_label, 7 if narrow else 9)
    ax.set_xticks(ticks, texts, rotation=45 if max(map(len, texts)) * len(texts) > 28 else 0)
    ticks, texts = tick_texts(ys, y_label)
    ax.set_yticks(ticks, texts)
    if bottom:
        ax.set_xlabel(axis_text(x_label))
        ax.tick_params(labelbottom=True)
    if left:
        ax.set_ylabel(axis_text(y_label))


def heatmap(
    result,
    x: str,
    y: str,
    value: str,
    *,
    path=None,
    boundary=None,
    title=None,
    log=None,
    labels=None,
    select=None,
    marks=None,
    norm=None,
    boundary_label=None,
    max_panels: int = 16,
    legend: bool = True,
):
    """Heat map of output `value` over axes (`x`, `y`), one panel per slice of the other axes.

    The other swept axes become small multiples: the first gives the columns, the second the rows;
    a figure has at most `max_panels` panels. Axes with one value are named in the title. Axes are
    drawn by index and labelled by value, so log-spaced axes appear evenly spaced.

    **Arguments:**

    - `result`: a `SweepResult`; `x`, `y`, `value`: names of two axes and an output.
    - `path`: save a PNG there when given.
    - `boundary`: an output (a ratio) whose level 1 is drawn as a contour with a legend entry
      `boundary_label` (default ``"theory: <boundary> = 1"``).
    - `title`: figure title (default: the output's label).
    - `log`: logarithmic colour scale (when the values are positive); default: the output's label,
      or True for an output without one.
    - `labels`: ``{name: Label}`` for axes and outputs (a list of names for a categorical axis is
      accepted); missing names show with underscores as spaces.
    - `select`: ``{axis: value}``: cut those axes to the nearest grid value first.
    - `marks`: draw divergence and step-limit marks from the `status` output (or an older
      `diverged` flag); default True unless `value` is an exact-solution output (``theory_*``).
    - `norm`: a matplotlib norm for the colours (e.g. shared with a theory figure).
    - `legend`: a figure legend below the panels for the boundary, the marks and missing values
      (pass False to draw your own).

    **Returns:** the ``matplotlib.figure.Figure``; ``fig.axes[0]`` is the first panel. Raises
    ValueError when the slices would need more than one figure: select values of the extra axes, or
    use `phase_figures`, which writes one figure per slice.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    labels = normalize_labels(labels)
    if value not in result:
        raise ValueError(f"`value` must be an output of the result {sorted(result.keys())}; got {value!r}.")
    result, _ = select_nearest(result, select or {}, labels)
    facets = plan_facets(result.axes, x, y, max_panels)
    if facets.pages:
        raise ValueError(
            f"`heatmap` draws one figure, but the axes {list(facets.pages)} would need one figure per "
            "value: pass `select={axis: value}` for them, or use `phase_figures`."
        )
    value_label = label_of(value, labels)
    if marks is None:
        marks = not value.startswith("theory_")
    grid = panels(result.axes, facets)
    images = [
        [None if w is None else slice2d(result, value, x, y, w).astype(float) for w in row] for row in grid
    ]
    if norm is None:
        use_log = wants_log(value, labels) if log is None else log
        norm = color_norm([im for row in images for im in row if im is not None], use_log)
    cmap = colormaps["viridis"].with_extremes(bad=_BAD_COLOR)

    n_rows, n_cols = len(grid), len(grid[0])
    single = n_rows * n_cols == 1
    size = (6.0, 4.6) if single else (1.2 + 2.9 * n_cols, 1.3 + 2.4 * n_rows)
    fig = Figure(figsize=size, dpi=110, layout="constrained")
    axs = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    xs, ys = result.axes[x], result.axes[y]
    x_label, y_label = label_of(x, labels), label_of(y, labels)
    drawn, codes, missing, artist = False, set(), False, None
    for r, row in enumerate(grid):
        for c, where in enumerate(row):
            ax = axs[r, c]
            if where is None:
                ax.set_visible(False)
                continue
            image = images[r][c]
            missing |= bool(np.any(~np.isfinite(image)))
            ratio = slice2d(result, boundary, x, y, where).astype(float) if boundary in result else None
            outcomes = _outcomes(result, x, y, where) if marks else None
            artist, d, k = _draw_panel(ax, image, norm, cmap, outcomes, ratio)
            drawn, codes = drawn or d, codes | k
            named = [a for a in (facets.rows, facets.cols) if a]
            if named:
                ax.set_title(describe(result.axes, where, named, labels), fontsize=9)
            bottom = r == n_rows - 1 or grid[r + 1][c] is None
            _axis_ticks(ax, xs, ys, x_label, y_label, bottom=bottom, left=c == 0, narrow=n_cols > 1)
    _colorbar(fig, artist, axs, axis_text(value_label))
    heading = title or axis_text(value_label)
    if facets.fixed:
        heading += "\n" + describe(result.axes, {}, facets.fixed, labels)
    if single:
        axs[0, 0].set_title(heading, fontsize=10)
    else:
        fig.suptitle(heading, fontsize=11)
    if drawn and boundary_label is None:
        boundary_label = f"theory: {label_of(boundary, labels).text} = 1"
    handles = _legend_handles(boundary_label, drawn, codes, missing)
    if handles and legend:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    if path is not None:
        fig.savefig(path)
    return fig
