r"""1-Wasserstein distance between two finite point sets in the plane with uniform weights.

For points ``x_1..x_n`` and ``y_1..y_m`` (complex numbers, i.e. points of ``R^2``) carrying masses
``1/n`` and ``1/m``, the 1-Wasserstein (earth mover's) distance with the Euclidean ground cost is
the optimal transport problem

    W(x, y) = min_P sum_ij P_ij |x_i - y_j|,   P >= 0,  sum_j P_ij = 1/n,  sum_i P_ij = 1/m

(Villani, *Optimal Transport* (2009), Def. 6.1). When ``n = m`` an optimal ``P`` is a permutation
matrix divided by n (Birkhoff-von Neumann), so ``W = min_pi (1/n) sum_i |x_i - y_pi(i)|``: the
assignment problem, solved exactly by the Hungarian method (:func:`linear_sum_assignment`). For
``n != m`` the transport linear program is solved by the HiGHS dual simplex
(``scipy.optimize.linprog(method="highs-ds")``; Huangfu & Hall, Math. Prog. Comp. 10 (2018) 119)
with the masses scaled to the integers ``m`` (rows) and ``n`` (columns): the constraint matrix of a
transportation problem is totally unimodular, so the optimal vertex is an integer plan that the
simplex method finds without rounding error, and the distance is then summed from it directly.
"""

from __future__ import annotations

import numpy as np

from ._assignment import linear_sum_assignment

__all__ = ["uniform_wasserstein"]

_TOL = 1e-10  # HiGHS feasibility tolerances (their smallest allowed value), on costs scaled to <= 1


def _cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(x[:, None] - y[None, :])


def _assignment_plan(C: np.ndarray) -> np.ndarray:
    n = C.shape[0]
    rows, cols = linear_sum_assignment(C)
    plan = np.zeros_like(C)
    plan[rows, cols] = 1.0 / n
    return plan


def _transport_plan(C: np.ndarray) -> np.ndarray:
    """Optimal plan of the uniform transport problem for the (n, m) cost ``C`` by linear programming."""
    try:
        from scipy.optimize import linprog
        from scipy.sparse import csr_array
    except ImportError as err:  # pragma: no cover - scipy ships with jax
        raise ImportError(
            "the Wasserstein distance between sets of different sizes needs scipy "
            "(pip install scipy)."
        ) from err
    n, m = C.shape
    scale = float(C.max())
    cost = (C / scale if scale > 0 else C).ravel()
    # Variable i m + j is P_ij; constraint i < n: sum_j P_ij = m; constraint n + j: sum_i P_ij = n.
    var = np.arange(n * m)
    constraint = np.concatenate([var // m, n + var % m])
    A_eq = csr_array((np.ones(2 * n * m), (constraint, np.concatenate([var, var]))), shape=(n + m, n * m))
    b = np.concatenate([np.full(n, float(m)), np.full(m, float(n))])
    res = linprog(
        cost,
        A_eq=A_eq,
        b_eq=b,
        bounds=(0, None),
        method="highs-ds",
        options={"primal_feasibility_tolerance": _TOL, "dual_feasibility_tolerance": _TOL},
    )
    if res.status != 0:  # pragma: no cover - a transportation problem is always feasible
        raise RuntimeError(f"the transport linear program failed: {res.message}")
    P = res.x.reshape(n, m)
    integer = np.rint(P)
    exact = np.all(integer.sum(1) == m) and np.all(integer.sum(0) == n) and np.all(integer >= 0)
    return (integer if exact and np.max(np.abs(P - integer)) < 1e-6 else P) / (n * m)


def uniform_wasserstein(x, y, *, method: str = "auto") -> tuple[float, np.ndarray]:
    r"""1-Wasserstein distance between the uniform distributions on two complex point sets.

    **Arguments:**

    - `x`: (n,) complex (or real) points, n >= 1; `y`: (m,) points, m >= 1 (finite, validated by
      the caller).
    - `method`: ``"auto"`` (the Hungarian method when ``n = m``, else the transport LP),
      ``"assignment"`` (``n = m`` only) or ``"lp"`` (any sizes).

    **Returns:** ``(W, plan)``: the distance and an optimal (n, m) transport plan (row sums 1/n,
    column sums 1/m; a permutation matrix / n when solved as an assignment).
    """
    x = np.asarray(x, dtype=np.complex128)
    y = np.asarray(y, dtype=np.complex128)
    C = _cost(x, y)
    if method == "auto":
        method = "assignment" if x.size == y.size else "lp"
    if method == "assignment":
        if x.size != y.size:
            raise ValueError(f"the assignment form needs equal sizes; got {x.size} and {y.size}.")
        plan = _assignment_plan(C)
    elif method == "lp":
        plan = _transport_plan(C)
    else:
        raise ValueError(f"`method` must be 'auto', 'assignment' or 'lp'; got {method!r}.")
    return float(np.sum(plan * C)), plan
