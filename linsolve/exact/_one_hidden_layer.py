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

**Weight decay** (`weight_decay=`): exact only for equal rates and ``u0 = +-w0`` (C0 = 0), where F
follows the logistic law with target ``s - sgn(F0) gamma/(kappa m2)``; every other start raises
(``exact._one_hidden_layer_decay`` gives the formulas and why nothing else is closed-form). The
input variance is ``m2`` (``E[x^2]``) throughout. The phase diagram (:func:`phase_ratio`,
:func:`regime`, :func:`width_exponent`) is in ``exact._one_hidden_layer_regime`` (re-exported here).

Reference: Y. Xu & L. Ziyin, "Three Mechanisms of Feature Learning in a Linear Network",
ICLR 2025 (arXiv 2401.07085); the model is reconstructed from its abstract.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

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
    weight_decay=0.0,
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
    - `weight_decay`: ``gamma >= 0`` (default 0), the penalty ``(gamma/2)(|u|^2 + |w|^2)``.
      Exact only for ``eta_u = eta_w = eta`` and ``u0 = +-w0`` (``B = 0``): then ``u = +-w``
      stays parallel to ``u0`` and ``F`` follows the logistic law with the shifted target
      ``s - sgn(F0) gamma/(kappa m2)``, ``u(t) = sqrt(F(t)/F0) u0``, ``w(t) = sqrt(F(t)/F0) w0``
      (``exact._one_hidden_layer_decay``; ``c1 = D = B = 0``, ``phi = sgn(F0)(ln(F/F0)/2 +
      gamma eta t)``). Any other start with ``gamma > 0`` raises ValueError: with unequal rates
      ``C`` is no longer conserved (``dC/dt = -2 gamma eta_u eta_w (u u^T - w w^T)``), and with
      equal rates and ``C0 != 0`` it decays as ``C0 e^{-2 gamma eta t}`` and the reduced equation
      for F is non-autonomous. Under jit/vmap (traced inputs) the same condition is checked at
      run time with ``equinox.error_if``.
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
    args = _validate(u0, w0, s, m2, kappa, eta_u, eta_w, t, weight_decay)
    t = check_times(t, "t", args[0].dtype)
    gamma = as_scalar("weight_decay", weight_decay, args[0].dtype, strict=False)
    if is_concrete(weight_decay) and float(np.asarray(weight_decay)) == 0:  # (under jit too)
        return _evolve(t, *args)
    from ._one_hidden_layer_decay import check_decay, evolve_decay

    check_decay(gamma, args)
    return evolve_decay(t, gamma, *args)


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


# The phase diagram (phase ratio, mechanism, width exponent) lives in its own module.
from ._one_hidden_layer_regime import (  # noqa: E402
    MECHANISMS,
    PhaseRatio,
    Regime,
    phase_ratio,
    regime,
    width_exponent,
)
