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

**Implicit bias** (rank-deficient ``Sxx``, Kunin et al. 2024):
components of ``w`` in ``null(Sxx)`` never move, and ``(a, P_R w)`` is a single neuron on the
range ``R`` with imbalance ``delta_R = delta + eta_a |P_N w0|^2``. Hence

    beta_inf = beta*_R + a_inf P_N w0,   a_inf^2 = p_R/eta_w,
    p_R = (delta_R + sqrt(delta_R^2 + 4 eta_a eta_w |beta*_R|^2))/2,   beta*_R = Sxx^+ Sxy,

which is the minimiser over interpolating ``beta`` of ``Phi_delta(beta) - grad Phi_delta(beta0).beta``
(``Phi_delta = 1/3 (Z - 2 delta) sqrt((Z + delta)/2)``, ``Z = sqrt(delta^2 + 4 |beta|^2)``, eta = 1;
with rates use ``delta / sqrt(eta_a eta_w)``) whenever ``a`` keeps its sign.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import as_float, as_scalar, check_overflow, float_dtype_of, is_concrete
from ..tasks import Task
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
    upper = jnp.stack([pairs[..., _PAIRS.index(u)] for _, u, _ in _TRIPLES], -1)
    lower = jnp.stack([pairs[..., _PAIRS.index(v)] for _, _, v in _TRIPLES], -1)
    spread = jnp.stack([zero, m1, zero], -1) - jnp.stack([-W, -2 * W, m2], -1)
    near = spread < 1
    triples = jnp.where(near, taylor[..., n2:n2 + n3],
                        (upper - lower) / jnp.where(near, 1.0, spread))
    near = 2 * W < 1
    quad = jnp.where(near, taylor[..., -1],
                     (triples[..., 2] - triples[..., 1]) / jnp.where(near, 1.0, 2 * W))
    values = jnp.concatenate([pairs * t[..., None], triples * (t * t)[..., None],
                              (quad * t**3)[..., None]], -1)
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


def _validate(t, a0, w0, beta_star, eta_a, eta_w):
    dtype = float_dtype_of(t, a0, w0, beta_star, eta_a, eta_w)
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

    All finite, promoted to their widest floating dtype; concrete inputs whose ``delta`` or
    ``Omega`` overflow the dtype raise ValueError.

    **Returns:** a :class:`SingleNeuron` with fields ``a``, ``w``, ``beta``, ``loss``, ``delta``,
    ``ntk``, each with the shape of ``t`` in front.

    Works under jit, vmap (over times and parameters) and grad, in the dtype it is given.

    Reference: Kunin, Raventós, Dominé, Chen, Klindt, Saxe & Ganguli (2024), "Get rich quick:
    exact solutions reveal how unbalanced initializations promote rapid feature learning",
    NeurIPS.
    """
    return _evaluate(*_validate(t, a0, w0, beta_star, eta_a, eta_w))


@jax.jit
def _evaluate(t, a0, w0, bs, eta_a, eta_w) -> SingleNeuron:
    a, w = _solve(t, a0, w0, bs, eta_a, eta_w)
    beta = a[..., None] * w
    r = beta - bs
    w2 = jnp.sum(w * w, axis=-1)
    eye = jnp.eye(w0.shape[0], dtype=w.dtype)
    ntk = eta_w * (a * a)[..., None, None] * eye + eta_a * w[..., :, None] * w[..., None, :]
    return SingleNeuron(
        a=a, w=w, beta=beta, loss=0.5 * jnp.sum(r * r, axis=-1),
        delta=eta_w * a * a - eta_a * w2, ntk=ntk,
    )


def single_neuron_potential(beta: Float[ArrayLike, "*batch d"], delta) -> Float[Array, "*batch"]:
    r"""Kunin et al.'s mirror potential ``Phi_delta(beta) = 1/3 (Z - 2 delta) sqrt((Z + delta)/2)``.

    ``Z = sqrt(delta^2 + 4 |beta|^2)`` (rates 1; with rates use ``delta/sqrt(eta_a eta_w)``).
    ``grad Phi = |w| beta/|beta|`` and ``delta = 0`` gives ``2/3 |beta|^{3/2}``. ``Z + delta`` is
    formed as ``4|beta|^2/(Z - delta)`` when ``delta < 0`` (no cancellation).

    **Arguments:** `beta` (..., d); `delta` scalar (broadcasts against ``beta[..., 0]``).

    **Returns:** (...) the potential.
    """
    dtype = float_dtype_of(beta, delta)
    beta = as_float(beta, "beta", dtype)
    if beta.ndim < 1:
        raise ValueError(f"`beta` must have shape (..., d); got a scalar {beta}.")
    delta = as_float(delta, "delta", dtype)
    if is_concrete((beta, delta)):
        with np.errstate(over="ignore", invalid="ignore"):
            b, dl = np.asarray(beta), np.asarray(delta)
            check_overflow(
                f"`beta` and `delta` are too large for {dtype}: delta^2 + 4 |beta|^2 overflows.",
                dl * dl + 4 * np.sum(b * b, axis=-1),
            )
    r2 = jnp.sum(beta * beta, axis=-1)
    Z = jnp.sqrt(delta * delta + 4 * r2)
    neg = delta < 0
    zpd = jnp.where(neg, 4 * r2 / jnp.where(neg, Z - delta, 1.0), Z + delta)  # Z - delta > 0 there
    return (Z - 2 * delta) * jnp.sqrt(zpd / 2) / 3


def single_neuron_implicit_bias(
    a0, w0: Float[ArrayLike, " d"], task: Task, *, eta_a=1.0, eta_w=1.0, a_sign=None
) -> Float[Array, " d"]:
    r"""Limit ``beta_inf`` of gradient flow of ``f(x) = a w.x`` on a task with singular ``Sxx``.

    Kunin et al. (2024): ``beta_inf = argmin_{Sxx beta = Sxy} Phi_delta(beta) -
    grad Phi_delta(beta0).beta`` (:func:`single_neuron_potential`; rates enter as
    ``delta/sqrt(eta_a eta_w)``). Because ``P_N w`` (``N = null Sxx``) never moves and
    ``(a, P_R w)`` is a single neuron on the range with imbalance ``delta_R = delta + eta_a
    |P_N w0|^2``, the minimiser is explicit (module docstring):

        beta_inf = beta*_R + a_inf P_N w0,  a_inf = sigma sqrt(p_R/eta_w),  beta*_R = Sxx^+ Sxy,
        p_R = (delta_R + sqrt(delta_R^2 + 4 eta_a eta_w |beta*_R|^2)) / 2.

    ``sigma`` is the sign of ``a(inf)``. The variational formula assumes ``sigma = sgn a0``; when
    ``a`` crosses zero (possible only if ``delta_R < 0``) the limit minimises
    ``Phi + grad Phi(beta0).beta`` instead. Where ``Sxx`` is a multiple of a projection (whitened
    on its range; every rank-1 ``Sxx`` is), the range dynamics is the whitened single neuron and is
    solved exactly (:func:`single_neuron` at ``t = inf``): ``sigma``, crossings and saddle starts
    are all exact. For any other ``Sxx``, ``sigma`` is not a closed-form quantity; Kunin et al.'s
    hypothesis ``sigma = sgn a0`` (``sgn(w0.Sxy)`` if ``a0 = 0``) is used unless `a_sign` gives it.
    It is guaranteed when ``delta_R >= 0``.

    Limits: ``delta -> +inf`` gives the Euclidean projection of ``beta0`` onto the solution set;
    ``delta -> -inf`` gives ``beta*_R + sigma (|beta*_R|/|P_R w0|) P_N w0``, the rescaled ``beta0``
    when ``P_R w0`` is parallel to ``beta*_R`` (e.g. rank 1).

    **Arguments:**
    - `a0`: scalar; `w0`: (d,) initial weights.
    - `task`: a :class:`~linsolve.Task` with ``d_out = 1``; ``Sxx`` symmetric positive
      semi-definite (singular allowed) and ``Sxy = Syx^T`` in its range (else the loss is
      unbounded below and there is no limit).
    - `eta_a`, `eta_w`: positive rates.
    - `a_sign`: optional sign (+1 or -1) of ``a(inf)``, used when ``Sxx`` is not a multiple of a
      projection (ignored otherwise).

    **Returns:** (d,) the limit ``beta_inf``.

    Reference: Kunin et al. (2024), NeurIPS; mirror-flow
    view after Azulay et al. (2021).
    """
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    if task.d_out != 1:
        raise ValueError(f"`task` must have d_out = 1 (one output); got d_out = {task.d_out}.")
    if a_sign not in (None, 1, -1):
        raise ValueError(f"`a_sign` must be None, 1 or -1; got {a_sign!r}.")
    dtype = float_dtype_of(a0, w0, task.Sxx, eta_a, eta_w)
    a0 = as_scalar("a0", a0, dtype, positive=False)
    w0 = as_float(w0, "w0", dtype, ndim=1)
    if w0.shape != (task.d_in,):
        raise ValueError(f"`w0` must have shape (d_in,)=({task.d_in},); got {tuple(w0.shape)}.")
    eta_a = as_scalar("eta_a", eta_a, dtype)
    eta_w = as_scalar("eta_w", eta_w, dtype)
    Sxx = as_float(task.Sxx, "task.Sxx", dtype)
    b = as_float(task.Syx, "task.Syx", dtype)[0]
    if is_concrete(Sxx) and is_concrete(b):
        _check_task(np.asarray(Sxx, np.float64), np.asarray(b, np.float64), float(
            jnp.finfo(dtype).eps))
    sign = jnp.asarray(0 if a_sign is None else a_sign, dtype)
    return _implicit_bias(a0, w0, Sxx, b, eta_a, eta_w, sign)


def _range_mask(evals, eps):
    top = jnp.max(jnp.abs(evals))
    return evals > 100 * evals.shape[-1] * eps * top, top


def _check_task(Sxx, b, eps):
    d = Sxx.shape[0]
    evals, evecs = np.linalg.eigh(0.5 * (Sxx + Sxx.T))
    top = max(float(np.max(np.abs(evals))), 1e-300)
    asym = float(np.max(np.abs(Sxx - Sxx.T)))
    if asym > 1e3 * eps * top:
        raise ValueError(f"`task.Sxx` must be symmetric; got max |Sxx - Sxx^T| = {asym:.3g}.")
    if evals[0] < -1e3 * d * eps * top:
        raise ValueError(
            f"`task.Sxx` must be positive semi-definite; got smallest eigenvalue {evals[0]:.3g}."
        )
    in_range = evals > 100 * d * eps * top
    outside = float(np.linalg.norm((evecs.T @ b)[~in_range]))
    if outside > math.sqrt(eps) * max(float(np.linalg.norm(b)), 1e-300):
        raise ValueError(
            "`task.Syx` must lie in the range of `task.Sxx` (otherwise the loss is unbounded "
            f"below and gradient flow has no limit); got a component of norm {outside:.3g} in its "
            "null space."
        )


@jax.jit
def _implicit_bias(a0, w0, Sxx, b, eta_a, eta_w, sign):
    eps = float(jnp.finfo(w0.dtype).eps)
    evals, evecs = jnp.linalg.eigh(0.5 * (Sxx + Sxx.T))
    in_range, top = _range_mask(evals, eps)
    safe = jnp.where(in_range, evals, 1.0)
    beta_R = evecs @ jnp.where(in_range, (evecs.T @ b) / safe, 0.0)
    w_R = evecs @ jnp.where(in_range, evecs.T @ w0, 0.0)
    w_N = w0 - w_R
    # Sxx = c P_R: the range dynamics is the whitened single neuron with rates c eta.
    c = jnp.where(top > 0, top, 1.0)
    low = jnp.min(jnp.where(in_range, evals, top))
    white = (top - low) <= math.sqrt(eps) * top
    a_w, w_w = _solve(jnp.asarray(jnp.inf, w0.dtype), a0, w_R, beta_R, c * eta_a, c * eta_w)
    beta_white = a_w * (w_w + w_N)
    # Any other Sxx: a ends with the sign `sign`, else the one it starts with (or first takes).
    delta_R = eta_w * a0 * a0 - eta_a * jnp.dot(w_R, w_R)
    _, p_R, _ = _exponents(delta_R, eta_a * eta_w * jnp.dot(beta_R, beta_R))
    sigma = jnp.where(a0 != 0, jnp.sign(a0), jnp.sign(jnp.dot(w0, b)))
    sigma = jnp.where(sign != 0, sign, sigma)
    a_gen = sigma * jnp.sqrt(p_R / eta_w)
    beta_gen = jnp.where(sigma == 0, jnp.zeros_like(w0), beta_R + a_gen * w_N)
    return jnp.where(white, beta_white, beta_gen)
