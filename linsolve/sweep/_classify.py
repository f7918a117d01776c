"""Label the grid points of a sweep: kernel regime vs feature learning (and the 1-D mechanisms)."""

from __future__ import annotations

import numpy as np

from ..exact import GD_PHASES, MECHANISMS
from ..simulate import DIVERGED, STATUS_NAMES, STEP_LIMIT
from ._result import SweepResult

__all__ = ["classify", "outcomes", "OUTCOMES"]

OUTCOMES = STATUS_NAMES  # ("converged", "diverged", "step_limit")


def outcomes(result: SweepResult) -> np.ndarray:
    """Outcome name of every grid point's simulation (array of str with the grid's shape).

    From the ``status`` output (codes of :data:`linsolve.simulate.STATUS_NAMES`) when the result
    has one, else from the ``diverged`` flag (results of older versions), else all ``"converged"``.
    """
    if "status" in result:
        codes = np.asarray(result["status"], int)
        if codes.shape != result.grid.shape or not np.all((codes >= 0) & (codes < len(OUTCOMES))):
            raise ValueError(
                f"the result's `status` must hold one code in 0..{len(OUTCOMES) - 1} per grid point; "
                f"got shape {codes.shape}, values {np.unique(codes).tolist()}."
            )
        return np.asarray(OUTCOMES)[codes]
    names = np.full(result.grid.shape, OUTCOMES[0])
    if "diverged" in result:
        names = np.where(np.asarray(result["diverged"], bool), OUTCOMES[DIVERGED], names)
    return names


def classify(
    result: SweepResult, *, value: str | None = None, threshold: float = 0.1, mechanisms: bool = False
) -> np.ndarray:
    """Phase label of every grid point (array of str with the grid's shape).

    ``"kernel"`` where the order parameter `value` (default the relative NTK change
    ``|K_T - K_0| / |K_0|``) stays below `threshold`, ``"feature learning"`` above it,
    ``"diverged"`` where the simulation blew up and ``"step limit"`` where the ODE solver ran out
    of steps before the horizon (its order parameters are then unreliable; see :func:`outcomes`).
    With ``mechanisms=True`` and a result that carries the exact solution's ``regime`` codes (the
    one-hidden-layer and parametrizations studies), feature learning is split into the three
    mechanisms of Xu & Ziyin: alignment, disalignment, rescaling.

    Gradient-descent phases: with ``value="phase"`` (or ``"theory_phase"``), the codes of
    :data:`linsolve.exact.GD_PHASES` that the ``learning-rate`` study stores, the labels are
    ``"lazy"``, ``"catapult"``, ``"diverged"`` and ``"undecided"`` (not converged within the
    steps). `value` defaults to ``"phase"`` for a result that has it, else ``"ntk_change"``.
    """
    if value is None:
        value = "phase" if "phase" in result else "ntk_change"
    if value not in result:
        raise ValueError(
            f"`value` must name an output of the result; got {value!r}, outputs are {sorted(result.keys())}."
        )
    if not threshold > 0:
        raise ValueError(f"`threshold` must be positive; got {threshold!r}.")
    order = np.asarray(result[value], dtype=float)
    if order.shape != result.grid.shape:
        raise ValueError(f"`value` must be a scalar per point; {value!r} has shape {order.shape}.")
    if value in ("phase", "theory_phase"):
        codes = order.astype(int)
        if not np.all((codes == order) & (codes >= 0) & (codes < len(GD_PHASES))):
            raise ValueError(
                f"`{value}` must hold GD phase codes 0..{len(GD_PHASES) - 1}; got "
                f"{np.unique(order).tolist()}."
            )
        return np.asarray(GD_PHASES)[codes]
    labels = np.where(order < threshold, "kernel", "feature learning").astype(object)
    if mechanisms:
        if "regime" not in result:
            raise ValueError("`mechanisms=True` needs a result with the exact `regime` codes.")
        names = np.asarray(MECHANISMS, dtype=object)[np.asarray(result["regime"], int)]
        labels = np.where(labels == "kernel", "kernel", np.where(names == "kernel", "alignment", names))
    outcome = outcomes(result)
    labels = np.where(outcome == OUTCOMES[DIVERGED], "diverged", labels)
    labels = np.where(outcome == OUTCOMES[STEP_LIMIT], "step limit", labels)
    return labels.astype(str)
