"""Exact linear sum assignment: minimum-cost matching of rows to columns (SciPy's solver).

Given a cost matrix ``C`` (n, m), find the injective assignment of the rows of the smaller side
to the columns of the other that minimises the total cost

    min_{sigma}  sum_i C[i, sigma(i)].

The solver is ``scipy.optimize.linear_sum_assignment`` (a shortest augmenting path method, Crouse,
IEEE Trans. Aerosp. Electron. Syst. 52 (2016) 1679, after Jonker & Volgenant 1987); this module
adds the input checks of the package and the empty case.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment as _scipy_linear_sum_assignment

__all__ = ["linear_sum_assignment"]


def linear_sum_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of rows to columns (exact).

    Solves ``min_sigma sum_i C[i, sigma(i)]`` over injective maps from the smaller side of ``C``
    into the larger one (Kuhn 1955; Munkres 1957; Jonker & Volgenant, Computing 38 (1987) 325),
    with ``scipy.optimize.linear_sum_assignment``.

    **Arguments:**

    - `cost`: (n, m) finite real cost matrix (any n, m >= 0).

    **Returns:** ``(row_ind, col_ind)``, int64 arrays of length ``min(n, m)``, ``row_ind``
    ascending, such that ``cost[row_ind, col_ind].sum()`` is minimal.
    """
    C = np.asarray(cost)
    if C.ndim != 2:
        raise ValueError(f"`cost` must be a 2-D matrix; got shape {C.shape}.")
    if not (np.issubdtype(C.dtype, np.floating) or np.issubdtype(C.dtype, np.integer)):
        raise ValueError(f"`cost` must be a real matrix; got dtype {C.dtype}.")
    C = C.astype(np.float64)
    if not np.all(np.isfinite(C)):
        raise ValueError(f"`cost` must be finite; got {int(np.sum(~np.isfinite(C)))} non-finite entries.")
    if min(C.shape) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    rows, cols = _scipy_linear_sum_assignment(C)
    return rows.astype(np.int64), cols.astype(np.int64)
