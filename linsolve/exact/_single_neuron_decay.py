r"""Weight decay for the single neuron ``f(x) = a w.x`` (Kunin et al. 2024) on whitened inputs.

Loss ``L = 1/2 |a w - beta*|^2 + (gamma/2)(a^2 + |w|^2)``, ``da/dt = -eta_a dL/da``,
``dw/dt = -eta_w dL/dw``. Without decay the solution rests on the conservation of the imbalance
``delta = eta_w a^2 - eta_a |w|^2``; with decay

    d delta/dt = -2 gamma eta_a eta_w (a^2 - |w|^2).

**Exact case: equal rates ``eta_a = eta_w = eta`` and a balanced start ``a0^2 = |w0|^2``.**
Then ``delta = delta0 e^{-2 gamma eta t} = 0`` for all time, ``|w|^2 = a^2``, and with
``x = (a, w)`` and ``L = [[0, beta*^T], [beta*, 0]]`` the flow is

    dx/dt = eta L x - (eta a^2 + gamma eta) x,

a linear flow times a scalar: ``x = y m`` with ``y = e^{eta L t} x0`` and ``m`` solving the
Bernoulli equation ``dm/dt = -(eta y_a^2 m^2 + g) m`` (``g = gamma eta``), i.e.

    x(t) = e^{-g t} y(t) / N(t),   N^2 = 1 + 2 eta int_0^t e^{-2 g tau} y_a(tau)^2 d tau,
    y_a = c+ e^{p t} + c- e^{-p t},   y_w = w_perp + n (c+ e^{p t} - c- e^{-p t}),

with ``p = eta |beta*|``, ``n = beta*/|beta*|`` (0 if ``beta* = 0``), ``c+- = (a0 +- w0.n)/2`` and
``w_perp = w0 - (w0.n) n``. This is Kunin et al.'s ``delta = 0`` solution with the decay factor
``e^{-g t}`` and the weight ``e^{-2 g tau}`` in the normaliser (``gamma = 0`` gives
``exact.single_neuron`` at ``delta = 0``). The integral is a sum of three exponentials; everything
is scaled by ``e^{-sigma t}``, ``sigma = max(p - g, 0)`` (0 without a growing mode ``c+ = 0``),
and each ``e^{-2 sigma t} int_0^t e^{z tau} d tau`` is a divided difference of ``exp`` at two
non-positive nodes (formed with ``expm1``), so nothing overflows at large t.

**Limits.** With ``lambda = p - g = eta (|beta*| - gamma)``: if ``lambda > 0`` and ``c+ != 0``,
``a -> sgn(c+) sqrt(lambda/eta)``, ``w -> sgn(c+) sqrt(lambda/eta) n``, so
``beta = a w -> (1 - gamma/|beta*|) beta*`` (the ridge-shrunk target); otherwise (decay beats the
signal, ``|beta*| <= gamma``, or no growing mode) ``a, w -> 0``.

**No closed form otherwise** (these raise ValueError):

- *Unequal rates*, ``gamma > 0``: ``d delta/dt`` above is not a function of ``delta``, so the
  imbalance is not conserved and does not decay in closed form; the linearisation of the
  decay-free solution needs a known ``delta(t)``. No closed form is known.
- *Equal rates, ``delta0 != 0``*: ``delta(t) = delta0 e^{-2 gamma eta t}`` is known, and the same
  linearisation (``x = e^{-g t} z / N``) gives ``z_a'' = delta(t) z_a' + (eta^2 |beta*|^2 -
  2 g delta(t)) z_a``: a linear ODE with coefficients in ``e^{-2 gamma eta t}``, which in
  ``xi = delta0 e^{-2 g t}/(2 g)`` is of confluent-hypergeometric (Kummer) type, not elementary;
  not implemented.

Reference: Kunin, Raventós, Dominé, Chen, Klindt, Saxe & Ganguli (2024), "Get rich quick: exact
solutions reveal how unbalanced initializations promote rapid feature learning", NeurIPS (the
decay-free solution); the decay factor and the Bernoulli normaliser are derived above.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .._validate import is_concrete

__all__ = ["balanced", "check_decay", "solve_decay"]

_UNSUPPORTED = (
    "`weight_decay` > 0 is not exactly solvable for this start: the single neuron with weight "
    "decay has a closed form only for equal rates (eta_a = eta_w) and a balanced start "
    "(a0^2 = |w0|^2, delta0 = 0); otherwise the imbalance delta is not conserved "
    "(d delta/dt = -2 gamma eta_a eta_w (a^2 - |w|^2)) and the reduced equation is "
    "non-autonomous (see exact._single_neuron_decay)."
)


def balanced(a0, w0):
    """``a0^2 = |w0|^2`` up to 16 ulps of ``a0^2 + |w0|^2`` (rounding of a balanced draw)."""
    w2 = jnp.sum(w0 * w0)
    eps = jnp.finfo(w0.dtype).eps
    return jnp.abs(a0 * a0 - w2) <= 16 * eps * (a0 * a0 + w2)


def check_decay(gamma, a0, w0, eta_a, eta_w) -> None:
    """ValueError for a concrete ``gamma > 0`` outside the exact case."""
    if not is_concrete((gamma, a0, w0, eta_a, eta_w)) or float(gamma) == 0:
        return
    if float(eta_a) != float(eta_w):
        raise ValueError(
            f"{_UNSUPPORTED} Got eta_a = {float(eta_a):.6g} != eta_w = {float(eta_w):.6g}."
        )
    if not bool(balanced(a0, w0)):
        a0n, w0n = float(a0), float(np.linalg.norm(np.asarray(w0)))
        raise ValueError(f"{_UNSUPPORTED} Got a0^2 = {a0n**2:.6g} != |w0|^2 = {w0n**2:.6g}.")


def _ddexp(x1, x2):
    """``(e^{x1} - e^{x2})/(x1 - x2)`` for ``x1, x2 <= 0`` (``e^{x}`` when equal), no overflow."""
    hi, lo = jnp.maximum(x1, x2), jnp.minimum(x1, x2)
    gap = hi - lo
    small = gap < 1e-5
    safe = jnp.where(small, 1.0, gap)
    ratio = jnp.where(small, 1 - gap / 2 + gap * gap / 6, -jnp.expm1(-safe) / safe)
    return jnp.exp(hi) * ratio


def solve_decay(t, a0, w0, bs, eta, gamma):
    """``(a, w)`` of the balanced equal-rate neuron with decay at times ``t`` (``inf`` allowed)."""
    s = jnp.sqrt(jnp.dot(bs, bs))
    n = bs / jnp.where(s > 0, s, 1.0)
    g0 = jnp.dot(w0, n)
    w_perp = w0 - g0 * n
    cp, cm = 0.5 * (a0 + g0), 0.5 * (a0 - g0)
    p, g = eta * s, gamma * eta
    lam = p - g
    at_inf = jnp.isinf(t)
    tt = jnp.where(at_inf, 0.0, t)
    sigma = jnp.where(cp != 0, jnp.maximum(lam, 0.0), 0.0)
    # e^{-sigma t} e^{-g t} y, mode by mode.
    e_plus = jnp.exp((lam - sigma) * tt)
    e_minus = jnp.exp(-(p + g + sigma) * tt)
    e_perp = jnp.exp(-(g + sigma) * tt)
    xa = cp * e_plus + cm * e_minus
    xw = (e_perp[..., None] * w_perp
          + (cp * e_plus - cm * e_minus)[..., None] * n)

    def integral(z):  # e^{-2 sigma t} int_0^t e^{z tau} d tau
        return tt * _ddexp((z - 2 * sigma) * tt, -2 * sigma * tt)

    K = (cp * cp * integral(2 * lam) + 2 * cp * cm * integral(-2 * g)
         + cm * cm * integral(-2 * (p + g)))
    norm2 = jnp.exp(-2 * sigma * tt) + 2 * eta * K
    norm = jnp.sqrt(jnp.maximum(norm2, jnp.finfo(norm2.dtype).tiny))
    a = xa / norm
    w = xw / norm[..., None]
    # t = inf: the ridge-shrunk target if the growing mode survives the decay, else 0.
    grows = (lam > 0) & (cp != 0)
    r = jnp.sign(cp) * jnp.sqrt(jnp.where(grows, lam / eta, 0.0))
    a = jnp.where(at_inf, r, a)
    w = jnp.where(at_inf[..., None], r * n, w)
    a = jnp.where(t == 0, a0, a)
    w = jnp.where((t == 0)[..., None], w0, w)
    return a, w
