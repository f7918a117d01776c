r"""Online minibatch SGD on Gaussian linear regression: fresh samples every step, under ``lax.scan``.

Inputs ``x ~ N(0, Sigma)`` in dimension d, targets ``y = w*.x + sigma z`` (``z ~ N(0, 1)``); one
step draws ``B`` fresh samples and does

    w <- w - (lr/B) sum_b (w.x_b - y_b) x_b,

and the run records the exact population risk of the current weights (from ``w`` and ``Sigma``,
not from samples)

    R(w) = 1/2 (w - w*)^T Sigma (w - w*) + sigma^2/2.

Its expectation over the samples is :func:`linsolve.exact.sgd_risk` (Bordelon & Pehlevan 2021,
arXiv 2106.02713; Paquette et al. 2024, arXiv 2405.15074). Samples are ``x = Sigma^{1/2} g`` with
``g ~ N(0, I)`` for a diagonal ``Sigma`` given as (d,) and ``x = L g`` (``Sigma = L L^T``, Cholesky)
for a (d, d) matrix.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._validate import as_float, as_scalar, check_key, float_dtype_of, is_concrete
from ._common import check_int, is_int, status_code

__all__ = ["OnlineSGDRun", "online_linear_sgd"]


class OnlineSGDRun(NamedTuple):
    """One run of online SGD; the recorded fields carry the record axis first.

    **Fields:**

    - `steps`: (T,) int32 step counts of the records: ``0, record_every, ..., steps``.
    - `risk`: (T,) population risk ``1/2 (w - w*)^T Sigma (w - w*) + sigma^2/2`` at each record;
      ``inf`` from the first record after the run diverged.
    - `w`: (d,) final weights (frozen at the last good step when the run diverged).
    - `status`: () int32 :data:`~linsolve.simulate.CONVERGED` (ran all steps) or
      :data:`~linsolve.simulate.DIVERGED`.
    - `diverged`: () bool: the risk became non-finite or exceeded ``1e8 (R(w_0) + 1)``.
    - `diverged_at`: () the first step count ``t`` whose weights were bad (``inf`` if none).
    """

    steps: Int[Array, " T"]
    risk: Float[Array, " T"]
    w: Float[Array, " d"]
    status: Int[Array, ""]
    diverged: Bool[Array, ""]
    diverged_at: Float[Array, ""]


def _covariance(covariance, dtype):
    """``(sampler, diagonal)``: the Cholesky factor (d, d) or the standard deviations (d,)."""
    cov = as_float(covariance, "covariance", dtype)
    if cov.ndim == 1:
        if cov.shape[0] == 0:
            raise ValueError("`covariance` must have at least one entry; got shape (0,).")
        if is_concrete(cov) and not bool(np.all(np.asarray(cov) >= 0)):
            raise ValueError(
                f"`covariance` (diagonal) must be non-negative; got minimum {float(jnp.min(cov))}."
            )
        return jnp.sqrt(cov), True
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValueError(
            f"`covariance` must be a (d,) diagonal or a (d, d) matrix; got shape {tuple(cov.shape)}."
        )
    if is_concrete(cov):
        c = np.asarray(cov)
        if not np.allclose(c, c.T, rtol=0, atol=1e-12 * max(1.0, float(np.max(np.abs(c))))):
            raise ValueError("`covariance` must be symmetric; got a non-symmetric matrix.")
    factor = jnp.linalg.cholesky(cov)
    if is_concrete(factor) and not bool(jnp.all(jnp.isfinite(factor))):
        raise ValueError("`covariance` must be positive definite (its Cholesky factorisation failed).")
    return factor, False


def _check_batch(batch_size, max_batch_size):
    """``(batch_size, max_batch_size)``: a static int, or a (traced) size below a static maximum."""
    if max_batch_size is None:
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be an integer >= 1 (static; pass `max_batch_size` to trace it); "
                f"got {batch_size!r}."
            )
        return int(batch_size), int(batch_size)
    max_batch_size = check_int("max_batch_size", max_batch_size, 1)
    arr = jnp.asarray(batch_size)
    numeric = jnp.issubdtype(arr.dtype, jnp.integer) or jnp.issubdtype(arr.dtype, jnp.floating)
    if arr.ndim != 0 or not numeric:
        raise ValueError(f"`batch_size` must be a scalar integer; got {batch_size!r}.")
    if is_concrete(arr):
        value = float(arr)
        if not (value == round(value) and 1 <= value <= max_batch_size):
            raise ValueError(
                f"`batch_size` must be an integer in [1, max_batch_size={max_batch_size}]; got {value}."
            )
    return arr, max_batch_size


def online_linear_sgd(
    key,
    *,
    covariance: Float[ArrayLike, " d"] | Float[ArrayLike, " d d"],
    w_star: Float[ArrayLike, " d"],
    w0: Float[ArrayLike, " d"],
    lr,
    batch_size,
    steps: int,
    noise=0.0,
    record_every: int = 1,
    max_batch_size: int | None = None,
    divergence_factor=1e8,
) -> OnlineSGDRun:
    r"""Online minibatch SGD on Gaussian linear regression, ``B`` fresh samples a step.

    ``w_{t+1} = w_t - (lr/B) sum_b (w_t.x_b - y_b) x_b`` with ``x_b ~ N(0, Sigma)``,
    ``y_b = w*.x_b + sigma z_b`` drawn anew each step; records the population risk
    ``R = 1/2 (w - w*)^T Sigma (w - w*) + sigma^2/2`` at ``t = 0, record_every, ..., steps``. Its
    mean over keys is :func:`linsolve.exact.sgd_risk` (with ``c0 = (Q^T (w0 - w*))^2``, ``Q`` the
    eigenvectors of ``Sigma``).

    **Arguments:**

    - `key`: a JAX PRNG key (one run per key: ``jax.vmap`` over keys gives independent runs).
    - `covariance`: ``Sigma``, a (d,) diagonal (>= 0) or a (d, d) symmetric positive-definite
      matrix (sampled through its Cholesky factor).
    - `w_star`: (d,) teacher weights; `w0`: (d,) initial weights.
    - `lr`: learning rate > 0 (traced: new values do not recompile).
    - `batch_size`: ``B``, an integer >= 1, static (one compilation per value); with
      `max_batch_size` it may be traced (``jax.vmap`` over batch sizes): each step then draws
      `max_batch_size` samples and uses the first ``B`` (the same process, at the cost of the
      largest batch).
    - `steps`: number of steps (an integer >= 0, a multiple of `record_every`), static.
    - `noise`: label-noise standard deviation ``sigma >= 0``.
    - `record_every`: steps between records (static).
    - `divergence_factor`: the run is declared diverged once the risk is non-finite or exceeds
      ``divergence_factor (R(w_0) + 1)``; the weights then freeze at the last good step and the
      recorded risk is ``inf``, as in :func:`gradient_descent`.

    **Returns:** :class:`OnlineSGDRun` (``steps``, ``risk``, ``w``, ``status``, ``diverged``,
    ``diverged_at``). jit/vmap-able over `key`, `lr`, `w0`, `w_star`, `noise` (and `batch_size`
    with `max_batch_size`). Bad arguments raise a ``ValueError`` naming them before any work.

    References: Bordelon & Pehlevan (2021), arXiv 2106.02713; Paquette, Paquette, Xiao &
    Pennington (2024), arXiv 2405.15074.
    """
    key = check_key(key)
    dtype = float_dtype_of(covariance, w_star, w0, lr, noise)
    factor, diagonal = _covariance(covariance, dtype)
    d = factor.shape[0]
    w_star = as_float(w_star, "w_star", dtype, ndim=1)
    w0 = as_float(w0, "w0", dtype, ndim=1)
    for name, vec in (("w_star", w_star), ("w0", w0)):
        if vec.shape != (d,):
            raise ValueError(f"`{name}` must have shape ({d},) like `covariance`; got {tuple(vec.shape)}.")
    lr = as_scalar("lr", lr, dtype)
    noise = as_scalar("noise", noise, dtype, strict=False)
    factor_limit = as_scalar("divergence_factor", divergence_factor, dtype)
    batch, width = _check_batch(batch_size, max_batch_size)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    if steps % record_every:
        raise ValueError(
            f"`steps` must be a multiple of `record_every`; got steps={steps}, record_every={record_every}."
        )
    return _run(
        key, factor, w_star, w0, lr, jnp.asarray(batch, dtype), noise, factor_limit,
        diagonal=diagonal, width=width, n_records=steps // record_every, record_every=record_every,
    )


def _population_risk(e, factor, diagonal, noise):
    """``1/2 e^T Sigma e + sigma^2/2`` from the sampling factor (``|L^T e|^2 = e^T Sigma e``)."""
    projected = factor * e if diagonal else factor.T @ e
    return 0.5 * projected @ projected + 0.5 * noise**2


@partial(jax.jit, static_argnames=("diagonal", "width", "n_records", "record_every"))
def _run(key, factor, w_star, w0, lr, batch, noise, limit, *, diagonal, width, n_records, record_every):
    dtype = w0.dtype
    d = w0.shape[0]
    use = (jnp.arange(width) < batch).astype(dtype)  # the first B of `width` samples
    scale = lr / batch
    risk0 = _population_risk(w0 - w_star, factor, diagonal, noise)
    threshold = limit * (risk0 + 1)

    def step(carry, _):
        w, key, diverged, bad_at, t = carry
        key, sub = jr.split(key)
        g = jr.normal(sub, (width, d + 1), dtype)
        x = g[:, :d] * factor if diagonal else g[:, :d] @ factor.T  # (width, d), rows ~ N(0, Sigma)
        residual = x @ (w - w_star) - noise * g[:, d]  # w.x_b - y_b
        w_new = w - scale * (use * residual) @ x
        risk = _population_risk(w_new - w_star, factor, diagonal, noise)
        bad = ~jnp.isfinite(risk) | (risk > threshold)
        now = diverged | bad
        bad_at = jnp.where(bad & ~diverged, t + 1, bad_at)
        return (jnp.where(now, w, w_new), key, now, bad_at, t + 1), None

    def chunk(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=record_every)
        w, diverged = carry[0], carry[2]
        risk = _population_risk(w - w_star, factor, diagonal, noise)
        return carry, jnp.where(diverged, jnp.inf, risk)

    carry0 = (w0, key, jnp.zeros((), bool), jnp.full((), -1, jnp.int32), jnp.zeros((), jnp.int32))
    carry, risks = jax.lax.scan(chunk, carry0, None, length=n_records)
    w, _, diverged, bad_at, _ = carry
    return OnlineSGDRun(
        steps=jnp.arange(n_records + 1, dtype=jnp.int32) * record_every,
        risk=jnp.concatenate([risk0[None], risks]),
        w=w,
        status=status_code(diverged),
        diverged=diverged,
        diverged_at=jnp.where(diverged, bad_at.astype(dtype), jnp.inf),
    )
