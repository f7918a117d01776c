r"""Exact gradient DESCENT of one balanced, aligned mode of a deep linear network.

A mode of a depth-``L`` linear net that is balanced and aligned with the task (as in
:func:`~linsolve.exact.saxe_mode`) is a chain of layer scalars ``a_1, ..., a_L`` with strength
``u = a_L ... a_1`` and loss

    l(a) = 1/2 v u^2 - s u + (gamma/2) sum_l a_l^2        (v = input variance along the mode).

With ``g = v u - s`` one GD step at rate ``lr`` on every layer is
``a_l' = (1 - lr gamma) a_l - lr g u / a_l``. Balanced means ``|a_l| = r`` for every layer; with
signs ``sigma_l`` and ``S = sgn(u) = prod sigma_l``, ``u / a_l = prod_{k != l} a_k = S sigma_l
r^{L-1}``, so

    a_l' = sigma_l q,     q = (1 - lr gamma) r - lr g S r^{L-1}:

every layer keeps the common magnitude ``r' = |q|`` (GD preserves balance of an aligned mode), and
its sign flips exactly when ``q < 0``, for all layers at once, so ``S' = S sgn(q)^L`` and

    u' = S' r'^L.

A sign flip of ``q`` (an overshoot of the layers through zero) changes the sign of ``u`` only for
odd ``L``. ``u0 = 0`` stays 0 for ``L >= 2`` (a saddle); for ``L = 1`` the map is the linear
``u' = u - lr (v u - s + gamma u)``. As ``lr -> 0`` with ``t = lr * steps`` the map approaches the
gradient flow :func:`~linsolve.exact.saxe_mode` (``tau = 1``) with an O(lr) error.

**Stability.** Near its fixed point ``u* = s / v`` (``gamma = 0``) the mode is linearly stable iff
``lr v L |u*|^{2 - 2/L} < 2`` (the top eigenvalue of the preconditioned Hessian of the balanced
minimum, :func:`~linsolve.exact.max_learning_rate`); just above it the iterates oscillate
(period doubling), far above it they diverge.

Reference: Saxe, McClelland & Ganguli (2014), arXiv:1312.6120 (balanced aligned modes); the
discrete map and its stability: Lewkowycz et al. (2020), arXiv:2003.02218 (depth 2).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._validate import as_float, as_scalar, check_positive, float_dtype_of, is_concrete
from ._saxe import _check_broadcast, _check_depth

__all__ = ["SaxeModeGD", "saxe_mode_gd"]


class SaxeModeGD(NamedTuple):
    """State of a balanced aligned mode after integer numbers of GD steps (broadcast shape).

    **Fields:**

    - `u`: (*shape) the strength ``u = a_L ... a_1``; ``nan`` from the step at which the run
      diverged on (see `diverged`).
    - `loss`: (*shape) the mode's loss without the penalty, ``(v u - s)^2 / (2 v)``
      (``= 1/2 v u^2 - s u + s^2/(2v)``, zero at ``u = s/v``); ``inf`` once diverged.
    - `diverged`: (*shape) bool, the run had diverged by that step.
    - `diverged_at`: (*shape) the step at which it diverged (``inf`` when it had not by then).
    """

    u: Float[Array, "*shape"]
    loss: Float[Array, "*shape"]
    diverged: Bool[Array, "*shape"]
    diverged_at: Float[Array, "*shape"]


def _check_steps(steps) -> np.ndarray:
    """Concrete non-negative integer step counts (integral floats accepted), as an int64 array."""
    if not is_concrete(steps):
        raise ValueError(
            "`steps` must be concrete (not traced under jit/vmap): the scan length is max(steps)."
        )
    arr = np.asarray(steps)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"`steps` must be non-negative integers; got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"`steps` must be real integers; got dtype {arr.dtype}.")
    if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr)) & (arr >= 0)):
        raise ValueError(f"`steps` must be non-negative integers; got {arr.tolist()}.")
    return arr.astype(np.int64)


def saxe_mode_gd(
    steps: Int[ArrayLike, "*steps"], *, s, u0, lr, depth: int = 2, variance=1.0,
    weight_decay=0.0, divergence_factor=1e8,
) -> SaxeModeGD:
    r"""Exact gradient descent of a balanced, aligned mode of a depth-``L`` linear network.

    Iterates ``q = (1 - lr gamma) r - lr (v u - s) S r^{L-1}``, ``r' = |q|``,
    ``S' = S sgn(q)^L``, ``u' = S' r'^L`` from ``r = |u0|^{1/L}``, ``S = sgn(u0)`` (module
    docstring): the strength of a mode of ``W_L ... W_1`` trained by
    ``W_l <- W_l - lr (dL/dW_l + gamma W_l)`` (:func:`linsolve.simulate.gradient_descent` with equal
    rates) from a balanced init aligned with ``Syx = U diag(s) V^T`` and ``Sxx = V diag(v) V^T``.

    **Arguments:**

    - `steps`: non-negative integers of any shape; must be concrete (a ``lax.scan`` runs
      ``max(steps)`` steps and the requested ones are gathered).
    - `s`: task singular value; `u0`: initial strength (any signs); `lr`: learning rate > 0;
      `variance`: input variance ``v > 0`` along the mode; `weight_decay`: ``gamma >= 0``. These
      broadcast against `steps` and each other (e.g. ``steps[:, None]`` against (r,) modes); they
      may be traced (jit/vmap over `lr`, `s`, `u0`, ...).
    - `depth`: number of weight matrices ``L`` (a Python int >= 1; static).
    - `divergence_factor`: the run is declared diverged when the mode's loss is non-finite or
      exceeds ``divergence_factor (loss_0 + 1)`` (the rule of ``simulate.gradient_descent``);
      the state then freezes.

    **Returns:** :class:`SaxeModeGD` with the broadcast shape. After divergence ``u`` is ``nan``
    and ``loss`` is ``inf`` (``diverged`` True, ``diverged_at`` the step); ``steps = 0`` gives
    ``u0`` exactly.

    References: Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Lewkowycz et al. (2020),
    arXiv:2003.02218.
    """
    L = _check_depth(depth)
    steps = _check_steps(steps)
    dtype = float_dtype_of(s, u0, lr, variance, weight_decay, divergence_factor)
    s = as_float(s, "s", dtype)
    u0 = as_float(u0, "u0", dtype)
    lr = as_float(lr, "lr", dtype)
    check_positive("lr", lr)
    v = as_float(variance, "variance", dtype)
    check_positive("variance", v)
    gamma = as_float(weight_decay, "weight_decay", dtype)
    check_positive("weight_decay", gamma, strict=False)
    factor = as_scalar("divergence_factor", divergence_factor, dtype)
    _check_broadcast({"steps": steps, "s": s, "u0": u0, "lr": lr, "variance": v,
                      "weight_decay": gamma})
    n = int(steps.max()) if steps.size else 0
    return _run(jnp.asarray(steps), s, u0, lr, v, gamma, factor, L, n)


def _step(state, p, L: int, limit):
    """One GD step of ``(r, S)``; frozen (with its first bad step kept) once diverged."""
    r, S, dead, dead_at, k = state
    s, lr, v, gamma = p
    u = S * r**L
    q = (1 - lr * gamma) * r - lr * (v * u - s) * S * r ** (L - 1)
    r_new = jnp.abs(q)
    S_new = S * jnp.where(q < 0, -1.0, 1.0) ** L
    u_new = S_new * r_new**L
    loss = (v * u_new - s) ** 2 / (2 * v)
    bad = ~(jnp.isfinite(loss) & (loss <= limit))
    now = dead | bad
    k = k + 1
    state = (jnp.where(now, r, r_new), jnp.where(now, S, S_new), now,
             jnp.where(bad & ~dead, k, dead_at), k)
    return state, jnp.where(now, jnp.nan, u_new)


def _gather(hist, k, shape, out_shape):
    """``hist[k[i], j(i)]`` for every index ``i`` of `out_shape`, ``j(i)`` its broadcast
    parameter index (memory O(size of the result), not O(steps x size))."""
    n_pad = len(out_shape) - len(shape)
    hist = hist.reshape(hist.shape[0], *((1,) * n_pad), *shape)  # align the axes on the right
    index = [k]
    for axis, size in enumerate(out_shape):
        line = jnp.arange(size) if hist.shape[axis + 1] == size else jnp.zeros(size, int)
        index.append(line.reshape((1,) * axis + (size,) + (1,) * (len(out_shape) - axis - 1)))
    return hist[tuple(index)]


@functools.partial(jax.jit, static_argnums=(7, 8))
def _run(steps, s, u0, lr, v, gamma, factor, L: int, n: int) -> SaxeModeGD:
    dtype = u0.dtype
    shape = jnp.broadcast_shapes(s.shape, u0.shape, lr.shape, v.shape, gamma.shape)
    s, u0, lr, v, gamma = (jnp.broadcast_to(x, shape) for x in (s, u0, lr, v, gamma))
    limit = factor * ((v * u0 - s) ** 2 / (2 * v) + 1)
    S0 = jnp.where(u0 < 0, -1.0, 1.0).astype(dtype)
    r0 = jnp.abs(u0) ** (1.0 / L)
    never = jnp.full(shape, jnp.iinfo(jnp.int32).max, jnp.int32)
    state0 = (r0, S0, jnp.zeros(shape, bool), never, jnp.zeros((), jnp.int32))
    p = (s, lr, v, gamma)
    last, hist = jax.lax.scan(lambda c, _: _step(c, p, L, limit), state0, None, length=n)
    hist = jnp.concatenate([u0[None], hist])  # (n + 1, *shape): u after k steps
    out_shape = jnp.broadcast_shapes(steps.shape, shape)
    k = jnp.broadcast_to(steps, out_shape).astype(jnp.int32)
    u = _gather(hist, k, shape, out_shape)
    dead_at = jnp.broadcast_to(last[3], out_shape)
    diverged = k >= dead_at
    loss = jnp.where(diverged, jnp.inf, (v * u - s) ** 2 / (2 * v))
    return SaxeModeGD(
        u=u, loss=loss.astype(dtype), diverged=diverged,
        diverged_at=jnp.where(diverged, dead_at.astype(dtype), jnp.inf),
    )
