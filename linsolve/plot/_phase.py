"""Phase-diagram heat maps of a sweep: simulation, theory, phase boundary, theory-vs-simulation error."""

from __future__ import annotations

import os

import numpy as np


def _format(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e6 else f"{v:.3g}"


def _slice2d(result, x: str, y: str, name: str) -> np.ndarray:
    """``result[name]`` as (len(y), len(x)): other axes at their first value, trailing dims reduced."""
    values = result[name]
    axes = list(result.axes)
    index = tuple(slice(None) if a in (x, y) else 0 for a in axes)
    values = values[index]
    kept = [a for a in axes if a in (x, y)]
    if values.ndim > 2:
        values = np.max(np.abs(values.reshape(values.shape[:2] + (-1,))), axis=-1)
    return values.T if kept == [x, y] else values


def heatmap(
    result, x: str, y: str, value: str, *, path=None, boundary=None, title=None, log=True, labels=None
):
    """Heat map of output `value` over axes (`x`, `y`); optional contour where ``boundary == 1``.

    Colour is log10 of the value when `log` and the values are positive. Axes are drawn by index,
    labelled by value, so log-spaced axes appear evenly spaced. Other grid axes are taken at their
    first value. Returns the figure; saves a PNG to `path` when given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Z = _slice2d(result, x, y, value).astype(float)
    finite = np.isfinite(Z)
    use_log = log and np.all(Z[finite] > 0) and finite.any()
    shown = np.where(finite, np.log10(np.where(finite & (Z > 0), Z, 1.0)) if use_log else Z, np.nan)
    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=110)
    im = ax.imshow(shown, origin="lower", aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=f"log10 {value}" if use_log else value)
    xs, ys = result.axes[x], result.axes[y]
    ax.set_xticks(range(len(xs)), [_format(v) for v in xs], rotation=45 if len(xs) > 6 else 0)
    labels = labels or {}
    ax.set_yticks(range(len(ys)), labels.get(y) or [_format(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if boundary is not None and boundary in result:
        R = _slice2d(result, x, y, boundary).astype(float)
        if np.nanmin(R) < 1 < np.nanmax(R) and min(R.shape) > 1:
            cs = ax.contour(np.log10(R), levels=[0.0], colors="white", linewidths=2)
            ax.clabel(cs, fmt={0.0: f"{boundary} = 1"}, fontsize=8)
    if "diverged" in result:
        bad = _slice2d(result, x, y, "diverged").astype(bool)
        for j, i in zip(*np.nonzero(bad)):
            ax.text(i, j, "x", ha="center", va="center", color="red", fontsize=9)
    ax.set_title(title or value)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig


def sweep_figures(result, out: str, layout: dict) -> list[str]:
    """The standard figures of a study's sweep into folder `out`; returns the PNG paths.

    `layout`: ``x``, ``y`` (axes), ``value`` (simulated order parameter), optional ``theory`` (its
    exact counterpart), ``boundary`` (a ratio whose level 1 is the phase boundary), ``labels``.
    """
    os.makedirs(out, exist_ok=True)
    x, y = layout["x"], layout["y"]
    paths = []
    value, boundary, labels = layout["value"], layout.get("boundary"), layout.get("labels")
    p = os.path.join(out, f"{value}_simulation.png")
    heatmap(result, x, y, value, path=p, boundary=boundary, title=f"{value} (simulation)", labels=labels)
    paths.append(p)
    if layout.get("theory") and layout["theory"] in result:
        p = os.path.join(out, f"{value}_theory.png")
        heatmap(
            result,
            x,
            y,
            layout["theory"],
            path=p,
            boundary=boundary,
            title=f"{value} (exact solution)",
            labels=labels,
        )
        paths.append(p)
    if "error" in result:
        p = os.path.join(out, "theory_vs_simulation_error.png")
        heatmap(result, x, y, "error", path=p, title="max relative error, exact vs simulation", labels=labels)
        paths.append(p)
    return paths
