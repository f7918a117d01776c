"""Learning-curve figures: mode strengths over time, theory against simulation."""

from __future__ import annotations

import numpy as np


def mode_learning(ts, simulated, theory_ts, theory, singular_values, *, path=None, title=None):
    """Plot mode strengths ``u_alpha(t)``: simulation as dots, closed form as lines.

    **Arguments:** `ts` (T,), `simulated` (T, r); `theory_ts` (T2,), `theory` (T2, r);
    `singular_values` (r,) drawn as dashed targets. Saves to `path` when given; returns the figure.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), dpi=110)
    ax = fig.subplots()
    colors = colormaps["viridis"](np.linspace(0.05, 0.85, len(singular_values)))
    for a, (s, c) in enumerate(zip(np.asarray(singular_values), colors)):
        ax.plot(theory_ts, np.asarray(theory)[:, a], color=c, lw=2, label=f"s = {s:.2g} (exact)")
        ax.plot(ts, np.asarray(simulated)[:, a], "o", color=c, ms=3, alpha=0.7)
        ax.axhline(s, color=c, ls="--", lw=0.8)
    ax.set_xlabel("time t (= steps x learning rate)")
    ax.set_ylabel("mode strength u(t)")
    ax.set_title(title or "Stage-like learning: exact solution (lines) vs gradient descent (dots)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
