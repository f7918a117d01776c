r"""Exact expected risk of online minibatch SGD for linear regression with Gaussian inputs.

Inputs ``x ~ N(0, Sigma)`` in dimension d, targets ``y = w*.x + sigma z`` (``z ~ N(0, 1)``),
per-sample loss ``1/2 (w.x - y)^2``; one step draws ``B`` fresh samples and does
``w <- w - (lr/B) sum_b (w.x_b - y_b) x_b``. Population risk
``R = 1/2 E[(w - w*)^T Sigma (w - w*)] + sigma^2/2``.

**The recursion.** With ``e = w - w*`` and ``C = E[e e^T]``, one step gives
``e' = (I - lr S_B) e + (lr sigma/B) sum_b z_b x_b``, ``S_B = (1/B) sum_b x_b x_b^T``, and Isserlis'
theorem ``E[x x^T C x x^T] = 2 Sigma C Sigma + tr(Sigma C) Sigma`` gives

    C' = (I - lr Sigma) C (I - lr Sigma) + (lr^2/B) (Sigma C Sigma + tr(Sigma C) Sigma + sigma^2 Sigma).

In the eigenbasis of ``Sigma`` (eigenvalues ``lam_k``) the diagonal ``c_k = C_kk`` closes:

    c_k' = (1 - lr lam_k)^2 c_k + (lr^2/B) (lam_k^2 c_k + lam_k sum_j lam_j c_j + sigma^2 lam_k),

exact for Gaussian inputs (Bordelon & Pehlevan 2021, arXiv 2106.02713; Paquette et al., arXiv
2405.15074), and ``R = 1/2 sum_k lam_k c_k + sigma^2/2``. ``B = inf`` (``batch_size=None``) is
gradient descent on the population loss, ``c_k' = (1 - lr lam_k)^2 c_k``.

**Closed form.** ``c' = A c + b`` with ``A = diag(a) + (lr^2/B) lam lam^T``,
``a_k = (1 - lr lam_k)^2 + lr^2 lam_k^2 / B``, ``b = (lr^2 sigma^2/B) lam``: ``A`` is symmetric
positive semi-definite, so with ``A = Q diag(mu) Q^T``

    c_t = Q diag(mu^t) Q^T c_0 + Q diag((1 - mu^t)/(1 - mu)) Q^T b

(``(1 - mu^t)/(1 - mu) = t`` at ``mu = 1``); ``B = inf`` needs no eigensolver (``A`` diagonal).
The cost is one ``eigh`` of a d x d matrix per ``(lr, B)`` plus O(d^2) per requested step.

**Stability** (:func:`sgd_max_learning_rate`). The risk stays bounded iff ``mu_max <= 1``, i.e.
``I - A`` is PSD: with ``delta_k = lr lam_k (2 - lr lam_k (B + 1)/B) > 0`` and the
Sherman-Morrison / Weyl criterion for ``diag(delta) - (lr^2/B) lam lam^T``,

    (lr / B) sum_k lam_k / (2 - lr lam_k (B + 1)/B) <= 1,

whose left side increases with ``lr`` from 0 to infinity on ``(0, 2B / ((B + 1) lam_max))``: the
edge ``lr*`` is its unique root. It obeys ``2B / (tr Sigma + (B + 1) lam_max) <= lr* <=
min(2B / tr Sigma, 2B / ((B + 1) lam_max))``: about ``2B / tr Sigma`` for small batches in high
dimension (the noise of one sample feels the whole spectrum) and ``2 / lam_max`` (gradient
descent) as ``B -> inf``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import (
    as_float,
    as_scalar,
    check_finite,
    check_positive,
    float_dtype_of,
    is_concrete,
)
from ._one_hidden_layer_gd import check_steps

__all__ = ["SGDRisk", "sgd_risk", "sgd_max_learning_rate", "sgd_optimal_learning_rate"]


class SGDRisk(NamedTuple):
    """Expected state of online SGD after integer numbers of steps; leading axes are ``steps``'.

    **Fields:**

    - `risk`: (*steps) population risk ``1/2 sum_k lam_k c_k + sigma^2/2`` (``inf`` once it
      overflows).
    - `c`: (*steps, d) second moments ``E[(w - w*)_k^2]`` in the eigenbasis of ``Sigma``.
    - `spectral_radius`: () ``mu_max`` of the recursion; the risk stays bounded iff ``<= 1``.
    """

    risk: Float[Array, "*steps"]
    c: Float[Array, "*steps d"]
    spectral_radius: Float[Array, ""]


def _spectrum(eigenvalues, dtype, name="eigenvalues"):
    lam = as_float(eigenvalues, name, dtype, ndim=1)
    if lam.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one eigenvalue; got none.")
    check_finite(name, lam)
    check_positive(name, lam, strict=False)
    return lam


def _inverse_batch(batch_size, dtype):
    """``1/B`` (0 for ``None`` or ``inf``: full-batch GD on the population loss)."""
    if batch_size is None:
        return jnp.zeros((), dtype)
    if is_concrete(batch_size) and np.ndim(batch_size) == 0 and not isinstance(batch_size, str):
        try:
            if np.isposinf(float(batch_size)):
                return jnp.zeros((), dtype)
        except (TypeError, ValueError):
            pass  # as_float below names the argument
    B = as_float(batch_size, "batch_size", dtype)
    if B.ndim != 0:
        raise ValueError(f"`batch_size` must be a scalar; got shape {tuple(B.shape)}.")
    if is_concrete(B) and not (float(B) >= 1 and (np.isinf(float(B)) or float(B) == round(float(B)))):
        raise ValueError(f"`batch_size` must be an integer >= 1 (or None / inf); got {float(B)}.")
    return jnp.where(jnp.isinf(B), 0.0, 1.0 / B).astype(dtype)


def _recursion(lam, lr, inv_b, noise):
    """``(a, rho, b)``: ``A = diag(a) + rho lam lam^T`` and the constant ``b``."""
    a = (1 - lr * lam) ** 2 + lr**2 * inv_b * lam**2
    rho = lr**2 * inv_b
    return a, rho, rho * noise**2 * lam


def sgd_risk(
    steps,
    *,
    eigenvalues: Float[ArrayLike, " d"],
    c0: Float[ArrayLike, " d"],
    lr,
    batch_size,
    noise=0.0,
) -> SGDRisk:
    r"""Expected population risk of online minibatch SGD on Gaussian linear regression.

    ``c_t = A^t c_0 + (I - A)^{-1} (I - A^t) b`` in the eigenbasis of ``A`` (module docstring), so
    any step count costs the same. Exact in exact arithmetic; in floating point the eigensolver
    leaves ``~eps |c_0|`` absolute error in ``c_t``.

    **Arguments:**

    - `steps`: non-negative integers of any shape (may be traced).
    - `eigenvalues`: (d,) eigenvalues ``lam_k >= 0`` of the input covariance ``Sigma``.
    - `c0`: (d,) initial ``E[(w_0 - w*)_k^2] >= 0`` in that eigenbasis (for a deterministic start
      ``(Q^T (w_0 - w*))_k^2``).
    - `lr`: learning rate > 0 (scalar); `batch_size`: ``B >= 1`` (an integer, or None / inf for
      gradient descent on the population loss); both may be traced (``jax.vmap`` over them).
    - `noise`: label-noise standard deviation ``sigma >= 0``.

    **Returns:** :class:`SGDRisk` (``risk``, ``c``, ``spectral_radius``).

    References: Bordelon & Pehlevan (2021), arXiv 2106.02713; Paquette, Paquette, Xiao &
    Pennington (2024), arXiv 2405.15074.
    """
    dtype = float_dtype_of(eigenvalues, c0, lr, noise, batch_size)
    lam = _spectrum(eigenvalues, dtype)
    c0 = as_float(c0, "c0", dtype, ndim=1)
    if c0.shape != lam.shape:
        raise ValueError(f"`c0` must have shape {tuple(lam.shape)} like `eigenvalues`; got "
                         f"{tuple(c0.shape)}.")
    check_finite("c0", c0)
    check_positive("c0", c0, strict=False)
    lr = as_scalar("lr", lr, dtype)
    noise = as_scalar("noise", noise, dtype, strict=False)
    inv_b = _inverse_batch(batch_size, dtype)
    steps = check_steps(steps)
    return _risk(steps, lam, c0, lr, inv_b, noise)


@jax.jit
def _risk(steps, lam, c0, lr, inv_b, noise) -> SGDRisk:
    a, rho, b = _recursion(lam, lr, inv_b, noise)
    A = jnp.diag(a) + rho * jnp.outer(lam, lam)
    mu, Q = jnp.linalg.eigh(A)
    mu = jnp.maximum(mu, 0.0)  # A is PSD: rounding only
    t = steps.reshape(-1).astype(lam.dtype)[:, None]
    power = jnp.power(mu, t)  # 0^0 = 1
    # (1 - mu^t)/(1 - mu) without cancellation near mu = 1, and t at mu = 1.
    log_mu = jnp.log(jnp.where(mu > 0, mu, 1.0))
    geometric = jnp.where(
        mu > 0,
        jnp.where(jnp.abs(log_mu) > 0, -jnp.expm1(t * log_mu) / jnp.where(mu != 1, 1 - mu, 1.0), t),
        jnp.where(t > 0, 1.0, 0.0),
    )
    q0, qb = Q.T @ c0, Q.T @ b
    c = (power * q0 + geometric * qb) @ Q.T
    # GD (1/B = 0): A is diagonal; evaluate it directly, exactly as the diagonal recursion.
    c_gd = jnp.power(a, t) * c0
    c = jnp.where(rho == 0, c_gd, c)
    risk = 0.5 * c @ lam + 0.5 * noise**2
    risk = jnp.where(jnp.isnan(risk), jnp.inf, risk)
    shape = steps.shape
    radius = jnp.where(rho == 0, jnp.max(a), jnp.max(mu))
    return SGDRisk(risk.reshape(shape), c.reshape(shape + lam.shape), radius)


def _edge_function(lr, lam, inv_b):
    """``(lr/B) sum_k lam_k / (2 - lr lam_k (1 + 1/B)) - 1`` (< 0 iff bounded)."""
    return lr * inv_b * jnp.sum(lam / (2 - lr * lam * (1 + inv_b))) - 1


def sgd_max_learning_rate(eigenvalues: Float[ArrayLike, " d"], *, batch_size) -> Float[Array, ""]:
    r"""The largest learning rate at which online SGD's expected risk stays bounded.

    The root ``lr*`` of ``(lr/B) sum_k lam_k / (2 - lr lam_k (B + 1)/B) = 1`` on
    ``(0, 2B/((B + 1) lam_max))`` (module docstring), by 200 bisection steps between the bounds
    ``2B/(tr Sigma + (B + 1) lam_max) <= lr* <= min(2B/tr Sigma, 2B/((B + 1) lam_max))``; at it
    the spectral radius of the recursion is 1. ``batch_size=None`` (or inf) gives gradient
    descent's ``2 / lam_max``. jit/vmap-able over `batch_size`.

    **Arguments:** `eigenvalues` (d,) of the input covariance (>= 0, not all 0); `batch_size`
    ``B >= 1``, None or inf. **Returns:** () ``lr*``.
    """
    dtype = float_dtype_of(eigenvalues, batch_size)
    lam = _spectrum(eigenvalues, dtype)
    if is_concrete(lam) and not float(np.max(np.asarray(lam))) > 0:
        raise ValueError("`eigenvalues` must not all be 0 (no curvature: every rate is stable).")
    return _edge(lam, _inverse_batch(batch_size, dtype))


@jax.jit
def _edge(lam, inv_b):
    lam_max, trace = jnp.max(lam), jnp.sum(lam)
    gd = 2.0 / lam_max
    safe = jnp.where(inv_b > 0, inv_b, 1.0)
    lo = 2.0 / (trace * safe + (1 + safe) * lam_max)
    hi = jnp.minimum(2.0 / (trace * safe), 2.0 / ((1 + safe) * lam_max))

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        up = _edge_function(mid, lam, safe) >= 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 200, body, (lo, hi))
    return jnp.where(inv_b > 0, 0.5 * (lo + hi), gd)


def sgd_optimal_learning_rate(
    steps: int, *, eigenvalues, c0, batch_size, noise=0.0, grid: int = 64, refine: int = 60
) -> tuple[Array, Array]:
    r"""The learning rate that minimises the expected risk after `steps` steps, and that risk.

    Searches ``lr`` in ``[1e-6 lr*, lr*)`` (``lr* = sgd_max_learning_rate``): a log-spaced grid of
    `grid` points, then `refine` golden-section steps in log ``lr`` around the best grid point
    (assumes the risk is unimodal there, as it is for these recursions). jit/vmap-able over
    `batch_size` and `noise`.

    **Returns:** ``(lr_opt, risk_opt)``, scalars.
    """
    dtype = float_dtype_of(eigenvalues, c0, noise, batch_size)
    lam = _spectrum(eigenvalues, dtype)
    c0 = as_float(c0, "c0", dtype, ndim=1)
    noise = as_scalar("noise", noise, dtype, strict=False)
    inv_b = _inverse_batch(batch_size, dtype)
    steps = check_steps(steps)
    if steps.ndim != 0:
        raise ValueError(f"`steps` must be one integer; got shape {tuple(steps.shape)}.")
    edge = _edge(lam, inv_b)
    risk_at = lambda log_lr: _risk(steps, lam, c0, jnp.exp(log_lr), inv_b, noise).risk
    logs = jnp.linspace(jnp.log(edge) - jnp.log(1e6), jnp.log(edge) - 1e-9, grid)
    values = jax.vmap(risk_at)(logs)
    i = jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))
    lo, hi = logs[jnp.maximum(i - 1, 0)], logs[jnp.minimum(i + 1, grid - 1)]
    g = (np.sqrt(5.0) - 1) / 2

    def body(_, bracket):
        lo, hi = bracket
        x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
        left = risk_at(x1) <= risk_at(x2)
        return jnp.where(left, lo, x1), jnp.where(left, x2, hi)

    lo, hi = jax.lax.fori_loop(0, refine, body, (lo, hi))
    best = 0.5 * (lo + hi)
    return jnp.exp(best), risk_at(best)
