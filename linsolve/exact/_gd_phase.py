r"""Phases of gradient descent at a finite learning rate: lazy, catapult, divergent (exact map).

For the width-d network ``f(x) = kappa (u . w) x`` (:mod:`._one_hidden_layer_gd`) GD from
``(u0, w0)`` with rates ``lr_u``, ``lr_w`` is decided by its exact 3-D map. With
``lr lambda_0 = m2 kappa^2 (lr_u |w0|^2 + lr_w |u0|^2)`` (the rate-weighted curvature at the start;
``lr`` times the curvature ``lambda_0`` of Lewkowycz et al. 2020 for equal rates):

* **lazy** (``lr lambda_0 < 2``): the loss falls from the first step (to first order
  ``F' - s = (1 - lr lambda) (F - s)``) and the curvature barely moves for wide nets;
* **catapult** (``2 < lr lambda_0 < lr_max lambda_0``, about 4 for wide nets and ``s = 0``): the loss
  first GROWS, which shrinks the curvature until ``lr lambda < 2``; then GD converges to a flatter
  minimum. For equal rates one step changes ``lambda = m2 kappa^2 (|u|^2 + |w|^2)`` by
  ``lr m2^2 kappa^2 (F - s) [lr lambda (F - s) - 4 F]``, i.e. ``lr m2^2 kappa^2 F^2 (lr lambda - 4)``
  at ``s = 0``: the curvature falls while ``lr lambda < 4``, and for wide nets (``kappa^2 = 1/d``)
  only after ``F`` has grown large;
* **divergent**: the loss grows without bound.

:func:`gd_phase` runs the map until the run has converged (``|F - s|`` below ``tol`` of its scale
AND ``m2 K_lr < 2``, so the minimum reached is stable), diverged (loss non-finite or above
``divergence_factor (L_0 + 1)``) or ``max_steps`` have passed (``"undecided"``). A converged run is
``"catapult"`` when the loss ever rose above its initial value (by more than rounding), else
``"lazy"``; for wide nets this boundary is ``lr lambda_0 = 2`` (to ``O(1/d)``), but it is defined
by the observable (the loss spike), so it stays meaningful at any width.

:func:`gd_phase_boundaries` finds, along a ray of learning rates ``(lr_u, lr_w) = lr
(1/sqrt(r), sqrt(r))`` (``r = lr_w / lr_u``), the two boundaries by bisection on the map: the
smallest ``lr`` that catapults and the smallest that diverges (if the phase is not monotone in
``lr`` the bisection returns one boundary between the brackets; undecided points count as
non-divergent).

Reference: A. Lewkowycz, Y. Bahri, E. Dyer, J. Sohl-Dickstein & G. Gur-Ari, "The large learning
rate phase of deep learning: the catapult mechanism", arXiv 2003.02218 (the uv model, Sec. 2).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._validate import as_scalar, check_size
from ._one_hidden_layer_gd import initial_map, step_map, validate_map

__all__ = ["GD_PHASES", "GDPhase", "PhaseBoundaries", "gd_phase", "gd_phase_boundaries"]

GD_PHASES = ("lazy", "catapult", "diverged", "undecided")  # codes 0..3 of GDPhase.code


class GDPhase(NamedTuple):
    """The outcome of gradient descent from one start (scalars, or arrays under ``jax.vmap``).

    **Fields:**

    - `code`: int32 index into :data:`GD_PHASES` ("lazy", "catapult", "diverged", "undecided").
    - `lr_lambda0`: ``m2 kappa^2 (lr_u |w0|^2 + lr_w |u0|^2)``, the start's ``lr lambda_0``.
    - `lr_lambda`: the same at the last step (< 2 when converged).
    - `loss0`, `peak_loss`: the initial loss and the largest loss along the run.
    - `F`: the final ``kappa u.w``.
    - `steps`: the number of steps run (to convergence, divergence or ``max_steps``).
    """

    code: Array
    lr_lambda0: Array
    lr_lambda: Array
    loss0: Array
    peak_loss: Array
    F: Array
    steps: Array


class PhaseBoundaries(NamedTuple):
    """Learning-rate boundaries along a ray ``(lr_u, lr_w) = lr (1/sqrt(r), sqrt(r))``.

    **Fields:**

    - `lr_catapult`, `lr_diverge`: the smallest ``lr`` that catapults / diverges (``inf`` when not
      found below the search limit).
    - `lambda0`: ``m2 kappa^2 (|w0|^2/sqrt(r) + |u0|^2 sqrt(r))``, so ``lr lambda0`` is the
      start's ``lr lambda_0`` and the boundaries in those units are ``lr_* lambda0`` (about 2 and
      4 for wide nets with ``s = 0``).
    """

    lr_catapult: Array
    lr_diverge: Array
    lambda0: Array


def _classify(u0, w0, p, factor, tol, max_steps) -> GDPhase:
    """The while loop of the map with convergence, divergence and the loss peak."""
    dtype = u0.dtype
    kappa, m2, s = p["kappa"], p["m2"], p["s"]
    loss_of = lambda Z: 0.5 * m2 * (kappa * Z - s) ** 2
    curv = lambda st: m2 * kappa**2 * (p["lr_u"] * st.Y + p["lr_w"] * st.X)
    state0 = initial_map(u0, w0, dtype)
    L0 = loss_of(state0.Z)
    limit = factor * (L0 + 1)
    scale = jnp.maximum(jnp.maximum(jnp.abs(s), jnp.abs(kappa * state0.Z - s)),
                        jnp.finfo(dtype).tiny)

    def done(st):
        close = jnp.abs(kappa * st.Z - s) <= tol * scale
        return (close & (curv(st) < 2)) | st.dead

    def body(carry):
        st, peak = carry
        st = step_map(st, p, limit)
        return st, jnp.where(st.dead, peak, jnp.maximum(peak, loss_of(st.Z)))

    def cond(carry):
        st, _ = carry
        return ~done(st) & (st.k < max_steps)

    st, peak = jax.lax.while_loop(cond, body, (state0, L0))
    spike = peak > L0 * (1 + 64 * jnp.finfo(dtype).eps)
    converged = done(st) & ~st.dead
    code = jnp.where(st.dead, 2, jnp.where(converged, jnp.where(spike, 1, 0), 3))
    return GDPhase(code.astype(jnp.int32), curv(state0), curv(st), L0, peak, kappa * st.Z, st.k)


def _tol(tol, dtype):
    if tol is None:
        return jnp.sqrt(jnp.finfo(dtype).eps).astype(dtype)
    return as_scalar("tol", tol, dtype)


def gd_phase(
    u0: Float[ArrayLike, " d"],
    w0: Float[ArrayLike, " d"],
    *,
    s,
    m2=1.0,
    kappa=1.0,
    lr_u,
    lr_w,
    max_steps: int = 100_000,
    tol=None,
    divergence_factor=1e8,
) -> GDPhase:
    r"""Lazy, catapult or divergent: the phase of GD on ``f(x) = kappa (u.w) x`` from the exact map.

    Runs the exact 3-D map of :func:`one_hidden_layer_gd` until convergence (``|F - s| <= tol
    max(|s|, |F0 - s|)`` with ``m2 K_lr < 2``), divergence, or `max_steps` (module docstring for
    the phases and their definitions). jit- and vmap-able over every argument except `max_steps`
    (a loop bound: an int, may be traced too).

    **Arguments:** `u0`, `w0` (d,) the start; `s`, `m2`, `kappa`, `lr_u`, `lr_w` as in
    :func:`one_hidden_layer_gd`; `max_steps` >= 1; `tol` relative tolerance of convergence
    (default ``sqrt(eps)``); `divergence_factor` as in ``simulate.gradient_descent``.

    **Returns:** :class:`GDPhase` (``GD_PHASES[code]`` is the name).

    Reference: Lewkowycz et al. 2020 (arXiv 2003.02218).
    """
    u0, w0, p, factor = validate_map(u0, w0, s, m2, kappa, lr_u, lr_w, 0.0, divergence_factor)
    max_steps = check_size("max_steps", max_steps)
    return _phase_jit(u0, w0, p, factor, _tol(tol, u0.dtype), max_steps)


@jax.jit
def _phase_jit(u0, w0, p, factor, tol, max_steps):
    return _classify(u0, w0, p, factor, tol, max_steps)


def gd_phase_boundaries(
    u0: Float[ArrayLike, " d"],
    w0: Float[ArrayLike, " d"],
    *,
    s,
    m2=1.0,
    kappa=1.0,
    lr_ratio=1.0,
    max_steps: int = 100_000,
    tol=None,
    divergence_factor=1e8,
    iterations: int = 40,
    search_limit=1e3,
) -> PhaseBoundaries:
    r"""The catapult and divergence boundaries in the learning rate, by bisection on the exact map.

    Along ``(lr_u, lr_w) = lr (1/sqrt(r), sqrt(r))``, ``r = lr_ratio``, in the units
    ``x = lr lambda0`` (:class:`PhaseBoundaries`): the divergence boundary is bracketed in
    ``[x_ok, x_div]`` (``x_div`` doubled from 4 up to `search_limit` until the point diverges,
    ``x_ok`` halved from 1 until it does not); the catapult boundary in ``[x_lazy, 3]``
    (``x_lazy`` halved from 1 until the loss does not spike; the predicate is the spike, so a run
    still converging slowly at `max_steps` near ``lr lambda = 2`` is placed correctly), or
    ``[x_lazy, x_div]`` when 3 does not spike: ``x_catapult`` then reaches up to ``x_diverge``
    (equal: no catapult window). Each then takes `iterations` bisection steps (relative precision
    ``~2^-iterations``). A boundary not bracketed is returned as ``inf``.

    **Arguments:** as :func:`gd_phase`, with `lr_ratio` ``lr_w / lr_u > 0`` instead of the two
    rates; `iterations` >= 1; `search_limit` the largest ``x`` tried.

    **Returns:** :class:`PhaseBoundaries` (learning rates and ``lambda0``).
    """
    u0, w0, p, factor = validate_map(u0, w0, s, m2, kappa, 1.0, 1.0, 0.0, divergence_factor)
    r = as_scalar("lr_ratio", lr_ratio, u0.dtype)
    limit = as_scalar("search_limit", search_limit, u0.dtype)
    max_steps = check_size("max_steps", max_steps)
    iterations = check_size("iterations", iterations)
    return _boundaries(u0, w0, p, factor, _tol(tol, u0.dtype), max_steps, r, limit, iterations)


@jax.jit
def _boundaries(u0, w0, p, factor, tol, max_steps, r, limit, iterations) -> PhaseBoundaries:
    dtype = u0.dtype
    lam0 = p["m2"] * p["kappa"] ** 2 * (w0 @ w0 / jnp.sqrt(r) + u0 @ u0 * jnp.sqrt(r))

    def run(x):
        lr = x / lam0
        q = dict(p, lr_u=lr / jnp.sqrt(r), lr_w=lr * jnp.sqrt(r))
        return _classify(u0, w0, q, factor, tol, max_steps)

    code = lambda x: run(x).code

    def spiked(x):  # the loss rose (or diverged): the catapult side, converged or not
        ph = run(x)
        return (ph.code == 2) | (ph.peak_loss > ph.loss0 * (1 + 64 * jnp.finfo(dtype).eps))

    def bisect(lo, hi, above):
        def body(_, b):
            lo, hi = b
            mid = 0.5 * (lo + hi)
            up = above(mid)
            return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

        return jax.lax.fori_loop(0, iterations, body, (lo, hi))[1]

    # Divergence boundary: not diverged below, diverged above.
    hi_div = jax.lax.while_loop(lambda x: (code(x) != 2) & (x < limit), lambda x: 2 * x,
                                jnp.asarray(4.0, dtype))
    lo = jax.lax.while_loop(lambda x: (code(x) == 2) & (x > 1e-6), lambda x: 0.5 * x,
                            jnp.asarray(1.0, dtype))
    diverges = code(hi_div) == 2
    x_div = jnp.where(diverges, bisect(lo, hi_div, lambda x: code(x) == 2), jnp.inf)
    # Catapult boundary: no loss spike below, a spike (or divergence) above. Undecided runs (slow
    # convergence near lr lambda = 2) are placed by the spike, which happens in the first steps.
    # Bracketed by [x_lazy, 3], or up to the divergence boundary when 3 does not spike (then
    # x_catapult = x_diverge means no catapult window: lazy runs turn straight into divergence).
    lo = jax.lax.while_loop(lambda x: spiked(x) & (x > 1e-6), lambda x: 0.5 * x,
                            jnp.asarray(1.0, dtype))
    three = jnp.asarray(3.0, dtype)
    hi = jnp.where(spiked(three), three, jnp.where(diverges, hi_div, three))
    ok = ~spiked(lo) & spiked(hi)
    x_cat = jnp.where(ok, bisect(lo, hi, spiked), jnp.inf)
    return PhaseBoundaries(x_cat / lam0, x_div / lam0, lam0)
