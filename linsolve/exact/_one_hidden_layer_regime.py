r"""Phase diagram of the width-d one-dimensional network ``f(x) = kappa (u . w) x`` (Xu & Ziyin).

The phase ratios ``r = A|s|/B``, ``r0 = A|F0|/B`` (:func:`phase_ratio`), the learning mechanism read
off the exact solution's end points (:func:`regime`) and the width exponent of ``r`` for random
initialisation (:func:`width_exponent`); the solution itself is ``exact._one_hidden_layer``.

Reference: Y. Xu & L. Ziyin, "Three Mechanisms of Feature Learning in a Linear Network",
ICLR 2025 (arXiv 2401.07085).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._validate import as_float, as_scalar, float_dtype_of, is_concrete
from ._one_hidden_layer import _Init, _invariants, _validate

__all__ = ["MECHANISMS", "PhaseRatio", "Regime", "phase_ratio", "regime", "width_exponent"]

MECHANISMS = ("kernel", "alignment", "disalignment", "rescaling")


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

