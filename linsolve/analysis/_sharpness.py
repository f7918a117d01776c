"""Sharpness: the top eigenvalue of the loss Hessian, by Lanczos on Hessian-vector products.

Gradient descent ``theta <- theta - eta grad R(theta)`` on the quadratic model of ``R`` at a
minimum is stable iff every Hessian eigenvalue lies in ``[0, 2/eta]``, so the *sharpness*

    S(theta) = lambda_max(H(theta)),    H = d^2 R / d theta^2,

compared with ``2/eta`` says whether a step size can settle there. Cohen et al. 2021 (arXiv
2103.00065) found that full-batch GD raises ``S`` during training (*progressive sharpening*)
until ``S ~ 2/eta`` and then hovers there while the loss keeps falling non-monotonically (the
*edge of stability*).

``S`` is computed without forming ``H``: the parameters (any PyTree) are flattened to ``theta``
(length P), ``H v = d/de grad R(theta + e v)`` is the forward-over-reverse product of
:func:`~linsolve.analysis.hvp`, and ``k`` steps of :func:`~linsolve.analysis.lanczos` (full
reorthogonalisation) from a Gaussian start vector give the tridiagonal ``T_k``; its largest
eigenvalue (the top Ritz value) converges to ``lambda_max`` from below, typically to machine
precision in 20 steps when the top eigenvalue is an outlier (``k = P`` is exact). Everything is
traceable: :func:`sharpness` runs under ``jit``, ``vmap`` and inside ``lax.scan``, e.g. as the
``observe`` callback of :func:`~linsolve.simulate.gradient_descent` built by
:func:`sharpness_observer`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._validate import as_scalar, check_key, check_size
from ..models import loss
from ..tasks import Task
from ._hessian import _flat_loss, _hashable, hvp, lanczos

__all__ = [
    "HessianExtremes",
    "sharpness",
    "hessian_extremes",
    "training_loss",
    "sharpness_observer",
]


class HessianExtremes(NamedTuple):
    """The extreme Ritz pairs of a Lanczos run on the Hessian (a PyTree: works under ``vmap``).

    **Fields:**

    - `largest`: () top Ritz value, the sharpness ``lambda_max`` (from below).
    - `smallest`: () bottom Ritz value, ``lambda_min`` (from above).
    - `direction`: unit top Ritz vector, a PyTree like the parameters.
    - `residual`: () ``|H v - largest v|_2`` for that vector: a bound on the distance from
      `largest` to an eigenvalue of ``H`` (small: converged).
    """

    largest: Float[Array, ""]
    smallest: Float[Array, ""]
    direction: object
    residual: Float[Array, ""]


def _check(loss_fn, params, k, key):
    """Validated ``(steps, key)``: ``k`` clipped to the number of parameters P."""
    if not callable(loss_fn):
        raise ValueError(f"`loss_fn` must be a callable params -> scalar; got {loss_fn!r}.")
    steps = check_size("k", k)
    key = jr.PRNGKey(0) if key is None else check_key(key)
    flat, _, _ = _flat_loss(loss_fn, params)
    return min(steps, flat.shape[0]), key


def _tridiagonal(alpha, beta):
    return jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)


def _ritz(loss_fn, params, key, k):
    """``(ritz values (k,) ascending, Ritz vectors (P, k), unravel, matvec)``."""
    flat, unravel = ravel_pytree(params)
    matvec = lambda v: ravel_pytree(hvp(loss_fn, params, unravel(v)))[0]
    draws = jr.normal(key, (k + 1, flat.shape[0]), flat.dtype)
    alpha, beta, V = lanczos(matvec, draws[0], k, restarts=draws[1:])
    values, Y = jnp.linalg.eigh(_tridiagonal(alpha, beta))
    return values, V.T @ Y, unravel, matvec


@functools.partial(jax.jit, static_argnums=(0, 3))
def _sharpness(loss_fn, params, key, k):
    return _ritz(loss_fn, params, key, k)[0][-1]


@functools.partial(jax.jit, static_argnums=(0, 3))
def _extremes(loss_fn, params, key, k):
    values, vectors, unravel, matvec = _ritz(loss_fn, params, key, k)
    v = vectors[:, -1] / jnp.linalg.norm(vectors[:, -1])
    residual = jnp.linalg.norm(matvec(v) - values[-1] * v)
    return HessianExtremes(values[-1], values[0], unravel(v), residual)


def sharpness(loss_fn, params, *, k: int = 20, key=None) -> Float[Array, ""]:
    """The sharpness ``S = lambda_max(d^2 loss_fn / d theta^2)`` at `params`, by Lanczos on HVPs.

    ``H v = d/de grad R(theta + e v)`` (forward-over-reverse) on the flattened parameters
    ``theta`` (length P); ``min(k, P)`` Lanczos steps with full reorthogonalisation from the
    Gaussian start vector drawn with `key`; ``S`` is the largest eigenvalue of the tridiagonal
    ``T_k = V_k^T H V_k`` (exact for ``k >= P``, else a lower bound converging fast when the top
    eigenvalue is separated). Jittable and vmappable (no host calls, `k` static), so it runs
    inside ``lax.scan``; gradient descent with step ``eta`` is linearly stable at a minimum iff
    ``S <= 2/eta``.

    **Arguments:**

    - `loss_fn`: ``params -> scalar`` loss (e.g. :func:`training_loss`).
    - `params`: the point, any PyTree of floating arrays (a deep linear tuple, a Network, ...).
    - `k`: Lanczos steps, a positive integer (static), clipped to P; default 20.
    - `key`: PRNG key of the start vector (and of the restart vectors after a breakdown);
      default the fixed ``PRNGKey(0)``, so repeated calls agree.

    **Returns:** () the top Ritz value, in the parameters' dtype. A non-finite loss gives a
    non-finite value (gradient descent freezes diverged runs at their last finite parameters).

    **References:** Cohen, Kaur, Li, Kolter & Talwalkar 2021, "Gradient descent on neural networks
    typically occurs at the edge of stability", arXiv 2103.00065; Lanczos 1950; Pearlmutter 1994.
    """
    k, key = _check(loss_fn, params, k, key)
    return _sharpness(_hashable(loss_fn), params, key, k)


def hessian_extremes(loss_fn, params, *, k: int = 20, key=None) -> HessianExtremes:
    """The top and bottom Ritz values of the Hessian, the top direction and its residual.

    Same Lanczos run as :func:`sharpness` (same `k`, `key`, so ``largest == sharpness(...)``);
    the top Ritz vector ``v = V_k^T y_max`` (unit) comes back as a PyTree like `params`, with the
    residual ``|H v - lambda v|_2`` (one more HVP) that bounds the error of ``lambda``. Jittable
    and vmappable.

    **Arguments:** as :func:`sharpness`.

    **Returns:** a :class:`HessianExtremes`.
    """
    k, key = _check(loss_fn, params, k, key)
    return _extremes(_hashable(loss_fn), params, key, k)


def _sum_squares(params):
    leaves = jax.tree_util.tree_leaves(params)
    floating = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)]
    return sum(jnp.sum(x * x) for x in floating)


def training_loss(task: Task, *, output_scale=1.0, weight_decay=0.0):
    """The objective :func:`~linsolve.simulate.gradient_descent` descends, as ``params -> scalar``:

        R(params) = loss(params, task, kappa) + (gamma / 2) sum_leaves |W|_F^2,

    the full-batch loss (covariance form for a deep linear tuple, mean ``1/2 |kappa f(x) - y|^2``
    over the task's data for a Network) plus the weight-decay penalty on every floating leaf
    (biases included), exactly as the simulator adds ``gamma W`` to each gradient.

    **Arguments:** `task` a :class:`~linsolve.Task`; `output_scale` kappa > 0; `weight_decay`
    gamma >= 0 (the same values given to the simulator).

    **Returns:** the function ``params -> ()``.
    """
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    kappa = as_scalar("output_scale", output_scale, task.dtype)
    gamma = as_scalar("weight_decay", weight_decay, task.dtype, strict=False)

    def objective(params):
        return loss(params, task, kappa) + 0.5 * gamma * _sum_squares(params)

    return objective


def sharpness_observer(loss_fn, *, k: int = 20, key=None, output_scale=None, weight_decay=None):
    """An ``observe`` callback for :func:`~linsolve.simulate.gradient_descent` recording sharpness.

    ``observe(params) = {"sharpness": sharpness(R, params, k=k, key=key)}`` at every record. Pass
    the Task of the run (with the run's `output_scale` and `weight_decay`) and ``R`` is
    :func:`training_loss`, the objective the simulator descends, so that the recorded sharpness
    compares with ``2/lr``; or pass any ``params -> scalar`` callable as ``R``.

    **Arguments:**

    - `loss_fn`: a :class:`~linsolve.Task` or a callable ``params -> scalar``.
    - `k`, `key`: as :func:`sharpness` (validated now).
    - `output_scale`, `weight_decay`: kappa and gamma of the run (default 1 and 0), with a Task
      only.

    **Returns:** the function ``params -> {"sharpness": ()}``.
    """
    if isinstance(loss_fn, Task):
        kappa = 1.0 if output_scale is None else output_scale
        gamma = 0.0 if weight_decay is None else weight_decay
        loss_fn = training_loss(loss_fn, output_scale=kappa, weight_decay=gamma)
    elif not callable(loss_fn):
        raise ValueError(
            f"`loss_fn` must be a linsolve.Task or a callable params -> scalar; got {loss_fn!r}."
        )
    elif output_scale is not None or weight_decay is not None:
        raise ValueError(
            "`output_scale` and `weight_decay` build the loss from a Task; with a callable "
            f"`loss_fn` put them in the callable (got output_scale={output_scale!r}, "
            f"weight_decay={weight_decay!r})."
        )
    steps = check_size("k", k)
    key = jr.PRNGKey(0) if key is None else check_key(key)

    def observe(params):
        return {"sharpness": sharpness(loss_fn, params, k=steps, key=key)}

    return observe
