"""Slicing a sweep with more than two axes into small multiples: panels, rows and pages.

A heat map shows two axes (`x`, `y`). The other swept axes (more than one value) are laid out as
small multiples: the first one gives the columns (one panel per value), the second one the rows.
Any further axis, and an axis that would make a figure of more than `max_panels` panels, gives one
figure ("page") per value instead. Axes with a single value are fixed and named in the title.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ._labels import format_value, label_of, value_text

__all__ = [
    "Facets",
    "plan_facets",
    "parse_select",
    "select_nearest",
    "slice2d",
    "pages",
    "panels",
    "describe",
]


class Facets(NamedTuple):
    """The layout of the non-plotted axes: `cols`, `rows` (axis names or None), `pages` (names of
    axes with one figure per value) and `fixed` (axes with a single value)."""

    cols: str | None
    rows: str | None
    pages: tuple[str, ...]
    fixed: tuple[str, ...]


def plan_facets(axes: Mapping[str, np.ndarray], x: str, y: str, max_panels: int = 16) -> Facets:
    """Assign every axis other than `x`, `y` to columns, rows, pages or fixed (see module docstring)."""
    for name, arg in ((x, "x"), (y, "y")):
        if name not in axes:
            raise ValueError(f"`{arg}` must be one of the axes {list(axes)}; got {name!r}.")
    if x == y:
        raise ValueError(f"`x` and `y` must be different axes; got {x!r} twice.")
    others = [a for a in axes if a not in (x, y)]
    swept = [a for a in others if len(axes[a]) > 1]
    fixed = tuple(a for a in others if len(axes[a]) == 1)
    cols = rows = None
    pages = []
    for a in swept:
        n = len(axes[a])
        if cols is None and n <= max_panels:
            cols = a
        elif cols is not None and rows is None and n * len(axes[cols]) <= max_panels:
            rows = a
        else:
            pages.append(a)
    return Facets(cols, rows, tuple(pages), fixed)


def parse_select(texts: Sequence[str], axes: Mapping[str, np.ndarray], labels=None) -> dict[str, float]:
    """Parse ``AXIS=VALUE`` strings into ``{axis: value}``.

    VALUE is a number, or a category name of an axis whose label declares `ticks`. Raises a one-line
    ValueError for a missing ``=``, an unknown or repeated axis, or a value that is not a number.
    """
    selection = {}
    for text in texts:
        name, sep, raw = text.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise ValueError(f"--select expects AXIS=VALUE; got {text!r}.")
        if name not in axes:
            raise ValueError(f"--select: unknown axis {name!r}; the axes are {', '.join(axes)}.")
        if name in selection:
            raise ValueError(f"--select: axis {name!r} is selected twice.")
        ticks = label_of(name, labels).ticks
        if ticks is not None and raw in ticks:
            selection[name] = float(ticks.index(raw))
            continue
        try:
            value = float(raw)
        except ValueError:
            names = f" or one of {', '.join(ticks)}" if ticks is not None else ""
            raise ValueError(f"--select {name}: expected a number{names}; got {raw!r}.") from None
        if not np.isfinite(value):
            raise ValueError(f"--select {name}: expected a finite number; got {raw!r}.")
        selection[name] = value
    return selection


def select_nearest(result, selection: Mapping[str, float], labels=None):
    """`result` with each selected axis cut to its grid value nearest the requested one.

    The axis is kept with that single value (so titles can name it). **Returns:** ``(result, notes)``,
    `notes` a list of texts for selections that were not on the grid (``"width = 100 -> 128"``).
    """
    unknown = [a for a in selection if a not in result.axes]
    if unknown:
        raise ValueError(f"`select`: unknown axes {unknown}; the axes are {list(result.axes)}.")
    if not selection:
        return result, []
    picks, notes = {}, []
    for name, wanted in selection.items():
        values = result.axes[name]
        chosen = values[int(np.argmin(np.abs(values - float(wanted))))]
        picks[name] = [chosen]
        if not np.isclose(chosen, wanted, rtol=1e-9, atol=0):
            label = label_of(name, labels)
            notes.append(
                f"{name} = {format_value(wanted)} is not on the grid; using {format_value(chosen, label)}"
            )
    return result.sel(**picks), notes


def slice2d(result, name: str, x: str, y: str, where: Mapping[str, int]) -> np.ndarray:
    """``result[name]`` as a (len(y), len(x)) array at the index `where` of every other axis.

    Trailing output dimensions are reduced by their largest absolute value.
    """
    values = np.asarray(result[name])
    axes = list(result.axes)
    index = tuple(slice(None) if a in (x, y) else where.get(a, 0) for a in axes)
    values = values[index]
    if values.ndim > 2:
        values = np.max(np.abs(values.reshape(values.shape[:2] + (-1,))), axis=-1)
    kept = [a for a in axes if a in (x, y)]
    return values.T if kept == [x, y] else values


def pages(axes: Mapping[str, np.ndarray], facets: Facets):
    """Every combination of the page axes as ``{axis: index}`` (one empty dict without page axes)."""
    ranges = [range(len(axes[a])) for a in facets.pages]
    return [dict(zip(facets.pages, combo)) for combo in itertools.product(*ranges)]


def panels(axes: Mapping[str, np.ndarray], facets: Facets) -> list[list[dict | None]]:
    """The ``{axis: index}`` of each panel, as rows of columns.

    With a column axis only, more than four panels wrap into a near-square grid; the cells past the
    last panel are None.
    """
    if facets.rows:
        n_rows, n_cols = len(axes[facets.rows]), len(axes[facets.cols])
        return [[{facets.rows: i, facets.cols: j} for j in range(n_cols)] for i in range(n_rows)]
    if not facets.cols:
        return [[{}]]
    n = len(axes[facets.cols])
    width = n if n <= 4 else int(np.ceil(np.sqrt(n)))
    cells = [{facets.cols: j} for j in range(n)]
    cells += [None] * (-n % width)
    return [cells[i : i + width] for i in range(0, len(cells), width)]


def describe(axes: Mapping[str, np.ndarray], where: Mapping[str, int], names, labels=None) -> str:
    """``"text = value, ..."`` for the axes `names` at the indices `where` (index 0 when absent)."""
    return ", ".join(value_text(name, axes[name][where.get(name, 0)], labels) for name in names)
