"""What the axes and parameters of a built-in study accept: finite numbers plus one rule each.

A :class:`Rule` says in words what a value must be (the text completes "`axes.width` must be ...")
and tests it elementwise; :func:`check` applies it to an axis (an array of values) or a parameter
(one value) and raises ``ConfigError`` naming the key, the rule and the values given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._config import ConfigError

__all__ = ["Rule", "REAL", "POSITIVE", "NONZERO", "POSITIVE_INT", "integer", "check", "SEED"]


@dataclass(frozen=True)
class Rule:
    """`text` completes "must be ..."; `accepts` maps a float array to a bool array (elementwise)."""

    text: str
    accepts: Callable[[np.ndarray], np.ndarray]


def _is_int(v):
    return v == np.round(v)


REAL = Rule("a finite number", lambda v: np.ones(np.shape(v), bool))
POSITIVE = Rule("positive", lambda v: v > 0)
NONZERO = Rule("non-zero", lambda v: v != 0)
POSITIVE_INT = Rule("a positive integer", lambda v: (v >= 1) & _is_int(v))


def integer(low: int, high: int | None = None, *, text: str | None = None) -> Rule:
    """Integers in ``[low, high]`` (`high` None: no upper bound); `text` replaces the default words."""
    if text is None:
        text = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    upper = np.inf if high is None else high
    return Rule(text, lambda v: (v >= low) & (v <= upper) & _is_int(v))


SEED = integer(0, 2**32 - 1, text="an integer in 0..2**32-1 (a PRNG seed)")


def _show(values):
    return values.tolist() if isinstance(values, np.ndarray) else repr(values)


def check(where: str, values, rule: Rule) -> None:
    """Raise ``ConfigError`` unless every value is finite and accepted by `rule`.

    **Arguments:**

    - `where`: the key as the user writes it, e.g. ``"axes.width"`` or ``"params.size"``.
    - `values`: one number, or an array of them (an axis).
    - `rule`: the :class:`Rule`.
    """
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v)):
        raise ConfigError(f"`{where}` must be finite; got {_show(values)}.")
    if not np.all(rule.accepts(v)):
        raise ConfigError(f"`{where}` must be {rule.text}; got {_show(values)}.")
