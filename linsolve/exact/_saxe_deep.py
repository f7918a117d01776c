r"""Depth ``L >= 3`` balanced Saxe modes without weight decay: the exact time relation and its inverse.

``tau du/dt = L |u|^p (s - u)``, ``p = 2 - 2/L`` (Saxe, McClelland & Ganguli 2014, arXiv:1312.6120).
With ``v = u/s``, ``x = v^{1/L}`` and ``t' = s^p t / tau`` the relation is ``t' = Phi(x) - Phi(x0)``

    Phi(x) = -x^{2-L}/(L-2) - (1/L) sum_k Re[omega_k^2 ln(omega_k - x)],   omega_k^L = 1,

by partial fractions of ``1/(x^{L-1}(1 - x^L)) = x^{1-L} + x/(1 - x^L)``. It equals (up to a
constant) Saxe et al.'s ``F(u) = u^b/(sb) 2F1(1, b; b+1; u/s)``, ``b = 1 - p``, for ``u < s``,
and continues it to ``u > s``. For ``v > 4`` the terms cancel, so ``Phi`` is evaluated there
from the convergent series ``Phi = C + sum_n y^{2L-2+nL}/(2L-2+nL)``, ``y = 1/x``, kept apart
from the constant ``C`` so that time differences carry no cancellation. The root is found by
Newton's method in a variable in which ``Phi`` is concave or convex (``logit(v)``,
``-ln(v - 1)``, ``-ln v``), started on the side from which Newton converges monotonically,
inside brackets from comparison ODEs with explicit solutions (tight to a factor 2-4 in time),
for a fixed number of steps (8 suffice in float64 over u0/s in [1e-12, 1e6], t in
[1e-8, 1e8]; 24 are taken), so it is jit-, vmap- and grad-friendly. One last Newton step with
the inputs live carries the gradient (implicit differentiation). ``u0 s < 0`` uses the same
construction with the roots of ``x^L = -1``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["deep_mode", "deep_time", "zero_target"]


_Q_SWITCH = 0.25  # series in y = v^{-1/d} for v > 1/_Q_SWITCH
_NEWTON_STEPS = 24

# ---------------------------------------------------------------------------------------------
# Antiderivatives of the normalised time integrand, in terms of ln v (v = |u/s|) and ln|1 - v|.

def _roots(d: int, sign: int) -> tuple[np.ndarray, float]:
    """Complex roots of ``x^d = sign`` with ``0 < angle < pi`` (one per conjugate pair) as rows
    ``(cos a, sin a, cos 2a, sin 2a)`` of a (m, 4) array, and whether ``-1`` is a root. ``+1`` is
    left out."""
    if sign > 0:
        angles = 2 * np.pi * np.arange(1, (d - 1) // 2 + 1) / d
        minus_one = d % 2 == 0
    else:
        angles = np.pi * (2 * np.arange(d // 2) + 1) / d
        minus_one = d % 2 == 1
    rows = np.stack([np.cos(angles), np.sin(angles), np.cos(2 * angles), np.sin(2 * angles)], axis=-1)
    return rows.reshape(-1, 4), float(minus_one)


def _log_sum(x, plus, d: int):
    """``sum_k Re[omega_k^2 ln(omega_k - x)]`` over the roots of ``x^d = +-1`` except ``+1``.

    ``plus`` (bool, per element) picks the roots of ``+1`` or of ``-1``; the two root lists are
    padded to equal length with a zero-weight dummy so one expression serves both. The roots are
    a trailing array axis (not a Python loop), so the compiled program does not grow with ``d``.
    """
    (pp, mpl), (mp, mmi) = _roots(d, 1), _roots(d, -1)
    m = max(len(pp), len(mp), 1)
    dummy = np.array([0.0, 1.0, 0.0, 0.0])
    pad = lambda r: np.concatenate([r, np.broadcast_to(dummy, (m - len(r), 4))])
    pp, mp = pad(pp), pad(mp)
    out = jnp.where(plus, mpl, mmi) * jnp.log1p(x)
    xe, pe = x[..., None], jnp.asarray(plus)[..., None]
    c, s, c2, s2 = (jnp.where(pe, jnp.asarray(pp[:, j], x.dtype), jnp.asarray(mp[:, j], x.dtype))
                    for j in range(4))
    mag = 0.5 * jnp.log((xe - c) ** 2 + s * s)
    return out + jnp.sum(2 * (c2 * mag - s2 * jnp.arctan2(s, c - xe)), axis=-1)


def _series(y, sgn, d: int):
    """``sum_n sgn^n y^{2d-2+nd} / (2d-2+nd)`` for ``y^d <= _Q_SWITCH`` (Horner in y^d)."""
    eps = float(jnp.finfo(y.dtype).eps)
    n_terms = int(math.ceil(math.log(eps / 8) / math.log(_Q_SWITCH))) + 1
    yd = sgn * y**d
    acc = jnp.zeros_like(y)
    for n in reversed(range(n_terms)):
        acc = acc * yd + 1.0 / (2 * d - 2 + n * d)
    return y ** (2 * d - 2) * acc


def _closed(lnv, lnw, plus, d: int):
    """Closed-form ``Phi`` (plus) or ``Psi``; ``lnw = ln|1 - v|`` (accurate near v = 1).

    ``Phi = -x^{2-d}/(d-2) - (ln|1 - x| + S_+(x))/d``, ``Psi = -x^{2-d}/(d-2) + S_-(x)/d``.
    """
    x = jnp.exp(lnv / d)
    # geo = sum_{j<d} x^j = (1 - x^d)/(1 - x) = expm1(ln v)/expm1(ln v / d) (no cancellation):
    # |1 - x| = |1 - v| / geo; geo = d at v = 1.
    safe = jnp.where(lnv == 0, 1.0, lnv)
    ln_geo = jnp.where(lnv == 0, math.log(d), jnp.log(jnp.expm1(safe) / jnp.expm1(safe / d)))
    ln_gap = jnp.where(plus, lnw - ln_geo, 0.0)
    sgn = jnp.where(plus, 1.0, -1.0)
    return -jnp.exp((2 - d) * lnv / d) / (d - 2) - sgn * (ln_gap + _log_sum(x, plus, d)) / d


def _split(lnv, lnw, plus, d: int):
    """The antiderivative as ``(big, small)`` (value = big + small), in ln v and ln|1 - v|.

    ``plus`` (u0 s > 0): ``Phi``, ``dPhi = dv / (d v^p (1 - v))``, increasing on (0, 1) and
    decreasing on (1, inf); otherwise ``Psi``, ``dPsi = dv / (d v^p (1 + v))``. For
    ``v > 1/_Q_SWITCH`` big is a constant and small the series in ``y = v^{-1/d}``
    (``dPhi = y^{2d-3} dy / (1 - y^d)``, ``dPsi = -y^{2d-3} dy / (1 + y^d)``), so differences
    there carry no cancellation.
    """
    lnv_c = -math.log(_Q_SWITCH)
    with jax.ensure_compile_time_eval():
        c = jnp.asarray(lnv_c, lnv.dtype)
        y_c = jnp.exp(-c / d)
        const_plus = _closed(c, jnp.log(jnp.expm1(c)), True, d) - _series(y_c, 1.0, d)
        const_minus = _closed(c, c, False, d) + _series(y_c, -1.0, d)
    far = lnv > lnv_c
    closed = _closed(jnp.where(far, lnv_c, lnv), jnp.where(far, 0.0, lnw), plus, d)
    sgn = jnp.where(plus, 1.0, -1.0)
    y = jnp.exp(-jnp.maximum(lnv, lnv_c) / d)
    small = jnp.where(far, sgn * _series(y, sgn, d), 0.0)
    big = jnp.where(far, jnp.where(plus, const_plus, const_minus), closed)
    return big, small


def _diff(a, b):
    """``value(a) - value(b)`` for two ``(big, small)`` pairs."""
    return (a[0] - b[0]) + (a[1] - b[1])


# ---------------------------------------------------------------------------------------------
# Newton in a chart z (increasing in time): kind 0: 0 < v < 1, z = logit v (value Phi, concave);
# kind 1: v > 1, z = -ln(v - 1) (Phi, convex); kind 2: opposite signs, z = -ln v (-Psi, convex).


def _chart(z, kind, d: int):
    """``(value pair, dvalue/dz)`` at ``z``; the value increases with z in every chart."""
    sp_m, sp_p = jax.nn.softplus(-z), jax.nn.softplus(z)
    lnv = jnp.where(kind == 0, -sp_m, jnp.where(kind == 1, sp_m, -z))
    lnw = jnp.where(kind == 0, -sp_p, -z)
    plus = kind != 2
    big, small = _split(lnv, lnw, plus, d)
    sgn = jnp.where(plus, 1.0, -1.0)
    expo = jnp.where(
        kind == 0,
        (2 / d - 1) * lnv,
        jnp.where(kind == 1, (2 / d - 2) * lnv, (2 / d - 1) * lnv - jax.nn.softplus(lnv)),
    )
    return (sgn * big, sgn * small), jnp.exp(expo) / d


def _solve(z0, lo, hi, start, tn, kind, d: int):
    """Root of ``G(z) = G(z0) + tn`` by fixed-step Newton clamped to ``[lo, hi]``; the gradient
    comes from one last Newton step taken with the inputs live (implicit differentiation)."""
    sg = jax.lax.stop_gradient
    g0_live = _chart(z0, kind, d)[0]
    g0 = jax.tree_util.tree_map(sg, g0_live)
    tn_sg = sg(tn)

    def body(_, z):
        val, slope = _chart(z, kind, d)
        # Divide before subtracting: with t' ~ 1e-300 the residual itself would be subnormal,
        # and XLA flushes subnormals to zero.
        z_new = z - (_diff(val, g0) / slope - tn_sg / slope)
        z_new = jnp.where(jnp.isfinite(z_new), z_new, z)
        return jnp.clip(z_new, lo, hi)

    z_star = sg(jax.lax.fori_loop(0, _NEWTON_STEPS, body, sg(start)))
    val, slope = _chart(z_star, kind, d)
    return z_star - (_diff(val, g0_live) / sg(slope) - tn / sg(slope))


def zero_target(t, S, a0, tau, d: int):
    """``|u|`` for ``s = 0`` (``a0 = |u0| > 0``), with the right derivative in ``S = sgn(u0) s``.

    ``tau du/dt = -d |u|^p u``, so ``Q = |u|^{-p} = |u0|^{-p} + p d t / tau``. The s-derivative
    solves ``tau eta' = d |u|^p (1 - (p+1) eta)``: ``eta = (1 - (Q0/Q)^{(p+1)/p}) / (p + 1)``.
    """
    p = 2 - 2 / d
    ratio = 1 / (1 + p * d * jnp.exp(p * jnp.log(a0)) * t / tau)  # Q0 / Q
    eta = -jnp.expm1((1 + 1 / p) * jnp.log(ratio)) / (p + 1)
    return a0 * ratio ** (1 / p) + (S - jax.lax.stop_gradient(S)) * eta


def deep_mode(t, s, u0, tau, d: int):
    """``L >= 3``: ``|u|`` with ``s -> sgn(u0) s``; all inputs broadcast, t finite."""
    p = 2 - 2 / d
    sg = jax.lax.stop_gradient
    sigma = jnp.where(u0 < 0, -1.0, 1.0).astype(u0.dtype)
    a0, S = sigma * u0, sigma * s
    pos, zero_s, neg = (a0 > 0) & (S > 0), (a0 > 0) & (S == 0), (a0 > 0) & (S < 0)
    below, above = pos & (a0 < S), pos & (a0 > S)
    kind = jnp.where(above, 1, jnp.where(neg, 2, 0))
    active = below | above | neg
    a = jnp.where(active, a0, jnp.where(kind == 1, 2.0, 0.5))  # safe values elsewhere
    absS = jnp.where(active, jnp.abs(S), 1.0)
    tn = jnp.exp(p * jnp.log(absS)) * t / tau  # normalised time |s|^p t / tau
    lnv0 = jnp.log(a) - jnp.log(absS)
    lnw0 = jnp.log(jnp.where(kind == 2, 0.5, jnp.abs(absS - a))) - jnp.log(absS)
    z0 = jnp.where(kind == 0, lnv0 - lnw0, jnp.where(kind == 1, -lnw0, -lnv0))
    lv0, lw0, zz0 = sg(lnv0), sg(lnw0), sg(z0)
    # Past these normalised times the answer is the limit in floating point (|1 - v| < 2^-60, or
    # for kind 2 v below ~1/t_max^{1/(p-1)}); capping keeps every intermediate finite.
    big = math.log(float(jnp.finfo(t.dtype).max)) - 10
    a_full = (jnp.exp(jnp.minimum((1 - p) * lv0, big)) - 1) / (d * (p - 1))
    t_max = jnp.where(
        kind == 0,
        (4 / 3) * (a_full + (jnp.log1p(-jnp.exp(jnp.minimum(lv0, 0.0))) + 42.0) / d) + 1.0,
        jnp.where(kind == 1, (jnp.maximum(lw0, 0.0) + 42.0) / d + 1.0,
                  jnp.finfo(t.dtype).max / 1e8 / d),
    )
    tn = jnp.minimum(tn, t_max)
    T = sg(tn)
    em = jnp.exp(-p * lv0)  # v0^-p (may underflow to 0)
    tiny = jnp.finfo(t.dtype).tiny

    # Brackets [lo, hi] from comparison ODEs with explicit solutions (v' = dv/dt').
    # kind 0 (u0 < s): v' = d v^p (1 - v) >= d v^p and >= d (1 - v) give upper bounds on v
    # ("a": plateau, "b": approach); as 1/(v^p (1-v)) <= (4/3)(v^-p + 1/(1-v)) for p <= 2, the
    # time t' <= (8/3) max(time_a, time_b), so the bounds at t'/4 bound v from below.
    def bound_a(tt):
        q = jnp.exp(jnp.minimum((1 - p) * lv0, big)) - d * (p - 1) * tt
        lnv = -jnp.log(jnp.where(q > 0, q, 1.0)) / (p - 1)
        ok = (q > 0) & (lnv < 0)
        lnv = jnp.where(ok, lnv, -1.0)
        return jnp.where(ok, lnv - jnp.log(-jnp.expm1(lnv)), jnp.inf)

    def bound_b(tt):
        lnw = lw0 - d * tt
        return jnp.log1p(-jnp.exp(jnp.minimum(lnw, 0.0))) - lnw

    hi0 = jnp.minimum(bound_a(T), bound_b(T))
    lo0 = jnp.maximum(zz0, jnp.minimum(bound_a(T / 4), bound_b(T / 4)))

    # kind 1 (u0 > s): -v' = d v^p (v - 1) lies between r_lo and r_hi, where
    # r_hi = d v^{p+1} (v >= 2), d 2^p (v - 1) (v < 2) and r_lo = d v^{p+1}/2 (v >= 2), d (v - 1).
    def two_phase(c, rate2):  # z = -ln(w - 1) of the comparison solution with rates (c, rate2)
        ta = jnp.maximum(2.0**-p - em, 0.0) / (c * p * d)
        ln_w = -jnp.log(jnp.maximum(em + c * p * d * jnp.minimum(T, ta), tiny)) / p
        phase1 = -jnp.log(jnp.expm1(jnp.maximum(ln_w, math.log(2.0))))
        phase2 = -jnp.minimum(lw0, 0.0) + rate2 * (T - ta)
        return jnp.where(T <= ta, phase1, phase2)

    lo1 = jnp.maximum(zz0 + d * T, two_phase(0.5, d))
    hi1 = jnp.minimum(two_phase(1.0, d * 2.0**p), zz0 + d * jnp.exp(jnp.minimum(p * lv0, big)) * T)

    # kind 2 (u0 s < 0): -v' = d v^p (1 + v) lies between c d v^p max(1, v) for c = 1 and 2;
    # each comparison solution is explicit: v^-p grows linearly down to 1, then v^{1-p}.
    def decay(c):  # z = -ln w
        tc = jnp.maximum(1.0 - em, 0.0) / (c * p * d)
        phase1 = jnp.log(jnp.maximum(em + c * p * d * jnp.minimum(T, tc), tiny)) / p
        late = jnp.log(c * d * (p - 1)) + jnp.log(jnp.maximum(T - tc, 0.0))
        phase2 = jnp.logaddexp((1 - p) * jnp.minimum(lv0, 0.0), late) / (p - 1)
        return jnp.where(T <= tc, phase1, phase2)

    lo2, hi2 = decay(1.0), decay(2.0)

    lo = jnp.where(kind == 0, lo0, jnp.where(kind == 1, lo1, lo2))
    hi = jnp.where(kind == 0, hi0, jnp.where(kind == 1, hi1, hi2))
    lo = jnp.where(T > 0, jnp.maximum(lo, zz0), zz0)
    hi = jnp.where(T > 0, jnp.maximum(hi, lo), zz0)
    start = jnp.where(kind == 0, lo, hi)  # Newton converges monotonically from there
    z = _solve(z0, lo, hi, start, tn, kind, d)
    u = absS * jnp.where(
        kind == 0, jax.nn.sigmoid(z), jnp.where(kind == 1, 1 + jnp.exp(-z), jnp.exp(-z))
    )

    u_zero = zero_target(t, S, jnp.where(zero_s, a0, 1.0), tau, d)
    out = jnp.where(active, u, jnp.where(zero_s, u_zero, jnp.where(pos, S, a0)))
    return sigma * out  # u0 = 0 stays (d out/d u0 = 1 there, as p > 1)



def deep_time(u0, u1, s, tau, d: int):
    """``L >= 3`` time from ``u0`` to ``u1`` (inf if never reached); inputs broadcast."""
    p = 2 - 2 / d
    sigma = jnp.where(u0 < 0, -1.0, 1.0).astype(u0.dtype)
    a0, a1, S = sigma * u0, sigma * u1, sigma * s
    target = jnp.maximum(S, 0.0)
    ok = (a0 > 0) & (a1 > 0) & (jnp.sign(a1 - a0) * jnp.sign(target - a1) > 0)
    a0s, a1s = jnp.where(ok, a0, 0.5), jnp.where(ok, a1, 0.25)
    absS = jnp.where(S != 0, jnp.abs(S), 1.0)
    scale = tau * jnp.exp(-p * jnp.log(absS))
    lnv0, lnv1 = jnp.log(a0s) - jnp.log(absS), jnp.log(a1s) - jnp.log(absS)
    gap0 = jnp.where(S > 0, jnp.abs(S - a0s), 0.5)
    gap1 = jnp.where(S > 0, jnp.abs(S - a1s), 0.5)
    lnw0, lnw1 = jnp.log(gap0) - jnp.log(absS), jnp.log(gap1) - jnp.log(absS)
    plus = S >= 0
    t_split = scale * _diff(_split(lnv1, lnw1, plus, d), _split(lnv0, lnw0, plus, d))
    t_pos, t_neg = t_split, -t_split
    t_zero = tau * (jnp.exp(-p * jnp.log(a1s)) - jnp.exp(-p * jnp.log(a0s))) / (p * d)
    out = jnp.where(S > 0, t_pos, jnp.where(S < 0, t_neg, t_zero))
    out = jnp.where(ok, out, jnp.inf)
    return jnp.where(u1 == u0, 0.0, out)

