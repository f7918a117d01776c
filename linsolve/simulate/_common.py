"""The `Trajectory` result and the input preparation shared by the simulators."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._validate import (
    as_scalar,
    check_against_task,
    check_finite,
    float_dtype_of,
    per_layer,
    validate_params,
)
from ..models import Network, end_to_end, n_layers
from ..tasks import Task


class Trajectory(eqx.Module):
    """A simulated training run; every field carries the recorded-time axis first.

    **Fields:**
    - `ts`: (T,) times of the records (for gradient descent: step counts, ``t = k``).
    - `params`: the parameters at each record (tuple of (T, n_l, n_{l-1}) or a Network (ShallowNet,
      MLP) of stacked arrays).
    - `loss`: (T,) full-batch loss; ``inf`` from the record where the run diverged on.
    - `diverged`: () bool, True if the run blew up (non-finite or exploding loss, or the ODE
      solver failed); the parameters are then frozen at the last good record.
    - `diverged_at`: () time of the first bad record (``inf`` when the run did not diverge).
    - `observables`: dict of (T, ...) arrays from the `observe` callback.
    - `output_scale`: () the output scale kappa the run used.
    - `stats`: dict of solver statistics (number of steps, ...).
    """

    ts: Float[Array, " T"]
    params: object
    loss: Float[Array, " T"]
    diverged: Bool[Array, ""]
    diverged_at: Float[Array, ""]
    observables: dict
    output_scale: Float[Array, ""]
    stats: dict

    def product(self) -> Float[Array, "T d_out d_in"]:
        """End-to-end map ``kappa W_L...W_1`` at every record (deep linear nets)."""
        if isinstance(self.params, Network):
            raise ValueError(
                f"`product` is defined for deep linear nets, not for a {type(self.params).__name__}."
            )
        return jax.vmap(lambda p: end_to_end(p, self.output_scale))(self.params)


def prepare(params0, task: Task, lrs, output_scale):
    """Validate and normalise the inputs shared by every simulator (raises before any work)."""
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    if isinstance(params0, Network):
        leaves = jax.tree_util.tree_leaves_with_path(params0)
        dtype = float_dtype_of(leaves[0][1])
        for path, value in leaves:
            check_finite(f"params0{jax.tree_util.keystr(path)}", value)
        if params0.d_in != task.d_in or params0.d_out != task.d_out:
            raise ValueError(
                f"`params0` maps {params0.d_in} -> {params0.d_out} but the task is "
                f"{task.d_in} -> {task.d_out}."
            )
        if task.X is None:
            raise ValueError(
                f"a {type(params0).__name__} needs a task that carries data (`Task.from_data`)."
            )
    else:
        params0 = validate_params(params0, "params0")
        check_against_task(params0, task, "params0")
        dtype = params0[0].dtype
    if task.dtype != dtype:
        task = jax.tree_util.tree_map(
            lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, task
        )
    lrs = per_layer("lrs", lrs, n_layers(params0), dtype)
    output_scale = as_scalar("output_scale", output_scale, dtype)
    return params0, task, lrs, output_scale, dtype


def freeze_after_failure(ts, params, loss, ok):
    """Freeze params at the last good record and mark the loss ``inf`` after the first bad one.

    `ok` (T,) marks good records; goodness is made monotone (a record after a bad one is bad).
    """
    good = jnp.cumprod(ok.astype(jnp.int32)).astype(bool)
    last = jnp.maximum(jnp.sum(good) - 1, 0)
    params = jax.tree_util.tree_map(
        lambda y: jnp.where(good.reshape((-1,) + (1,) * (y.ndim - 1)), y, y[last]), params
    )
    loss = jnp.where(good, loss, jnp.inf)
    diverged = ~jnp.all(good)
    first_bad = jnp.argmin(good)
    diverged_at = jnp.where(diverged, ts[first_bad], jnp.inf).astype(ts.dtype)
    return params, loss, diverged, diverged_at
