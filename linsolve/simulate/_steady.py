"""When may gradient flow stop early? A steady-state test that never fires at a saddle.

Small initialisations start next to the saddle at the origin, where the gradient is as small as at
a minimum; a test on the gradient alone would stop there. For a deep linear net every critical point
is either a global minimum or a saddle at which the end-to-end map has learned a subset of the
task's modes (Baldi & Hornik 1989, Neural Networks 2:53; Kawaguchi 2016, NeurIPS), so the loss at a
saddle exceeds the rank-limited minimum by at least half the squared strength of a missing mode.
The test therefore asks for both

1. a small vector field, ``|f|_rms <= rtol |W|_rms + atol`` (the remaining motion is then about
   ``|f| / lambda`` for the slowest relaxation rate ``lambda``), and
2. a loss within an eighth of the smallest saddle gap of its rank-limited minimum: with the
   whitened task ``M = Syx Sxx^{+1/2}`` of singular values ``sigma_1 >= sigma_2 >= ...`` and
   ``r`` the narrowest layer, ``L - L_r <= sigma_k^2 / 8`` where ``L_r = L_* + 1/2 sum_{i>r}
   sigma_i^2`` (Eckart-Young) and ``sigma_k`` is the weakest of the top ``r`` modes that the dtype
   can resolve (``sigma_k > sqrt(eps) sigma_1``).

The excess ``L - L_*`` is computed without cancellation as ``1/2 tr(R Sxx^+ R^T)``, ``R = P Sxx -
Syx``. Networks (ShallowNet, MLP) have no such certificate: their flow runs to the last save time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..models import loss_and_gradients

__all__ = ["steady_state_test"]


def _rms(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    total = sum(jnp.sum(x * x) for x in leaves)
    size = sum(x.size for x in leaves)
    return jnp.sqrt(total / size)


def _whitened(task, dtype):
    """``(Sxx^+, singular values of Syx Sxx^{+1/2})`` with eigenvalues below the dtype's noise cut."""
    e, V = jnp.linalg.eigh(task.Sxx)
    keep = e > jnp.finfo(dtype).eps * e.shape[0] * jnp.max(jnp.abs(e))
    inv = jnp.where(keep, 1 / jnp.where(keep, e, 1), 0)
    pinv = (V * inv) @ V.T
    isqrt = (V * jnp.sqrt(inv)) @ V.T
    sigma = jnp.linalg.svd(task.Syx @ isqrt, compute_uv=False)
    return pinv, sigma


def steady_state_test(params0: tuple, task, kappa, rates, rtol: float, atol: float):
    """A diffrax ``Event`` condition ``(t, y, args, **kwargs) -> bool`` for a deep linear net.

    **Arguments:**

    - `params0`: tuple ``(W1, ..., WL)`` (only the shapes are used: the narrowest layer).
    - `task`, `kappa`: the task and output scale of the flow.
    - `rates`: per-layer rates as a tuple like ``params0`` (the vector field is ``-rate * grad``).
    - `rtol`, `atol`: the vector-field test ``|f|_rms <= rtol |W|_rms + atol``.

    **Returns:** the condition; True once both the vector field is small and the loss lies below
    every saddle's (see the module docstring).
    """
    dtype = params0[0].dtype
    eps = jnp.finfo(dtype).eps
    rank = min([params0[0].shape[1]] + [W.shape[0] for W in params0])
    pinv, sigma = _whitened(task, dtype)
    top = sigma[:rank]
    resolvable = top > jnp.sqrt(eps) * sigma[0]
    weakest = jnp.min(jnp.where(resolvable, top, jnp.inf))
    total = jnp.sum(sigma**2)
    tail = 0.5 * (total - jnp.sum(top**2))
    floor = 16 * eps * 0.5 * jnp.maximum(total, jnp.trace(task.Syy))
    gate = jnp.maximum(jnp.where(jnp.isfinite(weakest), weakest**2 / 8, 0.0), floor)

    def cond(t, y, args, **kwargs):
        del t, args, kwargs
        _, grads = loss_and_gradients(y, task, kappa)
        f = tuple(r * g for r, g in zip(rates, grads))
        small = _rms(f) <= rtol * _rms(y) + atol
        P = kappa * _chain(y)
        R = P @ task.Sxx - task.Syx
        excess = 0.5 * jnp.sum((R @ pinv) * R) - tail
        return small & (excess <= gate)

    return cond


def _chain(params):
    out = params[0]
    for W in params[1:]:
        out = W @ out
    return out
