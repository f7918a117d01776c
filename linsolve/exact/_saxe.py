r"""Balanced, decoupled modes of deep linear networks (Saxe, McClelland & Ganguli 2014).

A deep linear net ``W_L ... W_1`` (``L = depth``), equal rates ``1/tau``, started balanced
(``W_{l+1}^T W_{l+1} = W_l W_l^T``) and decoupled (``W_L...W_1 = U diag(u) V^T`` with
``Syx = U diag(s) V^T``), with inputs aligned with the modes (``Sxx = V diag(lam) V^T``; Saxe,
McClelland & Ganguli 2019, PNAS) and weight decay ``(gamma/2) sum_l ||W_l||_F^2`` (Ziyin, Li &
Meng 2022, arXiv:2202.04777) keeps its singular vectors; each layer scalar obeys
``tau da_l/dt = (s - lam u) u / a_l - gamma a_l``, so with ``|a_l| = |u|^{1/L}`` each mode obeys

    tau du/dt = L [|u|^p (s - lam u) - gamma u],    p = 2 - 2/L     (L weight matrices).

* ``L = 1``: linear regression, ``u = s/k + (u0 - s/k) e^{-kt/tau}``, ``k = lam + gamma``.
* ``L = 2``: with ``w = lam u``, the logistic law ``tau dw/dt = 2 |w| (s' - w)``,
  ``s' = s - gamma sgn(u0)``, evaluated by the cancellation-free :func:`linsolve.exact.mode`
  (``k = 1/tau, A = 2, B = 0``).
* ``L >= 3``, ``gamma = 0``: ``w = lam u`` obeys ``tau lam^{p-1} dw/dt = L |w|^p (s - w)``, the
  whitened law with a rescaled time; its time-to-learn relation is inverted exactly
  (``linsolve.exact._saxe_deep``).
* ``L >= 3``, ``gamma > 0``: partial fractions over the roots of ``x q(x)``, ``x = |u|^{1/L}``,
  ``q = x^{L-2} (S - lam x^L) - gamma``, inverted by safeguarded Newton; bistable below the
  critical decay (``linsolve.exact._saxe_decay``).

**Signs.** ``|u|`` follows the same law with ``s -> sgn(u0) s``, so every sign is covered:
without decay ``u0 s > 0`` converges to ``s/lam`` (from either side), ``u0 = 0`` is a fixed point
(``L >= 2``), ``s = 0`` gives the power law ``u = u0 (1 + pL|u0|^p t/tau)^{-1/p}`` (``lam = 1``),
and ``u0 s < 0`` decays to 0 without changing sign."""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import (
    as_float,
    check_positive,
    float_dtype_of,
    is_concrete,
)
from ._mode import mode, mode_time
from ._saxe_decay import decay_mode, decay_setup, decay_time
from ._saxe_deep import deep_mode, deep_time, zero_target

__all__ = ["saxe_mode", "saxe_time"]


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



def _prepare(t, s, u0, tau, lam=1.0, gamma=0.0, *, t_name="t"):
    dtype = float_dtype_of(t, s, u0, tau, lam, gamma)
    s = as_float(s, "s", dtype)
    u0 = as_float(u0, "u0", dtype)
    tau = as_float(tau, "tau", dtype)
    check_positive("tau", tau)
    lam = as_float(lam, "variance", dtype)
    check_positive("variance", lam)
    gamma = as_float(gamma, "weight_decay", dtype)
    check_positive("weight_decay", gamma, strict=False)
    t = jnp.asarray(t).astype(dtype)
    if is_concrete(t) and bool(jnp.any(jnp.isnan(t) | (t < 0))):
        raise ValueError(f"`{t_name}` must be non-negative (inf allowed); got {t}.")
    _check_broadcast({t_name: t, "s": s, "u0": u0, "tau": tau, "variance": lam,
                      "weight_decay": gamma})
    return t, s, u0, tau, lam, gamma


def _check_broadcast(arrays: dict) -> None:
    """``ValueError`` naming the arguments whose shapes do not broadcast together."""
    try:
        np.broadcast_shapes(*(np.shape(x) for x in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"`{k}` {tuple(np.shape(x))}" for k, x in arrays.items())
        raise ValueError(f"the arguments must broadcast against each other; got {shapes}.") from None


def _plain(variance, weight_decay) -> bool:
    """Whitened inputs and no decay, known now (the raw arguments): the original path."""
    return (is_concrete((variance, weight_decay)) and bool(np.all(np.asarray(variance) == 1))
            and bool(np.all(np.asarray(weight_decay) == 0)))


def _decay_params(d, dtype, shape, raw):
    """Host roots for ``L >= 3`` with decay (None when no element has ``gamma > 0``)."""
    if is_concrete(raw[-1]) and not bool(np.any(np.asarray(raw[-1]) > 0)):
        return None
    if not is_concrete(raw):
        raise ValueError(
            "`weight_decay` > 0 with depth >= 3 needs concrete `s`, `u0`, `variance` and "
            "`weight_decay` (the roots of the time relation are computed on the host); only `t` "
            "and `tau` may be traced."
        )
    P = decay_setup(*(np.asarray(x, np.float64) for x in raw), d)
    return {k: jnp.broadcast_to(jnp.asarray(v, v.dtype if v.dtype.kind == "i" else dtype),
                                shape + v.shape[len(np.shape(P["A"])):])
            for k, v in P.items()}


def _logistic(finite_t, s, u0, tau):
    """``L = 2``: ``tau du/dt = 2 |u| (s - u)`` via :func:`mode`, exact also at ``s = 0``."""
    u = mode(finite_t, F0=u0, s=s, k=1 / tau, A=2.0, B=0.0)
    # s = 0 exactly: the same value, with the s-derivative mode() does not carry.
    sigma = jnp.where(u0 < 0, -1.0, 1.0).astype(u0.dtype)
    a0 = jnp.where((s == 0) & (u0 != 0), jnp.abs(u0), 1.0)
    u_zero = sigma * zero_target(finite_t, sigma * s, a0, tau, 2)
    return jnp.where((s == 0) & (u0 != 0), u_zero, u)


def saxe_mode(
    t: Float[ArrayLike, "*times"], *, s, u0, tau=1.0, depth: int = 2, variance=1.0,
    weight_decay=0.0,
) -> Float[Array, "*times"]:
    r"""Strength ``u(t)`` of a balanced, decoupled mode of a depth-``L`` linear network.

    Solves ``tau du/dt = L [|u|^{2 - 2/L} (s - lam u) - gamma u]``, ``u(0) = u0`` (``L = depth``
    weight matrices, input variance ``lam`` = `variance` along the mode, weight decay
    ``gamma`` = `weight_decay` on every layer, equal learning rates ``1/tau``) exactly:

    * ``L = 1``: ``u = s/k + (u0 - s/k) e^{-kt/tau}``, ``k = lam + gamma``;
    * ``L = 2``: with ``w = lam u`` and ``s' = s - gamma sgn(u0)``, the logistic law
      ``w = s' e^{2s't/tau} / (e^{2s't/tau} - 1 + s'/w0)`` (via :func:`mode`);
    * ``L >= 3``, ``gamma = 0``: ``w = lam u`` obeys the whitened law with
      ``tau -> tau lam^{p-1}``; the exact time-to-learn relation ``t = tau s^{-p} [Phi(x) -
      Phi(x0)]``, ``p = 2 - 2/L``, ``x = (w/s)^{1/L}``, inverted to machine precision;
    * ``L >= 3``, ``gamma > 0``: ``x = |u|^{1/L}`` obeys ``tau dx/dt = x q(x)``,
      ``q = x^{L-2} (S - lam x^L) - gamma``, ``S = sgn(u0) s``; ``t/tau = sum_k Re[c_k
      ln(x - r_k)]`` by partial fractions over the roots of ``x q(x)``, inverted by safeguarded
      Newton. Bistable: below the separatrix ``x_-`` the mode decays to 0, above it it converges
      to the stable root ``x_+^L`` (Ziyin et al. 2022); above the critical decay only 0 is left.
      Needs concrete `s`, `u0`, `variance`, `weight_decay`; not differentiable.

    Every sign is supported: ``|u|`` obeys the same law with ``s -> sgn(u0) s`` (``u0 = 0``
    stays for ``L >= 2``; ``gamma = 0``: ``s = 0`` gives ``u0 (1 + pL|u0|^p t/tau)^{-1/p}``,
    ``u0 s < 0`` decays to 0).

    **Arguments:**

    - `t`: times >= 0 of any shape (``inf`` allowed).
    - `s`: task singular value; `u0`: initial strength; `tau`: time constant > 0; `variance`:
      input variance ``lam > 0`` of the mode; `weight_decay`: ``gamma >= 0``. These broadcast
      against `t` (e.g. ``t[:, None]`` against (r,) modes).
    - `depth`: number of weight matrices ``L`` (a Python int >= 1; static).

    **Returns:** ``u(t)`` with the broadcast shape; ``t = 0`` gives ``u0`` exactly, ``t = inf``
    the stable fixed point of the basin of ``u0``. Works under jit, vmap and grad (except
    ``L >= 3`` with ``gamma > 0``, see above).

    References: Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Saxe, McClelland & Ganguli
    (2019), PNAS 116(23) (anisotropic inputs); Ziyin, Li & Meng (2022), arXiv:2202.04777 (weight
    decay with depth).
    """
    d = _check_depth(depth)
    s_raw, u0_raw = s, u0
    t, s, u0, tau, lam, gamma = _prepare(t, s, u0, tau, variance, weight_decay)
    # Only t = 0 / t = inf asked (and known now): no need to run (or compile) the solver.
    limits_only = is_concrete(t) and bool(jnp.all((t == 0) | jnp.isinf(t)))
    if _plain(variance, weight_decay):
        return _evaluate(t, s, u0, tau, d, limits_only)
    shape = jnp.broadcast_shapes(t.shape, s.shape, u0.shape, tau.shape, lam.shape, gamma.shape)
    raw = (s_raw, u0_raw, variance, weight_decay)
    P = _decay_params(d, u0.dtype, shape, raw) if d >= 3 else None
    if P is None:
        return _evaluate_scaled(t, s, u0, tau, lam, gamma, d, limits_only)
    b = lambda x: jnp.broadcast_to(x, shape)
    t, u0, tau, gamma = b(t), b(u0), b(tau), b(gamma)
    finite_t = jnp.where(jnp.isinf(t), 0.0, t)
    u = u0 if limits_only else decay_mode(finite_t, u0, tau, P)
    u_inf = jnp.where(P["kind"] == 3, u0, P["sigma"] * P["x_inf"] ** d)  # 3: at a fixed point
    u = jnp.where(t == 0, u0, jnp.where(jnp.isinf(t), u_inf, u))
    if bool(np.all(np.asarray(weight_decay) > 0)):
        return u
    base = _evaluate_scaled(t, s, u0, tau, lam, jnp.zeros_like(gamma), d, limits_only)
    return jnp.where(gamma > 0, u, base)


@functools.partial(jax.jit, static_argnums=(6, 7))
def _evaluate_scaled(t, s, u0, tau, lam, gamma, d: int, limits_only: bool):
    """Variance and decay by exact rescaling (``L = 1, 2``; ``L >= 3`` with ``gamma = 0``)."""
    shape = jnp.broadcast_shapes(t.shape, s.shape, u0.shape, tau.shape, lam.shape, gamma.shape)
    t, s, u0, tau, lam, gamma = (jnp.broadcast_to(x, shape) for x in (t, s, u0, tau, lam, gamma))
    finite_t = jnp.where(jnp.isinf(t), 0.0, t)
    if d == 1:
        k = lam + gamma
        target = s / k
        u = target + (u0 - target) * jnp.exp(-finite_t * k / tau)
        u_inf = target
        rate0 = (s - k * u0) / tau
    else:
        p = 2 - 2 / d
        sigma = jnp.where(u0 < 0, -1.0, 1.0).astype(u0.dtype)
        # w = lam u: tau dw/dt = L [lam^{1-p} |w|^p (s - w) - gamma w].
        s_eff = s - gamma * sigma
        if limits_only:
            u = u0
        elif d == 2:
            u = _logistic(finite_t, s_eff, lam * u0, tau) / lam
        else:
            u = deep_mode(finite_t, s, lam * u0, tau * lam ** (p - 1), d) / lam
        u_inf = jnp.where(jnp.sign(u0) * jnp.sign(s_eff) > 0, s_eff / lam, 0.0)
        rate0 = d * (jnp.abs(u0) ** p * (s - lam * u0) - gamma * u0) / tau
    rate0 = jnp.where(jnp.isfinite(rate0), rate0, 0.0)
    at_zero = u0 + (finite_t - jax.lax.stop_gradient(finite_t)) * rate0
    return jnp.where(t == 0, at_zero, jnp.where(jnp.isinf(t), u_inf, u))


def saxe_time(
    u0, u1, *, s, tau=1.0, depth: int = 2, variance=1.0, weight_decay=0.0
) -> Float[Array, "*batch"]:
    r"""Exact time for a balanced mode to go from ``u0`` to ``u1`` (``inf`` if never reached).

    ``t = tau/L int_{u0}^{u1} du / (|u|^{2-2/L} (s - lam u) - gamma u)`` (`variance` ``lam``,
    `weight_decay` ``gamma``; whitened, no decay by default): for ``L = 1``
    ``(tau/k) ln[(s - k u0)/(s - k u1)]``, ``k = lam + gamma``; for ``L = 2``
    ``(tau/2s') ln[w1 (s' - w0)/(w0 (s' - w1))]``, ``w = lam u``, ``s' = s - gamma sgn(u0)``; for
    ``L >= 3`` and ``gamma = 0`` ``tau' s^{-p} [Phi(x1) - Phi(x0)]``, ``x = (lam u/s)^{1/L}``,
    ``tau' = tau lam^{p-1}`` (module notes; for ``u < s`` it equals ``tau/L [F(u1) - F(u0)]``,
    ``F(u) = u^b/(sb) 2F1(1, b; b+1; u/s)``, ``b = 2/L - 1``; small ``u0``:
    ``t ~ tau u0^{-(L-2)/L} / ((L-2) s)``); for ``L >= 3`` and ``gamma > 0`` the partial
    fractions ``tau sum_k Re[c_k ln((x1 - r_k)/(x0 - r_k))]`` of :func:`saxe_mode` (concrete
    `s`, `u0`, `variance`, `weight_decay`).

    **Arguments:** `u0`, `u1`, `s` (broadcast), `tau` > 0, `depth` = L (int >= 1),
    `variance` > 0, `weight_decay` >= 0.

    **Returns:** the time; ``inf`` when `u1` lies behind `u0`, at or beyond the fixed point it
    approaches, or on the other side of zero. References: Saxe, McClelland & Ganguli (2014),
    arXiv:1312.6120; Saxe et al. (2019) PNAS; Ziyin, Li & Meng (2022), arXiv:2202.04777.
    """
    d = _check_depth(depth)
    raw = (s, u0, variance, weight_decay)
    dtype = float_dtype_of(u0, u1, s, tau, variance, weight_decay)
    _, s, u0, tau, lam, gamma = _prepare(jnp.zeros((), dtype), s, u0, tau, variance, weight_decay)
    u1 = as_float(u1, "u1", u0.dtype)
    _check_broadcast({"u0": u0, "u1": u1, "s": s, "tau": tau, "variance": lam,
                      "weight_decay": gamma})
    if _plain(variance, weight_decay):
        return _evaluate_time(u0, u1, s, tau, d)
    shape = jnp.broadcast_shapes(u0.shape, u1.shape, s.shape, tau.shape, lam.shape, gamma.shape)
    P = _decay_params(d, u0.dtype, shape, raw) if d >= 3 else None
    if P is None:
        return _time_scaled(u0, u1, s, tau, lam, gamma, d)
    b = lambda x: jnp.broadcast_to(x, shape)
    out = decay_time(b(u0), b(u1), b(tau), P)
    if bool(np.all(np.asarray(weight_decay) > 0)):
        return out
    return jnp.where(b(gamma) > 0, out, _time_scaled(u0, u1, s, tau, lam, 0.0 * gamma, d))


@functools.partial(jax.jit, static_argnums=6)
def _time_scaled(u0, u1, s, tau, lam, gamma, d: int):
    shape = jnp.broadcast_shapes(u0.shape, u1.shape, s.shape, tau.shape, lam.shape, gamma.shape)
    u0, u1, s, tau, lam, gamma = (jnp.broadcast_to(x, shape) for x in (u0, u1, s, tau, lam, gamma))
    if d == 1:
        k = lam + gamma
        return _evaluate_time(u0, u1, s / k, tau / k, 1)
    sigma = jnp.where(u0 < 0, -1.0, 1.0).astype(u0.dtype)
    if d == 2:
        return _evaluate_time(lam * u0, lam * u1, s - gamma * sigma, tau, 2)
    return _evaluate_time(lam * u0, lam * u1, s, tau * lam ** (1 - 2 / d), d)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _evaluate(t, s, u0, tau, d: int, limits_only: bool):
    shape = jnp.broadcast_shapes(t.shape, s.shape, u0.shape, tau.shape)
    t, s, u0, tau = (jnp.broadcast_to(x, shape) for x in (t, s, u0, tau))
    finite_t = jnp.where(jnp.isinf(t), 0.0, t)
    if d == 1:
        u = s + (u0 - s) * jnp.exp(-finite_t / tau)
        rate0 = (s - u0) / tau
    else:
        if limits_only:
            u = u0
        elif d == 2:
            u = _logistic(finite_t, s, u0, tau)
        else:
            u = deep_mode(finite_t, s, u0, tau, d)
        rate0 = d * jnp.abs(u0) ** (2 - 2 / d) * (s - u0) / tau
    u_inf = s if d == 1 else jnp.where(jnp.sign(u0) * jnp.sign(s) > 0, s, 0.0)
    # t = 0 returns u0 exactly, with the derivatives of the flow there (du/dt = the ODE).
    rate0 = jnp.where(jnp.isfinite(rate0), rate0, 0.0)
    at_zero = u0 + (finite_t - jax.lax.stop_gradient(finite_t)) * rate0
    return jnp.where(t == 0, at_zero, jnp.where(jnp.isinf(t), u_inf, u))


@functools.partial(jax.jit, static_argnums=4)
def _evaluate_time(u0, u1, s, tau, d: int):
    shape = jnp.broadcast_shapes(u0.shape, u1.shape, s.shape, tau.shape)
    u0, u1, s, tau = (jnp.broadcast_to(x, shape) for x in (u0, u1, s, tau))
    if d == 2:
        return mode_time(u0, u1, s=s, k=1 / tau, A=2.0, B=0.0).astype(u0.dtype)
    if d == 1:
        between = jnp.sign(u1 - u0) * jnp.sign(s - u1) > 0
        num = jnp.where(between, s - u0, 2.0)
        den = jnp.where(between, s - u1, 1.0)
        out = jnp.where(between, tau * jnp.log(num / den), jnp.inf)
        return jnp.where(u1 == u0, 0.0, out)
    return deep_time(u0, u1, s, tau, d)
