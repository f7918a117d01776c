"""Figures (matplotlib is imported lazily, inside each function)."""

from ._learning import mode_learning as mode_learning
