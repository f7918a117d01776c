"""Display metadata of sweep axes and outputs: human-readable text, unit, log scale, category names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["Label", "label_of", "axis_text", "value_text", "format_value", "tick_texts"]


class Label(NamedTuple):
    """How a sweep axis or output is shown in figures.

    **Fields:**

    - `text`: human-readable name, e.g. ``"width d"`` or ``r"lr ratio $\\eta_w/\\eta_u$"`` (matplotlib
      mathtext between dollar signs is allowed).
    - `log`: a logarithmic quantity. An output gets a logarithmic colour scale (when its values are
      positive); an axis (drawn by index, so log-spaced values sit evenly) gets two-digit tick labels.
    - `unit`: appended in brackets to axis and colour-bar labels; ``""`` for dimensionless quantities.
    - `ticks`: for a categorical axis holding indices 0, 1, ..., the name of each category
      (e.g. the parametrisations), used for tick labels and slice titles; None otherwise.
    """

    text: str
    log: bool = False
    unit: str = ""
    ticks: tuple[str, ...] | None = None


def label_of(name: str, labels: Mapping[str, Label] | None = None) -> Label:
    """The declared label of `name`, or a fallback: the name with underscores as spaces."""
    if labels and name in labels:
        return labels[name]
    return Label(name.replace("_", " "))


def axis_text(label: Label) -> str:
    """Text for an axis or colour bar: ``"text [unit]"``."""
    return f"{label.text} [{label.unit}]" if label.unit else label.text


def format_value(value, label: Label | None = None) -> str:
    """One axis value as text: a category name, an integer, or three significant digits."""
    v = float(value)
    if label is not None and label.ticks is not None and v.is_integer() and 0 <= v < len(label.ticks):
        return str(label.ticks[int(v)])
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        mantissa, exponent = f"{v:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{v:.2g}" if label is not None and label.log else f"{v:.3g}"


def value_text(name: str, value, labels: Mapping[str, Label] | None = None) -> str:
    """``"text = value [unit]"`` naming one slice, e.g. ``"lr ratio η_w/η_u = 4"``."""
    label = label_of(name, labels)
    unit = f" {label.unit}" if label.unit else ""
    return f"{label.text} = {format_value(value, label)}{unit}"


def tick_texts(values: Sequence[float], label: Label, max_ticks: int = 9) -> tuple[list[int], list[str]]:
    """Positions (indices) and texts of the ticks of an axis drawn by index.

    At most `max_ticks` ticks: a long axis shows every k-th value, always including the first and last.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    step = max(1, int(np.ceil((n - 1) / max(max_ticks - 1, 1)))) if n > max_ticks else 1
    index = list(range(0, n, step))
    if index[-1] != n - 1:
        index[-1] = n - 1
    return index, [format_value(values[i], label) for i in index]
