r"""Online SGD of a two-layer (committee) student on a committee teacher, under ``lax.scan``.

Inputs ``x ~ N(0, I_N)``, teacher ``phi*(x) = sum_{m<M} v*_m g(w*_m.x / sqrt N)``, labels
``y = phi*(x) + sigma z``; the student ``phi(x) = sum_{k<K} v_k g(w_k.x / sqrt N)`` takes one fresh
sample a step,

    w_k <- w_k - (lr / sqrt N) v_k g'(lambda_k) Delta x,    v_k <- v_k - (lr / N) g(lambda_k) Delta,

``Delta = phi(x) - y``, ``lambda_k = w_k.x / sqrt N`` (both layers from the same old weights). The
run records the order parameters ``Q = W W^T / N``, ``R = W W*^T / N``, ``v`` and the exact
generalisation error of the current weights, ``eps_g = 1/2 E[(phi - phi*)^2]``
(:func:`linsolve.exact.committee_error` of the order parameters), at ``alpha = steps / N``. As
``N -> inf`` the records follow :func:`linsolve.exact.committee_ode`.

References: Saad & Solla (1995), Phys. Rev. E 52:4225; Biehl & Schwarze (1995), J. Phys. A
28:643; Goldt, Advani, Saxe, Krzakala & Zdeborova (2019), arXiv 1906.08632.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import erf
from jaxtyping import Array, Bool, Float, Int

from .._validate import as_float, as_scalar, check_key, float_dtype_of
from ..exact._committee_integrals import ACTIVATIONS, generalisation_error
from ._common import check_int, status_code

__all__ = ["OnlineCommitteeRun", "committee_order_parameters", "online_sgd_committee"]


class OnlineCommitteeRun(NamedTuple):
    """One online-SGD run of a committee student; recorded fields carry the record axis first.

    **Fields:**

    - `steps`: (T,) int32 step counts ``0, record_every, ..., steps``; `alpha`: (T,) ``steps / N``.
    - `Q`: (T, K, K), `R`: (T, K, M), `v`: (T, K) order parameters at the records (``Q[0], R[0],
      v[0]`` are those of the initial weights: start :func:`linsolve.exact.committee_ode` there).
    - `T`: (M, M) teacher overlaps ``W* W*^T / N``; `v_star`: (M,) teacher readout.
    - `eps_g`: (T,) generalisation error of the weights at each record (``inf`` after divergence).
    - `W`, `v_final`: (K, N), (K,) the final student weights.
    - `status`: () int32 :data:`~linsolve.simulate.CONVERGED` or :data:`~linsolve.simulate.DIVERGED`.
    - `diverged`: () bool: ``max(|w_k|^2 / N, v_k^2)`` became non-finite or exceeded the bound.
    - `diverged_at`: () the first step count whose weights were bad (``inf`` if none).
    """

    steps: Int[Array, " T"]
    alpha: Float[Array, " T"]
    Q: Float[Array, "T K K"]
    R: Float[Array, "T K M"]
    v: Float[Array, "T K"]
    T: Float[Array, "M M"]
    v_star: Float[Array, " M"]
    eps_g: Float[Array, " T"]
    W: Float[Array, "K N"]
    v_final: Float[Array, " K"]
    status: Int[Array, ""]
    diverged: Bool[Array, ""]
    diverged_at: Float[Array, ""]


def _activation(name: str):
    """``(g, g')`` of an activation name."""
    if name == "erf":
        # Python floats (weakly typed) keep float32 weights float32 when x64 is on.
        root2, scale = float(np.sqrt(2.0)), float(np.sqrt(2 / np.pi))
        return (lambda x: erf(x / root2)), (lambda x: scale * jnp.exp(-0.5 * x**2))
    if name == "linear":
        return (lambda x: x), jnp.ones_like
    return (lambda x: jnp.maximum(x, 0)), (lambda x: (x > 0).astype(x.dtype))


def committee_order_parameters(W, v, W_star, v_star):
    """``(Q, R, T, v, v_star)`` of student weights ``W`` (K, N), ``v`` (K,) and teacher ``W*`` (M, N).

    ``Q = W W^T / N`` (K, K), ``R = W W*^T / N`` (K, M), ``T = W* W*^T / N`` (M, M): the arguments
    of :func:`linsolve.exact.committee_error` and :func:`linsolve.exact.committee_ode`.
    """
    W, v, W_star, v_star = _check_weights(W, v, W_star, v_star)
    N = W.shape[1]
    return W @ W.T / N, W @ W_star.T / N, W_star @ W_star.T / N, v, v_star


def _check_weights(W, v, W_star, v_star, dtype=None):
    dtype = dtype or float_dtype_of(W, v, W_star, v_star)
    W = as_float(W, "student[0]", dtype, ndim=2)
    v = as_float(v, "student[1]", dtype, ndim=1)
    W_star = as_float(W_star, "teacher[0]", dtype, ndim=2)
    v_star = as_float(v_star, "teacher[1]", dtype, ndim=1)
    if W_star.shape[1] != W.shape[1]:
        raise ValueError(
            f"`teacher[0]` must have N={W.shape[1]} columns like `student[0]`; got shape {W_star.shape}."
        )
    if v.shape != (W.shape[0],):
        raise ValueError(f"`student[1]` must have shape ({W.shape[0]},); got {v.shape}.")
    if v_star.shape != (W_star.shape[0],):
        raise ValueError(f"`teacher[1]` must have shape ({W_star.shape[0]},); got {v_star.shape}.")
    return W, v, W_star, v_star


def _pair(name: str, value):
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"`{name}` must be None or a pair (W, v) of weights; got {type(value).__name__}.")
    return value


def online_sgd_committee(
    key,
    *,
    N: int,
    K: int,
    M: int,
    lr,
    steps: int,
    noise=0.0,
    record_every: int = 1,
    train_readout: bool = True,
    init_scale=1e-3,
    activation: str = "erf",
    teacher=None,
    student=None,
    divergence_factor=1e6,
) -> OnlineCommitteeRun:
    r"""Online SGD of a committee student ``phi = sum_k v_k g(w_k.x / sqrt N)``, one sample a step.

    ``w_k <- w_k - (lr / sqrt N) v_k g'(lambda_k) Delta x``, ``v_k <- v_k - (lr / N) g(lambda_k)
    Delta`` (readout only with `train_readout`), ``Delta = phi(x) - phi*(x) - sigma z``, with
    ``x ~ N(0, I_N)`` and ``z ~ N(0, 1)`` drawn anew each step; records ``Q, R, v`` and the exact
    ``eps_g`` at ``alpha = 0, record_every / N, ..., steps / N``.

    **Arguments:**

    - `key`: a JAX PRNG key; it draws the default teacher and student (when not given) and the
      samples (``jax.vmap`` over keys gives independent runs).
    - `N`, `K`, `M`: input dimension, student and teacher widths (static; must match `teacher`
      and `student` when given).
    - `lr`: learning rate > 0 (traced: a vmap over rates compiles once).
    - `steps`: number of SGD steps (a multiple of `record_every`); `record_every`: static.
    - `noise`: label-noise standard deviation ``sigma >= 0``.
    - `train_readout`: train the second layer (static); False is the soft committee machine.
    - `init_scale`: default student ``w_k ~ init_scale N(0, I_N)`` (small: the symmetric plateau).
    - `activation`: ``"erf"`` (``erf(x / sqrt 2)``), ``"linear"`` or ``"relu"`` (static).
    - `teacher`: ``(W*, v*)`` of shapes (M, N), (M,); default ``w*_m ~ N(0, I_N)`` (``T ~ I``),
      ``v* = 1``.
    - `student`: ``(W0, v0)`` of shapes (K, N), (K,); default ``w_k ~ init_scale N(0, I_N)`` and
      ``v = 1`` (with or without `train_readout`).
    - `divergence_factor`: the run is declared diverged once ``max_k max(|w_k|^2 / N, v_k^2)`` is
      non-finite or exceeds ``divergence_factor (1 + its initial value + max_m T_mm)``; the weights
      then freeze at the last good step and ``eps_g`` is ``inf``.

    **Returns:** :class:`OnlineCommitteeRun`. jit/vmap-able over `key`, `lr`, `noise` and explicit
    weights; bad arguments raise a ``ValueError`` naming them before any work.

    References: Saad & Solla (1995), Phys. Rev. E 52:4225; Goldt et al. (2019), arXiv 1906.08632.
    """
    key = check_key(key)
    N = check_int("N", N, 1)
    K = check_int("K", K, 1)
    M = check_int("M", M, 1)
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}; got {activation!r}.")
    if not isinstance(train_readout, bool | np.bool_):
        raise ValueError(f"`train_readout` must be True or False; got {train_readout!r}.")
    teacher = None if teacher is None else _pair("teacher", teacher)
    student = None if student is None else _pair("student", student)
    given = [x for pair in (teacher, student) if pair is not None for x in pair]
    dtype = float_dtype_of(lr, noise, init_scale, *given)
    lr = as_scalar("lr", lr, dtype)
    noise = as_scalar("noise", noise, dtype, strict=False)
    init_scale = as_scalar("init_scale", init_scale, dtype, strict=False)
    factor = as_scalar("divergence_factor", divergence_factor, dtype)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    if steps % record_every:
        raise ValueError(
            f"`steps` must be a multiple of `record_every`; got steps={steps}, record_every={record_every}."
        )
    key_teacher, key_student, key_samples = jr.split(key, 3)
    if teacher is None:
        teacher = (jr.normal(key_teacher, (M, N), dtype), jnp.ones((M,), dtype))
    if student is None:
        student = (init_scale * jr.normal(key_student, (K, N), dtype), jnp.ones((K,), dtype))
    W, v, W_star, v_star = _check_weights(*student, *teacher, dtype=dtype)
    for name, got, want in (
        ("student[0]", W.shape, (K, N)),
        ("teacher[0]", W_star.shape, (M, N)),
    ):
        if got != want:
            raise ValueError(f"`{name}` must have shape {want} from (K, M, N); got {got}.")
    return _run(
        key_samples, W, v, W_star, v_star, lr, noise, factor,
        n_records=steps // record_every, record_every=record_every, activation=activation,
        train_readout=bool(train_readout),
    )


@partial(jax.jit, static_argnames=("n_records", "record_every", "activation", "train_readout"))
def _run(key, W0, v0, W_star, v_star, lr, noise, factor, *, n_records, record_every, activation,
         train_readout):
    dtype = W0.dtype
    N = W0.shape[1]
    sqrt_n = jnp.sqrt(jnp.asarray(N, dtype))
    g, dg = _activation(activation)
    T = W_star @ W_star.T / N

    def size(W, v):
        return jnp.maximum(jnp.max(jnp.sum(W**2, axis=1)) / N, jnp.max(v**2))

    limit = factor * (1 + jnp.maximum(size(W0, v0), jnp.max(jnp.diagonal(T))))

    def observe(W, v):
        Q, R = W @ W.T / N, W @ W_star.T / N
        return Q, R, v, generalisation_error(Q, R, T, v, v_star, activation)

    def step(carry, sample):
        W, v, key, diverged, bad_at, t = carry
        x = sample[:N]
        lam, nu = W @ x / sqrt_n, W_star @ x / sqrt_n
        delta = v @ g(lam) - v_star @ g(nu) - noise * sample[N]
        W_new = W - (lr / sqrt_n) * (v * dg(lam) * delta)[:, None] * x[None, :]
        v_new = v - (lr / N) * g(lam) * delta if train_readout else v
        s = size(W_new, v_new)
        bad = ~jnp.isfinite(s) | (s > limit)
        now = diverged | bad
        bad_at = jnp.where(bad & ~diverged, t + 1, bad_at)
        W, v = jnp.where(now, W, W_new), jnp.where(now, v, v_new)
        return (W, v, key, now, bad_at, t + 1), None

    def chunk(carry, _):
        # the samples of a whole record interval at once: one RNG call per record, not per step
        key, sub = jr.split(carry[2])
        samples = jr.normal(sub, (record_every, N + 1), dtype)
        carry, _ = jax.lax.scan(step, carry[:2] + (key,) + carry[3:], samples)
        Q, R, v, eps = observe(carry[0], carry[1])
        return carry, (Q, R, v, jnp.where(carry[3], jnp.inf, eps))

    carry0 = (W0, v0, key, jnp.zeros((), bool), jnp.full((), -1, jnp.int32), jnp.zeros((), jnp.int32))
    carry, records = jax.lax.scan(chunk, carry0, None, length=n_records)
    first = observe(W0, v0)
    Q, R, v, eps = (jnp.concatenate([a[None], b]) for a, b in zip(first, records))
    W, v_final, _, diverged, bad_at, _ = carry
    steps = jnp.arange(n_records + 1, dtype=jnp.int32) * record_every
    return OnlineCommitteeRun(
        steps=steps,
        alpha=steps.astype(dtype) / N,
        Q=Q,
        R=R,
        v=v,
        T=T,
        v_star=v_star,
        eps_g=eps,
        W=W,
        v_final=v_final,
        status=status_code(diverged),
        diverged=diverged,
        diverged_at=jnp.where(diverged, bad_at.astype(dtype), jnp.inf),
    )
