r"""The width-d, one-dimensional-data network of Xu & Ziyin: ``f(x) = kappa (u . w) x``.

Loss ``L = 1/2 m2 (F - s)^2`` with ``F = kappa u.w``, gradient flow ``du/dt = -eta_u dL/du``,
``dw/dt = -eta_w dL/dw``, any width d and any initialisation.

**Solution.** With ``p = u / sqrt(eta_u)`` and ``q = w / sqrt(eta_w)`` the flow is ``dp/dphi = q``,
``dq/dphi = p`` in the rapidity ``dphi = sqrt(eta_u eta_w) kappa m2 (s - F) dt``: every neuron makes
the same hyperbolic rotation (Lorentz boost)

    u(t) = cosh(phi) u0 + sqrt(eta_u/eta_w) sinh(phi) w0,
    w(t) = sqrt(eta_w/eta_u) sinh(phi) u0 + cosh(phi) w0,

and ``F`` solves the master mode ``dF/dt = -k (F - s) sqrt(B^2 + A^2 F^2)`` (Sec. 1) with
``k = kappa^2 m2``, ``A = 2 sqrt(eta_u eta_w) / kappa`` and ``B = ||C||_*`` the nuclear norm of
the conserved ``C = eta_w u u^T - eta_u w w^T``; ``2 phi = theta(t) - theta(0)`` for
``F = (B/A) sinh theta``.

**Stable evaluation.** On the light-cone vectors ``a = (p + q)/2`` and ``b = (p - q)/2`` the boost
is diagonal: ``a(t) = e^{phi} a0``, ``b(t) = e^{-phi} b0``. Their norms follow from ``F`` alone,

    4 eta_u eta_w |a|^2 = G + A F,   4 eta_u eta_w |b|^2 = G - A F,   G = sqrt(B^2 + A^2 F^2),

(one of the two formed as ``B^2 / (G -+ A F)``, without cancellation), so
``u = sqrt(eta_u) (|a| a0/|a0| + |b| b0/|b0|)`` and ``w = sqrt(eta_w) (|a| a0/|a0| - |b| b0/|b0|)``
never form ``cosh phi`` or ``sinh phi``: nothing overflows at any time, ``B = 0`` (where ``phi``
runs to infinity while ``u``, ``w`` go to 0) included, and ``t = inf`` is the exact limit. In these
variables ``B = 4 eta_u eta_w |a0| |b0|`` and ``c1 = 4 eta_u eta_w a0 . b0``, both free of
cancellation. An entry of ``a0`` or ``b0`` that cancels to within 8 ulps of its two terms is set
to 0, so a balanced parallel start (``sqrt(eta_w) u0 = +-sqrt(eta_u) w0``) has B = 0 exactly, as
it would in exact arithmetic (XLA's fused multiply-adds would otherwise leave a residue of
~1e-16 and with it an escape from the saddle after ~ln(1e16)/(k A |s|)).

Reference: Y. Xu & L. Ziyin, "Three Mechanisms of Feature Learning in a Linear Network",
ICLR 2025 (arXiv 2401.07085); the model is reconstructed from its abstract.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._validate import as_float, as_scalar, check_overflow, float_dtype_of, is_concrete
from ._mode import _general as _mode_general
from ._mode import _logistic as _mode_logistic
from ._mode import check_times

__all__ = [
    "MECHANISMS",
    "OneHiddenLayer",
    "PhaseRatio",
    "Regime",
    "one_hidden_layer",
    "phase_ratio",
    "regime",
    "width_exponent",
]

MECHANISMS = ("kernel", "alignment", "disalignment", "rescaling")


class OneHiddenLayer(eqx.Module):
    """Closed-form state of the width-d one-dimensional network; leading axes are those of ``t``.

    **Fields:**
    - `u`, `w`: (..., d) readout and first-layer weights.
    - `F`: (...) the end-to-end scalar ``kappa u.w``.
    - `loss`: (...) ``1/2 m2 (F - s)^2``.
    - `ntk`: (...) ``kappa^2 (eta_u |w|^2 + eta_w |u|^2) = kappa^2 sqrt(B^2 + A^2 F^2)``, the NTK at
      ``x = x' = 1`` (times ``m2`` it is the rate of ``F``).
    - `cos`: (...) cosine of the angle between u and w, ``F / sqrt(F^2 + kappa^2 D)`` (0 where u or
      w is the zero vector).
    - `c1`: (...) ``tr C = eta_w |u|^2 - eta_u |w|^2`` (conserved).
    - `D`: (...) Gram determinant ``|u|^2 |w|^2 - (u.w)^2`` (conserved).
    - `B`: (...) nuclear norm of ``C``, ``sqrt(c1^2 + 4 eta_u eta_w D)`` (conserved).
    - `phi`: (...) the boost rapidity ``phi(t)`` (``+-inf`` at ``t = inf`` only when B = 0 and
      F -> 0).
    """

    u: Float[Array, "*times d"]
    w: Float[Array, "*times d"]
    F: Float[Array, "*times"]
    loss: Float[Array, "*times"]
    ntk: Float[Array, "*times"]
    cos: Float[Array, "*times"]
    c1: Float[Array, "*times"]
    D: Float[Array, "*times"]
    B: Float[Array, "*times"]
    phi: Float[Array, "*times"]


class PhaseRatio(NamedTuple):
    """``r = A|s|/B`` (richness of the target) and ``r0 = A|F0|/B`` (of the initial output)."""

    r: Float[Array, ""]
    r0: Float[Array, ""]


class Regime(NamedTuple):
    """The learning mechanism and the quantities it was decided from.

    - `name`: one of :data:`MECHANISMS` (a Python ``str``), or None when the input is traced.
    - `code`: () int, the index of `name` in :data:`MECHANISMS` (also under jit/vmap).
    - `r`, `r0`: the phase ratios ``A|s|/B`` and ``A|F0|/B`` (inf when B = 0).
    - `kernel_ratio`: ``K(inf)/K(0)``.
    - `kernel_change`: the largest relative change of the NTK along the path,
      ``max_t |K(t)/K(0) - 1|`` (F moves monotonically, so it is reached at an end point or, when F
      crosses 0, at the floor ``K = kappa^2 B``).
    - `cos0`, `cos_inf`: cosine of the angle between u and w at ``t = 0`` and ``t = inf``.
    - `D_ratio`: ``kappa^2 D / min(F0^2, F_inf^2)``, the angle-freezing measure (0 when D = 0).
    - `crosses_zero`: () bool, F changes sign on the way (u passes orthogonal to w).
    """

    name: str | None
    code: Int[Array, ""]
    r: Float[Array, ""]
    r0: Float[Array, ""]
    kernel_ratio: Float[Array, ""]
    kernel_change: Float[Array, ""]
    cos0: Float[Array, ""]
    cos_inf: Float[Array, ""]
    D_ratio: Float[Array, ""]
    crosses_zero: Bool[Array, ""]


class _Init(NamedTuple):
    """Validated inputs and the cancellation-free invariants of the initial condition."""

    u0: Array
    w0: Array
    s: Array
    m2: Array
    kappa: Array
    eta_u: Array
    eta_w: Array
    ea: Array  # a0 / |a0| (0 when a0 = 0)
    eb: Array  # b0 / |b0|
    F0: Array
    A: Array
    B: Array
    c1: Array
    D: Array


def _safe_norm(x):
    sq = jnp.sum(x * x, axis=-1)
    pos = sq > 0
    n = jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)
    return n, jnp.where(pos, n, 1.0)


def _gram_det(x, y):
    """``|x|^2 |y|^2 - (x.y)^2`` as ``|x|^2 |y_perp|^2`` (projecting out of the longer vector)."""
    nx, ny = jnp.sum(x * x), jnp.sum(y * y)
    big, small = jnp.where(nx >= ny, x, y), jnp.where(nx >= ny, y, x)
    nb = jnp.sum(big * big)
    nb_safe = jnp.where(nb > 0, nb, 1.0)
    perp = small - (jnp.dot(big, small) / nb_safe) * big
    return jnp.where(nb > 0, nb * jnp.sum(perp * perp), 0.0)


def _validate(u0, w0, s, m2, kappa, eta_u, eta_w, *extra) -> tuple:
    """Shape and (for concrete input) value checks; returns the inputs as arrays of one dtype."""
    dtype = float_dtype_of(u0, w0, s, m2, kappa, eta_u, eta_w, *extra)
    u0 = as_float(u0, "u0", dtype, ndim=1)
    w0 = as_float(w0, "w0", dtype, ndim=1)
    if u0.shape != w0.shape:
        raise ValueError(
            f"`u0` and `w0` must have the same shape (d,); got {tuple(u0.shape)} and "
            f"{tuple(w0.shape)}."
        )
    if u0.shape[0] == 0:
        raise ValueError("`u0` and `w0` must have at least one entry (width d >= 1); got d = 0.")
    s = as_scalar("s", s, dtype, positive=False)
    m2, kappa, eta_u, eta_w = (
        as_scalar(name, value, dtype)
        for name, value in (("m2", m2), ("kappa", kappa), ("eta_u", eta_u), ("eta_w", eta_w))
    )
    args = u0, w0, s, m2, kappa, eta_u, eta_w
    _check_range(args)
    return args


def _check_range(args) -> None:
    """The invariants and rates of a concrete input must be finite in its dtype (no overflow)."""
    if not is_concrete(args):
        return
    dtype = args[0].dtype
    with np.errstate(over="ignore", invalid="ignore"):
        u0, w0, s, m2, kappa, eta_u, eta_w = (np.asarray(x) for x in args)
        su, sw = np.sqrt(eta_u), np.sqrt(eta_w)
        A = 2 * su * sw / kappa
        B = np.linalg.norm(sw * u0 + su * w0) * np.linalg.norm(sw * u0 - su * w0)
        F0 = kappa * np.dot(u0, w0)
        k = kappa**2 * m2
        check_overflow(
            f"`kappa` = {float(kappa):.3g} is too small (or `eta_u`, `eta_w` too large) for "
            f"{dtype}: A = 2 sqrt(eta_u eta_w)/kappa overflows.", A,
        )
        check_overflow(
            f"`u0`, `w0` are too large for {dtype}: the conserved B = ||eta_w u0 u0^T - eta_u "
            "w0 w0^T||_* (or F0 = kappa u0.w0) overflows.", B * B, F0, (A * F0) ** 2,
        )
        check_overflow(
            f"`s` = {float(s):.3g} is too large for {dtype}: (A s)^2 overflows (A = "
            f"2 sqrt(eta_u eta_w)/kappa = {float(A):.3g}).", (A * s) ** 2,
        )
        G = np.sqrt(B * B + (A * s) ** 2 + (A * F0) ** 2)
        check_overflow(
            f"`kappa` and `m2` are too large for {dtype}: the rate kappa^2 m2 sqrt(B^2 + A^2 s^2) "
            "overflows.", k * G, k * A,
        )


def _invariants(u0, w0, s, m2, kappa, eta_u, eta_w) -> _Init:
    su, sw = jnp.sqrt(eta_u), jnp.sqrt(eta_w)
    # sqrt(eta_u eta_w) a0 and sqrt(eta_u eta_w) b0. An entry that cancels to within the rounding
    # of its own terms is set to 0, so that sqrt(eta_w) u0 = +-sqrt(eta_u) w0 gives B = 0 exactly
    # (XLA contracts x + y into a fused multiply-add, which leaves a rounding residue otherwise).
    x, y = sw * u0, su * w0
    floor = 8 * jnp.finfo(u0.dtype).eps * (jnp.abs(x) + jnp.abs(y))
    a = jnp.where(jnp.abs(x + y) <= floor, 0.0, 0.5 * (x + y))
    b = jnp.where(jnp.abs(x - y) <= floor, 0.0, 0.5 * (x - y))
    na, na_safe = _safe_norm(a)
    nb, nb_safe = _safe_norm(b)
    ea, eb = a / na_safe, b / nb_safe
    F0 = kappa * jnp.dot(u0, w0)
    A = 2 * su * sw / kappa
    B = 4 * na * nb
    c1 = 4 * jnp.dot(a, b)
    # D = 0 exactly at d = 1 and when B = 0 (then u0 || w0).
    D = jnp.where(B > 0, _gram_det(u0, w0), 0.0) if u0.shape[-1] > 1 else jnp.zeros_like(B)
    return _Init(u0, w0, s, m2, kappa, eta_u, eta_w, ea, eb, F0, A, B, c1, D)


def one_hidden_layer(
    t: Float[ArrayLike, "*times"],
    u0: Float[ArrayLike, " d"],
    w0: Float[ArrayLike, " d"],
    *,
    s,
    m2=1.0,
    kappa=1.0,
    eta_u=1.0,
    eta_w=1.0,
) -> OneHiddenLayer:
    r"""Exact gradient flow of ``f(x) = kappa (u . w) x`` on one-dimensional data.

    Loss ``1/2 m2 (kappa u.w - s)^2``; ``du/dt = -eta_u kappa m2 (F - s) w``,
    ``dw/dt = -eta_w kappa m2 (F - s) u``. The solution is the Lorentz boost

        u(t) = cosh(phi) u0 + sqrt(eta_u/eta_w) sinh(phi) w0,
        w(t) = sqrt(eta_w/eta_u) sinh(phi) u0 + cosh(phi) w0,

    with ``2 phi(t) = theta(t) - theta(0)`` (``exact.mode_rapidity``), ``F = (B/A) sinh theta``
    the master mode (``exact.mode``) at ``k = kappa^2 m2``, ``A = 2 sqrt(eta_u eta_w)/kappa`` and
    ``B = ||eta_w u0 u0^T - eta_u w0 w0^T||_*``; evaluated through the boost's light-cone
    eigenvectors so that nothing overflows (module notes). Valid for every initialisation:
    F crossing zero, ``|F0| > |s|``, ``s <= 0``, B = 0 (u0 parallel to w0 with ``c1 = 0``; F then
    never changes sign and goes to 0 when ``F0 s <= 0``), d = 1.

    **Arguments:**
    - `t`: times >= 0, any shape (``inf`` allowed); the result gains these leading axes.
    - `u0`, `w0`: (d,) initial readout and first-layer weights.
    - `s`: target ``E[xy]/E[x^2]``; `m2`: ``E[x^2] > 0``; `kappa`: output scale > 0;
      `eta_u`, `eta_w`: layer rates > 0. Scalars (use ``jax.vmap`` to sweep them). All finite
      and promoted to their widest floating dtype; concrete inputs whose invariants (``A``,
      ``B``, ``F0``) or rate ``kappa^2 m2 G`` overflow the dtype raise ValueError.

    **Returns:** :class:`OneHiddenLayer` (fields `u`, `w`, `F`, `loss`, `ntk`, `cos`, `c1`, `D`,
    `B`, `phi`). ``t = 0`` returns ``u0``, ``w0`` exactly; ``t = inf`` the limit point of the boost.
    Plain calls validate, then run one jit-compiled kernel (cached per shape and dtype).
    Gradients are finite at every time, ``t = inf`` included, except at the B = 0 saddle
    (``F0 s < 0``), where the sensitivity to the unstable direction grows like
    ``e^{k A |s| t / 2}`` and overflows at late times.

    Reference: Xu & Ziyin, ICLR 2025 (arXiv 2401.07085).
    """
    args = _validate(u0, w0, s, m2, kappa, eta_u, eta_w, t)
    t = check_times(t, "t", args[0].dtype)
    return _evolve(t, *args)


@jax.jit
def _evolve(t, *args) -> OneHiddenLayer:
    p = _invariants(*args)
    k = p.kappa**2 * p.m2
    F, rapidity, at_inf = _mode_eval(t, p.F0, p.s, k, p.A, p.B)
    phi = 0.5 * jnp.where(at_inf, _rapidity_limit(F, p), rapidity)
    AF = p.A * F
    G = jnp.sqrt(p.B * p.B + AF * AF)
    # 4 eta_u eta_w |a|^2 = G + AF and 4 eta_u eta_w |b|^2 = G - AF, the small one as B^2 / (big).
    big = G + jnp.abs(AF)
    big_safe = jnp.where(big > 0, big, 1.0)
    small = jnp.where(big > 0, p.B * p.B / big_safe, 0.0)
    ga = jnp.where(AF >= 0, big, small)
    gb = jnp.where(AF >= 0, small, big)
    # sqrt(eta_u) |a|, sqrt(eta_u) |b| (for u) and sqrt(eta_w) |a|, sqrt(eta_w) |b| (for w).
    ra = _sqrt0(ga) / (2 * jnp.sqrt(p.eta_w))
    rb = _sqrt0(gb) / (2 * jnp.sqrt(p.eta_w))
    qa = _sqrt0(ga) / (2 * jnp.sqrt(p.eta_u))
    qb = _sqrt0(gb) / (2 * jnp.sqrt(p.eta_u))
    u = ra[..., None] * p.ea + rb[..., None] * p.eb
    w = qa[..., None] * p.ea - qb[..., None] * p.eb
    at0 = (t == 0)[..., None]
    u = jnp.where(at0, p.u0, u)
    w = jnp.where(at0, p.w0, w)
    kD = p.kappa**2 * p.D
    den = jnp.sqrt(F * F + kD)
    cos = jnp.where(den > 0, F / jnp.where(den > 0, den, 1.0), 0.0)
    shape = F.shape
    return OneHiddenLayer(
        u=u,
        w=w,
        F=F,
        loss=0.5 * p.m2 * (F - p.s) ** 2,
        ntk=p.kappa**2 * G,
        cos=cos,
        c1=jnp.broadcast_to(p.c1, shape),
        D=jnp.broadcast_to(p.D, shape),
        B=jnp.broadcast_to(p.B, shape),
        phi=phi,
    )


def _mode_eval(t, F0, s, k, A, B):
    """``exact.mode`` and ``exact.mode_rapidity`` in one pass: ``(F, theta - theta0, t == inf)``.

    The same branches as ``exact.mode``, with the times fed to its B = 0 (logistic) branch capped
    where that branch has converged to machine precision (``k A |s| t <= 0.9 ln(max_float)``, and
    ``k A t`` far from overflow) and set to 0 where the branch is not used, so that no unused
    ``expm1`` overflows: the gradient stays finite at every time.
    """
    shape = jnp.broadcast_shapes(t.shape, jnp.shape(F0))
    t, F0, s, k, A, B = (jnp.broadcast_to(x, shape) for x in (t, F0, s, k, A, B))
    finite_t = jnp.where(jnp.isinf(t), 0.0, t)
    positive = B > 0
    Fg, rg = _mode_general(finite_t, F0, s, k, A, jnp.where(positive, B, 1.0))
    big = jnp.finfo(t.dtype).max
    kas, rate = k * A * jnp.abs(s), k * A * (jnp.abs(s) + jnp.abs(F0))
    t_log = jnp.minimum(finite_t, jnp.where(kas > 0, 0.9 * jnp.log(big) / jnp.where(
        kas > 0, kas, 1.0), jnp.inf))
    t_log = jnp.minimum(t_log, jnp.where(rate > 0, 1e-8 * big / jnp.where(rate > 0, rate, 1.0),
                                         jnp.inf))
    Fl, rl = _mode_logistic(jnp.where(positive, 0.0, t_log), F0, s, k, A)
    F = jnp.where(positive, Fg, Fl)
    rapidity = jnp.where(positive, rg, rl)
    F_inf = jnp.where(positive | (F0 * s > 0), s, 0.0)
    F = jnp.where(t == 0, F0, jnp.where(jnp.isinf(t), F_inf, F))
    rapidity = jnp.where(t == 0, 0.0, rapidity)
    return F, rapidity, jnp.isinf(t)


def _rapidity_limit(F, p: _Init):
    """``theta(inf) - theta(0)`` as in ``exact.mode_rapidity`` (``+-inf`` for B = 0, F -> 0)."""
    B_safe = jnp.where(p.B > 0, p.B, 1.0)
    sign0 = jnp.where(p.F0 >= 0, 1.0, -1.0)
    F0_safe = jnp.where(p.F0 == 0, 1.0, p.F0)
    return jnp.where(
        p.B > 0,
        jnp.arcsinh(p.A * F / B_safe) - jnp.arcsinh(p.A * p.F0 / B_safe),
        jnp.where(p.F0 == 0, 0.0, sign0 * jnp.log(jnp.abs(F / F0_safe))),
    )


def _sqrt0(x):
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient at 0 (where the value is 0)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _ratios(p: _Init):
    Bs = jnp.where(p.B > 0, p.B, 1.0)

    def ratio(x):
        return jnp.where(p.B > 0, p.A * jnp.abs(x) / Bs, jnp.where(x == 0, 0.0, jnp.inf))

    return ratio(p.s), ratio(p.F0)


def phase_ratio(u0, w0, *, s, m2=1.0, kappa=1.0, eta_u=1.0, eta_w=1.0) -> PhaseRatio:
    r"""The phase ratios ``r = A|s|/B`` and ``r0 = A|F0|/B`` of the width-d one-dimensional network.

    ``A = 2 sqrt(eta_u eta_w)/kappa``, ``B = ||eta_w u0 u0^T - eta_u w0 w0^T||_*`` and
    ``F0 = kappa u0.w0``. ``r, r0 -> 0`` is the kernel limit (the NTK
    ``kappa^2 sqrt(B^2 + A^2 F^2)`` stays ~ ``kappa^2 B``);
    ``K(inf)/K(0) = sqrt(1 + r^2)/sqrt(1 + r0^2)``. For random init at width d, ``r ~ d^rho`` with
    ``rho`` from :func:`width_exponent`. ``m2`` does not enter (accepted for a uniform signature).
    When B = 0 the ratios are ``inf`` (0 for a zero numerator).

    **Arguments:** `u0`, `w0` (d,); scalars `s`, `m2`, `kappa`, `eta_u`, `eta_w` as in
    :func:`one_hidden_layer`. **Returns:** :class:`PhaseRatio` ``(r, r0)``.

    Reference: Xu & Ziyin, ICLR 2025 (arXiv 2401.07085).
    """
    return _phase_ratio(*_validate(u0, w0, s, m2, kappa, eta_u, eta_w))


@jax.jit
def _phase_ratio(*args) -> PhaseRatio:
    return PhaseRatio(*_ratios(_invariants(*args)))


def regime(
    u0, w0, *, s, m2=1.0, kappa=1.0, eta_u=1.0, eta_w=1.0, tol=0.1, angle_tol=None
) -> Regime:
    r"""Which learning mechanism drives the flow from ``(u0, w0)`` (Xu & Ziyin, ICLR 2025).

    Decided from the exact solution's end points, with this precedence:

    1. ``"kernel"``: the NTK changes by at most `tol` (relative) along the whole path,
       ``max_t |K(t)/K(0) - 1| <= tol`` (as for ``r, r0 -> 0``;
       ``K(inf)/K(0) = sqrt(1+r^2)/sqrt(1+r0^2)``, and ``kappa^2 B`` is the floor when F crosses 0).
       "None of the three mechanisms is present."
    2. ``"rescaling"``: the angle between u and w is frozen near 0 or pi at both ends,
       ``kappa^2 D <= angle_tol * min(F0^2, F_inf^2)`` (always when D = 0, e.g. d = 1 or u0 || w0);
       learning goes through the norms ``eta_w |u|^2, eta_u |w|^2 = (G +- c1)/2`` only.
    3. ``"alignment"``: ``|F_inf| > |F0|`` (i.e. ``|F0| < |s|``, typically small init): on balance
       ``|cos(u, w)| = |F| / sqrt(F^2 + kappa^2 D)`` rises, and so does the NTK.
    4. ``"disalignment"``: otherwise (``|F0| > |s|``: large init or output scale): ``|cos|`` and the
       NTK fall.

    When ``F0 s < 0`` (`crosses_zero`), F passes through 0, where u is orthogonal to w and the NTK
    sits at its floor ``kappa^2 B``: a disalignment phase followed by realignment. Such a flow is
    labelled by its net change (the table's ``|F0| < |s|`` vs ``|F0| > |s|``), so a small random
    init of the "wrong" sign still counts as alignment; `crosses_zero` flags the transient.

    A zero initialisation (a fixed point: nothing is learned) is classified ``"kernel"``.

    **Arguments:** `u0`, `w0` (d,); scalars `s`, `m2`, `kappa`, `eta_u`, `eta_w`; `tol` (default
    0.1) the NTK-change threshold; `angle_tol` (default `tol`) the angle-freezing threshold, which
    means ``|cos| >= 1/sqrt(1 + angle_tol)`` at both ends.

    **Returns:** :class:`Regime`; its `name` is a Python str for concrete input (None under
    jit/vmap, where `code` indexes :data:`MECHANISMS`).
    """
    if angle_tol is None:
        angle_tol = tol
    args = _validate(u0, w0, s, m2, kappa, eta_u, eta_w)
    tol = as_scalar("tol", tol, args[0].dtype, strict=False)
    angle_tol = as_scalar("angle_tol", angle_tol, args[0].dtype, strict=False)
    info = _regime(tol, angle_tol, *args)
    code = info.code
    return info._replace(name=MECHANISMS[int(code)] if is_concrete(code) else None)


@jax.jit
def _regime(tol, angle_tol, *args) -> Regime:
    p = _invariants(*args)
    r, r0 = _ratios(p)
    A, B, F0 = p.A, p.B, p.F0
    F_inf = jnp.where((B > 0) | (F0 * p.s > 0), p.s, 0.0)

    def G(F):
        return jnp.sqrt(B * B + (A * F) ** 2)

    G0, G_inf = G(F0), G(F_inf)
    crosses = F0 * F_inf < 0
    G_min = jnp.where(crosses, B, jnp.minimum(G0, G_inf))
    G_max = jnp.maximum(G0, G_inf)
    G0s = jnp.where(G0 > 0, G0, 1.0)
    kernel_ratio = jnp.where(G0 > 0, G_inf / G0s, 1.0)
    kernel_change = jnp.where(G0 > 0, jnp.maximum(G_max / G0s - 1, 1 - G_min / G0s), 0.0)
    kD = p.kappa**2 * p.D

    def cos(F):
        den = jnp.sqrt(F * F + kD)
        return jnp.where(den > 0, F / jnp.where(den > 0, den, 1.0), 0.0)

    Fmin2 = jnp.minimum(F0 * F0, F_inf * F_inf)
    D_ratio = jnp.where(kD == 0, 0.0, jnp.where(Fmin2 > 0, kD / jnp.where(Fmin2 > 0, Fmin2, 1.0),
                                                  jnp.inf))
    is_kernel = kernel_change <= tol
    is_rescaling = kD <= angle_tol * Fmin2
    is_alignment = jnp.abs(F_inf) > jnp.abs(F0)
    code = jnp.where(
        is_kernel, 0, jnp.where(is_rescaling, 3, jnp.where(is_alignment, 1, 2))
    ).astype(jnp.int32)
    return Regime(
        None, code, r, r0, kernel_ratio, kernel_change, cos(F0), cos(F_inf), D_ratio, crosses
    )


def width_exponent(a_u, a_w=None, b_u=None, b_w=None, c=None):
    r"""Width exponent ``rho`` of the phase ratio: ``r ~ d^rho`` for random init.

        rho = (b_u + b_w)/2 + c - 1 - max(b_w - a_u, b_u - a_w),

    for ``sigma_u^2 = d^-a_u``, ``sigma_w^2 = d^-a_w``, ``eta_u = eta d^b_u``,
    ``eta_w = eta d^b_w``, ``kappa = d^-c``. ``rho < 0``: kernel phase; ``rho = 0``: O(1) feature
    learning (mean-field-like); ``rho > 0``: strongly rich (plateau ~ ln r, cos -> 1).

    **Arguments:** the five exponents, or a preset name from ``linsolve.models.PARAMETRIZATIONS``
    as the only argument (``"ntk"`` -1/2, ``"mean_field"`` 0, ``"standard"`` -1, ``"mup"`` 0,
    ``"small_init"`` +1). Arrays broadcast.

    **Returns:** ``rho`` (a Python float for Python-number or preset input, else an array).
    """
    if isinstance(a_u, str):
        from ..models import PARAMETRIZATIONS

        if a_u not in PARAMETRIZATIONS:
            raise ValueError(
                f"`a_u` as a preset name must be one of {sorted(PARAMETRIZATIONS)}; got {a_u!r}."
            )
        if any(x is not None for x in (a_w, b_u, b_w, c)):
            raise ValueError("give either a preset name alone or all five exponents, not both.")
        a_w, a_u, b_w, b_u, c = PARAMETRIZATIONS[a_u]
    values = (a_u, a_w, b_u, b_w, c)
    if any(x is None for x in values):
        names = [n for n, x in zip(("a_u", "a_w", "b_u", "b_w", "c"), values) if x is None]
        raise ValueError(f"width_exponent needs all five exponents; missing {names}.")
    names = ("a_u", "a_w", "b_u", "b_w", "c")
    if all(isinstance(x, int | float) and not isinstance(x, bool) for x in values):
        for name, x in zip(names, values):
            if not math.isfinite(x):
                raise ValueError(f"`{name}` must be a finite exponent; got {x!r}.")
        return float((b_u + b_w) / 2 + c - 1 - max(b_w - a_u, b_u - a_w))
    dtype = float_dtype_of(*values)
    a_u, a_w, b_u, b_w, c = (as_float(x, name, dtype) for name, x in zip(names, values))
    return (b_u + b_w) / 2 + c - 1 - jnp.maximum(b_w - a_u, b_u - a_w)

