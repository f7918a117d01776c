r"""Full matrices of balanced, decoupled deep linear networks (Saxe, McClelland & Ganguli 2014).

``W_L...W_1(t) = U diag(u_alpha(t)) V^T`` with every mode from :func:`~linsolve.exact.saxe_mode`
(inputs aligned with the modes, ``Sxx V = V diag(lam)``: Saxe et al. 2019 PNAS; weight decay:
Ziyin, Li & Meng 2022, arXiv:2202.04777).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import check_against_task, is_concrete, validate_params
from ..models import end_to_end
from ..tasks import Task
from ._saxe import saxe_mode

__all__ = ["saxe_product", "saxe_decomposition"]


def _default_rtol(dtype) -> float:
    return float(np.sqrt(np.finfo(dtype).eps))


@jax.jit
def _measure(params0, task):
    """Singular triple, strengths and the three violations (one compiled call)."""
    dtype = params0[0].dtype
    U, s, Vt = (x.astype(dtype) for x in task.svd())
    P0 = end_to_end(params0)
    u0 = jnp.einsum("or,oi,ri->r", U, P0, Vt)
    # Strengths at rounding level (an init that put nothing on the mode) are exactly zero.
    u0 = jnp.where(jnp.abs(u0) <= 16 * jnp.finfo(dtype).eps * jnp.max(jnp.abs(u0)), 0.0, u0)
    gscale = jnp.max(jnp.stack([jnp.max(jnp.abs(W @ W.T)) for W in params0]))
    gscale = jnp.where(gscale > 0, gscale, 1.0)
    balance = jnp.stack(
        [jnp.max(jnp.abs(Wn.T @ Wn - W @ W.T)) for W, Wn in zip(params0[:-1], params0[1:])]
        or [jnp.zeros((), dtype)]
    ) / gscale
    pscale = jnp.max(jnp.abs(P0))
    coupling = jnp.max(jnp.abs(P0 - (U * u0) @ Vt)) / jnp.where(pscale > 0, pscale, 1.0)
    # Input variances along the modes, and how far Sxx is from V diag(lam) V^T on those modes.
    Sxx = task.Sxx.astype(dtype)
    lam = jnp.einsum("ri,ij,rj->r", Vt, Sxx, Vt)
    xscale = jnp.max(jnp.abs(Sxx))
    aligned = jnp.max(jnp.abs(Sxx @ Vt.T - Vt.T * lam)) / jnp.where(xscale > 0, xscale, 1.0)
    return U, s, Vt, u0, lam, task.whitening_error(), aligned, balance, coupling


def saxe_decomposition(params0, task: Task, *, rtol: float | None = None):
    """``(U, s, Vt, u0)``: task singular vectors/values and the initial mode strengths.

    ``u0 = diag(U^T P0 V)`` with ``P0 = W_L...W_1``; strengths below ``16 eps max|u0|`` (rounding
    noise of an init that put nothing on a mode) are set to exactly 0. Raises ``ValueError``
    (when the inputs are concrete) if ``task.Sxx`` is not aligned with the modes
    (``Sxx V != V diag(lam)``, ``lam = diag(V^T Sxx V)``; Saxe et al. 2019), if
    ``P0 != U diag(u0) V^T`` (not decoupled/aligned with the task's singular vectors as
    ``task.svd()`` returns them) or if the layers are not balanced
    (``W_{l+1}^T W_{l+1} != W_l W_l^T``), each beyond the relative tolerance `rtol` (default
    ``sqrt(eps)`` of the dtype), and names the measured violation. For repeated singular values
    the basis is the one ``task.svd()`` picks; an init aligned with another basis of a degenerate
    block is reported as not decoupled.
    """
    return _decompose(params0, task, rtol=rtol)[:4]


def _decompose(params0, task: Task, *, rtol: float | None = None):
    """``(U, s, Vt, u0, lam)``: :func:`saxe_decomposition` plus the input variances of the modes.

    ``lam_alpha = v_alpha^T Sxx v_alpha`` (also for modes with ``s_alpha = 0``); the Python float
    1.0 when the inputs are checked to be whitened within `rtol` (the whitened closed forms), the
    measured (r,) array otherwise (also under jit, where nothing can be checked).
    """
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    params0 = validate_params(params0, "params0", task.dtype)
    check_against_task(params0, task, "params0")
    if rtol is not None and not (np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"`rtol` must be a finite number >= 0 or None; got {rtol!r}.")
    tol = _default_rtol(params0[0].dtype) if rtol is None else float(rtol)
    U, s, Vt, u0, lam, white, aligned, balance, coupling = _measure(params0, task)
    if is_concrete((params0, task)):
        if float(aligned) > tol:
            raise ValueError(
                f"`task` must have inputs aligned with the modes for the Saxe solution "
                f"(Sxx V = V diag(lam), V the right singular vectors of Syx); got a residual of "
                f"{float(aligned):.3g} (relative) > rtol = {tol:.3g}. For a general Sxx "
                f"integrate the flow with linsolve.simulate.gradient_flow."
            )
        if float(white) <= tol:
            lam = 1.0
        for l, viol in enumerate(np.asarray(balance).tolist()):
            if viol > tol:
                raise ValueError(
                    f"`params0` must be balanced (W_{{l+1}}^T W_{{l+1}} = W_l W_l^T); layers "
                    f"{l + 1},{l + 2} violate it by {viol:.3g} (relative) > rtol = {tol:.3g}."
                )
        if float(coupling) > tol:
            raise ValueError(
                f"`params0` must be decoupled: W_L...W_1 = U diag(u0) V^T with U, V the singular "
                f"vectors of task.Syx (task.svd()); got a residual of {float(coupling):.3g} "
                f"(relative) > rtol = {tol:.3g}."
            )
    return U, s, Vt, u0, lam


def saxe_product(
    t: Float[ArrayLike, "*times"], params0, task: Task, *, tau=1.0, weight_decay=0.0,
    rtol: float | None = None,
) -> Float[Array, "*times d_out d_in"]:
    r"""End-to-end map ``W_L...W_1(t) = U diag(u_alpha(t)) V^T`` from a balanced, decoupled init.

    Gradient flow ``tau dW_l/dt = -dL/dW_l`` on ``L = 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx
    P^T) + (gamma/2) sum_l ||W_l||_F^2`` with ``Syx = U diag(s) V^T`` and inputs aligned with the
    modes, ``Sxx V = V diag(lam)`` (whitened ``Sxx = I`` is ``lam = 1``), keeps a balanced,
    task-aligned net decoupled (decay shrinks every ``W_{l+1}^T W_{l+1} - W_l W_l^T``); every
    mode follows :func:`saxe_mode`, ``tau du/dt = L [|u|^{2-2/L} (s - lam u) - gamma u]``, with
    ``depth = L``, ``s = s_alpha``, ``variance = lam_alpha = v_alpha^T Sxx v_alpha`` and
    ``u0 = u_alpha(0)`` read off ``params0`` (modes with ``s_alpha = 0`` decay, modes with
    ``u_alpha(0) = 0`` stay at 0). Build such inits with :func:`linsolve.init.aligned`.

    **Arguments:**

    - `t`: times >= 0, any shape.
    - `params0`: ``(W1, ..., WL)``, balanced and decoupled (checked; ``ValueError`` otherwise).
    - `task`: a :class:`~linsolve.Task` with ``Sxx`` aligned as above (checked; a general
      ``Sxx`` raises ``ValueError``: use :func:`linsolve.simulate.gradient_flow`).
    - `tau`: time constant ``1/eta`` > 0; `weight_decay`: scalar ``gamma >= 0`` (with
      ``L >= 3`` and ``gamma > 0``: concrete inputs, see :func:`saxe_mode`); `rtol`: tolerance of
      the checks (default sqrt(eps)).

    **Returns:** ``(*t.shape, d_out, d_in)`` end-to-end maps.

    References: Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Saxe, McClelland & Ganguli
    (2019), PNAS 116(23) (anisotropic inputs); Ziyin, Li & Meng (2022), arXiv:2202.04777 (decay).
    """
    if np.ndim(tau) != 0:
        raise ValueError(f"`tau` must be a scalar time constant; got shape {np.shape(tau)}.")
    if np.ndim(weight_decay) != 0:
        raise ValueError(f"`weight_decay` must be a scalar; got shape {np.shape(weight_decay)}.")
    U, s, Vt, u0, lam = _decompose(params0, task, rtol=rtol)
    dtype = u0.dtype
    t = jnp.asarray(t).astype(dtype)
    u = saxe_mode(t[..., None], s=s, u0=u0, tau=jnp.asarray(tau).astype(dtype), depth=len(params0),
                  variance=lam, weight_decay=weight_decay)
    return jnp.einsum("or,...r,ri->...oi", U, u, Vt)
