r"""Exact gradient DESCENT of the width-d one-dimensional network ``f(x) = kappa (u . w) x``.

Loss ``L = 1/2 m2 (F - s)^2 + (gamma/2)(|u|^2 + |w|^2)``, ``F = kappa u.w``. One GD step with
layer rates ``lr_u``, ``lr_w`` is, with ``e = kappa m2 (F - s)``, ``c_u = 1 - lr_u gamma`` and
``c_w = 1 - lr_w gamma``,

    u' = c_u u - lr_u e w,        w' = c_w w - lr_w e u,

the SAME 2 x 2 linear map on every neuron (its coefficients depend on the weights only through
``F``). Hence the Gram entries ``X = |u|^2``, ``Y = |w|^2``, ``Z = u.w`` follow a closed
three-dimensional map at any width d (Lewkowycz et al. 2020 for ``gamma = 0``, equal rates):

    X' = c_u^2 X - 2 c_u a Z + a^2 Y,
    Y' = c_w^2 Y - 2 c_w b Z + b^2 X,               a = lr_u e,  b = lr_w e,  e = kappa m2 (kappa Z - s),
    Z' = (c_u c_w + a b) Z - c_u b X - c_w a Y,

and the weights themselves are ``(u_t, w_t) = M_t (u_0, w_0)`` with the 2 x 2 product
``M_t = prod_k [[c_u, -a_k], [-b_k, c_w]]``. The cost per step is independent of the width; only
the returned vectors ``u``, ``w`` cost O(d) per requested step.

**Stability.** Near a minimum (``F = s``) the map of ``F`` is, to first order,
``F' - s = (1 - m2 K_lr)(F - s)`` with ``K_lr = kappa^2 (lr_u Y + lr_w X)`` (the field ``ntk``:
the NTK at ``x = 1`` weighted by the layer rates, as in :func:`~linsolve.exact.one_hidden_layer` with
``eta = lr``). A minimum is linearly stable under GD iff ``m2 K_lr < 2``; with equal rates
``lr m2 K < 2``, ``K = kappa^2 (|u|^2 + |w|^2)``: the preconditioned Hessian
``D^(1/2) H D^(1/2)``, ``D = diag(lr_u I, lr_w I)``, is ``m2 kappa^2 g g^T`` with
``g = (sqrt(lr_u) w, sqrt(lr_w) u)`` at ``F = s``, whose one nonzero eigenvalue is ``m2 K_lr``.
Lewkowycz et al. (2020) call ``lambda = m2 K_lr / lr`` the curvature and find three phases of
``lr lambda_0``: lazy (< 2), catapult (2 to ~4 for wide nets), divergent (:mod:`._gd_phase`).

**Divergence** is detected as in :func:`linsolve.simulate.gradient_descent`: a step from a state
whose loss is non-finite or exceeds ``divergence_factor (L_0 + 1)`` (or that would make the
weights non-finite) is not taken; the state freezes, ``loss`` reads ``inf`` and ``diverged`` is
True from the next step on, and ``diverged_at`` is the index of that state, so the two are
directly comparable step by step.

Reference: A. Lewkowycz, Y. Bahri, E. Dyer, J. Sohl-Dickstein & G. Gur-Ari, "The large learning
rate phase of deep learning: the catapult mechanism" (arXiv 2003.02218), Sec. 2 (the uv model).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._validate import as_float, as_scalar, float_dtype_of, is_concrete

__all__ = ["OneHiddenLayerGD", "one_hidden_layer_gd"]


class OneHiddenLayerGD(eqx.Module):
    """Exact state of the width-d network after integer numbers of GD steps; leading axes are those
    of ``steps``.

    **Fields:**

    - `u`, `w`: (..., d) readout and first-layer weights (None with ``weights=False``).
    - `F`: (...) the end-to-end scalar ``kappa u.w``.
    - `loss`: (...) ``1/2 m2 (F - s)^2`` (without the penalty); ``inf`` once diverged.
    - `ntk`: (...) ``kappa^2 (lr_u |w|^2 + lr_w |u|^2)``; GD is linearly stable at a minimum iff
      ``m2 ntk < 2``.
    - `cos`: (...) cosine of the angle between u and w (0 where either is the zero vector).
    - `diverged`: (...) bool, True from the step at which the run diverged.
    - `diverged_at`: () the step at which it diverged (``inf`` if it did not by ``max(steps)``).
    """

    u: Float[Array, "*steps d"] | None
    w: Float[Array, "*steps d"] | None
    F: Float[Array, "*steps"]
    loss: Float[Array, "*steps"]
    ntk: Float[Array, "*steps"]
    cos: Float[Array, "*steps"]
    diverged: Array
    diverged_at: Float[Array, ""]


class _Map(NamedTuple):
    """Carry of the map: Gram entries, the 2 x 2 product, divergence bookkeeping."""

    X: Array
    Y: Array
    Z: Array
    M: Array  # (2, 2): (u_t, w_t) = M (u_0, w_0)
    dead: Array
    dead_at: Array
    k: Array


def check_steps(steps, name="steps"):
    """Non-negative integer step counts of any shape (an int array)."""
    arr = jnp.asarray(steps)
    if not (jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_):
        if is_concrete(arr) and jnp.issubdtype(arr.dtype, jnp.floating):
            if not bool(jnp.all(jnp.isfinite(arr) & (arr == jnp.round(arr)))):
                raise ValueError(f"`{name}` must be non-negative integers; got {steps!r}.")
        else:
            raise ValueError(f"`{name}` must be integers; got dtype {arr.dtype}.")
    elif arr.dtype == jnp.bool_:
        raise ValueError(f"`{name}` must be integers; got booleans.")
    if is_concrete(arr) and arr.size and bool(jnp.any(arr < 0)):
        raise ValueError(f"`{name}` must be non-negative; got minimum {int(jnp.min(arr))}.")
    return arr.astype(jnp.int32) if arr.dtype != jnp.int64 else arr


def step_map(state: _Map, p: dict, limit) -> _Map:
    """One GD step of the 3-D map (frozen once diverged)."""
    X, Y, Z = state.X, state.Y, state.Z
    e = p["kappa"] * p["m2"] * (p["kappa"] * Z - p["s"])
    a, b = p["lr_u"] * e, p["lr_w"] * e
    cu, cw = p["cu"], p["cw"]
    Xn = cu * cu * X - 2 * cu * a * Z + a * a * Y
    Yn = cw * cw * Y - 2 * cw * b * Z + b * b * X
    Zn = (cu * cw + a * b) * Z - cu * b * X - cw * a * Y
    step = jnp.array([[cu, -a], [-b, cw]], dtype=X.dtype)
    Mn = step @ state.M
    # As simulate.gradient_descent: a step is rejected when the loss it starts from is non-finite
    # or above the limit, or when it produces non-finite weights; the state then freezes.
    loss = 0.5 * p["m2"] * (p["kappa"] * Z - p["s"]) ** 2
    bad = ~(jnp.isfinite(loss) & (loss <= limit) & jnp.isfinite(Xn) & jnp.isfinite(Yn)
            & jnp.isfinite(Zn))
    now = state.dead | bad
    keep = lambda new, old: jnp.where(now, old, new)
    k = state.k + 1
    return _Map(keep(Xn, X), keep(Yn, Y), keep(Zn, Z), keep(Mn, state.M), now,
                jnp.where(bad & ~state.dead, state.k, state.dead_at), k)


def initial_map(u0, w0, dtype) -> _Map:
    """The map's state at step 0."""
    return _Map(u0 @ u0, w0 @ w0, u0 @ w0, jnp.eye(2, dtype=dtype), jnp.asarray(False),
                jnp.asarray(-1), jnp.asarray(0))


def map_params(s, m2, kappa, lr_u, lr_w, gamma) -> dict:
    """The constants of the map, as a dict of scalars."""
    return dict(s=s, m2=m2, kappa=kappa, lr_u=lr_u, lr_w=lr_w, cu=1 - lr_u * gamma,
                cw=1 - lr_w * gamma)


def one_hidden_layer_gd(
    steps: Int[ArrayLike, "*steps"],
    u0: Float[ArrayLike, " d"],
    w0: Float[ArrayLike, " d"],
    *,
    s,
    m2=1.0,
    kappa=1.0,
    lr_u,
    lr_w,
    weight_decay=0.0,
    divergence_factor=1e8,
    weights: bool = True,
) -> OneHiddenLayerGD:
    r"""Exact gradient descent of ``f(x) = kappa (u . w) x`` after ``steps`` steps, at any width.

    ``u <- (1 - lr_u gamma) u - lr_u kappa m2 (F - s) w``,
    ``w <- (1 - lr_w gamma) w - lr_w kappa m2 (F - s) u``, evaluated through the closed 3-D map
    of ``(|u|^2, |w|^2, u.w)`` (module docstring), so the cost is ``max(steps)`` scalar steps
    whatever the width d; the weights follow from the accumulated 2 x 2 map. The same update as
    ``simulate.gradient_descent((w[:, None], u[None, :]), tasks.scalar(s=s, m2=m2),
    lrs=(lr_w, lr_u), output_scale=kappa, weight_decay=gamma)``, to rounding.

    **Arguments:**

    - `steps`: non-negative integers of any shape (may be traced); the results gain these axes.
    - `u0`, `w0`: (d,) initial readout and first-layer weights.
    - `s`: target; `m2`: ``E[x^2] > 0``; `kappa`: output scale > 0; `lr_u`, `lr_w`: learning
      rates > 0 (scalars; ``jax.vmap`` to sweep them); `weight_decay`: ``gamma >= 0``.
    - `divergence_factor`: the run diverges when the loss is non-finite or exceeds
      ``divergence_factor (L_0 + 1)`` (as in ``simulate.gradient_descent``).
    - `weights`: return the vectors ``u``, ``w`` at every requested step (O(d) each; default).
      With False they are None and the cost is independent of the width after the initial
      Gram entries.

    **Returns:** :class:`OneHiddenLayerGD`. Exact in exact arithmetic; in floating point the map
    and a simulation of the full vectors round differently (both by ~eps per step), which
    matters only where the dynamics amplify rounding (near the phase boundaries).

    Reference: Lewkowycz et al. (arXiv 2003.02218), the uv model; layer rates and weight decay
    as in :func:`~linsolve.exact.one_hidden_layer`.
    """
    u0, w0, p, factor = validate_map(u0, w0, s, m2, kappa, lr_u, lr_w, weight_decay,
                                     divergence_factor)
    steps = check_steps(steps)
    if not isinstance(weights, bool):
        raise ValueError(f"`weights` must be True or False; got {weights!r}.")
    return _run(steps, u0, w0, p, factor, weights)


def validate_map(u0, w0, s, m2, kappa, lr_u, lr_w, weight_decay, divergence_factor):
    """``(u0, w0, map constants, divergence factor)`` in one float dtype, or a ValueError."""
    dtype = float_dtype_of(u0, w0, s, m2, kappa, lr_u, lr_w, weight_decay, divergence_factor)
    u0 = as_float(u0, "u0", dtype, ndim=1)
    w0 = as_float(w0, "w0", dtype, ndim=1)
    if u0.shape != w0.shape or u0.shape[0] == 0:
        raise ValueError(
            f"`u0` and `w0` must have the same shape (d,) with d >= 1; got {tuple(u0.shape)} and "
            f"{tuple(w0.shape)}."
        )
    s = as_scalar("s", s, dtype, positive=False)
    m2, kappa, lr_u, lr_w, factor = (
        as_scalar(name, value, dtype) for name, value in (
            ("m2", m2), ("kappa", kappa), ("lr_u", lr_u), ("lr_w", lr_w),
            ("divergence_factor", divergence_factor))
    )
    gamma = as_scalar("weight_decay", weight_decay, dtype, strict=False)
    return u0, w0, map_params(s, m2, kappa, lr_u, lr_w, gamma), factor


@partial(jax.jit, static_argnums=5)
def _run(steps, u0, w0, p, factor, weights) -> OneHiddenLayerGD:
    dtype = u0.dtype
    flat = steps.reshape(-1)
    order = jnp.argsort(flat)
    sorted_steps = flat[order]
    gaps = jnp.diff(sorted_steps, prepend=jnp.zeros((1,), flat.dtype))
    state0 = initial_map(u0, w0, dtype)
    L0 = 0.5 * p["m2"] * (p["kappa"] * state0.Z - p["s"]) ** 2
    limit = factor * (L0 + 1)

    def advance(state, gap):
        state = jax.lax.fori_loop(0, gap, lambda _, st: step_map(st, p, limit), state)
        return state, state

    last, states = jax.lax.scan(advance, state0, gaps)
    states = jax.tree_util.tree_map(lambda x: x[jnp.argsort(order)], states)
    X, Y, Z, M, dead = states.X, states.Y, states.Z, states.M, states.dead
    u = M[:, 0, 0, None] * u0 + M[:, 0, 1, None] * w0 if weights else None
    w = M[:, 1, 0, None] * u0 + M[:, 1, 1, None] * w0 if weights else None
    F = p["kappa"] * Z
    loss = jnp.where(dead, jnp.inf, 0.5 * p["m2"] * (F - p["s"]) ** 2)
    ntk = p["kappa"] ** 2 * (p["lr_u"] * Y + p["lr_w"] * X)
    den = jnp.sqrt(X) * jnp.sqrt(Y)
    cos = jnp.where(den > 0, Z / jnp.where(den > 0, den, 1.0), 0.0)
    shape = steps.shape
    reshape = lambda x: x.reshape(shape + x.shape[1:])
    diverged_at = jnp.where(last.dead, last.dead_at.astype(dtype), jnp.inf)
    return OneHiddenLayerGD(
        u=reshape(u) if weights else None, w=reshape(w) if weights else None, F=reshape(F),
        loss=reshape(loss), ntk=reshape(ntk), cos=reshape(cos), diverged=reshape(dead),
        diverged_at=diverged_at,
    )
