r"""The unbalanced single neuron ``f(x) = a w.x`` (Kunin et al. 2024, "Get rich quick").

Whitened inputs, loss ``L = 1/2 |a w - beta*|^2``, rates ``da/dt = -eta_a dL/da``,
``dw/dt = -eta_w dL/dw``. The imbalance ``delta = eta_w a^2 - eta_a |w|^2`` is conserved
(Kunin et al. 2024).

**Linearisation.** Write ``s^2 = |beta*|^2`` and let ``E~(t)`` solve the *linear* equation

    E~'' = delta E~' + eta_a eta_w s^2 E~,   E~(0) = a0,   E~'(0) = delta a0 + eta_a w0.beta*.

Then, with ``J = int_0^t E~`` and ``K = int_0^t E~^2``,

    a(t) = E~ / N~,   w(t) = (w0 + eta_w beta* J) / N~,   N~ = sqrt(1 + 2 eta_w K).

(Differentiate: ``E~' = delta E~ + eta_a beta*.(w0 + eta_w beta* J)`` is the conservation of
delta, and the two ODEs follow.) This is Kunin et al.'s Riccati solution multiplied through by
``a0`` (``E~ = a0 E``, ``N~ = |a0| N``, ``nu = (w/a).beta* = E'/E - delta`` per unit ``eta_a``), but
it has no ``1/a0``: ``a0 = 0`` with ``w0 != 0`` is an ordinary start, and ``a`` crosses zero exactly
when ``E~`` does (possible only for delta < 0). ``N~ >= 1``, so nothing is singular.

**Stable evaluation.** The exponents are ``p, q = (delta +- Omega)/2``,
``Omega = sqrt(delta^2 + 4 eta_a eta_w s^2)`` (``p >= 0 >= q``, formed without cancellation). With
``num = p a0 + eta_a w0.beta*`` (Omega times the weight of the growing mode, formed without
cancellation where possible, see ``_growth``) and ``E[z_0..z_k](t)`` the divided difference of
``z -> e^{zt}`` at the nodes (``E[0, -Omega] = (1 - e^{-Omega t})/Omega`` etc.), everything
scaled by ``e^{-pt}``:

    e^{-pt} E~       = a0 e^{-Omega t} + num E[0, -Omega],
    e^{-pt} J        = a0 E[-p, -Omega] + num E[-p, 0, -Omega],
    e^{-2pt} K       = a0^2 E[-2p, -2 Omega] + 2 a0 num E[-2p, -Omega, -2 Omega]
                       + 2 num^2 E[-2p, 0, -Omega, -2 Omega],

(each line is a convolution of decaying exponentials). Divided differences of ``exp`` at
non-positive nodes are evaluated by a Taylor series around the centre where the nodes are
within 1 of each other and by the divided-difference recursion (dividing by the spread, a
difference of two positive numbers with bounded cancellation) otherwise, so the same expressions
hold for ``Omega t -> 0``, ``p = 0`` or ``q = 0`` (``beta* = 0``), confluent nodes and ``t = 1e4``
without overflow. When the growing mode is absent (``p a0 + eta_a w0.beta* = 0``, e.g.
``beta* = 0`` with ``delta <= 0``, or ``a0 = 0`` with ``w0 _|_ beta*``) ``E~ = a0 e^{qt}`` is used
unscaled. No complex ``artanh`` (the notebook's form) is involved.

**Limits.** ``t -> inf``: ``a = sigma sqrt(p/eta_w)``, ``w = sigma sqrt(eta_w/p) beta*`` with
``sigma = sgn(p a0 + eta_a w0.beta*)``; without the growing mode, ``a -> 0`` and
``w -> (w0 + eta_w beta* a0/|q|)/sqrt(1 + eta_w a0^2/|q|)`` (``-> 0`` when ``q = 0``).

**Inputs and weight decay.** The trajectory is for ``Sxx = I`` (``Sxx = c I`` by rescaling: rates
``c eta``, target ``Syx/c``, decay ``gamma/c``); an anisotropic ``Sxx`` has only its ``t = inf`` limit
(below). `weight_decay=` is exact for equal rates and a balanced start (``delta = 0``) and raises
otherwise (``exact._single_neuron_decay``: formulas, and why nothing else is closed-form).

**Implicit bias** (rank-deficient ``Sxx``): :func:`single_neuron_implicit_bias` and
:func:`single_neuron_potential`, in ``exact._single_neuron_implicit_bias``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import as_float, as_scalar, check_overflow, float_dtype_of, is_concrete
from ._mode import check_times

__all__ = [
    "SingleNeuron",
    "single_neuron",
    "single_neuron_potential",
    "single_neuron_implicit_bias",
]

_TAYLOR_TERMS = 22  # Taylor degree: nodes within 1/2 of their centre, error < 1e-19


class SingleNeuron(eqx.Module):
    """Closed-form state of the single neuron; every field has the time axes of ``t`` in front.

    **Fields:**

    - `a`: (*t) second-layer weight.
    - `w`: (*t, d) first-layer weights.
    - `beta`: (*t, d) end-to-end map ``a w``.
    - `loss`: (*t) ``1/2 |a w - beta*|^2``.
    - `delta`: (*t) ``eta_w a^2 - eta_a |w|^2`` evaluated on the closed form (conserved).
    - `ntk`: (*t, d, d) the kernel ``M = eta_w a^2 I + eta_a w w^T`` (``dbeta/dt = -M grad L``).
    """

    a: Float[Array, "*t"]
    w: Float[Array, "*t d"]
    beta: Float[Array, "*t d"]
    loss: Float[Array, "*t"]
    delta: Float[Array, "*t"]
    ntk: Float[Array, "*t d d"]


def _taylor(x, sizes):
    """Divided differences of ``exp`` at node sets ``x`` (..., S, 4) whose first ``sizes[s]``
    slots are used, by the Taylor series about each set's centre; accurate where the set spans
    less than 1 (finite elsewhere).

    Opitz: ``DD[x_0..x_k] = e^c [exp(Y)]_{0k}`` with ``Y`` upper bidiagonal, diagonal ``x - c``
    and ones above it (any node order); the column ``exp(Y) e_k`` is summed by Horner's rule,
    ``v <- e_k + Y v / m``, for all sets at once (entry 0 never sees the slots after k).
    """
    used = np.arange(4)[None, :] < np.asarray(sizes)[:, None]  # (S, 4)
    lo = jnp.min(jnp.where(used, x, jnp.inf), -1)
    hi = jnp.max(jnp.where(used, x, -jnp.inf), -1)
    centre = 0.5 * (lo + hi)
    near = (hi - lo) < 1
    y = jnp.where(used & near[..., None], x - centre[..., None], 0.0)
    target = jnp.asarray(np.arange(4)[None, :] == np.asarray(sizes)[:, None] - 1, x.dtype)

    def horner(step, v):
        shifted = jnp.concatenate([v[..., 1:], jnp.zeros_like(v[..., :1])], -1)
        return target + (y * v + shifted) / (_TAYLOR_TERMS - step).astype(x.dtype)

    v = jax.lax.fori_loop(0, _TAYLOR_TERMS, horner, jnp.broadcast_to(target, y.shape))
    return jnp.exp(centre) * v[..., 0]


# The divided differences the solution needs, by name; nodes are in units of t: P = p t,
# Q = q t, W = Omega t, and m1 >= m2 are max/min(-2P, -W).
_PAIRS = ("0,-W", "-P,-W", "-2P,-2W", "0,Q", "0,2Q", "0,-P", "m1,m2", "m2,-2W", "0,m1")
_TRIPLES = (("0,-P,-W", "0,-P", "-P,-W"), ("-2P,-W,-2W", "m1,m2", "m2,-2W"),
            ("0,-2P,-W", "0,m1", "m1,m2"))  # (set, pair without its lowest, without highest)


def _divided_differences(t, p, q, omega):
    """Every ``E[z_0..z_k](t)`` (divided difference of ``z -> e^{z t}``) the solution needs.

    ``DD_exp`` at the scaled nodes ``t z`` (all <= 0), times ``t^k``. A set spanning less than 1
    uses the Taylor series; a wider one the recursion ``(DD[all but the lowest] - DD[all but the
    highest]) / spread`` (for ``exp`` both terms are positive, the first the larger, and their
    difference is at least about a quarter of the first: no catastrophic cancellation), with
    ``DD[a, b] = e^a expm1(b - a)/(b - a)`` for ``a >= b``. The node orders used are those implied
    by ``p >= 0 >= q``, ``Omega = p - q >= p``.
    """
    zero = jnp.zeros_like(t)
    P, Q, W = p * t, q * t, omega * t
    m1, m2 = jnp.maximum(-2 * P, -W), jnp.minimum(-2 * P, -W)
    node = {"0": zero, "-P": -P, "-2P": -2 * P, "-W": -W, "-2W": -2 * W, "Q": Q, "2Q": 2 * Q,
            "m1": m1, "m2": m2}
    names = list(_PAIRS) + [s for s, _, _ in _TRIPLES] + ["0,-2P,-W,-2W"]
    sets = [n.split(",") for n in names]
    x = jnp.stack([jnp.stack([node[z] for z in s + [s[0]] * (4 - len(s))], -1) for s in sets], -2)
    taylor = _taylor(x, [len(s) for s in sets])
    n2, n3 = len(_PAIRS), len(_TRIPLES)
    # Pairs (high, low).
    hi, lo = x[..., :n2, 0], x[..., :n2, 1]
    gap = lo - hi
    near = gap > -1
    safe = jnp.where(near, -1.0, gap)
    pairs = jnp.where(near, taylor[..., :n2], jnp.exp(hi) * jnp.expm1(safe) / safe)
    # Triples (high, middle, low) and the quadruple (0, ., ., -2W).
    # The recursion is formed on the t-scaled values (t DD, t^2 DD, t^3 DD) with the spreads in
    # natural units, so that no t^2 or t^3 overflows at huge t (t = 1e300).
    pairs_t = pairs * t[..., None]
    upper = jnp.stack([pairs_t[..., _PAIRS.index(u)] for _, u, _ in _TRIPLES], -1)
    lower = jnp.stack([pairs_t[..., _PAIRS.index(v)] for _, _, v in _TRIPLES], -1)
    spread = jnp.stack([zero, m1, zero], -1) - jnp.stack([-W, -2 * W, m2], -1)
    m1n, m2n = jnp.maximum(-2 * p, -omega), jnp.minimum(-2 * p, -omega)
    spread_n = jnp.stack([0 * m1n, m1n, 0 * m1n], -1) - jnp.stack([-omega, -2 * omega, m2n], -1)
    spread_n = jnp.broadcast_to(spread_n, spread.shape)
    near = spread < 1
    triples_t = jnp.where(near, taylor[..., n2:n2 + n3] * (t * t)[..., None],
                          (upper - lower) / jnp.where(near, 1.0, spread_n))
    near = 2 * W < 1
    quad_t = jnp.where(near, taylor[..., -1] * t**3,
                       (triples_t[..., 2] - triples_t[..., 1]) / jnp.where(near, 1.0, 2 * omega))
    values = jnp.concatenate([pairs_t, triples_t, quad_t[..., None]], -1)
    return {name: values[..., i] for i, name in enumerate(names)}


def _exponents(delta, c):
    """``(Omega, p, q)`` for ``Omega^2 = delta^2 + 4 c`` (c = eta_a eta_w s^2), no cancellation.

    XLA may evaluate a condition such as ``delta >= 0`` with different rounding in different
    fusions, so each branch stays valid on both sides of its switch; the placeholder 1 only
    replaces a denominator that is exactly 0 (c = 0 with delta >= 0 or delta <= 0), where both
    branches agree.
    """
    omega = jnp.sqrt(delta * delta + 4 * c)  # 0 only for beta* = 0 = delta (a kink: no gradient)
    pos = delta >= 0
    minus, plus = omega - delta, omega + delta
    p = jnp.where(pos, 0.5 * plus, 2 * c / jnp.where(minus > 0, minus, 1.0))
    q = jnp.where(pos, -2 * c / jnp.where(plus > 0, plus, 1.0), -0.5 * minus)
    return omega, p, q


def _growth(a0, w0, bs, eta_a, delta, p):
    """``num = p a0 + eta_a w0.beta*`` (Omega times the weight of the growing mode e^{pt}).

    Where the two terms have opposite signs, ``num (eta_a g - p a0) = -delta (eta_a s^2 + a0^2 p)
    - eta_a^2 D`` (from ``p^2 = delta p + eta_a eta_w s^2``), ``D = s^2 |w0 - (g/s^2) beta*|^2 =
    |w0|^2 s^2 - g^2 >= 0``, has no cancellation for ``delta >= 0``; a remaining cancellation
    (``delta < 0``) is the ill-conditioning of starts near the separatrix ``num = 0``.
    """
    g = jnp.dot(w0, bs)
    s2 = jnp.dot(bs, bs)
    direct = p * a0 + eta_a * g
    r = w0 - (g / jnp.where(s2 > 0, s2, 1.0)) * bs
    D = s2 * jnp.dot(r, r)
    den = eta_a * g - p * a0
    den = jnp.where(den == 0, 1.0, den)
    product = -(delta * (eta_a * s2 + a0 * a0 * p) + eta_a * eta_a * D) / den
    return jnp.where(a0 * g < 0, product, direct)


def _solve(t, a0, w0, bs, eta_a, eta_w):
    """``(a, w)`` at times ``t`` (finite, >= 0, any shape) and at ``t = inf`` where ``t`` is inf."""
    delta = eta_w * a0 * a0 - eta_a * jnp.dot(w0, w0)
    omega, p, q = _exponents(delta, eta_a * eta_w * jnp.dot(bs, bs))
    num = _growth(a0, w0, bs, eta_a, delta, p)
    pure = num == 0  # no growing mode: E~ = a0 e^{qt}
    at_inf = jnp.isinf(t)
    tt = jnp.where(at_inf, 0.0, t)
    om, pp, qq = (jnp.broadcast_to(v, tt.shape) for v in (omega, p, q))

    E = _divided_differences(tt, pp, qq, om)
    # Growing-mode branch, scaled by e^{-pt}: E~ e^{-pt} = a0 e^{-Omega t} + num E[0, -Omega].
    eps = a0 * jnp.exp(-om * tt) + num * E["0,-W"]
    J = a0 * E["-P,-W"] + num * E["0,-P,-W"]
    K = a0 * a0 * E["-2P,-2W"] + 2 * a0 * num * E["-2P,-W,-2W"] + 2 * num * num * E["0,-2P,-W,-2W"]
    scale = jnp.exp(-pp * tt)
    # Pure branch (E~ = a0 e^{qt}), unscaled.
    eps_p = a0 * jnp.exp(qq * tt)
    J_p = a0 * E["0,Q"]
    K_p = a0 * a0 * E["0,2Q"]
    eps = jnp.where(pure, eps_p, eps)
    J = jnp.where(pure, J_p, J)
    scale = jnp.where(pure, 1.0, scale)
    norm2 = jnp.where(pure, 1 + 2 * eta_w * K_p, scale * scale + 2 * eta_w * K)
    tiny = jnp.finfo(norm2.dtype).tiny
    norm = jnp.sqrt(jnp.maximum(norm2, tiny))
    a = eps / norm
    w = (scale[..., None] * w0 + eta_w * J[..., None] * bs) / norm[..., None]
    # t = inf.
    sigma = jnp.sign(num)
    p_safe = jnp.where(p > 0, p, 1.0)  # p is exactly 0 or clearly positive
    a_grow, w_grow = sigma * jnp.sqrt(p_safe / eta_w), sigma * jnp.sqrt(eta_w / p_safe) * bs
    decays = q < 0
    rate = jnp.where(decays, -q, 1.0)  # q is exactly 0 (c = 0, delta >= 0) or clearly < 0
    w_decay = (w0 + eta_w * bs * a0 / rate) / jnp.sqrt(1 + eta_w * a0 * a0 / rate)
    w_flat = jnp.where(a0 == 0, w0, jnp.zeros_like(w0))  # q = 0 = p: beta* = 0, delta = 0
    a_inf = jnp.where(pure, 0.0, a_grow)
    w_inf = jnp.where(pure, jnp.where(decays, w_decay, w_flat), w_grow)
    a = jnp.where(at_inf, a_inf, a)
    w = jnp.where(at_inf[..., None], w_inf, w)
    # t = 0 exactly.
    a = jnp.where(t == 0, a0, a)
    w = jnp.where((t == 0)[..., None], w0, w)
    return a, w


def _validate(t, a0, w0, beta_star, eta_a, eta_w, *extra):
    dtype = float_dtype_of(t, a0, w0, beta_star, eta_a, eta_w, *extra)
    a0 = as_scalar("a0", a0, dtype, positive=False)
    w0 = as_float(w0, "w0", dtype, ndim=1)
    beta_star = as_float(beta_star, "beta_star", dtype, ndim=1)
    if w0.shape != beta_star.shape or w0.shape[0] == 0:
        raise ValueError(
            f"`w0` and `beta_star` must both have shape (d,) with d >= 1; got {tuple(w0.shape)} "
            f"and {tuple(beta_star.shape)}."
        )
    eta_a = as_scalar("eta_a", eta_a, dtype)
    eta_w = as_scalar("eta_w", eta_w, dtype)
    t = check_times(t, "t", dtype)
    _check_range(a0, w0, beta_star, eta_a, eta_w)
    return t, a0, w0, beta_star, eta_a, eta_w


def _check_range(a0, w0, beta_star, eta_a, eta_w) -> None:
    """``delta``, ``Omega = sqrt(delta^2 + 4 eta_a eta_w |beta*|^2)`` and the limits are finite."""
    if not is_concrete((a0, w0, beta_star, eta_a, eta_w)):
        return
    dtype = w0.dtype
    with np.errstate(over="ignore", invalid="ignore"):
        a0, w0, bs, ea, ew = (np.asarray(x) for x in (a0, w0, beta_star, eta_a, eta_w))
        w2 = np.dot(w0, w0)
        delta = ew * a0 * a0 - ea * w2
        check_overflow(
            f"`a0`, `w0`, `eta_a`, `eta_w` are too large for {dtype}: the imbalance "
            "delta = eta_w a0^2 - eta_a |w0|^2 overflows.", ew * a0 * a0, ea * w2, delta * delta,
        )
        c = ea * ew * np.dot(bs, bs)
        check_overflow(
            f"`beta_star`, `eta_a`, `eta_w` are too large for {dtype}: "
            "eta_a eta_w |beta*|^2 overflows.", 4 * c, delta * delta + 4 * c,
        )
        check_overflow(
            f"`a0`, `w0`, `beta_star` are too large for {dtype}: the growth "
            "rate's weight (p a0 + eta_a w0.beta*) overflows.",
            np.sqrt(delta * delta + 4 * c) * (abs(a0) + 1) + ea * np.abs(w0) @ np.abs(bs),
        )


def single_neuron(
    t: Float[ArrayLike, "*t"],
    a0,
    w0: Float[ArrayLike, " d"],
    beta_star: Float[ArrayLike, " d"],
    *,
    eta_a=1.0,
    eta_w=1.0,
    weight_decay=0.0,
) -> SingleNeuron:
    r"""Exact gradient flow of ``f(x) = a w.x`` on whitened inputs from any initialisation.

    Loss ``1/2 |a w - beta*|^2``, ``da/dt = -eta_a dL/da``, ``dw/dt = -eta_w dL/dw``; any
    imbalance ``delta = eta_w a^2 - eta_a |w|^2`` (positive: lazy/downstream; zero: balanced rich;
    negative: upstream, ``a`` may cross zero), any rates. Implements (module docstring)

        a = E~/N~,  w = (w0 + eta_w beta* int E~)/N~,  N~ = sqrt(1 + 2 eta_w int E~^2),
        E~ = a0 E = (a0 e^{-Omega t} + num E[0, -Omega]) e^{pt},

    Kunin et al.'s Riccati form (``E = c+ e^{pt} + c- e^{qt}``) multiplied through by ``a0``, in
    ``e^{-pt}``-scaled divided-difference form: no overflow at large t (``t = 1e4``), no
    cancellation for small ``Omega t`` or ``p, q = 0`` (``beta* = 0``), and valid for ``a0 = 0``
    and ``w0 = 0``. ``t = 0`` returns the initial condition exactly, ``t = inf`` the limit
    (``beta*`` for a generic start; a saddle when the growing mode is absent).

    **Arguments:**

    - `t`: times >= 0, any shape (``inf`` allowed).
    - `a0`: scalar initial second-layer weight (any sign, 0 allowed).
    - `w0`: (d,) initial first-layer weights.
    - `beta_star`: (d,) target map (``Syx`` of a whitened task).
    - `eta_a`, `eta_w`: positive rates of ``a`` and ``w``.
    - `weight_decay`: ``gamma >= 0`` (default 0), the penalty ``(gamma/2)(a^2 + |w|^2)``. Exact
      only for equal rates ``eta_a = eta_w = eta`` and a balanced start ``a0^2 = |w0|^2`` (to 16
      ulps), where ``delta`` stays 0 and (``exact._single_neuron_decay``)

          (a, w)(t) = e^{-gamma eta t} e^{eta L t}(a0, w0) / N,
          N^2 = 1 + 2 eta int_0^t e^{-2 gamma eta tau} y_a(tau)^2 d tau,

      ``L = [[0, beta*^T], [beta*, 0]]``, ``y_a`` the first entry of ``e^{eta L tau}(a0, w0)``;
      ``beta -> (1 - gamma/|beta*|) beta*`` when ``|beta*| > gamma`` (and the growing mode is
      present), else ``a, w -> 0``. Any other start with ``gamma > 0`` raises ValueError: with
      unequal rates ``delta`` is not conserved (``d delta/dt = -2 gamma eta_a eta_w (a^2 -
      |w|^2)``), and with ``delta0 != 0`` the reduced linear equation has coefficients in
      ``e^{-2 gamma eta t}`` (Kummer type, not elementary). Traced inputs are checked at run time
      (``equinox.error_if``).

    **Inputs covered.** Whitened inputs ``Sxx = I`` (``beta* = Syx``). ``Sxx = c I`` (isotropic, any
    variance ``c > 0``) is the same flow with rates ``c eta_a``, ``c eta_w``, target
    ``beta* = Syx / c`` and decay ``gamma / c``. A general (anisotropic) ``Sxx`` has no closed-form
    trajectory here: ``da/dt`` involves ``w^T Sxx w``, which ``delta`` does not fix, and ``w`` leaves
    the plane of ``w0`` and ``Sxy``; only its ``t = inf`` limit is given, by
    :func:`single_neuron_implicit_bias`.

    All finite, promoted to their widest floating dtype; concrete inputs whose ``delta`` or
    ``Omega`` overflow the dtype raise ValueError.

    **Returns:** a :class:`SingleNeuron` with fields ``a``, ``w``, ``beta``, ``loss``, ``delta``,
    ``ntk``, each with the shape of ``t`` in front.

    Works under jit, vmap (over times and parameters) and grad, in the dtype it is given.

    Reference: Kunin, Raventós, Dominé, Chen, Klindt, Saxe & Ganguli (2024), "Get rich quick:
    exact solutions reveal how unbalanced initializations promote rapid feature learning",
    NeurIPS.
    """
    args = _validate(t, a0, w0, beta_star, eta_a, eta_w, weight_decay)
    gamma = as_scalar("weight_decay", weight_decay, args[1].dtype, strict=False)
    if is_concrete(weight_decay) and float(np.asarray(weight_decay)) == 0:  # (under jit too)
        return _evaluate(*args)
    from ._single_neuron_decay import check_decay

    check_decay(gamma, args[1], args[2], args[4], args[5])
    return _evaluate_decay(*args, gamma)


@jax.jit
def _evaluate(t, a0, w0, bs, eta_a, eta_w) -> SingleNeuron:
    return _state(*_solve(t, a0, w0, bs, eta_a, eta_w), w0, bs, eta_a, eta_w)


@jax.jit
def _evaluate_decay(t, a0, w0, bs, eta_a, eta_w, gamma) -> SingleNeuron:
    from ._single_neuron_decay import _UNSUPPORTED, balanced, solve_decay

    a, w = _solve(t, a0, w0, bs, eta_a, eta_w)
    ad, wd = solve_decay(t, a0, w0, bs, eta_a, gamma)
    # The decay formula wherever it is exact (also at gamma = 0, so that d/dgamma is right there);
    # elsewhere the decay-free solution (gamma must be 0; its derivative in gamma then reads 0).
    plain = ~((eta_a == eta_w) & balanced(a0, w0))
    out = _state(jnp.where(plain, a, ad), jnp.where(plain, w, wd), w0, bs, eta_a, eta_w)
    return eqx.error_if(out, plain & (gamma > 0), _UNSUPPORTED)  # on the output: never pruned


def _state(a, w, w0, bs, eta_a, eta_w) -> SingleNeuron:
    beta = a[..., None] * w
    r = beta - bs
    w2 = jnp.sum(w * w, axis=-1)
    eye = jnp.eye(w0.shape[0], dtype=w.dtype)
    ntk = eta_w * (a * a)[..., None, None] * eye + eta_a * w[..., :, None] * w[..., None, :]
    return SingleNeuron(
        a=a, w=w, beta=beta, loss=0.5 * jnp.sum(r * r, axis=-1),
        delta=eta_w * a * a - eta_a * w2, ntk=ntk,
    )


# The implicit-bias half of the family lives in its own module (re-exported here).
from ._single_neuron_implicit_bias import (  # noqa: E402
    single_neuron_implicit_bias,
    single_neuron_potential,
)
