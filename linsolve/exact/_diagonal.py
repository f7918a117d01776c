r"""Diagonal linear networks ``beta = u*u - v*v``: the implicit bias and the reduced (dual) flow.

Gradient flow of ``L = 1/(2n) |X beta - y|^2`` on (u, v) from ``u0 = v0 = alpha``
(:func:`linsolve.simulate.diagonal_gradient_flow`) has, with ``r = X^T (X beta - y)/n``,
``du/dt = -2 u r`` and ``dv/dt = 2 v r``. Hence ``u v = alpha^2`` is conserved,
``u^2 + v^2 = sqrt(beta^2 + 4 alpha^4)``, ``u = alpha e^{-2R}``, ``v = alpha e^{2R}`` with
``R = int_0^t r``, and

    beta(t) = 2 alpha^2 sinh(X^T nu(t)),     nu(t) = -(4/n) int_0^t (X beta(s) - y) ds,

an n-dimensional dual variable (the factor is 4: ``X^T nu = -4R``), obeying

    dnu/dt = -(4/n) (X beta(nu) - y),        dbeta_i/dt = -4 sqrt(beta_i^2 + 4 alpha_i^4) r_i.

**Implicit bias** (Woodworth et al. 2020). ``beta(inf)`` interpolates and is of the form
``2 alpha^2 sinh(X^T nu)``: it is the KKT point of

    min Q_alpha(beta)  s.t.  X beta = y,    Q_alpha(beta) = sum_i alpha_i^2 q(beta_i / alpha_i^2),
    q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z/2),    q'(z) = arcsinh(z/2),

whose dual is the smooth, strictly convex (on the row space) problem
``min_nu F(nu) = sum_i 2 alpha_i^2 cosh((X^T nu)_i) - y.nu``, solved here by damped Newton.
``alpha -> inf``: the minimum-l2 interpolator ``X^+ y``; ``alpha -> 0``: the minimum-l1 one.

**Decoupled designs.** When ``X^T X / n = diag(c)`` each coordinate obeys
``dbeta_i/dt = -4 c_i sqrt(beta_i^2 + 4 alpha_i^4)(beta_i - b_i/c_i)``, ``b = X^T y / n``: the
master mode :func:`linsolve.exact.mode` with ``k = 4``, ``A = 1``, ``B = 2 alpha_i^2``,
``variance = c_i``, ``s = b_i``, ``F0 = 0``.

References: Woodworth et al. (2020), "Kernel and rich regimes in overparametrized models",
arXiv:2002.09277; Pesme & Flammarion (2023), arXiv:2304.00488.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float, Int

from .._validate import as_float, is_concrete
from ..simulate._common import check_int, status_code
from ..simulate._diagonal import _check_times, check_regression
from ..simulate._flow import _check_tolerances, default_solver
from ._mode import mode

__all__ = [
    "DiagonalImplicitBias",
    "DiagonalFlow",
    "diagonal_potential",
    "diagonal_implicit_bias",
    "diagonal_flow",
]


def scaled_sinh(z, log_a, xp=jnp):
    """``a sinh(z)`` for ``a = exp(log_a)``, without overflow of ``sinh`` when ``a`` is tiny.

    ``sgn(z) (e^{|z| + log a} - e^{-|z| + log a}) / 2`` for ``|z| >= 1``, the plain product below
    (no cancellation there).
    """
    big = xp.abs(z) >= 1
    az = xp.where(big, xp.abs(z), 1.0)
    far = xp.sign(z) * 0.5 * (xp.exp(az + log_a) - xp.exp(-az + log_a))
    return xp.where(big, far, xp.exp(log_a) * xp.sinh(xp.where(big, 0.0, z)))


def scaled_cosh(z, log_a, xp=jnp):
    """``a cosh(z)`` for ``a = exp(log_a)`` (no overflow when ``a`` is tiny)."""
    return 0.5 * (xp.exp(xp.abs(z) + log_a) + xp.exp(-xp.abs(z) + log_a))


def diagonal_potential(beta: Float[ArrayLike, "*batch d"], *, alpha) -> Float[Array, "*batch"]:
    r"""Woodworth et al.'s potential ``Q_alpha(beta) = sum_i alpha_i^2 q(beta_i / alpha_i^2)``.

    ``q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z/2)``, written as ``z arcsinh(z/2) - z^2/(2 +
    sqrt(4 + z^2))`` (no cancellation); ``grad Q = arcsinh(beta / (2 alpha^2))``. Interpolates
    between ``|beta|^2 / (4 alpha^2)`` (large alpha) and ``|beta|_1 log(1/alpha^2)`` (small alpha).

    **Arguments:** `beta` (..., d); `alpha` > 0, scalar or (d,).

    **Returns:** (...) the potential.
    """
    beta = as_float(beta, "beta")
    alpha = as_float(alpha, "alpha", beta.dtype)
    a2 = alpha * alpha
    z = beta / a2
    q = z * jnp.arcsinh(z / 2) - z * z / (2 + jnp.sqrt(4 + z * z))
    return jnp.sum(a2 * q, axis=-1)


class DiagonalImplicitBias(NamedTuple):
    """The limit of gradient flow of a diagonal linear network.

    **Fields:** `beta` (d,) the limit; `nu` (n,) the dual variable, ``beta = 2 alpha^2 sinh(X^T
    nu)`` (zeros for the limits alpha = 0 and inf); `residual` () ``|X beta - y| / |y|``;
    `iterations` () Newton iterations (0 for the limits).
    """

    beta: Float[Array, " d"]
    nu: Float[Array, " n"]
    residual: Float[Array, ""]
    iterations: Int[Array, ""]


def _row_space(X, y, eps):
    """``(Xr, yr, P)``: ``X beta = y`` as ``Xr beta = yr`` with ``Xr`` (r, d) of full row rank."""
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    tol = max(X.shape) * eps * (S[0] if S.size else 0.0)
    r = int(np.sum(S > tol))
    if r == 0:
        raise ValueError("`X` must be nonzero.")
    outside = np.linalg.norm(y - U[:, :r] @ (U[:, :r].T @ y))
    if outside > 1e3 * eps * max(np.linalg.norm(y), S[0]):
        raise ValueError(
            "`y` must lie in the range of `X` (an interpolating beta must exist); got a component "
            f"of norm {outside:.3g} outside it."
        )
    return S[:r, None] * Vt[:r], U[:, :r].T @ y, U[:, :r]


def _min_l1(X, y, eps):
    """The minimum-l1 interpolator: an LP (HiGHS), then an exact solve on its support."""
    n, d = X.shape
    lp = scipy.optimize.linprog(
        np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs"
    )
    if lp.status != 0:
        raise ValueError(f"the minimum-l1 problem failed: {lp.message}")
    beta = lp.x[:d] - lp.x[d:]
    support = np.abs(beta) > 1e-9 * max(np.max(np.abs(beta)), 1e-300)
    polished = np.zeros(d)
    polished[support] = np.linalg.lstsq(X[:, support], y, rcond=None)[0]
    same_sign = np.all(np.sign(polished[support]) == np.sign(beta[support]))
    exact = np.linalg.norm(X @ polished - y) <= np.linalg.norm(X @ beta - y)
    return polished if (same_sign and exact) else beta


_EPS = float(np.finfo(np.float64).eps)


def _dual_newton(Xr, yr, log_a2, max_iter=500):
    """Damped Newton with Armijo backtracking on ``F(nu) = sum 2 a2 (cosh z - 1) - yr.nu``."""
    log_2a2 = log_a2 + np.log(2.0)
    log_half_a = 0.5 * log_a2  # (2 alpha sinh(z/2))^2 = 2 alpha^2 (cosh z - 1)

    def objective(nu):
        z = Xr.T @ nu
        if np.max(np.abs(z) + log_2a2) > 700:  # alpha^2 cosh(z) would overflow: out of bounds
            return np.inf
        with np.errstate(over="ignore", invalid="ignore"):
            w = scaled_sinh(z / 2, log_half_a + np.log(2.0), np)
            return np.sum(w * w) - yr @ nu

    def grad(nu):
        with np.errstate(over="ignore", invalid="ignore"):
            return Xr @ scaled_sinh(Xr.T @ nu, log_2a2, np) - yr

    nu = np.zeros(Xr.shape[0])
    scale = np.linalg.norm(yr)
    g, f = grad(nu), objective(nu)
    it = 0
    for it in range(1, max_iter + 1):
        h = scaled_cosh(Xr.T @ nu, log_2a2, np)
        _, R = scipy.linalg.qr(np.sqrt(h)[:, None] * Xr.T, mode="economic")
        step = -scipy.linalg.cho_solve((R, False), g)
        slope = g @ step  # minus the squared Newton decrement
        if -slope <= 1e3 * _EPS * (1 + abs(f)):
            # Quadratic regime: F is flat to rounding, so judge the full step by the gradient.
            g_new = grad(nu + step)
            if not np.linalg.norm(g_new) < np.linalg.norm(g):
                break
            nu, g = nu + step, g_new
            f = objective(nu)
        else:
            # Trial steps move z = X^T nu by at most 50 (the exponentials change by e^50).
            t = min(1.0, 50.0 / max(np.max(np.abs(Xr.T @ step)), 1e-300))
            for _ in range(100):
                f_new = objective(nu + t * step)
                if np.isfinite(f_new) and f_new <= f + 0.25 * t * slope:
                    break
                t *= 0.5
            else:
                break
            nu, f = nu + t * step, f_new
            g = grad(nu)
        if np.linalg.norm(g) <= 1e-15 * scale:
            break
    return nu, it


def diagonal_implicit_bias(
    X: Float[ArrayLike, "n d"], y: Float[ArrayLike, " n"], *, alpha
) -> DiagonalImplicitBias:
    r"""The limit ``beta(inf)`` of gradient flow of ``beta = u*u - v*v`` from ``u0 = v0 = alpha``.

        beta_inf = argmin_{X beta = y} Q_alpha(beta) = 2 alpha^2 sinh(X^T nu*),
        nu* = argmin_nu sum_i 2 alpha_i^2 cosh((X^T nu)_i) - y.nu

    (module docstring; Woodworth et al. 2020, Thm. 1). The dual is reduced to the row space of
    ``X`` (rank r) and solved on the host in float64 by damped Newton with Armijo backtracking,
    every ``alpha sinh``/``alpha cosh`` evaluated in the log domain so ``alpha`` down to 1e-8 and
    below works (measured, n = 10, d = 30: ``|X beta - y| <= 2e-14 |y|`` in 2-30 iterations for
    alpha in [1e-32, 1e8], 118 at alpha = 1e-150). The
    limits: ``alpha = 0`` gives the minimum-l1 interpolator (a HiGHS LP ``min sum(p + q)``,
    ``X (p - q) = y``, ``p, q >= 0``, re-solved exactly on its support), ``alpha = inf`` the
    minimum-l2 one (pseudo-inverse).

    **Arguments:**

    - `X`: (n, d) of any shape (n < d is the interesting case), with `y` (n,) in its range (a
      consistent system); rank-deficient ``X`` is allowed. With full column rank the answer is
      the unique solution.
    - `alpha`: scalar or (d,): all > 0 and finite, or all 0, or all ``inf``. Concrete values only
      (the solve runs on the host).

    **Returns:** :class:`DiagonalImplicitBias` ``(beta, nu, residual, iterations)`` in the inputs'
    dtype.

    References: Woodworth et al. (2020), arXiv:2002.09277.
    """
    X, y, alpha, dtype = check_regression(X, y, alpha, allow_limits=True)
    if not is_concrete((X, y, alpha)):
        raise ValueError("`X`, `y` and `alpha` must be concrete (the dual solve runs on the host).")
    Xh, yh, a = (np.asarray(v, np.float64) for v in (X, y, alpha))
    eps = float(np.finfo(np.float64).eps)
    Xr, yr, U = _row_space(Xh, yh, eps)
    n = Xh.shape[0]
    if np.all(a == 0):
        beta, nu, it = _min_l1(Xh, yh, eps), np.zeros(n), 0
    elif np.all(np.isinf(a)):
        beta, nu, it = np.linalg.pinv(Xh) @ yh, np.zeros(n), 0
    else:
        nu_r, it = _dual_newton(Xr, yr, 2 * np.log(a))
        with np.errstate(over="ignore"):
            beta = scaled_sinh(Xr.T @ nu_r, 2 * np.log(a) + np.log(2.0), np)
        # X^T nu = Vr^T Sr nu_r = X^T (U nu_r) for nu in the range of X.
        nu = U @ nu_r
    if not np.all(np.isfinite(beta)):
        raise ValueError("the dual Newton solve overflowed; `alpha` is too small for float64.")
    residual = np.linalg.norm(Xh @ beta - yh) / max(np.linalg.norm(yh), 1e-300)
    return DiagonalImplicitBias(
        beta=jnp.asarray(beta, dtype), nu=jnp.asarray(nu, dtype),
        residual=jnp.asarray(residual, dtype), iterations=jnp.asarray(it),
    )


class DiagonalFlow(NamedTuple):
    """``beta(t)`` of a diagonal linear network, from the reduced dynamics.

    **Fields:** `ts` (T,); `beta` (T, d); `loss` (T,) ``1/(2n)|X beta - y|^2``; `status` () the
    outcome code of the ODE solve (``simulate.CONVERGED``, ``STEP_LIMIT`` or ``DIVERGED``; always
    ``CONVERGED`` for the closed form); `closed_form` () bool, whether the decoupled closed form
    was used.
    """

    ts: Float[Array, " T"]
    beta: Float[Array, "T d"]
    loss: Float[Array, " T"]
    status: Int[Array, ""]
    closed_form: bool


def _dual_field(t, nu, args):
    X, y, log_2a2 = args
    beta = scaled_sinh(X.T @ nu, log_2a2)
    return -(4 / X.shape[0]) * (X @ beta - y)


@eqx.filter_jit
def _dual_flow(X, y, alpha, ts, rtol, atol, max_steps, solver):
    log_2a2 = jnp.log(2 * alpha * alpha)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_dual_field), solver, t0=jnp.zeros((), ts.dtype),
        t1=jnp.maximum(ts[-1], jnp.finfo(ts.dtype).tiny), dt0=None,
        y0=jnp.zeros(X.shape[0], ts.dtype), args=(X, y, log_2a2), saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4),
        max_steps=max_steps, throw=False,
    )
    beta = jax.vmap(lambda nu: scaled_sinh(X.T @ nu, log_2a2))(sol.ys)
    step_limit = sol.result == diffrax.RESULTS.max_steps_reached
    failed = ~(step_limit | (sol.result == diffrax.RESULTS.successful))
    failed = failed | ~jnp.all(jnp.isfinite(jnp.where(jnp.isfinite(sol.ts)[:, None], beta, 0.0)))
    return beta, status_code(failed, step_limit)


def _decoupled(X, y, alpha, ts):
    n = X.shape[0]
    c = jnp.sum(X * X, axis=0) / n
    b = X.T @ y / n
    live = c > 0
    beta = mode(ts[:, None], F0=0.0, s=jnp.where(live, b, 0.0), k=4.0, A=1.0, B=2 * alpha * alpha,
                variance=jnp.where(live, c, 1.0))
    return jnp.where(live, beta, 0.0)


def _is_decoupled(X) -> bool:
    G = np.asarray(X, np.float64).T @ np.asarray(X, np.float64)
    off = G - np.diag(np.diag(G))
    return bool(np.max(np.abs(off)) <= 1e-12 * max(np.max(np.abs(G)), 1e-300))


def diagonal_flow(
    t: Float[ArrayLike, " T"],
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    *,
    alpha,
    method: str = "auto",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 200_000,
) -> DiagonalFlow:
    r"""``beta(t)`` of gradient flow of ``beta = u*u - v*v`` (``u0 = v0 = alpha``) via its dual ODE.

        dnu/dt = -(4/n) (X beta(nu) - y),   beta(nu) = 2 alpha^2 sinh(X^T nu),   nu(0) = 0,

    n-dimensional instead of 2d, with ``alpha^2 sinh`` evaluated in the log domain (so
    ``alpha = 1e-12`` works: integrate to ``t ~ tau log(1/alpha)``). Integrated by diffrax with
    ``simulate.default_solver``/``default_tolerances`` conventions (float64: ``Dopri8``,
    ``rtol = 1e-10``). When ``X^T X`` is diagonal (decoupled coordinates, e.g. ``X X^T / n = I``
    with d = n) every coordinate is the closed-form master mode (module docstring) and no ODE is
    solved.

    **Arguments:**

    - `t`: (T,) non-negative, non-decreasing times.
    - `X` (n, d), `y` (n,): any shapes; `alpha` > 0 finite, scalar or (d,) (traced in the ODE).
    - `method`: ``"auto"`` (closed form when ``X`` is concrete and decoupled), ``"ode"`` or
      ``"closed_form"`` (ValueError unless decoupled).
    - `rtol`, `atol`, `max_steps`: of the adaptive ODE solve.

    **Returns:** :class:`DiagonalFlow` ``(ts, beta, loss, status, closed_form)``.

    References: Woodworth et al. (2020), arXiv:2002.09277; Pesme & Flammarion (2023),
    arXiv:2304.00488.
    """
    if method not in ("auto", "ode", "closed_form"):
        raise ValueError(f"`method` must be 'auto', 'ode' or 'closed_form'; got {method!r}.")
    X, y, alpha, dtype = check_regression(X, y, alpha)
    ts = _check_times(t, dtype)
    rtol, atol = _check_tolerances(rtol, atol, dtype)
    max_steps = check_int("max_steps", max_steps, 1)
    decoupled = method != "ode" and is_concrete(X) and _is_decoupled(X)
    if method == "closed_form" and not decoupled:
        raise ValueError("`method`='closed_form' needs a decoupled design (X^T X diagonal).")
    if decoupled:
        beta, status = _decoupled(X, y, alpha, ts), status_code(jnp.zeros((), bool))
    else:
        beta, status = _dual_flow(X, y, alpha, ts, rtol, atol, max_steps, default_solver(dtype))
    res = beta @ X.T - y
    loss = 0.5 * jnp.sum(res * res, axis=-1) / X.shape[0]
    return DiagonalFlow(ts=ts, beta=beta, loss=loss, status=status, closed_form=decoupled)
