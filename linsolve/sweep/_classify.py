"""Label the grid points of a sweep: kernel regime vs feature learning (and the 1-D mechanisms)."""

from __future__ import annotations

import numpy as np

from ..exact import MECHANISMS
from ._result import SweepResult

__all__ = ["classify"]


def classify(
    result: SweepResult, *, value: str = "ntk_change", threshold: float = 0.1, mechanisms: bool = False
) -> np.ndarray:
    """Phase label of every grid point (array of str with the grid's shape).

    ``"kernel"`` where the order parameter `value` (default the relative NTK change
    ``|K_T - K_0| / |K_0|``) stays below `threshold`, ``"feature learning"`` above it, and
    ``"diverged"`` where the run diverged. With ``mechanisms=True`` and a result that carries the
    exact solution's ``regime`` codes (the one-hidden-layer and parametrizations studies), feature
    learning is split into the three mechanisms of Xu & Ziyin: alignment, disalignment, rescaling.
    """
    if value not in result:
        raise ValueError(
            f"`value` must name an output of the result; got {value!r}, outputs are {sorted(result.keys())}."
        )
    if not threshold > 0:
        raise ValueError(f"`threshold` must be positive; got {threshold!r}.")
    order = np.asarray(result[value], dtype=float)
    if order.shape != result.grid.shape:
        raise ValueError(f"`value` must be a scalar per point; {value!r} has shape {order.shape}.")
    labels = np.where(order < threshold, "kernel", "feature learning").astype(object)
    if mechanisms:
        if "regime" not in result:
            raise ValueError("`mechanisms=True` needs a result with the exact `regime` codes.")
        names = np.asarray(MECHANISMS, dtype=object)[np.asarray(result["regime"], int)]
        labels = np.where(labels == "kernel", "kernel", np.where(names == "kernel", "alignment", names))
    if "diverged" in result:
        labels = np.where(np.asarray(result["diverged"], bool), "diverged", labels)
    return labels.astype(str)
