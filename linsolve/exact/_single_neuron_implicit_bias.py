r"""The limit of the single neuron ``f(x) = a w.x`` on singular inputs (Kunin et al. 2024).

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

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import as_float, as_scalar, check_overflow, float_dtype_of, is_concrete
from ..tasks import Task
from ._single_neuron import _exponents, _solve

__all__ = ["single_neuron_implicit_bias", "single_neuron_potential"]


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
