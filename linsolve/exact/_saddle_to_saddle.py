r"""The vanishing-initialisation limit of diagonal linear networks: saddle-to-saddle dynamics.

For ``beta = u*u - v*v`` from ``u0 = v0 = alpha`` (:mod:`linsolve.exact._diagonal`),
``beta_i = 2 alpha^2 sinh(z_i)`` with ``dz/dt = -4 grad L(beta)``, ``grad L = X^T (X beta - y)/n``.
A coordinate is O(1) only once ``|z_i| ~ log(1/alpha^2)``, so in the rescaled time and dual

    tau = t / log(1/alpha),       s = z / (2 log(1/alpha)) = X^T nu / (2 log(1/alpha)),

``s`` stays in ``[-1, 1]^d`` and, as ``alpha -> 0``, moves with velocity ``ds/dtau = -2 grad
L(beta_k)`` while ``beta`` sits at a saddle ``beta_k`` of the loss, coordinate ``i`` being allowed
to be nonzero only where ``|s_i| = 1`` (with the sign of ``s_i``). Pesme & Flammarion (2023),
Algorithm 1 (their time and dual differ from these by constant factors of the parametrisation):

    tau_0 = 0, beta_0 = 0, s_0 = 0; while grad L(beta_k) != 0:
        Delta = min{delta > 0 : |s_i - 2 delta grad L(beta_k)_i| = 1 for some i with grad_i != 0}
        tau_{k+1} = tau_k + Delta,   s_{k+1} = s_k - 2 Delta grad L(beta_k)
        beta_{k+1} = argmin L(beta)  s.t.  beta_i >= 0 if s_i = 1,  <= 0 if s_i = -1,  = 0 else.

The constrained minimiser may leave a coordinate with ``|s_i| = 1`` at zero; its gradient then
points inward and ``s_i`` leaves the boundary: coordinates leave the support as well as join it.
The last saddle interpolates and is the minimum-l1 interpolator (for data in general position).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Bool, Float

from .._validate import is_concrete
from ..simulate._common import check_int
from ..simulate._diagonal import check_regression

__all__ = ["SaddleToSaddle", "saddle_to_saddle"]


class SaddleToSaddle(NamedTuple):
    """The saddles visited by the ``alpha -> 0`` limit of a diagonal linear network.

    **Fields** (K saddles, the first ``beta_0 = 0`` at ``tau = 0``):
    - `times`: (K,) jump times ``tau_k`` in units of ``t / log(1/alpha)``: the flow sits at
      ``saddles[k]`` for ``tau_k < tau < tau_{k+1}``.
    - `saddles`: (K, d) the saddles ``beta_k``.
    - `duals`: (K, d) the rescaled dual ``s(tau_k)`` in ``[-1, 1]^d``.
    - `supports`: (K, d) bool, ``beta_k != 0``; `signs`: (K, d) ``sign(beta_k)`` in {-1, 0, 1}.
    - `losses`: (K,) ``L(beta_k)``.
    - `converged`: bool, whether the last saddle is a global minimum (``grad L = 0``) within
      `max_saddles`.
    """

    times: Float[Array, " K"]
    saddles: Float[Array, "K d"]
    duals: Float[Array, "K d"]
    supports: Bool[Array, "K d"]
    signs: Float[Array, "K d"]
    losses: Float[Array, " K"]
    converged: bool


def _constrained_minimum(X, y, s):
    """``argmin |X beta - y|^2`` with ``beta_i`` of sign ``s_i`` where ``|s_i| = 1``, else 0."""
    d = X.shape[1]
    free = np.flatnonzero(np.abs(s) == 1)
    beta = np.zeros(d)
    if free.size == 0:
        return beta
    lower = np.where(s[free] > 0, 0.0, -np.inf)
    upper = np.where(s[free] > 0, np.inf, 0.0)
    fit = scipy.optimize.lsq_linear(X[:, free], y, bounds=(lower, upper), method="bvls", tol=1e-15)
    beta[free] = fit.x
    # Polish: an unconstrained least squares on the support found (exact to rounding).
    scale = max(np.max(np.abs(fit.x)), 1e-300)
    on = free[np.abs(fit.x) > 1e-12 * scale]
    if on.size:
        polished = np.zeros(d)
        polished[on] = np.linalg.lstsq(X[:, on], y, rcond=None)[0]
        if np.all(np.sign(polished[on]) == s[on]):
            beta = polished
    return beta


def _saddles(X, y, max_saddles):
    n, d = X.shape
    beta, s, tau = np.zeros(d), np.zeros(d), 0.0
    grad0 = X.T @ y / n
    tol = 1e-11 * max(np.max(np.abs(grad0)), 1e-300)
    out = [(tau, beta, s.copy())]
    converged = False
    for _ in range(max_saddles):
        grad = X.T @ (X @ beta - y) / n
        moving = np.abs(grad) > tol
        if not np.any(moving):
            converged = True
            break
        velocity = np.where(moving, -2 * grad, 0.0)
        target = np.sign(velocity)
        safe = np.where(moving, velocity, 1.0)
        delta = np.where(moving, (target - s) / safe, np.inf)
        # A coordinate already at the boundary it moves toward (rounding) cannot set the time.
        delta = np.where(delta > 1e-14, delta, np.inf)
        step = np.min(delta)
        if not np.isfinite(step):
            break
        tau += step
        s = s + step * velocity
        hit = np.abs(delta - step) <= 1e-12 * max(step, 1.0)
        s = np.where(hit, target, np.clip(s, -1.0, 1.0))
        s = np.where(np.abs(np.abs(s) - 1) <= 1e-12, np.sign(s), s)
        beta = _constrained_minimum(X, y, s)
        out.append((tau, beta, s.copy()))
    else:
        grad = X.T @ (X @ beta - y) / n
        converged = not np.any(np.abs(grad) > tol)
    return out, converged


def saddle_to_saddle(
    X: Float[ArrayLike, "n d"], y: Float[ArrayLike, " n"], *, max_saddles: int | None = None
) -> SaddleToSaddle:
    r"""Saddles and jump times of a diagonal linear network in the limit ``alpha -> 0``.

    Pesme & Flammarion's Algorithm 1 (module docstring) in the time ``tau = t / log(1/alpha)``
    and the dual ``s = X^T nu / (2 log(1/alpha))`` of ``beta = 2 alpha^2 sinh(X^T nu)``
    (:func:`linsolve.exact.diagonal_flow`), where ``ds/dtau = -2 grad L(beta_k)`` on the plateau
    at ``beta_k``. The constrained minimisations are bounded least squares
    (``scipy.optimize.lsq_linear``, BVLS), re-solved exactly on the support found. The first jump
    is at ``tau_1 = 1 / (2 max_i |(X^T y)_i| / n)``; the last saddle is the minimum-l1
    interpolator (data in general position). At finite ``alpha`` the flow follows these plateaus
    with jump times off by ``O(1 / log(1/alpha))`` (relative).

    **Arguments:**

    - `X`: (n, d), `y`: (n,) (computed in float64 on the host; results in the inputs' dtype).
    - `max_saddles`: bound on the number of jumps (default ``10 d``); ``converged`` is False when
      it is reached.

    **Returns:** :class:`SaddleToSaddle` ``(times, saddles, duals, supports, signs, losses,
    converged)``.

    References: Pesme & Flammarion (2023), "Saddle-to-saddle dynamics in diagonal linear
    networks", arXiv:2304.00488, Algorithm 1.
    """
    X, y, _, dtype = check_regression(X, y, 1.0)  # the shapes of the diagonal-net problem
    n, d = X.shape
    max_saddles = 10 * d if max_saddles is None else check_int("max_saddles", max_saddles, 1)
    if not is_concrete((X, y)):
        raise ValueError("`X` and `y` must be concrete (the algorithm runs on the host).")
    Xh, yh = np.asarray(X, np.float64), np.asarray(y, np.float64)
    out, converged = _saddles(Xh, yh, max_saddles)
    times = np.array([o[0] for o in out])
    saddles = np.stack([o[1] for o in out])
    duals = np.stack([o[2] for o in out])
    res = saddles @ Xh.T - yh
    losses = 0.5 * np.sum(res * res, axis=1) / n
    return SaddleToSaddle(
        times=jnp.asarray(times, dtype), saddles=jnp.asarray(saddles, dtype),
        duals=jnp.asarray(duals, dtype), supports=jnp.asarray(saddles != 0),
        signs=jnp.asarray(np.sign(saddles), dtype), losses=jnp.asarray(losses, dtype),
        converged=converged,
    )
