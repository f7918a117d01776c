r"""The scalar "master" mode: ``dF/dt = -k (F - s) sqrt(B^2 + A^2 F^2)``, k > 0, A > 0, B >= 0.

One equation unifies the rank-one and aligned cases:
balanced Saxe modes (A = 2, B = 0), aligned lambda-balanced modes (B = |lambda|; Braun et al. 2022,
Dominé et al. 2024, Tarmoun et al. 2021), the single neuron started parallel to its target
(Kunin et al. 2024) and the width-d one-dimensional network (Xu & Ziyin 2025).

**Closed form (B > 0).** With ``G(F) = sqrt(B^2 + A^2 F^2)`` and ``zeta(F) = A F / (B + G(F))``
(``= tanh(theta/2)`` for ``F = (B/A) sinh theta``), ``zeta`` obeys a constant-coefficient Riccati
equation with roots ``zeta_+ = zeta(s)`` and ``zeta_- = -1/zeta_+``, whose solution we write as

    zeta(t) = (zeta_+ + D e) / (1 - zeta_+ D e),   D(F) = (zeta(F) - zeta_+) / (1 + zeta(F) zeta_+),
    e = exp(-Gamma t),   Gamma = k G(s),

(``R_0 = zeta_+ D(F0)`` in Riccati form). ``F`` is evaluated as

    F(t) = (2B/A) (zeta_+ + D e)(1 - zeta_+ D e) / ((p - D e q)(q + D e p)),   p, q = 1 -+ zeta_+,

with ``p``, ``q``, ``1 -+ zeta(F0)`` and ``D`` formed without cancellation, so the same expression is
accurate from the kernel limit (B >> A|s|) down to B -> 0 and for every sign of F0 and s; only the
decaying exponential ``e`` appears, so nothing overflows at large ``k t``. The exact time from
``F0`` to ``F1`` is ``ln(D(F0) / D(F1)) / Gamma``; the rapidity is
``theta(t) - theta(0) = ln[(q + D e p) p0 / ((p - D e q) q0)]``.

**B = 0** (Saxe's logistic law): ``dF/dt = -kA|F|(F - s)``. With ``sigma = sgn F0`` and
``x = kA sigma s t``, ``sigma F(t) = |F0| e^x / (1 + |F0| kA t expm1(x)/x)`` (``x <= 0``; divide
through by ``e^x`` for ``x > 0``). F never changes sign; F0 = 0 is a fixed point.

**Input variance and weight decay.** The mode is the width-one network ``F = u w`` trained with
equal rates ``eta = k A / 2`` on ``L = 1/2 v F^2 - s F + (gamma/2)(u^2 + w^2)`` (``v`` the input
variance, ``s`` the input-output covariance, ``gamma`` the weight decay), with ``B = (A/2)
|u^2 - w^2|``. Since ``u^2 + w^2 = sqrt((u^2 - w^2)^2 + 4 F^2)``,

    dF/dt = -k [(v F - s) sqrt(B^2 + A^2 F^2) + gamma A F],   d(u^2 - w^2)/dt = -k A gamma (u^2 - w^2).

*Variance (any B, gamma = 0)*: ``(v F - s) = v (F - s/v)``, so it is the plain mode with
``k -> k v``, ``s -> s/v`` (the fixed point is ``s/v``); time and rapidity likewise.
*Weight decay, B = 0 (balanced)*: ``sqrt(A^2 F^2) = A|F|`` and ``gamma A F = gamma A sgn(F) |F|``,
so ``dF/dt = -k A v |F| (F - (s - sgn(F) gamma)/v)``: Saxe's logistic law with ``k -> k v`` and the
shifted target ``s -> (s - sgn(F0) gamma)/v`` (F keeps its sign); ``F -> 0`` when
``sgn(F0) s <= gamma`` (the decay wins). In the two-layer notation ``a = b``, ``F = a b``,
``da/dt = b (s - v a b) - gamma a`` gives exactly this with ``k = 1``, ``A = 2``.
*Weight decay, B > 0*: not supported (ValueError). The imbalance is no longer conserved: it decays
like ``B e^{-k A gamma t}``, so the reduced equation for F is non-autonomous. (In ``P = (u+w)^2``,
``Q = (u-w)^2`` it is a Riccati equation ``dP/dt = c1 P + c2 P^2 + c3 e^{-2 k A gamma t}`` whose
linearisation is a modified Bessel equation of non-integer order; no elementary closed form, and
the Bessel functions of real order it would need are not available in JAX.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import (
    as_array,
    as_float,
    check_overflow,
    check_positive,
    float_dtype_of,
    is_concrete,
)

__all__ = ["mode", "mode_time", "mode_rapidity"]


def _prepare(t, F0, s, k, A, B, *, t_name="t", names=None, variance=None, weight_decay=None):
    """Validated ``t`` and parameters in their widest floating dtype.

    `names` maps the internal names (F0, s, k, A, B) to the caller's argument names for the
    error messages (e.g. ``lambda_balanced_mode`` calls ``F0`` `a0` and ``B`` `lam`).
    With `variance` ``v`` / `weight_decay` ``gamma`` given, the returned ``k`` and ``s`` are the
    effective ones of the equivalent plain mode (module docstring): ``k v`` and
    ``(s - sgn(F0) gamma) / v``.
    """
    names = {"F0": "F0", "s": "s", "k": "k", "A": "A", "B": "B", **(names or {})}
    dtype = float_dtype_of(t, F0, s, k, A, B, *(x for x in (variance, weight_decay) if x is not None))
    args = {
        name: as_float(value, names[name], dtype)
        for name, value in (("F0", F0), ("s", s), ("k", k), ("A", A), ("B", B))
    }
    check_positive(names["k"], args["k"])
    check_positive(names["A"], args["A"])
    check_positive(names["B"], args["B"], strict=False)
    t = check_times(t, t_name, dtype)
    if not _plain(variance, weight_decay):
        args = _effective(args, 1.0 if variance is None else variance,
                          0.0 if weight_decay is None else weight_decay, names, dtype, B)
    _check_range(args, names, dtype)
    return t, args


def _plain(variance, weight_decay) -> bool:
    """Defaults (checked on the raw inputs, so also under jit): the plain mode, unchanged."""
    return all(x is None or (is_concrete(x) and np.shape(x) == () and float(np.asarray(x)) == d)
               for x, d in ((variance, 1.0), (weight_decay, 0.0)))


def _effective(p, variance, weight_decay, names, dtype, raw_B):
    """``k -> k v``, ``s -> (s - sgn(F0) gamma)/v``; weight decay only where ``B = 0``."""
    v = as_float(variance, "variance", dtype)
    check_positive("variance", v)
    no_decay = is_concrete(weight_decay) and bool(np.all(np.asarray(weight_decay) == 0))
    gamma = as_float(weight_decay, "weight_decay", dtype)
    check_positive("weight_decay", gamma, strict=False)
    try:
        np.broadcast_shapes(*(np.shape(x) for x in (*p.values(), v, gamma)))
    except ValueError:
        raise ValueError(
            "`variance` and `weight_decay` must broadcast against the other parameters; got "
            f"shapes {np.shape(v)} and {np.shape(gamma)}."
        ) from None
    if not no_decay:
        B = raw_B if is_concrete(raw_B) else p["B"]  # a Python/NumPy B stays concrete under jit
        if not is_concrete(B):
            raise ValueError(
                f"`weight_decay` > 0 needs a concrete `{names['B']}` = 0: with B > 0 the mode has no "
                "closed form under weight decay (the imbalance B decays, the reduced ODE is "
                "non-autonomous), so B must be checkable."
            )
        bad = np.asarray(B) > 0
        if is_concrete(weight_decay):
            bad = bad & (np.asarray(weight_decay) > 0)
        if bool(np.any(bad)):
            raise ValueError(
                f"`weight_decay` > 0 is only supported with `{names['B']}` = 0 (balanced mode): "
                "with B > 0 the imbalance is not conserved under weight decay (it decays like "
                "exp(-k A gamma t)), the reduced ODE is non-autonomous and has no elementary "
                "closed form."
            )
    sigma = jnp.where(p["F0"] >= 0, 1.0, -1.0).astype(dtype)
    return {**p, "k": p["k"] * v, "s": (p["s"] - sigma * gamma) / v}


def check_times(t, name, dtype):
    """Times as `dtype`: real, >= 0 and not NaN (``inf`` allowed), checked when concrete."""
    t = as_array(t, name)
    if t.dtype == jnp.bool_ or not jnp.issubdtype(t.dtype, jnp.number) or jnp.issubdtype(
        t.dtype, jnp.complexfloating
    ):
        raise ValueError(f"`{name}` must be real times >= 0; got dtype {t.dtype}.")
    t = t.astype(dtype)
    if is_concrete(t) and bool(np.any(np.isnan(np.asarray(t)) | (np.asarray(t) < 0))):
        raise ValueError(f"`{name}` must be non-negative (inf allowed); got {t}.")
    return t


def _check_range(p, names, dtype):
    """The rates ``G = sqrt(B^2 + A^2 F^2)`` (F between F0 and s) and ``k G(s)`` must be finite."""
    if not is_concrete(tuple(p.values())):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        F0, s, k, A, B = (np.asarray(p[n], dtype) for n in ("F0", "s", "k", "A", "B"))
        n = names
        check_overflow(f"`{n['B']}` is too large for {dtype}: B^2 overflows (max {np.max(B):.3g}).", B * B)
        check_overflow(
            f"`{n['A']}` and `{n['F0']}` are too large for {dtype}: (A F0)^2 overflows.", (A * F0) ** 2
        )
        check_overflow(
            f"`{n['A']}` and `{n['s']}` are too large for {dtype}: (A s)^2 overflows.", (A * s) ** 2
        )
        G = np.sqrt(B * B + (A * s) ** 2 + (A * F0) ** 2)
        check_overflow(
            f"`{n['k']}` is too large for {dtype}: the rate k sqrt(B^2 + A^2 max(F0^2, s^2)) "
            "overflows.", k * G, k * A,
        )


def _split(F, A, B):
    """``(zeta, 1 - zeta, 1 + zeta)`` at F, without cancellation."""
    G = jnp.sqrt(B * B + A * A * F * F)
    AF = A * F
    # G - AF and G + AF, one of which is small when B << A|F|: use G^2 - A^2 F^2 = B^2.
    g_minus = jnp.where(AF > 0, B * B / (G + AF), G - AF)
    g_plus = jnp.where(AF < 0, B * B / (G - AF), G + AF)
    denom = B + G
    return AF / denom, (B + g_minus) / denom, (B + g_plus) / denom


def _D(z, pz, qz, zs, ps, qs):
    """``(zeta - zeta_+) / (1 + zeta zeta_+)``, both parts formed without cancellation."""
    num = jnp.where(zs >= 0, ps - pz, qz - qs)
    a = jnp.where(z >= 0, pz, qz)  # 1 - |zeta|
    b = jnp.where(zs >= 0, ps, qs)  # 1 - |zeta_+|
    den = jnp.where(z * zs < 0, a + b - a * b, 1 + z * zs)
    return num / den


def _general(t, F0, s, k, A, B):
    """B > 0 branch; returns ``(F, rapidity)``. `B` must be positive (callers make it safe)."""
    zs, ps, qs = _split(s, A, B)
    z0, p0, q0 = _split(F0, A, B)
    D = _D(z0, p0, q0, zs, ps, qs)
    gamma = k * jnp.sqrt(B * B + A * A * s * s)
    De = D * jnp.exp(-gamma * t)
    lo, hi = ps - De * qs, qs + De * ps
    F = (2 * B / A) * (zs + De) * (1 - zs * De) / (lo * hi)
    rapidity = jnp.log(hi * p0 / (lo * q0))
    return F, rapidity


def _logistic(t, F0, s, k, A):
    """B = 0 branch; returns ``(F, rapidity)`` with rapidity ``sgn(F0) ln(F/F0)``.

    ``|F| = |F0| / (e^{-x} + |F0| (1 - e^{-x}) / s')`` for ``x = kA s' t >= 0`` and
    ``|F| = |F0| e^x / (1 + |F0| (e^x - 1) / s')`` for ``x < 0`` (``s' = sgn(F0) s``; ``kAt`` for the
    quotient when ``s' = 0``). Each exponential is clamped to its own side, so the unused half of
    every ``where`` stays finite and gradients stay clean.
    """
    sigma = jnp.where(F0 >= 0, 1.0, -1.0).astype(F0.dtype)
    a0, ss = jnp.abs(F0), sigma * s
    x = k * A * ss * t
    x_pos, x_neg = jnp.where(x >= 0, x, 0.0), jnp.where(x < 0, x, 0.0)  # no tie gradient at 0
    # (1 - e^-x)/s' and (e^x - 1)/s' as kAt (1 -+ x/2 + x^2/6 -+ ...) near x = 0, so that values
    # and derivatives (in s too) are right at and around s = 0.
    small = jnp.abs(x) < 1e-3
    xs = jnp.where(small, x, 0.0)
    ss_safe = jnp.where(small, 1.0, ss)
    kat = k * A * t
    series_pos = 1 - xs / 2 + xs**2 / 6 - xs**3 / 24
    series_neg = 1 + xs / 2 + xs**2 / 6 + xs**3 / 24
    growth_pos = jnp.where(small, a0 * kat * series_pos, a0 * (-jnp.expm1(-x_pos)) / ss_safe)
    growth_neg = jnp.where(small, a0 * kat * series_neg, a0 * jnp.expm1(x_neg) / ss_safe)
    a_pos = a0 / (jnp.exp(-x_pos) + growth_pos)
    a_neg = a0 * jnp.exp(x_neg) / (1 + growth_neg)
    a = jnp.where(x >= 0, a_pos, a_neg)
    a = jnp.where(a0 == 0, 0.0, a)
    safe0 = jnp.where(a0 == 0, 1.0, a0)
    safe_a = jnp.where((a0 == 0) | (a <= 0), 1.0, a)
    rapidity = jnp.where(a0 == 0, 0.0, sigma * jnp.log(safe_a / safe0))
    rapidity = jnp.where((a0 != 0) & (a <= 0), -sigma * jnp.inf, rapidity)
    return sigma * a, rapidity


def _solve(t, F0, s, k, A, B):
    shape = jnp.broadcast_shapes(t.shape, F0.shape, s.shape, k.shape, A.shape, B.shape)
    t, F0, s, k, A, B = (jnp.broadcast_to(x, shape) for x in (t, F0, s, k, A, B))
    finite_t = jnp.where(jnp.isinf(t), 0.0, t)
    B_safe = jnp.where(B > 0, B, 1.0)
    # Each branch sees harmless inputs where it is not selected (clean values and gradients).
    Fg, rg = _general(jnp.where(B > 0, finite_t, 0.0), F0, s, k, A, B_safe)
    Fl, rl = _logistic(jnp.where(B > 0, 0.0, finite_t), F0, s, k, A)
    F = jnp.where(B > 0, Fg, Fl)
    rap = jnp.where(B > 0, rg, rl)
    # Exact limits: t = 0 is the initial condition; t = inf the attracting fixed point.
    same_sign = (jnp.sign(F0) == jnp.sign(s)) & (F0 != 0)  # no underflow of F0 * s
    F_inf = jnp.where((B > 0) | same_sign, s, 0.0)
    # t = 0 gives F0 exactly, while the derivative still comes from the closed form.
    F = jnp.where(t == 0, F0 + (F - jax.lax.stop_gradient(F)), jnp.where(jnp.isinf(t), F_inf, F))
    rap = jnp.where(t == 0, 0.0, rap)
    return F, rap, jnp.isinf(t)


def mode(
    t: Float[ArrayLike, "*times"], *, F0, s, k, A, B, variance=1.0, weight_decay=0.0
) -> Float[Array, "*times"]:
    r"""Solution ``F(t)`` of ``dF/dt = -k (F - s) sqrt(B^2 + A^2 F^2)`` with ``F(0) = F0``.

    With input variance ``v`` = `variance` and weight decay ``gamma`` = `weight_decay` it solves
    ``dF/dt = -k [(v F - s) sqrt(B^2 + A^2 F^2) + gamma A F]`` (module docstring, "Input variance
    and weight decay"): ``k v`` and ``s / v`` for any B; ``gamma > 0`` only with ``B = 0``, where it
    is the logistic law with target ``(s - sgn(F0) gamma) / v`` (ValueError for B > 0: no closed
    form).

    All signs of ``F0`` and ``s`` (including F crossing zero, ``|F0| > |s|``, ``s = 0``), ``B = 0``
    (logistic) and the lazy limit ``B >> A|s|`` (``F ~ s + (F0 - s) e^{-kBt}``). ``t = 0`` gives F0
    exactly and ``t = inf`` the fixed point (``s``, or 0 when B = 0 and ``F0 s <= 0``).
    Inputs broadcast against each other (times, parameters); works under jit, vmap and grad.

    **Arguments:** `t` times >= 0 (any shape); `F0`, `s` real; `k > 0`, `A > 0`, `B >= 0`;
    `variance > 0`; `weight_decay >= 0` (nonzero only where ``B = 0``; B must then be concrete); all
    finite, promoted to their widest floating dtype. Concrete inputs whose rates overflow the dtype
    (``B^2``, ``(A F0)^2``, ``(A s)^2`` or ``k sqrt(B^2 + A^2 s^2)`` not finite) raise ValueError.

    **Returns:** ``F(t)`` with the broadcast shape of the inputs.

    References: Braun et al. (2022), Dominé et al. (2024) for B > 0; Saxe, McClelland & Ganguli
    (2014) for B = 0.
    """
    t, p = _prepare(t, F0, s, k, A, B, variance=variance, weight_decay=weight_decay)
    return _solve(t, **p)[0]


def mode_rapidity(t, *, F0, s, k, A, B, variance=1.0, weight_decay=0.0) -> Float[Array, "*times"]:
    """``theta(t) - theta(0)`` with ``F = (B/A) sinh theta`` (for B = 0: ``sgn(F0) ln(F/F0)``).

    In the width-d one-dimensional network this is twice the hyperbolic rotation angle ``phi``.
    At ``t = inf`` it is the limit value (``+-inf`` only when B = 0 and F tends to 0).
    `variance` and `weight_decay` as in :func:`mode`.
    """
    t, p = _prepare(t, F0, s, k, A, B, variance=variance, weight_decay=weight_decay)
    F, rap, at_inf = _solve(t, **p)
    B = jnp.broadcast_to(p["B"], F.shape)
    A = jnp.broadcast_to(p["A"], F.shape)
    F0 = jnp.broadcast_to(p["F0"], F.shape)
    B_safe = jnp.where(B > 0, B, 1.0)
    sign0 = jnp.where(F0 >= 0, 1.0, -1.0).astype(F.dtype)
    safe0 = jnp.where(F0 == 0, 1.0, F0)
    lim = jnp.where(
        B > 0,
        jnp.arcsinh(A * F / B_safe) - jnp.arcsinh(A * F0 / B_safe),
        jnp.where(F0 == 0, 0.0, sign0 * jnp.log(jnp.abs(F / safe0))),
    )
    return jnp.where(at_inf, lim, rap)


def mode_time(F0, F1, *, s, k, A, B, variance=1.0, weight_decay=0.0) -> Float[Array, ...]:
    """Exact time for the mode to go from ``F0`` to ``F1``.

    ``t = ln(D(F0)/D(F1)) / (k G(s))`` for B > 0 (Sec. 1); for B = 0 the logistic time
    ``ln[F1 (s - F0) / (F0 (s - F1))] / (kAs)`` (``(1/|F1| - 1/|F0|)/(kA)`` when s = 0).
    Returns ``inf`` when ``F1`` is not reached in finite time (it is the fixed point, lies beyond
    it, or lies behind ``F0``). `variance` and `weight_decay` as in :func:`mode` (the formulas
    with ``k v`` and ``(s - sgn(F0) gamma)/v`` in place of ``k`` and ``s``).
    """
    dtype = float_dtype_of(F0, F1, s, k, A, B, variance, weight_decay)
    _, p = _prepare(jnp.zeros((), dtype), F0, s, k, A, B, variance=variance,
                    weight_decay=weight_decay)
    F0, s, k, A, B = p["F0"], p["s"], p["k"], p["A"], p["B"]
    F1 = as_float(F1, "F1", F0.dtype)
    shape = jnp.broadcast_shapes(F0.shape, F1.shape, s.shape, k.shape, A.shape, B.shape)
    F0, F1, s, k, A, B = (jnp.broadcast_to(x, shape) for x in (F0, F1, s, k, A, B))
    # General branch.
    B_safe = jnp.where(B > 0, B, 1.0)
    zs, ps, qs = _split(s, A, B_safe)
    D0 = _D(*_split(F0, A, B_safe), zs, ps, qs)
    D1 = _D(*_split(F1, A, B_safe), zs, ps, qs)
    gamma = k * jnp.sqrt(B_safe**2 + A * A * s * s)
    ratio = jnp.where(D1 == 0, 0.0, D0 / jnp.where(D1 == 0, 1.0, D1))
    t_gen = jnp.where(ratio >= 1, jnp.log(jnp.where(ratio >= 1, ratio, 1.0)) / gamma, jnp.inf)
    # Logistic branch (B = 0): F keeps its sign; |F| moves monotonically toward max(sigma s, 0).
    sigma = jnp.where(F0 >= 0, 1.0, -1.0).astype(F0.dtype)
    a0, a1, ss = jnp.abs(F0), sigma * F1, sigma * s
    target = jnp.maximum(ss, 0.0)
    between = ((a1 - a0) * (target - a1) >= 0) & (a1 != target) & (a1 > 0) & (a0 > 0)
    ss_safe = jnp.where(ss == 0, 1.0, ss)
    a0s, a1s = jnp.where(between, a0, 1.0), jnp.where(between, a1, 0.5)
    log_t = jnp.log(a1s * (ss_safe - a0s) / (a0s * (ss_safe - a1s))) / (k * A * ss_safe)
    harmonic = (1 / a1s - 1 / a0s) / (k * A)
    t_log = jnp.where(between, jnp.where(ss == 0, harmonic, log_t), jnp.inf)
    t_log = jnp.where(between & (a0 == a1), 0.0, t_log)
    out = jnp.where(B > 0, t_gen, t_log)
    return jnp.where(F1 == F0, 0.0, out)
