r"""Balanced, decoupled modes of deep linear networks (Saxe, McClelland & Ganguli 2014).

A deep linear net ``W_L ... W_1`` (``L = depth``), whitened inputs, equal rates ``1/tau``, started
balanced (``W_{l+1}^T W_{l+1} = W_l W_l^T``) and decoupled (``W_L...W_1 = U diag(u) V^T`` with
``Syx = U diag(s) V^T``) keeps its singular vectors; each mode strength obeys

    tau du/dt = L |u|^p (s - u),    p = 2 - 2/L     (reference/exact_solutions.md Sec. 3, L = N_l - 1).

* ``L = 1``: linear regression, ``u = s + (u0 - s) e^{-t/tau}``.
* ``L = 2``: the logistic law ``u = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0)``, evaluated by the
  cancellation-free :func:`linsolve.exact.mode` (``k = 1/tau, A = 2, B = 0``).
* ``L >= 3``: the time-to-learn relation is inverted. With ``v = u/s``, ``x = v^{1/L}`` and
  ``t' = s^p t / tau`` the relation is ``t' = Phi(x) - Phi(x0)`` where

      Phi(x) = -x^{2-L}/(L-2) - (1/L) sum_k Re[omega_k^2 ln(omega_k - x)],   omega_k^L = 1,

  by partial fractions of ``1/(x^{L-1}(1 - x^L)) = x^{1-L} + x/(1 - x^L)``. It equals (up to a
  constant) the reference's ``F(u) = u^b/(sb) 2F1(1, b; b+1; u/s)``, ``b = 1 - p``, for ``u < s``,
  and continues it to ``u > s``. For ``x > 1.67`` the sum cancels, so ``Phi`` is evaluated there
  from the convergent series ``Phi = C + sum_n y^{2L-2+nL}/(2L-2+nL)``, ``y = 1/x``. The root is
  found by Newton's method in a variable in which ``Phi`` is concave or convex
  (``logit(v)``, ``-ln(v - 1)``, ``-ln v``), started on the side from which Newton converges
  monotonically and inside explicit brackets, for a fixed number of steps (so it is jit-, vmap-
  and grad-friendly). One last Newton step carries the gradient (implicit differentiation).

**Signs.** ``|u|`` follows the same law with ``s -> sgn(u0) s``, so every sign is covered:
``u0 s > 0`` converges to ``s`` (from either side), ``u0 = 0`` is a fixed point (``L >= 2``),
``s = 0`` gives the power law ``u = u0 (1 + pL|u0|^p t/tau)^{-1/p}``, and ``u0 s < 0`` decays to 0
without changing sign, by the same construction with the roots of ``x^L = -1``.
"""

from __future__ import annotations

import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._misc import (
    as_float,
    check_against_task,
    check_positive,
    float_dtype_of,
    is_concrete,
    validate_params,
)
from ..models import end_to_end
from ..tasks import Task
from ._mode import mode, mode_time

__all__ = ["saxe_mode", "saxe_time", "saxe_product"]

_Y_SWITCH = 0.6  # series in y = 1/x for x > 1/_Y_SWITCH
_NEWTON_STEPS = 40


# ---------------------------------------------------------------------------------------------
# Antiderivatives of the normalised time integrand, in terms of ln v (v = |u/s|) and ln|1 - v|.


def _check_depth(depth) -> int:
    if isinstance(depth, bool):
        raise ValueError(f"`depth` must be a positive integer; got {depth!r}.")
    try:
        d = operator.index(depth)
    except TypeError:
        raise ValueError(
            f"`depth` must be a positive integer (number of weight matrices); got {depth!r}."
        ) from None
    if d < 1:
        raise ValueError(f"`depth` must be a positive integer (number of weight matrices); got {d}.")
    return d


def _roots(d: int, sign: int):
    """Angles and weights of the complex roots of ``x^d = sign`` (conjugate pairs merged).

    Returns ``(pairs, has_minus_one)``: ``pairs`` lists ``(cos t, sin t, cos 2t, sin 2t)`` of the
    roots with ``0 < t < pi`` (weight 2), and whether ``-1`` is a root (weight 1). The root
    ``+1`` (``sign = 1``) is handled by the caller.
    """
    if sign > 0:
        angles = [2 * math.pi * k / d for k in range(1, (d - 1) // 2 + 1)]
        minus_one = d % 2 == 0
    else:
        angles = [math.pi * (2 * k + 1) / d for k in range(d // 2)]
        minus_one = d % 2 == 1
    pairs = [(math.cos(a), math.sin(a), math.cos(2 * a), math.sin(2 * a)) for a in angles]
    return pairs, minus_one


def _log_sum(x, d: int, sign: int):
    """``sum_k Re[omega_k^2 ln(omega_k - x)]`` over the roots of ``x^d = sign`` except ``+1``."""
    pairs, minus_one = _roots(d, sign)
    out = jnp.log1p(x) if minus_one else jnp.zeros_like(x)
    for c, s, c2, s2 in pairs:
        mag = 0.5 * jnp.log((x - c) ** 2 + s * s)
        arg = jnp.arctan2(s * jnp.ones_like(x), c - x)
        out = out + 2 * (c2 * mag - s2 * arg)
    return out


def _series(y, d: int, sign: int):
    """``sum_n sign^n y^{2d-2+nd} / (2d-2+nd)`` for ``0 <= y <= _Y_SWITCH`` (Horner in y^d)."""
    eps = float(jnp.finfo(y.dtype).eps)
    n_terms = int(math.ceil(math.log(eps / 8) / (d * math.log(_Y_SWITCH)))) + 1
    yd = sign * y**d
    acc = jnp.zeros_like(y)
    for n in reversed(range(n_terms)):
        acc = acc * yd + 1.0 / (2 * d - 2 + n * d)
    return y ** (2 * d - 2) * acc


def _phi_closed(lnv, lnw, d: int):
    """``Phi`` for ``s > 0`` in closed form; ``lnw = ln|1 - v|`` (accurate near v = 1)."""
    x = jnp.exp(lnv / d)
    geo = sum(x**j for j in range(d))  # (1 - x^d)/(1 - x), so |1 - x| = |1 - v| / geo
    ln_gap = lnw - jnp.log(geo)
    return -jnp.exp((2 - d) * lnv / d) / (d - 2) - (ln_gap + _log_sum(x, d, 1)) / d


def _phi(lnv, lnw, d: int):
    """``Phi(x)``, ``dPhi = dv / (d v^p (1 - v))``: increasing on (0, 1), decreasing on (1, inf)."""
    lnv_c = -d * math.log(_Y_SWITCH)
    far = lnv > lnv_c
    closed = _phi_closed(jnp.where(far, lnv_c, lnv), jnp.where(far, 0.0, lnw), d)
    # Large v: Phi = C + Theta(1/x), Theta(y) = int_0^y e^{2d-3} / (1 - e^d) de (no cancellation).
    lnv_c = jnp.asarray(lnv_c, lnv.dtype)
    const = _phi_closed(lnv_c, jnp.log(jnp.expm1(lnv_c)), d) - _series(
        jnp.asarray(_Y_SWITCH, lnv.dtype), d, 1
    )
    y = jnp.exp(-jnp.maximum(lnv, lnv_c) / d)
    return jnp.where(far, const + _series(y, d, 1), closed)


def _psi_closed(lnv, d: int):
    x = jnp.exp(lnv / d)
    return -jnp.exp((2 - d) * lnv / d) / (d - 2) + _log_sum(x, d, -1) / d


def _psi(lnv, d: int):
    """``Psi(x)``, ``dPsi = dv / (d v^p (1 + v))`` (opposite signs of u0 and s); increasing."""
    lnv_c = -d * math.log(_Y_SWITCH)
    far = lnv > lnv_c
    closed = _psi_closed(jnp.where(far, lnv_c, lnv), d)
    lnv_c = jnp.asarray(lnv_c, lnv.dtype)
    const = _psi_closed(lnv_c, d) + _series(jnp.asarray(_Y_SWITCH, lnv.dtype), d, -1)
    y = jnp.exp(-jnp.maximum(lnv, lnv_c) / d)
    return jnp.where(far, const - _series(y, d, -1), closed)


# ---------------------------------------------------------------------------------------------
# Charts: iteration variable z (increasing in time) -> (ln v, ln|1 - v|), residual and slope.


def _below(z, d):  # 0 < v < 1, z = logit v
    lnv, lnw = -jax.nn.softplus(-z), -jax.nn.softplus(z)
    return _phi(lnv, lnw, d), jnp.exp((2 / d - 1) * lnv) / d


def _above(z, d):  # v > 1, z = -ln(v - 1)
    lnv, lnw = jax.nn.softplus(-z), -z
    return _phi(lnv, lnw, d), jnp.exp((2 / d - 2) * lnv) / d


def _opposite(z, d):  # opposite signs, v = |u/s| decays to 0, z = -ln v; returns -Psi
    lnv = -z
    return -_psi(lnv, d), jnp.exp((2 / d - 1) * lnv - jax.nn.softplus(lnv)) / d


def _newton(chart, z_start, lo, hi, target, d):
    """Fixed-step Newton for ``chart(z)[0] = target``, clamped to ``[lo, hi]``."""

    def body(_, z):
        val, slope = chart(z, d)
        z_new = z - (val - target) / slope
        z_new = jnp.where(jnp.isfinite(z_new), z_new, z)
        return jnp.clip(z_new, lo, hi)

    return jax.lax.fori_loop(0, _NEWTON_STEPS, body, z_start)


def _solve_chart(chart, z0, lo, hi, start, tn, d):
    """Root of ``G(z) = G(z0) + tn`` (gradient by one implicit Newton step)."""
    sg = jax.lax.stop_gradient
    g0_sg = chart(sg(z0), d)[0]
    z_star = sg(_newton(chart, sg(start), sg(lo), sg(hi), g0_sg + sg(tn), d))
    val, slope = chart(z_star, d)
    return z_star - (val - chart(z0, d)[0] - tn) / sg(slope)


def _deep_mode(t, s, u0, tau, d: int):
    """``L >= 3``: ``|u|`` with ``s -> sgn(u0) s``; all inputs broadcast, t finite."""
    p = 2 - 2 / d
    sigma = jnp.where(u0 < 0, -1.0, 1.0).astype(u0.dtype)
    a0, S = sigma * u0, sigma * s
    absS = jnp.abs(S)
    pos, zero_s, neg = (a0 > 0) & (S > 0), (a0 > 0) & (S == 0), (a0 > 0) & (S < 0)
    below, above = pos & (a0 < S), pos & (a0 > S)
    safe_S = jnp.where(S != 0, absS, 1.0)
    tn = jnp.exp(p * jnp.log(safe_S)) * t / tau  # normalised time s^p t / tau
    sg = jax.lax.stop_gradient
    tn_sg = sg(tn)

    # u0 < s: z = logit(v) from z0 upwards; Phi concave in z -> start at the lower bracket.
    a_b = jnp.where(below, a0, 0.5)
    S_b = jnp.where(below, S, 1.0)
    lnv0 = jnp.log(a_b) - jnp.log(S_b)
    lnw0 = jnp.log(S_b - a_b) - jnp.log(S_b)
    z0 = lnv0 - lnw0

    def bound_A(tau_):  # from dv/dt' >= d v^p: plateau bound on v (upper)
        q = sg(jnp.exp((1 - p) * lnv0)) - d * (p - 1) * tau_
        lnv = -jnp.log(jnp.where(q > 0, q, 1.0)) / (p - 1)
        ok = (q > 0) & (lnv < 0)
        lnv = jnp.where(ok, lnv, -1.0)
        return jnp.where(ok, lnv - jnp.log(-jnp.expm1(lnv)), jnp.inf)

    def bound_B(tau_):  # from dv/dt' >= d (1 - v): convergence bound (upper)
        lnw = sg(lnw0) - d * tau_
        return jnp.log1p(-jnp.exp(lnw)) - lnw

    hi = jnp.minimum(bound_A(tn_sg), bound_B(tn_sg))
    lo = jnp.maximum(sg(z0), jnp.minimum(bound_A(tn_sg / 4), bound_B(tn_sg / 4)))
    hi = jnp.maximum(hi, lo)
    z = _solve_chart(_below, z0, lo, hi, lo, tn, d)
    u_below = S_b * jax.nn.sigmoid(z)

    # u0 > s: z = -ln(v - 1) upwards; convex -> start at the upper bracket.
    a_a = jnp.where(above, a0, 2.0)
    S_a = jnp.where(above, S, 1.0)
    lnv0 = jnp.log(a_a) - jnp.log(S_a)
    z0 = -(jnp.log(a_a - S_a) - jnp.log(S_a))
    lo = sg(z0) + d * tn_sg
    hi_lin = sg(z0) + d * jnp.exp(p * sg(lnv0)) * tn_sg
    lnv_pow = -jnp.log(jnp.exp(-p * sg(lnv0)) + p * d * tn_sg) / p  # v >= v_pow
    hi_pow = jnp.where(lnv_pow > 0, -jnp.log(jnp.expm1(jnp.maximum(lnv_pow, 1e-30))), jnp.inf)
    hi = jnp.maximum(jnp.minimum(hi_lin, hi_pow), lo)
    z = _solve_chart(_above, z0, lo, hi, hi, tn, d)
    u_above = S_a * (1 + jnp.exp(-z))

    # u0 s < 0: z = -ln v upwards; convex -> start at the upper bracket.
    a_n = jnp.where(neg, a0, 0.5)
    S_n = jnp.where(neg, absS, 1.0)
    lnv0 = jnp.log(a_n) - jnp.log(S_n)
    z0 = -lnv0
    lv0 = sg(lnv0)
    lo = jnp.maximum(
        jnp.logaddexp((1 - p) * lv0, jnp.log(d * (p - 1) * tn_sg)) / (p - 1),
        jnp.logaddexp(-p * lv0, jnp.log(p * d * tn_sg)) / p,
    )
    lo = jnp.maximum(lo, sg(z0))
    hi = jnp.logaddexp(
        (1 - p) * lv0, jnp.log(d * (p - 1) * tn_sg) + jax.nn.softplus(lv0)
    ) / (p - 1)
    hi = jnp.maximum(hi, lo)
    z = _solve_chart(_opposite, z0, lo, hi, hi, tn, d)
    u_neg = S_n * jnp.exp(-z)

    # s = 0: tau du/dt = -d |u|^p u.
    a_z = jnp.where(zero_s, a0, 1.0)
    u_zero = a_z * (1 + p * d * jnp.exp(p * jnp.log(a_z)) * t / tau) ** (-1 / p)

    a = jnp.where(below, u_below, jnp.where(above, u_above, jnp.where(neg, u_neg, u_zero)))
    a = jnp.where(pos & (a0 == S), S, a)
    a = jnp.where(a0 == 0, 0.0, a)
    return sigma * a


def _prepare(t, s, u0, tau, *, t_name="t"):
    dtype = float_dtype_of(t, s, u0, tau)
    s = as_float(s, "s", dtype)
    u0 = as_float(u0, "u0", dtype)
    tau = as_float(tau, "tau", dtype)
    check_positive("tau", tau)
    t = jnp.asarray(t).astype(dtype)
    if is_concrete(t) and bool(jnp.any(jnp.isnan(t) | (t < 0))):
        raise ValueError(f"`{t_name}` must be non-negative (inf allowed); got {t}.")
    return t, s, u0, tau


def saxe_mode(
    t: Float[ArrayLike, "*times"], *, s, u0, tau=1.0, depth: int = 2
) -> Float[Array, "*times"]:
    r"""Strength ``u(t)`` of a balanced, decoupled mode of a depth-``L`` linear network.

    Solves ``tau du/dt = L |u|^{2 - 2/L} (s - u)``, ``u(0) = u0`` (``L = depth`` weight matrices,
    whitened inputs, equal learning rates ``1/tau``) exactly:

    * ``L = 1``: ``u = s + (u0 - s) e^{-t/tau}``;
    * ``L = 2``: ``u = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0)`` (via :func:`mode`);
    * ``L >= 3``: the exact time-to-learn relation ``t = tau s^{-p} [Phi(x) - Phi(x0)]``,
      ``p = 2 - 2/L``, ``x = (u/s)^{1/L}``, inverted to machine precision (see the module notes).

    Every sign is supported: ``u0 s > 0`` tends to ``s`` from below or above, ``u0 = 0`` stays
    (``L >= 2``), ``s = 0`` gives ``u0 (1 + pL|u0|^p t/tau)^{-1/p}``, ``u0 s < 0`` decays to 0.

    **Arguments:**
    - `t`: times >= 0 of any shape (``inf`` allowed).
    - `s`: task singular value; `u0`: initial strength; `tau`: time constant > 0. These broadcast
      against `t` (e.g. ``t[:, None]`` against (r,) modes).
    - `depth`: number of weight matrices ``L`` (a Python int >= 1; static).

    **Returns:** ``u(t)`` with the broadcast shape; ``t = 0`` gives ``u0`` exactly, ``t = inf``
    the fixed point (``s`` if ``u0 s > 0`` or ``L = 1``, else 0). Works under jit, vmap and grad.

    Reference: Saxe, McClelland & Ganguli (2014), arXiv 1312.6120; reference Sec. 3.
    """
    d = _check_depth(depth)
    t, s, u0, tau = _prepare(t, s, u0, tau)
    shape = jnp.broadcast_shapes(t.shape, s.shape, u0.shape, tau.shape)
    t, s, u0, tau = (jnp.broadcast_to(x, shape) for x in (t, s, u0, tau))
    if d == 2:
        return mode(t, F0=u0, s=s, k=1 / tau, A=2.0, B=0.0)
    finite_t = jnp.where(jnp.isinf(t), 0.0, t)
    if d == 1:
        u = s + (u0 - s) * jnp.exp(-finite_t / tau)
        u_inf = s
    else:
        u = _deep_mode(finite_t, s, u0, tau, d)
        u_inf = jnp.where(u0 * s > 0, s, 0.0)
    return jnp.where(t == 0, u0, jnp.where(jnp.isinf(t), u_inf, u))


def saxe_time(u0, u1, *, s, tau=1.0, depth: int = 2) -> Float[Array, "..."]:
    r"""Exact time for a balanced mode to go from ``u0`` to ``u1`` (``inf`` if never reached).

    ``t = tau/L int_{u0}^{u1} du / (|u|^{2-2/L} (s - u))``: for ``L = 1``
    ``tau ln[(s - u0)/(s - u1)]``; for ``L = 2`` ``(tau/2s) ln[u1 (s - u0)/(u0 (s - u1))]``;
    for ``L >= 3`` ``tau s^{-p} [Phi(x1) - Phi(x0)]`` (module notes; for ``u < s`` it equals
    ``tau/L [F(u1) - F(u0)]``, ``F(u) = u^b/(sb) 2F1(1, b; b+1; u/s)``, ``b = 2/L - 1``). The
    small-``u0`` limit is ``t ~ tau u0^{-(L-2)/L} / ((L-2) s)``.

    **Arguments:** `u0`, `u1`, `s` (broadcast), `tau` > 0, `depth` = L (int >= 1).

    **Returns:** the time; ``inf`` when `u1` lies behind `u0`, beyond or at the fixed point, or on
    the other side of zero. Reference: Saxe, McClelland & Ganguli (2014); reference Sec. 3.
    """
    d = _check_depth(depth)
    _, s, u0, tau = _prepare(jnp.zeros(()), s, u0, tau)
    u1 = as_float(u1, "u1", u0.dtype)
    shape = jnp.broadcast_shapes(u0.shape, u1.shape, s.shape, tau.shape)
    u0, u1, s, tau = (jnp.broadcast_to(x, shape) for x in (u0, u1, s, tau))
    if d == 2:
        return mode_time(u0, u1, s=s, k=1 / tau, A=2.0, B=0.0)
    if d == 1:
        between = ((u1 - u0) * (s - u1) > 0)
        num = jnp.where(between, s - u0, 2.0)
        den = jnp.where(between, s - u1, 1.0)
        out = jnp.where(between, tau * jnp.log(num / den), jnp.inf)
        return jnp.where(u1 == u0, 0.0, out)
    p = 2 - 2 / d
    sigma = jnp.where(u0 < 0, -1.0, 1.0).astype(u0.dtype)
    a0, a1, S = sigma * u0, sigma * u1, sigma * s
    target = jnp.maximum(S, 0.0)
    ok = (a0 > 0) & (a1 > 0) & ((a1 - a0) * (target - a1) > 0)
    a0s, a1s = jnp.where(ok, a0, 0.5), jnp.where(ok, a1, 0.25)
    absS = jnp.where(S != 0, jnp.abs(S), 1.0)
    scale = tau * jnp.exp(-p * jnp.log(absS))
    lnv0, lnv1 = jnp.log(a0s) - jnp.log(absS), jnp.log(a1s) - jnp.log(absS)
    gap0 = jnp.where(S > 0, jnp.abs(S - a0s), 0.5)
    gap1 = jnp.where(S > 0, jnp.abs(S - a1s), 0.5)
    lnw0, lnw1 = jnp.log(gap0) - jnp.log(absS), jnp.log(gap1) - jnp.log(absS)
    t_pos = scale * (_phi(lnv1, lnw1, d) - _phi(lnv0, lnw0, d))
    t_neg = scale * (_psi(lnv0, d) - _psi(lnv1, d))
    t_zero = tau * (jnp.exp(-p * jnp.log(a1s)) - jnp.exp(-p * jnp.log(a0s))) / (p * d)
    out = jnp.where(S > 0, t_pos, jnp.where(S < 0, t_neg, t_zero))
    out = jnp.where(ok, out, jnp.inf)
    return jnp.where(u1 == u0, 0.0, out)


# ---------------------------------------------------------------------------------------------
# Full matrices.


def _default_rtol(dtype) -> float:
    return float(np.sqrt(np.finfo(dtype).eps))


def saxe_decomposition(params0, task: Task, *, rtol: float | None = None):
    """``(U, s, Vt, u0)``: task singular vectors/values and the initial mode strengths.

    ``u0 = diag(U^T P0 V)`` with ``P0 = W_L...W_1``. Raises ``ValueError`` (when the inputs are
    concrete) if ``task.Sxx != I``, if ``P0 != U diag(u0) V^T`` (not decoupled/aligned with the
    task's singular vectors as ``task.svd()`` returns them) or if the layers are not balanced
    (``W_{l+1}^T W_{l+1} != W_l W_l^T``), each beyond the relative tolerance `rtol` (default
    ``sqrt(eps)`` of the dtype), and names the measured violation.
    """
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    params0 = validate_params(params0, "params0", task.dtype)
    check_against_task(params0, task, "params0")
    dtype = params0[0].dtype
    tol = _default_rtol(dtype) if rtol is None else float(rtol)
    U, s, Vt = task.svd()
    U, s, Vt = U.astype(dtype), s.astype(dtype), Vt.astype(dtype)
    P0 = end_to_end(params0)
    u0 = jnp.einsum("or,oi,ri->r", U, P0, Vt)
    if is_concrete((params0, task)):
        white = float(task.whitening_error())
        if white > tol:
            raise ValueError(
                f"`task` must have whitened inputs (Sxx = I) for the Saxe solution; "
                f"got max|Sxx - I| = {white:.3g} > rtol = {tol:.3g}."
            )
        grams = [W @ W.T for W in params0]
        gscale = max(float(jnp.max(jnp.abs(g))) for g in grams) or 1.0
        for l in range(len(params0) - 1):
            W, Wn = params0[l], params0[l + 1]
            viol = float(jnp.max(jnp.abs(Wn.T @ Wn - W @ W.T))) / gscale
            if viol > tol:
                raise ValueError(
                    f"`params0` must be balanced (W_{{l+1}}^T W_{{l+1}} = W_l W_l^T); layers "
                    f"{l + 1},{l + 2} violate it by {viol:.3g} (relative) > rtol = {tol:.3g}."
                )
        pscale = float(jnp.max(jnp.abs(P0))) or 1.0
        viol = float(jnp.max(jnp.abs(P0 - (U * u0) @ Vt))) / pscale
        if viol > tol:
            raise ValueError(
                f"`params0` must be decoupled: W_L...W_1 = U diag(u0) V^T with U, V the singular "
                f"vectors of task.Syx (task.svd()); got a residual of {viol:.3g} (relative) "
                f"> rtol = {tol:.3g}."
            )
    return U, s, Vt, u0


def saxe_product(
    t: Float[ArrayLike, "*times"], params0, task: Task, *, tau=1.0, rtol: float | None = None
) -> Float[Array, "*times d_out d_in"]:
    r"""End-to-end map ``W_L...W_1(t) = U diag(u_alpha(t)) V^T`` from a balanced, decoupled init.

    Gradient flow ``tau dW_l/dt = -dL/dW_l`` with whitened inputs (``Sxx = I``) and
    ``Syx = U diag(s) V^T`` keeps a balanced, task-aligned net decoupled; every mode follows
    :func:`saxe_mode` with ``depth = L``, ``s = s_alpha`` and ``u0 = u_alpha(0)`` read off
    ``params0`` (modes with ``s_alpha = 0`` decay, modes with ``u_alpha(0) = 0`` stay at 0).
    Build such inits with :func:`linsolve.init.aligned`.

    **Arguments:**
    - `t`: times >= 0, any shape.
    - `params0`: ``(W1, ..., WL)``, balanced and decoupled (checked; ``ValueError`` otherwise).
    - `task`: a :class:`~linsolve.Task` with ``Sxx = I`` (checked).
    - `tau`: time constant ``1/eta`` > 0; `rtol`: tolerance of the checks (default sqrt(eps)).

    **Returns:** ``(*t.shape, d_out, d_in)`` end-to-end maps.

    Reference: Saxe, McClelland & Ganguli (2014), arXiv 1312.6120; reference Sec. 3.
    """
    U, s, Vt, u0 = saxe_decomposition(params0, task, rtol=rtol)
    dtype = u0.dtype
    t = jnp.asarray(t).astype(dtype)
    u = saxe_mode(t[..., None], s=s, u0=u0, tau=jnp.asarray(tau).astype(dtype), depth=len(params0))
    return jnp.einsum("or,...r,ri->...oi", U, u, Vt)
