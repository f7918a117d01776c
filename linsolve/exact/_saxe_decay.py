r"""Depth ``L >= 3`` balanced Saxe modes with weight decay ``gamma > 0`` and input variance ``lam``.

Gradient flow on ``L = ... + 1/2 tr(P Sxx P^T) + (gamma/2) sum_l ||W_l||^2`` keeps a balanced,
aligned net decoupled; each layer scalar obeys ``tau da_l/dt = (s - lam u) u / a_l - gamma a_l``,
so with ``a = |u|`` and ``S = sgn(u0) s`` (Saxe, McClelland & Ganguli 2014, arXiv:1312.6120; Saxe
et al. 2019 PNAS for ``lam``; Ziyin et al. 2022, arXiv:2202.04777 for decay with depth)

    tau da/dt = L [a^p (S - lam a) - gamma a],    p = 2 - 2/L.

With ``x = a^{1/L}``: ``tau dx/dt = x q(x)``, ``q(x) = x^{L-2} (S - lam x^L) - gamma`` (degree
``2L - 2``), so the time is the integral of a rational function, by partial fractions

    t / tau = sum_k Re[c_k ln(x - r_k)] - (same at x0),   c_k = 1 / (r_k q'(r_k)),

over the roots ``r_k`` of ``x q(x)``: ``r_0 = 0`` (``c_0 = 1/q(0) = -1/gamma``) and the roots of
``q``, computed on the host (companion-matrix eigenvalues polished by Newton; the positive real
roots by bisection), so ``s``, ``u0``, ``lam`` and ``gamma`` must be concrete. Fixed points:
``x = 0`` is stable; ``q`` has two positive roots ``x_- < x_+`` iff
``gamma < x_*^{L-2} S L / (2L - 2)``, ``x_*^L = (L - 2) S / ((2L - 2) lam)`` (``S > 0``); ``x_-``
is the unstable separatrix, ``x_+`` the stable one (bistability: Ziyin et al. 2022). The relation
is inverted in a chart ``z`` of the basin in which the time grows linearly at both ends
(``logit`` between two roots, ``-ln(x - x_+)`` above ``x_+``, ``-ln x`` with no positive roots),
by Newton's method safeguarded with bisection inside a bracket found by doubling, for a fixed
number of steps (jit- and vmap-friendly in ``t`` and ``tau``). The logarithms of the gaps to the
basin's two ends are taken from the chart, so the solution keeps full relative precision near
either fixed point. Far above every root (``x > xf = 2 max|r_k|``), where the partial fractions
cancel (their residues sum to 0), the time is the Gauss-Legendre integral (32 nodes) of the
smooth ``y^{2L-3} / (lam - S y^L + gamma y^{2L-2})`` in ``y = 1/x``. Accuracy (float64, against
adaptive quadrature, depths 3-8, ``u0`` up to 1e4 times the fixed point): ~1e-12; it degrades as
``gamma`` approaches the critical value (``x_-`` and ``x_+`` merge and the residues grow like
``1/(x_+ - x_-)``): 1e-9 at a relative distance 1e-6, 1e-6 at 1e-8. Not differentiable (the
roots are host values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["decay_setup", "decay_mode", "decay_time"]

_NEWTON = 80
_DOUBLINGS = np.arange(-4, 63)  # bracket candidates z0 + 2^k
_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)


def _q(x, S, lam, gamma, d):
    return x ** (d - 2) * (S - lam * x**d) - gamma


def _dq(x, S, lam, d):
    return (d - 2) * x ** (d - 3) * S - (2 * d - 2) * lam * x ** (2 * d - 3)


def decay_setup(s, u0, lam, gamma, d: int) -> dict:
    """Host (NumPy float64) roots, residues and basin of each element (``gamma > 0``, ``d >= 3``).

    Returns arrays broadcast to one shape: ``re, im, cre, cim`` (..., 16k) roots of ``x q(x)``
    (index 0 is the root 0; the first 2d - 1 are real, ``mask`` marks them) and residues;
    ``A, B`` the basin ends in ``x`` (``B = inf`` above the last root); ``iA, iB`` their root
    indices (-1: none); ``kind`` (0: rising to B, 1: falling to
    A = 0 below the separatrix, 2: falling to A from above, 3: at a fixed point);
    ``x_inf`` the limit; ``sigma`` the sign of ``u0``.
    """
    s, u0, lam, gamma = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (s, u0, lam, gamma)))
    shape = s.shape
    s, u0, lam, gamma = (v.reshape(-1) for v in (s, u0, lam, gamma))
    gamma = np.where(gamma > 0, gamma, 1.0)  # elements with gamma = 0 are not used
    m, n = s.size, 2 * d - 2
    sigma = np.where(u0 < 0, -1.0, 1.0)
    S, a0 = sigma * s, np.abs(u0)
    # Companion matrix of the monic x^n - (S/lam) x^{d-2} + gamma/lam.
    comp = np.zeros((m, n, n))
    comp[:, 1:, :-1] = np.eye(n - 1)
    comp[:, 0, n - 1 - (d - 2)] = S / lam  # coefficient of x^{d-2}, sign flipped
    comp[:, 0, n - 1] = -gamma / lam
    roots = np.linalg.eigvals(comp) if m else np.zeros((0, n), complex)
    for _ in range(3):
        dq = _dq(roots, S[:, None], lam[:, None], d)
        step = _q(roots, S[:, None], lam[:, None], gamma[:, None], d) / np.where(dq == 0, 1, dq)
        roots = roots - np.where(np.isfinite(step), step, 0)
    # Positive real roots: q rises on (0, x*) and falls after; two roots iff q(x*) > 0.
    pos_S = np.where(S > 0, S, 1.0)
    xstar = ((d - 2) * pos_S / ((2 * d - 2) * lam)) ** (1 / d)
    two = (S > 0) & (_q(xstar, pos_S, lam, gamma, d) > 0)
    xtop = (pos_S / lam) ** (1 / d)
    lo_m, hi_m = np.zeros(m), xstar.copy()
    lo_p, hi_p = xstar.copy(), xtop.copy()
    for _ in range(110):
        mid = 0.5 * (lo_m + hi_m)
        neg = _q(mid, pos_S, lam, gamma, d) < 0
        lo_m, hi_m = np.where(neg, mid, lo_m), np.where(neg, hi_m, mid)
        mid = 0.5 * (lo_p + hi_p)
        neg = _q(mid, pos_S, lam, gamma, d) < 0
        lo_p, hi_p = np.where(neg, lo_p, mid), np.where(neg, mid, hi_p)
    x_m, x_p = 0.5 * (lo_m + hi_m), 0.5 * (lo_p + hi_p)
    rows = np.arange(m)
    i_m = np.argmin(np.abs(roots - x_m[:, None]), axis=1)
    masked = np.where(np.arange(n)[None, :] == i_m[:, None], np.inf, np.abs(roots - x_p[:, None]))
    i_p = np.argmin(masked, axis=1)
    roots[rows[two], i_m[two]] = x_m[two]
    roots[rows[two], i_p[two]] = x_p[two]
    res = 1 / (roots * _dq(roots, S[:, None], lam[:, None], d))
    allr = np.concatenate([np.zeros((m, 1), complex), roots], axis=1)
    allc = np.concatenate([(-1 / gamma)[:, None] + 0j, res], axis=1)
    allr.imag[:, 1:][np.abs(allr.imag[:, 1:]) == 0] = 0.0
    allc.imag[allr.imag == 0] = 0.0  # real roots: real residues
    x0 = a0 ** (1 / d)
    near = lambda r: np.abs(x0 - r) <= 4 * np.finfo(float).eps * r
    fixed = (a0 == 0) | (two & (near(x_m) | near(x_p)))
    kind = np.where(fixed, 3, np.where(two & (x0 < x_m), 1, np.where(two & (x0 < x_p), 0, 2)))
    A = np.where(kind == 0, x_m, np.where((kind == 2) & two, x_p, 0.0))
    B = np.where(kind == 0, x_p, np.where(kind == 1, x_m, np.inf))
    iA = np.where(kind == 0, i_m + 1, np.where((kind == 2) & two, i_p + 1, 0))
    iB = np.where(kind == 0, i_p + 1, np.where(kind == 1, i_m + 1, -1))
    x_inf = np.where(kind == 3, x0, np.where((kind == 0) | ((kind == 2) & two), x_p, 0.0))
    # Padded to a multiple of 16 roots with inert ones (mask 0), so depths share compilations.
    pad = -(n + 1) % 16
    allr = np.concatenate([allr, np.full((m, pad), -1.0 + 0j)], axis=1)
    allc = np.concatenate([allc, np.zeros((m, pad), complex)], axis=1)
    mask = np.concatenate([np.ones((m, n + 1)), np.zeros((m, pad))], axis=1)
    out = dict(re=allr.real, im=allr.imag, cre=allc.real, cim=allc.imag, mask=mask, A=A, B=B, iA=iA,
               iB=iB, kind=kind, x_inf=x_inf, sigma=sigma, lam=lam, d=np.full(m, float(d)), S=S,
               gamma=gamma, xf=np.where(kind == 2, 2 * np.max(np.abs(roots), axis=1), np.inf))
    return {k: v.reshape(shape + v.shape[1:]) for k, v in out.items()}


def _chart(z, P):
    """``(ln x, ln(x - A), ln(B - x), ln|dx/dz|, x)`` at chart value ``z``."""
    kind, A, B = P["kind"], P["A"], P["B"]
    finite = kind < 2
    lnBA = jnp.log(jnp.where(finite, B - A, 1.0))
    y = jnp.where(kind == 1, -z, z)
    ln_a = jnp.where(finite, lnBA - jax.nn.softplus(-y), -z)
    ln_b = jnp.where(finite, lnBA - jax.nn.softplus(y), 0.0)
    ln_dx = jnp.where(finite, lnBA - jax.nn.softplus(y) - jax.nn.softplus(-y), -z)
    x = A + jnp.exp(ln_a)
    ln_x = jnp.where(A == 0, ln_a, jnp.log(x))
    return ln_x, ln_a, ln_b, ln_dx, x


def _generic(x, P):
    """Per-root ``(ln|x - r_k|, arg(x - r_k))`` (trailing axis) from ``x`` itself."""
    xe = x[..., None]
    dre = xe - P["re"]
    real = P["im"] == 0
    ell = jnp.where(real, jnp.log(jnp.abs(jnp.where(dre == 0, 1.0, dre))),
                    0.5 * jnp.log(dre**2 + P["im"] ** 2))
    return ell * P["mask"], jnp.arctan2(-P["im"], dre)


def _far(ya, yb, P):
    """``int_{ya}^{yb} y^{2L-3} / (lam - S y^L + gamma y^{2L-2}) dy``: the time spent at
    ``x = 1/y > xf = 2 max|r_k|`` (no pole in the disc ``|y| < 2/xf``; Gauss-Legendre is exact to
    rounding). Used instead of the partial fractions there, whose terms cancel for large x."""
    d, half = P["d"], 0.5 * (yb - ya)
    y = (0.5 * (ya + yb))[..., None] + half[..., None] * jnp.asarray(_GL_X, ya.dtype)
    lny = jnp.log(y)
    f = jnp.exp((2 * d[..., None] - 3) * lny) / (
        P["lam"][..., None] - P["S"][..., None] * jnp.exp(d[..., None] * lny)
        + P["gamma"][..., None] * jnp.exp((2 * d[..., None] - 2) * lny))
    return half * jnp.sum(jnp.asarray(_GL_W, ya.dtype) * f, axis=-1)


def _state(z, P):
    """``(ell, theta, y, ln|dx/dz|, ell at x)``: the logs at ``min(x, xf)``, ``y = 1/max(x, xf)``."""
    ell, th, ln_dx, x = _logs(z, P)
    far = x > P["xf"]
    ell_c = jnp.where(far[..., None], P["ell_f"], ell)
    th_c = jnp.where(far[..., None], P["th_f"], th)
    return ell_c, th_c, 1 / jnp.maximum(x, P["xf"]), ln_dx, ell


def _with_far(P):
    xf = jnp.where(jnp.isfinite(P["xf"]), P["xf"], 1.0)
    ell_f, th_f = _generic(xf, P)
    return {**P, "ell_f": ell_f, "th_f": th_f}


def _logs(z, P):
    """Per-root ``(ln|x - r_k|, arg(x - r_k))`` (trailing axis), ``ln|dx/dz|`` and ``x``."""
    _, ln_a, ln_b, ln_dx, x = _chart(z, P)
    xe = x[..., None]
    dre = xe - P["re"]
    real = P["im"] == 0
    ell = jnp.where(real, jnp.log(jnp.abs(jnp.where(dre == 0, 1.0, dre))),
                    0.5 * jnp.log(dre**2 + P["im"] ** 2))
    k = jnp.arange(P["re"].shape[-1])
    ell = jnp.where(k == P["iA"][..., None], ln_a[..., None], ell)
    ell = jnp.where(k == P["iB"][..., None], ln_b[..., None], ell) * P["mask"]
    return ell, jnp.arctan2(-P["im"], dre), ln_dx, x


def _elapsed(state, ref, P):
    """``t(z) - t(z0)`` over ``tau`` from the states (:func:`_state`) at z and z0."""
    pf = jnp.sum(P["cre"] * (state[0] - ref[0]) - P["cim"] * (state[1] - ref[1]), axis=-1)
    return pf + _far(ref[2], state[2], P)


def z_of(x, P):
    """Chart value of ``x`` (inside the basin)."""
    kind, A, B = P["kind"], P["A"], P["B"]
    up = jnp.log(jnp.abs(x - A)) - jnp.log(jnp.abs(B - x))
    return jnp.where(kind == 0, up, jnp.where(kind == 1, -up, -jnp.log(jnp.abs(x - A))))


def _fill(P, active):
    """Safe dummy parameters where not ``active`` (a rising basin (1, 2))."""
    out = dict(P)
    out["kind"] = jnp.where(active, P["kind"], 0)
    out["A"] = jnp.where(active, P["A"], 1.0)
    out["B"] = jnp.where(active, P["B"], 2.0)
    return out


@jax.jit
def decay_mode(t, u0, tau, P):
    """``u(t)`` for finite ``t >= 0``; ``P`` from :func:`decay_setup` (all broadcast to t)."""
    d = P["d"]
    active = P["kind"] < 3
    P = _with_far(_fill(P, active))
    x0 = jnp.where(active, jnp.exp(jnp.log(jnp.where(u0 != 0, jnp.abs(u0), 1.0)) / d), 1.5)
    z0 = z_of(x0, P)
    ref = _state(z0, P)[:3]
    tn = t / tau
    # Bracket: lo = z0 (elapsed 0); hi = the first z0 + 2^k with elapsed >= tn.
    steps = jnp.asarray(2.0 ** _DOUBLINGS, t.dtype)
    cand = z0[..., None] + steps
    Pc = jax.tree_util.tree_map(lambda v: jnp.expand_dims(v, z0.ndim), P)
    refc = tuple(jnp.expand_dims(r, z0.ndim) for r in ref)
    elapsed = _elapsed(_state(cand, Pc), refc, Pc)
    reached = elapsed >= tn[..., None]
    first = jnp.argmax(reached, axis=-1)
    any_r = jnp.any(reached, axis=-1)
    hi = jnp.where(any_r, jnp.take_along_axis(cand, first[..., None], -1)[..., 0], cand[..., -1])
    prev = jnp.take_along_axis(cand, jnp.maximum(first - 1, 0)[..., None], -1)[..., 0]
    lo = jnp.where(any_r, jnp.where(first > 0, prev, z0), hi)

    def body(_, state):
        z, lo, hi = state
        state = _state(z, P)
        ln_dx, ell = state[3], state[4]
        F = _elapsed(state, ref, P) - tn
        slope = jnp.exp(ln_dx - jnp.log(P["lam"]) - jnp.sum(ell, axis=-1))
        lo = jnp.where(F < 0, z, lo)
        hi = jnp.where(F >= 0, z, hi)
        zn = z - F / slope
        ok = (zn > lo) & (zn < hi) & jnp.isfinite(zn)
        return jnp.where(ok, zn, 0.5 * (lo + hi)), lo, hi

    z = jax.lax.fori_loop(0, _NEWTON, body, (0.5 * (lo + hi), lo, hi))[0]
    z = jnp.where(tn > 0, z, z0)
    ln_x = _chart(z, P)[0]
    u = P["sigma"] * jnp.exp(d * ln_x)
    return jnp.where(active, u, u0)


@jax.jit
def decay_time(u0, u1, tau, P):
    """Time from ``u0`` to ``u1`` (``inf`` if never reached; 0 if equal)."""
    d = P["d"]
    active = P["kind"] < 3
    P = _with_far(_fill(P, active))
    a0 = jnp.where(u0 != 0, jnp.abs(u0), 1.0)
    a1 = P["sigma"] * u1
    x0 = jnp.exp(jnp.log(a0) / d)
    x1 = jnp.exp(jnp.log(jnp.where(a1 > 0, a1, 1.0)) / d)
    kind, A, B = P["kind"], P["A"], P["B"]
    ok = active & (a1 > 0) & jnp.where(kind == 0, (x1 > x0) & (x1 < B), (x1 < x0) & (x1 > A))
    x0s, x1s = jnp.where(ok, x0, 1.25), jnp.where(ok, x1, 1.5)
    el = _elapsed(_state(z_of(x1s, P), P), _state(z_of(x0s, P), P), P)
    out = jnp.where(ok, tau * el, jnp.inf)
    return jnp.where(u1 == u0, 0.0, out)
