"""The notebook version of an explorer: ipywidgets sliders, a matplotlib figure, a simulate button.

Every slider move recomputes ``explorer.curves`` (closed forms, milliseconds once compiled) and
redraws; the button runs ``explorer.simulate`` (gradient flow of the full weights) at the current
setting and overlays it as markers, until the next slider move.
"""

from __future__ import annotations

import io

from ._registry import get_explorer
from ._spec import Explorer, as_numpy

__all__ = ["draw", "explorer_widget"]

_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")
_MARKERS = 30  # simulation markers per curve (at most)


def _lines(ax, panel, data: dict, simulation: dict | None) -> None:
    for i, (key, label) in enumerate(panel.series):
        color = _COLORS[i % len(_COLORS)]
        ax.plot(data[panel.x], data[key], color=color, lw=2, label=label)
        if simulation is not None and key in simulation:
            x, y = simulation[panel.x], simulation[key]
            every = max(1, len(x) // _MARKERS)
            ax.plot(x[::every], y[::every], "o", color=color, ms=5, mfc="none", mew=1.3,
                    label=f"{label} (gradient flow)" if i == 0 else None)


def _heatmap(fig, ax, panel, data: dict) -> None:
    (zkey, zlabel), *rest = panel.series
    mesh = ax.pcolormesh(data[panel.x], data[panel.y], data[zkey], shading="nearest",
                         cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=zlabel)
    if rest:
        ckey, clabel = rest[0]
        ax.contour(data[panel.x], data[panel.y], data[ckey], levels=[0.0], colors="white",
                   linewidths=2.5)
        ax.plot([], [], color="white", lw=2.5, label=clabel)


def draw(explorer: Explorer, data: dict, simulation: dict | None = None):
    """A matplotlib figure of the explorer's panels for one setting.

    **Arguments:** `explorer`: the :class:`Explorer`; `data`: its ``curves`` result; `simulation`:
    its ``simulate`` result (markers over the exact lines) or None.

    **Returns:** a ``matplotlib.figure.Figure`` (not attached to pyplot: close nothing).
    """
    from matplotlib.figure import Figure

    n = len(explorer.panels)
    fig = Figure(figsize=(5.2 * n, 4.0), layout="constrained")
    for ax, panel in zip(fig.subplots(1, n, squeeze=False)[0], explorer.panels):
        if panel.kind == "heatmap":
            _heatmap(fig, ax, panel, data)
        else:
            _lines(ax, panel, data, simulation)
        ax.set_xscale("log" if panel.log_x else "linear")
        if panel.kind != "heatmap":
            ax.set_yscale("log" if panel.log_y else "linear")
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.legend(fontsize=8, facecolor="0.85" if panel.kind == "heatmap" else None)
    return fig


def explorer_widget(name, *, smoke: bool = False):
    """The explorer as an ipywidgets app for a notebook: sliders, the exact plot, a simulate button.

    One ``SelectionSlider`` per parameter (the explorer's grid values); every move recomputes the
    closed-form curves (``explorer.curves``) and redraws the figure. The button
    "simulate (gradient flow)" runs ``explorer.simulate`` at the current setting (gradient flow of
    the full weights; float64 when ``jax_enable_x64`` is on) and overlays it as circles.

    **Arguments:** `name`: an explorer name (``list_explorers()``) or an :class:`Explorer`;
    `smoke`: at most three values per slider.

    **Returns:** an ``ipywidgets.VBox`` (display it, or leave it as a cell's last expression) with
    these attributes for use without a browser:

    - `redraw()`: recompute the exact curves at the current setting, redraw; returns the curves.
    - `simulate()`: run and overlay the simulation; returns its result (None if the explorer has
      none).
    - `sliders`: ``{name: SelectionSlider}``; `explorer`: the :class:`Explorer`; `figure`: the
      last matplotlib figure drawn; `image`: that figure as an ``IPython.display.Image`` (PNG),
      which is what the widget shows (a PNG displays in any front end, whatever the matplotlib
      backend, and stays in a saved or rendered notebook).

    Raises ValueError for an unknown `name`, ImportError (naming the extra) without ipywidgets.
    """
    explorer = get_explorer(name)
    try:
        import ipywidgets as widgets
        from IPython.display import Image, display
    except ImportError:
        raise ImportError(
            'linsolve.explore.explorer_widget needs ipywidgets: pip install "linsolve[notebooks]"'
        ) from None
    sliders = {
        s.name: widgets.SelectionSlider(
            options=[(f"{v:g}", v) for v in s.values], value=s.values[s.default],
            description=s.label, continuous_update=True, style={"description_width": "16em"},
            layout=widgets.Layout(width="34em"),
        )
        for s in explorer.grid_sliders(smoke)
    }
    button = widgets.Button(description="simulate (gradient flow)", icon="play",
                            layout=widgets.Layout(width="16em"),
                            disabled=explorer.simulate is None)
    status = widgets.HTML()
    output = widgets.Output()
    box = widgets.VBox([widgets.HTML(f"<b>{explorer.title}</b>"), *sliders.values(),
                        widgets.HBox([button, status]), output])
    state = {"simulation": None, "data": None}

    def setting() -> dict:
        return {k: w.value for k, w in sliders.items()}

    def show() -> None:
        box.figure = draw(explorer, state["data"], state["simulation"])
        png = io.BytesIO()
        box.figure.savefig(png, format="png", dpi=96)
        box.image = Image(data=png.getvalue(), format="png")
        with output:
            output.clear_output(wait=True)
            display(box.image)

    def redraw(change=None) -> dict:
        state["simulation"] = None
        state["data"] = as_numpy(explorer.curves(**setting()))
        status.value = ""
        show()
        return state["data"]

    def simulate(button=None) -> dict | None:
        if explorer.simulate is None:
            return None
        status.value = "simulating ..."
        state["simulation"] = as_numpy(explorer.simulate(**setting()))
        if state["data"] is None:
            state["data"] = as_numpy(explorer.curves(**setting()))
        bad = float(state["simulation"].get("diverged", 0.0))
        status.value = "gradient flow: circles" + (" (diverged!)" if bad else "")
        show()
        return state["simulation"]

    for w in sliders.values():
        w.observe(redraw, names="value")
    button.on_click(simulate)
    box.redraw, box.simulate, box.sliders, box.explorer = redraw, simulate, sliders, explorer
    redraw()
    return box
