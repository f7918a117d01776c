"""High-accuracy gradient flow ``dW_l/dt = -eta_l dL/dW_l`` by adaptive Runge-Kutta (diffrax)."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from .._validate import as_float
from ..models import gradients, layer_rates, loss
from ..tasks import Task
from ._common import Trajectory, freeze_after_failure, prepare

__all__ = ["gradient_flow"]


def _vector_field(t, params, args):
    task, lrs, kappa = args
    grads = gradients(params, task, kappa)
    rates = layer_rates(params, lrs)
    return jax.tree_util.tree_map(lambda g, r: -r * g, grads, rates)


@eqx.filter_jit
def _solve(params0, task, ts, lrs, kappa, rtol, atol, max_steps, solver, observe):
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4)
    t1 = jnp.maximum(ts[-1], jnp.finfo(ts.dtype).tiny)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        solver,
        t0=jnp.zeros((), ts.dtype),
        t1=t1,
        dt0=None,
        y0=params0,
        args=(task, lrs, kappa),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    params = sol.ys
    losses = jax.vmap(lambda p: loss(p, task, kappa))(params)
    finite = jax.vmap(
        lambda p: jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(p)])
        )
    )(params)
    # Saves the solver did not reach (after a failure) come back non-finite.
    ok = finite & jnp.isfinite(losses)
    params, losses, diverged, diverged_at = freeze_after_failure(ts, params, losses, ok)
    diverged = diverged | (sol.result != diffrax.RESULTS.successful)
    observables = {} if observe is None else jax.vmap(observe)(params)
    stats = {
        "num_steps": sol.stats["num_steps"],
        "num_rejected_steps": sol.stats["num_rejected_steps"],
    }
    return Trajectory(ts, params, losses, diverged, diverged_at, observables, kappa, stats)


def gradient_flow(
    params0,
    task: Task,
    ts: Float[ArrayLike, " T"],
    *,
    lrs=1.0,
    output_scale=1.0,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 200_000,
    solver=None,
    observe=None,
) -> Trajectory:
    """Integrate gradient flow ``dW_l/dt = -eta_l dL/dW_l`` from ``params0`` at ``t = 0``.

    The vector field is the exact gradient of the covariance-form loss
    ``L = 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)``, ``P = kappa W_L...W_1`` (deep linear nets of
    any depth), or of the data loss for a :class:`~linsolve.models.Network` (ShallowNet, MLP). Integration is
    adaptive 8th-order Dormand-Prince (``diffrax.Dopri8``) with PID step control; in float64 with the
    default tolerances the conserved quantities ``eta_l W_{l+1}^T W_{l+1} - eta_{l+1} W_l W_l^T``
    drift by < 1e-9 over a whole sigmoidal learning curve.

    **Arguments:**
    - `params0`: tuple ``(W1, ..., WL)``, ``W_l`` (n_l, n_{l-1}), or a Network (ShallowNet, MLP).
    - `task`: the :class:`~linsolve.Task`.
    - `ts`: (T,) non-decreasing save times, ``ts >= 0``.
    - `lrs`: layer-wise rates ``eta_l`` (scalar or (L,)), > 0; traced, so sweeping them does not
      recompile.
    - `output_scale`: kappa > 0.
    - `rtol`, `atol`, `max_steps`, `solver`: diffrax error control (default ``Dopri8``).
    - `observe`: optional ``params -> dict of arrays``, recorded at every save time.

    **Returns:** a :class:`Trajectory`. Failure (blow-up, step limit) sets ``diverged`` and freezes
    the parameters at the last good save instead of raising. Works under ``jax.vmap`` over
    ``params0``, ``lrs`` and ``output_scale`` with a single compilation.
    """
    params0, task, lrs, kappa, dtype = prepare(params0, task, lrs, output_scale)
    ts = as_float(ts, "ts", dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"`ts` must be a non-empty 1-D array of times; got shape {ts.shape}.")
    if not isinstance(ts, jax.core.Tracer):
        host = np.asarray(ts)
        if bool(np.any(host < 0)) or bool(np.any(np.diff(host) < 0)):
            raise ValueError(f"`ts` must be non-negative and non-decreasing; got {ts.tolist()}.")
    if rtol <= 0 or atol <= 0:
        raise ValueError(f"`rtol` and `atol` must be positive; got rtol={rtol}, atol={atol}.")
    solver = diffrax.Dopri8() if solver is None else solver
    return _solve(params0, task, ts, lrs, kappa, rtol, atol, int(max_steps), solver, observe)
