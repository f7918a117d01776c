"""Exact linear sum assignment (the Hungarian method, shortest-augmenting-path form) in NumPy.

Given a cost matrix ``C`` (n, m), find the injective assignment of the rows of the smaller side
to the columns of the other that minimises the total cost

    min_{sigma}  sum_i C[i, sigma(i)].

This is the algorithm of Kuhn (1955) and Munkres (1957) in the O(n^2 m) shortest augmenting path
form with dual potentials ``u``, ``v`` (Jonker & Volgenant 1987; the version popularised by
e-maxx), the same problem that ``scipy.optimize.linear_sum_assignment`` solves. Each row is added
in turn; a Dijkstra-like search over reduced costs ``C[i, j] - u[i] - v[j] >= 0`` finds the
cheapest augmenting path, the potentials are updated, and the matching is flipped along the path.
The inner search is vectorised over columns, so the Python loop is over rows and path lengths only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_sum_assignment"]


_SMALL = 48  # below this many columns, plain Python lists beat NumPy's per-call overhead


def _solve_wide_python(C: np.ndarray) -> np.ndarray:
    """:func:`_solve_wide_numpy` with Python lists (fast for small matrices, as in the shuffle test)."""
    n, m = C.shape
    rows = C.tolist()
    inf = float("inf")
    u = [0.0] * (n + 1)
    v = [0.0] * (m + 1)
    p = [0] * (m + 1)
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = p[j0]
            row = rows[i0 - 1]
            ui = u[i0]
            delta, j1 = inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = row[j - 1] - ui - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0 != 0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    cols = np.empty(n, dtype=np.int64)
    for j in range(1, m + 1):
        if p[j]:
            cols[p[j] - 1] = j - 1
    return cols


def _solve_wide_numpy(C: np.ndarray) -> np.ndarray:
    """Optimal assignment for ``C`` (n, m) with ``n <= m``; returns the column of every row."""
    n, m = C.shape
    inf = np.inf
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: row (1-based) matched to column j; 0 = free.
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            reduced = C[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:] = np.where(better, reduced, minv[1:])
            way[1:] = np.where(better, j0, way[1:])
            candidates = np.where(free, minv[1:], inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:] = np.where(free, minv[1:] - delta, minv[1:])
            j0 = j1
            if p[j0] == 0:
                break
        while j0 != 0:  # flip the matching along the augmenting path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    cols = np.empty(n, dtype=np.int64)
    matched = np.nonzero(p[1:])[0]
    cols[p[1:][matched] - 1] = matched
    return cols


def _solve_wide(C: np.ndarray) -> np.ndarray:
    return _solve_wide_python(C) if C.shape[1] <= _SMALL else _solve_wide_numpy(C)


def linear_sum_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of rows to columns (exact; Hungarian / Jonker-Volgenant method).

    Solves ``min_sigma sum_i C[i, sigma(i)]`` over injective maps from the smaller side of ``C``
    into the larger one (Kuhn 1955; Munkres 1957; Jonker & Volgenant, Computing 38 (1987) 325).

    **Arguments:**
    - `cost`: (n, m) finite real cost matrix (any n, m >= 0).

    **Returns:** ``(row_ind, col_ind)``, integer arrays of length ``min(n, m)``, ``row_ind``
    ascending, such that ``cost[row_ind, col_ind].sum()`` is minimal (the convention of
    ``scipy.optimize.linear_sum_assignment``).
    """
    C = np.asarray(cost)
    if C.ndim != 2:
        raise ValueError(f"`cost` must be a 2-D matrix; got shape {C.shape}.")
    if not (np.issubdtype(C.dtype, np.floating) or np.issubdtype(C.dtype, np.integer)):
        raise ValueError(f"`cost` must be a real matrix; got dtype {C.dtype}.")
    C = C.astype(np.float64)
    if not np.all(np.isfinite(C)):
        raise ValueError(f"`cost` must be finite; got {int(np.sum(~np.isfinite(C)))} non-finite entries.")
    n, m = C.shape
    if min(n, m) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if n <= m:
        return np.arange(n, dtype=np.int64), _solve_wide(C)
    rows = _solve_wide(C.T)  # row of C assigned to each column of C
    order = np.argsort(rows)
    return rows[order], np.arange(m, dtype=np.int64)[order]
