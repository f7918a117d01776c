r"""The unbalanced single neuron ``f(x) = a w.x`` (Kunin et al. 2024, "Get rich quick").

Whitened inputs, loss ``L = 1/2 |a w - beta*|^2``, rates ``da/dt = -eta_a dL/da``,
``dw/dt = -eta_w dL/dw``. The imbalance ``delta = eta_w a^2 - eta_a |w|^2`` is conserved
(reference/exact_solutions.md Sec. 4).

**Linearisation.** Write ``s^2 = |beta*|^2`` and let ``E~(t)`` solve the *linear* equation

    E~'' = delta E~' + eta_a eta_w s^2 E~,   E~(0) = a0,   E~'(0) = delta a0 + eta_a w0.beta*.

Then, with ``J = int_0^t E~`` and ``K = int_0^t E~^2``,

    a(t) = E~ / N~,   w(t) = (w0 + eta_w beta* J) / N~,   N~ = sqrt(1 + 2 eta_w K).

(Differentiate: ``E~' = delta E~ + eta_a beta*.(w0 + eta_w beta* J)`` is the conservation of
delta, and the two ODEs follow.) This is the reference's Riccati solution multiplied through by
``a0`` (``E~ = a0 E``, ``N~ = |a0| N``, ``nu = (w/a).beta* = E'/E - delta`` per unit ``eta_a``), but
it has no ``1/a0``: ``a0 = 0`` with ``w0 != 0`` is an ordinary start, and ``a`` crosses zero exactly
when ``E~`` does (possible only for delta < 0). ``N~ >= 1``, so nothing is singular.

**Stable evaluation.** The exponents are ``p, q = (delta +- Omega)/2``,
``Omega = sqrt(delta^2 + 4 eta_a eta_w s^2)`` (``p >= 0 >= q``, formed without cancellation). With
``kappa = q a0 + eta_a w0.beta*`` and ``E[z_0..z_k](t)`` the divided difference of ``z -> e^{zt}``
at the nodes (``E[0, -Omega] = (1 - e^{-Omega t})/Omega`` etc.), everything scaled by ``e^{-pt}``:

    e^{-pt} E~       = a0 + kappa E[0, -Omega],
    e^{-pt} J        = a0 E[-p, 0] + kappa E[-p, 0, -Omega],
    e^{-2pt} K       = a0^2 E[-2p, 0] + 2 a0 kappa E[-2p, 0, -Omega]
                       + 2 kappa^2 E[-2p, 0, -Omega, -2 Omega],

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

**Implicit bias** (rank-deficient ``Sxx``, reference "Implicit bias for rank-deficient X^T X"):
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
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._misc import as_float, as_scalar, float_dtype_of, is_concrete
from ..tasks import Task

__all__ = [
    "SingleNeuron",
    "single_neuron",
    "single_neuron_potential",
    "single_neuron_implicit_bias",
]

_TAYLOR_TERMS = 18  # nodes within spread 1 (|y| <= 1/2 about the centre): error < 1e-19


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


def _dd_exp(x: Float[Array, "... n"]) -> Float[Array, "..."]:
    """Divided difference of ``exp`` at the nodes ``x[..., 0..n-1]`` (real, confluent allowed)."""
    x = jnp.sort(x, axis=-1)
    n = x.shape[-1]
    table = {(i, i): jnp.exp(x[..., i]) for i in range(n)}
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            spread = x[..., j] - x[..., i]
            near = spread < 1
            recursion = (table[i + 1, j] - table[i, j - 1]) / jnp.where(near, 1.0, spread)
            table[i, j] = jnp.where(near, _dd_exp_taylor(x[..., i: j + 1], near), recursion)
    return table[0, n - 1]


def _dd_exp_taylor(x, near):
    """``e^m sum_j h_j(y)/(j + k)!`` with ``y = x - m`` (``m`` the centre, ``h_j`` the complete
    homogeneous symmetric polynomials); only used where the nodes lie within 1 of each other."""
    k = x.shape[-1] - 1
    centre = 0.5 * (x[..., 0] + x[..., -1])
    y = jnp.where(near[..., None], x - centre[..., None], 0.0)
    h = [jnp.ones_like(centre)]
    for _ in range(_TAYLOR_TERMS):
        h.append(h[-1] * y[..., 0])
    for v in range(1, k + 1):
        for j in range(1, _TAYLOR_TERMS + 1):
            h[j] = h[j] + y[..., v] * h[j - 1]
    total = sum(hj * (1.0 / math.factorial(j + k)) for j, hj in reversed(list(enumerate(h))))
    return jnp.exp(centre) * total


def _expdd(t, *nodes):
    """``E[z_0..z_k](t)``: divided difference of ``z -> e^{z t}`` (= ``t^k DD_exp(t z)``)."""
    z = jnp.stack(jnp.broadcast_arrays(*nodes), axis=-1)
    return t ** (len(nodes) - 1) * _dd_exp(t[..., None] * z)


def _exponents(delta, c):
    """``(Omega, p, q)`` for ``Omega^2 = delta^2 + 4 c`` (c = eta_a eta_w s^2), no cancellation."""
    omega2 = delta * delta + 4 * c
    omega = jnp.where(omega2 > 0, jnp.sqrt(jnp.where(omega2 > 0, omega2, 1.0)), 0.0)
    pos = delta >= 0
    big_pos = jnp.where(pos & (omega > 0), delta + omega, 1.0)  # delta + Omega (delta >= 0)
    big_neg = jnp.where(pos, 1.0, omega - delta)  # Omega - delta (delta < 0), > 0
    p = jnp.where(pos, 0.5 * (delta + omega), 2 * c / big_neg)
    q = jnp.where(pos, -2 * c / big_pos, 0.5 * (delta - omega))
    return omega, p, q


def _solve(t, a0, w0, bs, eta_a, eta_w):
    """``(a, w)`` at times ``t`` (finite, >= 0, any shape) and at ``t = inf`` where ``t`` is inf."""
    g = jnp.dot(w0, bs)
    delta = eta_w * a0 * a0 - eta_a * jnp.dot(w0, w0)
    omega, p, q = _exponents(delta, eta_a * eta_w * jnp.dot(bs, bs))
    num = p * a0 + eta_a * g  # Omega times the coefficient of the growing mode e^{pt}
    kap = q * a0 + eta_a * g
    pure = num == 0  # no growing mode: E~ = a0 e^{qt}
    at_inf = jnp.isinf(t)
    tt = jnp.where(at_inf, 0.0, t)
    zero = jnp.zeros_like(tt)
    shape = tt.shape
    om, pp, qq = (jnp.broadcast_to(v, shape) for v in (omega, p, q))
    # Growing-mode branch, scaled by e^{-pt}.
    eps = a0 + kap * _expdd(tt, zero, -om)
    J = a0 * _expdd(tt, -pp, zero) + kap * _expdd(tt, -pp, zero, -om)
    K = (a0 * a0 * _expdd(tt, -2 * pp, zero)
         + 2 * a0 * kap * _expdd(tt, -2 * pp, zero, -om)
         + 2 * kap * kap * _expdd(tt, -2 * pp, zero, -om, -2 * om))
    scale = jnp.exp(-pp * tt)
    # Pure branch, unscaled.
    eps_p = a0 * jnp.exp(qq * tt)
    J_p = a0 * _expdd(tt, zero, qq)
    K_p = a0 * a0 * _expdd(tt, zero, 2 * qq)
    eps = jnp.where(pure, eps_p, eps)
    J = jnp.where(pure, J_p, J)
    scale = jnp.where(pure, 1.0, scale)
    norm2 = jnp.where(pure, 1 + 2 * eta_w * K_p, scale * scale + 2 * eta_w * K)
    norm = jnp.sqrt(jnp.where(norm2 > 0, norm2, 1.0))
    a = eps / norm
    w = (scale[..., None] * w0 + eta_w * J[..., None] * bs) / norm[..., None]
    # t = inf.
    sigma = jnp.sign(num)
    p_safe = jnp.where(pure, 1.0, p)
    a_grow, w_grow = sigma * jnp.sqrt(p_safe / eta_w), sigma * jnp.sqrt(eta_w / p_safe) * bs
    decays = q < 0
    rate = jnp.where(decays, -q, 1.0)
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
    t = jnp.asarray(t).astype(dtype)
    if is_concrete(t) and bool(jnp.any(jnp.isnan(t) | (t < 0))):
        raise ValueError(f"`t` must be non-negative (inf allowed); got {np.asarray(t)}.")
    return t, a0, w0, beta_star, eta_a, eta_w


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
        E~ = a0 E = (a0 + kappa E[0, -Omega]) e^{pt},

    the reference's Riccati form (``E = c+ e^{pt} + c- e^{qt}``) multiplied through by ``a0``, in
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

    **Returns:** a :class:`SingleNeuron` with fields ``a``, ``w``, ``beta``, ``loss``, ``delta``,
    ``ntk``, each with the shape of ``t`` in front.

    Works under jit, vmap (over times and parameters) and grad, in the dtype it is given.

    Reference: Kunin, Raventós, Dominé, Chen, Klindt, Saxe & Ganguli (2024), "Get rich quick:
    exact solutions reveal how unbalanced initializations promote rapid feature learning",
    NeurIPS; reference/exact_solutions.md Sec. 4.
    """
    t, a0, w0, bs, eta_a, eta_w = _validate(t, a0, w0, beta_star, eta_a, eta_w)
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


def single_neuron_potential(beta: Float[ArrayLike, "... d"], delta) -> Float[Array, "..."]:
    r"""Kunin et al.'s mirror potential ``Phi_delta(beta) = 1/3 (Z - 2 delta) sqrt((Z + delta)/2)``.

    ``Z = sqrt(delta^2 + 4 |beta|^2)`` (rates 1; with rates use ``delta/sqrt(eta_a eta_w)``).
    ``grad Phi = |w| beta/|beta|`` and ``delta = 0`` gives ``2/3 |beta|^{3/2}``. ``Z + delta`` is
    formed as ``4|beta|^2/(Z - delta)`` when ``delta < 0`` (no cancellation).

    **Arguments:** `beta` (..., d); `delta` scalar (broadcasts against ``beta[..., 0]``).

    **Returns:** (...) the potential.
    """
    beta = jnp.asarray(beta)
    dtype = float_dtype_of(beta, delta)
    beta = beta.astype(dtype)
    delta = jnp.asarray(delta).astype(dtype)
    r2 = jnp.sum(beta * beta, axis=-1)
    Z = jnp.sqrt(delta * delta + 4 * r2)
    neg = delta < 0
    zpd = jnp.where(neg, 4 * r2 / jnp.where(neg, Z - delta, 1.0), Z + delta)
    return (Z - 2 * delta) * jnp.sqrt(zpd / 2) / 3


def single_neuron_implicit_bias(
    a0, w0: Float[ArrayLike, " d"], task: Task, *, eta_a=1.0, eta_w=1.0
) -> Float[Array, " d"]:
    r"""Limit ``beta_inf`` of gradient flow of ``f(x) = a w.x`` on a task with singular ``Sxx``.

    Kunin et al. (2024): ``beta_inf = argmin_{Sxx beta = Sxy} Phi_delta(beta) -
    grad Phi_delta(beta0).beta`` (:func:`single_neuron_potential`; rates enter as
    ``delta/sqrt(eta_a eta_w)``). Because ``P_N w`` (``N = null Sxx``) never moves and
    ``(a, P_R w)`` is a single neuron on the range with imbalance ``delta_R = delta + eta_a
    |P_N w0|^2``, the minimiser is explicit (module docstring):

        beta_inf = beta*_R + a_inf P_N w0,  a_inf = sigma sqrt(p_R/eta_w),  beta*_R = Sxx^+ Sxy.

    ``sigma`` is the sign of ``a(inf)``. Where ``Sxx`` is a multiple of a projection (whitened on
    its range, which includes every rank-1 ``Sxx``), the range dynamics is solved exactly
    (:func:`single_neuron` at ``t = inf``), so ``sigma`` and the saddle cases are exact, including
    ``a`` crossing zero (then ``beta_inf`` minimises ``Phi + grad Phi(beta0).beta`` instead). For
    a general ``Sxx`` the reference's hypothesis that ``a`` keeps its sign is used
    (``sigma = sgn a0``, or ``sgn(w0.Sxy)`` if ``a0 = 0``); it is guaranteed when
    ``delta_R >= 0``. Limits: ``delta -> +inf`` gives the Euclidean projection of ``beta0`` onto
    the solution set; ``delta -> -inf`` gives ``beta*_R + (|beta*_R|/|P_R w0|) sigma P_N w0``
    (the rescaled ``beta0`` when ``P_R w0`` is parallel to ``beta*_R``, e.g. rank 1).

    **Arguments:**
    - `a0`: scalar; `w0`: (d,) initial weights.
    - `task`: a :class:`~linsolve.Task` with ``d_out = 1``; ``Sxx`` symmetric positive
      semi-definite (singular allowed) and ``Sxy = Syx^T`` in its range (else the loss is
      unbounded below and there is no limit).
    - `eta_a`, `eta_w`: positive rates.

    **Returns:** (d,) the limit ``beta_inf``.

    Reference: Kunin et al. (2024), NeurIPS; reference/exact_solutions.md Sec. 4; mirror-flow
    view after Azulay et al. (2021).
    """
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    if task.d_out != 1:
        raise ValueError(f"`task` must have d_out = 1 (one output); got d_out = {task.d_out}.")
    dtype = float_dtype_of(a0, w0, task.Sxx)
    a0 = as_scalar("a0", a0, dtype, positive=False)
    w0 = as_float(w0, "w0", dtype, ndim=1)
    if w0.shape != (task.d_in,):
        raise ValueError(f"`w0` must have shape (d_in,)=({task.d_in},); got {tuple(w0.shape)}.")
    eta_a = as_scalar("eta_a", eta_a, dtype)
    eta_w = as_scalar("eta_w", eta_w, dtype)
    Sxx = as_float(task.Sxx, "task.Sxx", dtype)
    b = as_float(task.Syx, "task.Syx", dtype)[0]
    d = w0.shape[0]
    eps = float(jnp.finfo(dtype).eps)
    evals, evecs = jnp.linalg.eigh(0.5 * (Sxx + Sxx.T))
    top = jnp.max(jnp.abs(evals))
    in_range = evals > 100 * d * eps * top
    if is_concrete(Sxx) and is_concrete(b):
        asym = float(jnp.max(jnp.abs(Sxx - Sxx.T)))
        if asym > 1e3 * eps * max(float(top), 1e-300):
            raise ValueError(f"`task.Sxx` must be symmetric; got max |Sxx - Sxx^T| = {asym:.3g}.")
        low = float(jnp.min(evals))
        if low < -1e3 * d * eps * float(top):
            raise ValueError(
                f"`task.Sxx` must be positive semi-definite; got smallest eigenvalue {low:.3g}."
            )
        coef = evecs.T @ b
        outside = float(jnp.linalg.norm(jnp.where(in_range, 0.0, coef)))
        if outside > math.sqrt(eps) * max(float(jnp.linalg.norm(b)), 1e-300):
            raise ValueError(
                "`task.Syx` must lie in the range of `task.Sxx` (otherwise the loss is unbounded "
                f"below and gradient flow has no limit); got a component of norm {outside:.3g} "
                "in its null space."
            )
    safe = jnp.where(in_range, evals, 1.0)
    beta_R = evecs @ jnp.where(in_range, (evecs.T @ b) / safe, 0.0)
    w_R = evecs @ jnp.where(in_range, evecs.T @ w0, 0.0)
    w_N = w0 - w_R
    # Sxx = c P_R: the range dynamics is the whitened single neuron with rates c eta.
    c = jnp.where(top > 0, top, 1.0)
    low_nz = jnp.min(jnp.where(in_range, evals, top))
    white = (top - low_nz) <= math.sqrt(eps) * top
    a_w, w_w = _solve(jnp.asarray(jnp.inf, dtype), a0, w_R, beta_R, c * eta_a, c * eta_w)
    beta_white = a_w * (w_w + w_N)
    # General Sxx: a keeps the sign it starts with (or first takes, from a0 = 0).
    delta_R = eta_w * a0 * a0 - eta_a * jnp.dot(w_R, w_R)
    _, p_R, _ = _exponents(delta_R, eta_a * eta_w * jnp.dot(beta_R, beta_R))
    sigma = jnp.where(a0 != 0, jnp.sign(a0), jnp.sign(jnp.dot(w0, b)))
    a_gen = sigma * jnp.sqrt(p_R / eta_w)
    beta_gen = jnp.where(sigma == 0, jnp.zeros_like(w0), beta_R + a_gen * w_N)
    return jnp.where(white, beta_white, beta_gen)
