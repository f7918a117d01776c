"""The result of one family's theorem check, and the error measures every check uses."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Check(NamedTuple):
    """One row of the verification panel.

    - `family`: name of the closed form checked.
    - `cases`: number of random draws (and special cases) compared.
    - `max_rel_error`: max over cases of ``max_t |closed - simulated| / max_t |simulated|``,
      the simulation being ``simulate.gradient_flow`` on the parameter-space ODE, integrated to the
      last time without a steady-state stop (``steady_state=False``).
    - `max_invariant_drift`: max change of the family's conserved quantities along the closed form.
    - `limits_error`: max error of the ``t = 0`` (initial condition) and ``t = inf`` (fixed point)
      limits, and of any other exact identity the family checks (time inversion, known limits).
    - `tolerance`: the bound each error must stay under.
    """

    family: str
    cases: int
    max_rel_error: float
    max_invariant_drift: float
    limits_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        errors = (self.max_rel_error, self.max_invariant_drift, self.limits_error)
        return all(np.isfinite(e) and e <= self.tolerance for e in errors)

    def as_dict(self) -> dict:
        return {**self._asdict(), "passed": self.passed}


def rel_error(approx, reference) -> float:
    """``max |approx - reference| / max |reference|`` over all entries (scale-relative error).

    Computed in NumPy on host copies, so checks do not compile a kernel per shape.
    """
    approx, reference = np.asarray(approx), np.asarray(reference)
    scale = float(np.max(np.abs(reference)))
    err = float(np.max(np.abs(approx - reference)))
    return err / scale if scale > 0 else err


def max_abs(*pairs) -> float:
    """Max over pairs ``(a, b)`` of ``max |a - b|`` (NumPy)."""
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)
