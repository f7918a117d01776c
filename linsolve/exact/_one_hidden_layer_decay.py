r"""Weight decay for the width-d one-dimensional network ``f(x) = kappa (u . w) x`` (Xu & Ziyin).

Loss ``L = 1/2 m2 (F - s)^2 + (gamma/2)(|u|^2 + |w|^2)``, ``F = kappa u.w``, gradient flow
``du/dt = -eta_u (kappa m2 (F - s) w + gamma u)``, ``dw/dt = -eta_w (kappa m2 (F - s) u + gamma w)``.

**What decay does to the invariant.** The solution without decay rests on the conservation of
``C = eta_w u u^T - eta_u w w^T``. With decay,

    dC/dt = -2 gamma eta_u eta_w (u u^T - w w^T),

which is a function of ``C`` only for equal rates ``eta_u = eta_w = eta``: then
``C(t) = C0 e^{-2 gamma eta t}`` and, on the light-cone vectors ``a, b = (u +- w)/2``,
``da/dt = -(eta e + gamma eta) a``, ``db/dt = (eta e - gamma eta) b`` with ``e = kappa m2 (F - s)``:
``a(t) = e^{phi - gamma eta t} a0``, ``b(t) = e^{-phi - gamma eta t} b0`` (the boost of the
decay-free solution times a common shrink factor), ``dphi/dt = eta kappa m2 (s - F)``.

**Exact case: equal rates and ``C0 = 0``** (``u0 = +-w0``, i.e. ``B = ||C0||_* = 0``; d = 1
balanced starts included). Then ``b0 = 0`` or ``a0 = 0``, ``u(t) = +-w(t)`` stays parallel to
``u0`` and ``F = +-kappa eta |a|^2`` (or ``|b|^2``) obeys Saxe's logistic law with a shifted target

    dF/dt = -k A |F| (F - s_gamma),   s_gamma = s - sgn(F0) gamma / (kappa m2),
    k = kappa^2 m2,   A = 2 eta / kappa,

(derivation: ``d|a|^2/dt = -2 eta (e + gamma) |a|^2`` and ``kA = 2 eta kappa m2``). Hence
(``exact.mode`` at ``B = 0``; ``x = k A sgn(F0) s_gamma t``)

    sgn(F0) F(t) = |F0| e^x / (1 + |F0| k A t expm1(x)/x),
    u(t) = sqrt(F(t)/F0) u0,   w(t) = sqrt(F(t)/F0) w0,

and the boost rapidity is ``phi = sgn(F0) (1/2 ln(F/F0) + gamma eta t)``. ``F -> s_gamma`` when
``sgn(F0) s_gamma > 0`` (``|s| > gamma/(kappa m2)`` with the right sign), else ``F, u, w -> 0``:
decay switches the mode off. ``B(t) = 0``, ``D = 0``, ``c1 = 0`` and the NTK is ``kappa^2 A |F|``.

**No closed form otherwise** (these raise ValueError):

- *Unequal rates*, ``gamma > 0``: ``dC/dt`` above is not a function of ``C``, so nothing is
  conserved. In ``p = u/sqrt(eta_u)``, ``q = w/sqrt(eta_w)`` the flow is linear with generator
  ``[[-gamma eta_u, -r e(t)], [-r e(t), -gamma eta_w]]`` (``r = sqrt(eta_u eta_w)``), whose values
  at different times do not commute; the Gram variables ``(|p|^2, |q|^2, p.q)`` form a 3-D
  autonomous polynomial system with no known first integral or closed-form solution.
- *Equal rates with ``C0 != 0``* (u0 not ``+-w0``): with ``X = e^{2 phi}`` the reduced equation
  ``dX/dt = 2 eta kappa m2 (s X - kappa eta e^{-2 gamma eta t} (|a0|^2 X^2 - |b0|^2))`` is a Riccati
  equation with coefficients in ``e^{-2 gamma eta t}`` (non-autonomous: ``F`` obeys
  ``dF/dt = -2 eta kappa m2 (F - s) sqrt(F^2 + 4 kappa^2 eta^2 |a0|^2 |b0|^2 e^{-4 gamma eta t})
  - 2 gamma eta F``); its linearisation is a modified Bessel equation of non-integer order in
  ``z ~ e^{-2 gamma eta t}``, which this library does not implement.

Reference: the model and its decay-free solution, Y. Xu & L. Ziyin, "Three Mechanisms of Feature
Learning in a Linear Network", ICLR 2025 (arXiv 2401.07085); the shifted logistic law is Saxe et
al.'s (ICLR 2014) balanced mode with the ridge shift of its fixed point, derived above.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._validate import check_overflow, is_concrete

__all__ = ["check_decay", "evolve_decay"]

_UNSUPPORTED = (
    "`weight_decay` > 0 is not exactly solvable for this start: the width-d one-dimensional "
    "network with weight decay has a closed form only for equal rates (eta_u = eta_w) and "
    "u0 = +-w0 (C0 = eta_w u0 u0^T - eta_u w0 w0^T = 0); with unequal rates nothing is conserved, "
    "and with C0 != 0 the reduced equation is non-autonomous (see exact._one_hidden_layer_decay)."
)


def check_decay(gamma, args) -> None:
    """ValueError for a concrete ``gamma > 0`` outside the exact case (equal rates, ``B = 0``)."""
    from ._one_hidden_layer import _invariants

    if not is_concrete((gamma, args)) or float(gamma) == 0:
        return
    u0, w0, s, m2, kappa, eta_u, eta_w = args
    if float(eta_u) != float(eta_w):
        raise ValueError(
            f"{_UNSUPPORTED} Got eta_u = {float(eta_u):.6g} != eta_w = {float(eta_w):.6g}."
        )
    B = float(_invariants(*args).B)
    if B != 0:
        raise ValueError(f"{_UNSUPPORTED} Got B = ||C0||_* = {B:.3g} (u0 is not +-w0).")
    with np.errstate(over="ignore", invalid="ignore"):
        g, kk, mm, A = (np.asarray(x) for x in (gamma, kappa, m2, 2 * eta_u / kappa))
        shift = g / (kk * mm)
        check_overflow(
            f"`weight_decay` = {float(g):.3g} is too large for {u0.dtype}: the shifted target "
            "s - gamma/(kappa m2) (times A = 2 eta/kappa) overflows.",
            shift, (A * (np.abs(np.asarray(s)) + shift)) ** 2,
        )


@jax.jit
def evolve_decay(t, gamma, *args):
    """:class:`OneHiddenLayer` with decay ``gamma`` (traced or > 0).

    In the exact case the decay formula (any gamma >= 0); elsewhere the decay-free solution when
    ``gamma = 0`` (its derivative in gamma is then not available and reads 0) and a run-time
    error (``equinox.error_if``) when ``gamma > 0``.
    """
    from ._one_hidden_layer import OneHiddenLayer, _evolve, _invariants, _mode_eval

    plain = _evolve(t, *args)
    p = _invariants(*args)
    ok = (gamma == 0) | ((p.eta_u == p.eta_w) & (p.B == 0))
    sigma = jnp.where(p.F0 >= 0, 1.0, -1.0).astype(p.F0.dtype)
    s_eff = p.s - sigma * gamma / (p.kappa * p.m2)
    k = p.kappa**2 * p.m2
    F, rapidity, at_inf = _mode_eval(t, p.F0, s_eff, k, p.A, jnp.zeros_like(p.A))
    F0_safe = jnp.where(p.F0 == 0, 1.0, p.F0)
    ratio = jnp.where(p.F0 == 0, 0.0, F / F0_safe)
    scale = jnp.sqrt(jnp.maximum(ratio, 0.0))
    u = scale[..., None] * p.u0
    w = scale[..., None] * p.w0
    # Rapidity: sgn(F0) (1/2 ln(F/F0) + gamma eta t); its t = inf limit by cases.
    eta_t = p.eta_u * jnp.where(at_inf, 0.0, t)
    phi = 0.5 * rapidity + sigma * gamma * eta_t
    ss = sigma * p.s
    s0 = jnp.where(ss > 0, jnp.inf, jnp.where(ss < 0, -jnp.inf, -0.5 * jnp.log1p(
        jnp.abs(p.F0) * p.kappa * p.m2 / jnp.where(gamma > 0, gamma, 1.0))))
    F_ratio = jnp.abs(F / F0_safe)
    free = 0.5 * sigma * jnp.log(jnp.where(F_ratio > 0, F_ratio, 1.0))  # gamma = 0 (saxe_mode)
    free = jnp.where(F_ratio > 0, free, -sigma * jnp.inf)
    phi_inf = jnp.where(gamma == 0, free,
                        sigma * jnp.where(sigma * s_eff >= 0, jnp.inf, s0))
    phi = jnp.where(at_inf, jnp.where(p.F0 == 0, 0.0, phi_inf), phi)
    phi = jnp.where(t == 0, 0.0, phi)
    kD = p.kappa**2 * p.D
    den = jnp.sqrt(F * F + kD)
    shape = F.shape
    zero = jnp.zeros(shape, F.dtype)
    decayed = OneHiddenLayer(
        u=u,
        w=w,
        F=F,
        loss=0.5 * p.m2 * (F - p.s) ** 2,
        ntk=p.kappa**2 * p.A * jnp.abs(F),
        cos=jnp.where(den > 0, F / jnp.where(den > 0, den, 1.0), 0.0),
        c1=zero,
        D=zero,
        B=zero,
        phi=phi,
    )
    # The decay-free solution only outside the exact case (where gamma must be 0); inside it the
    # decay formula, so that the derivative in gamma is right at gamma = 0 too.
    use = ~((p.eta_u == p.eta_w) & (p.B == 0))
    out = jax.tree_util.tree_map(lambda x, y: jnp.where(use, x, y), plain, decayed)
    return eqx.error_if(out, ~ok, _UNSUPPORTED)  # on the output, so that it cannot be pruned
