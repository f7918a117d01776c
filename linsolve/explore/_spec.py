"""What an explorer is: its sliders (each a grid of values), its panels and its two functions.

An :class:`Explorer` couples a pure function ``curves(**setting) -> dict of arrays`` (closed forms of
``linsolve.exact``) with a description of how to draw those arrays (:class:`Panel`) and of the
sliders that pick the setting (:class:`Slider`). The same description drives the self-contained
HTML page (``linsolve.explore.write_html``) and the notebook widget
(``linsolve.explore.explorer_widget``), so both show the same thing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Explorer", "Panel", "Slider"]


class Slider(NamedTuple):
    """One control of an explorer: a named parameter and the grid of values it can take.

    **Fields:**

    - `name`: the keyword of ``Explorer.curves`` it sets (e.g. ``"u0"``).
    - `label`: what the page shows beside it (e.g. ``"init scale u0"``).
    - `values`: the grid, a tuple of Python floats (or ints), in slider order.
    - `default`: index into `values` of the initial position.
    """

    name: str
    label: str
    values: tuple
    default: int = 0

    def smoke(self) -> Slider:
        """A coarser copy for fast checks: at most three values, the default kept among them."""
        n = len(self.values)
        if n <= 3:
            return self
        keep = sorted({0, self.default, n - 1})
        return self._replace(values=tuple(self.values[i] for i in keep),
                             default=keep.index(self.default))


class Panel(NamedTuple):
    """One plot of an explorer, drawn from the arrays that ``Explorer.curves`` returns.

    **Fields:**

    - `kind`: ``"lines"`` (curves ``y = data[key]`` against ``data[x]``) or ``"heatmap"``
      (``z = data[key]`` of shape (len(data[y]), len(data[x])), the first series the colour, an
      optional second series drawn as its zero contour line).
    - `title`, `xlabel`, `ylabel`: text.
    - `x`: key of the x array; `y`: key of the y array (heat maps only, else None).
    - `series`: tuple of ``(key, label)`` pairs.
    - `log_x`, `log_y`: logarithmic axes.
    """

    kind: str
    title: str
    xlabel: str
    ylabel: str
    x: str
    series: tuple
    y: str | None = None
    log_x: bool = False
    log_y: bool = False


class Explorer(NamedTuple):
    """A classroom explorer: sliders over a grid of settings, exact curves for each.

    **Fields:**

    - `name`: the name of the command line (``linsolve explore NAME``), e.g. ``"saxe-stages"``.
    - `title`: one line; `description`: a paragraph for the page (plain text).
    - `sliders`: tuple of :class:`Slider`.
    - `panels`: tuple of :class:`Panel`.
    - `curves`: ``curves(**setting) -> dict[str, np.ndarray]``, the closed-form arrays at one
      setting (a keyword per slider; any value, not only grid values).
    - `simulate`: ``simulate(**setting) -> dict[str, np.ndarray]``, a float64 gradient-flow run of
      the full weights at that setting, with the keys of `curves` it reproduces (drawn as markers
      over the exact curves), or None.
    """

    name: str
    title: str
    description: str
    sliders: tuple
    panels: tuple
    curves: Callable
    simulate: Callable | None = None

    def defaults(self) -> dict:
        """The setting at every slider's default position."""
        return {s.name: s.values[s.default] for s in self.sliders}

    def settings(self, smoke: bool = False) -> list[dict]:
        """Every setting of the grid, in C order over the sliders (the last slider fastest);
        `smoke`: the coarse grid of :meth:`Slider.smoke`."""
        sliders = [s.smoke() if smoke else s for s in self.sliders]
        names = [s.name for s in sliders]
        return [dict(zip(names, combo)) for combo in itertools.product(*(s.values for s in sliders))]

    def grid_sliders(self, smoke: bool = False) -> tuple:
        """The sliders of the grid that :meth:`settings` walks."""
        return tuple(s.smoke() if smoke else s for s in self.sliders)


def as_numpy(data: dict) -> dict:
    """A ``curves`` result as float64 NumPy arrays (non-finite entries kept)."""
    return {k: np.asarray(v, dtype=np.float64) for k, v in data.items()}
