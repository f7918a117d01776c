"""The `Trajectory` result, its outcome codes, and the input preparation shared by the simulators."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._validate import (
    as_scalar,
    check_against_task,
    check_finite,
    per_layer,
    validate_params,
)
from ..models import Network, end_to_end, n_layers
from ..tasks import Task

__all__ = ["Trajectory", "CONVERGED", "DIVERGED", "STEP_LIMIT", "STATUS_NAMES"]

#: The run ended normally: it reached its last save time (or step), or the flow stopped early at a
#: steady state (gradient flow).
CONVERGED = 0
#: The run blew up: non-finite values, an exploding loss, or a failure of the ODE solver.
DIVERGED = 1
#: Gradient flow used up its ``max_steps`` before the last save time; nothing blew up.
STEP_LIMIT = 2
#: ``STATUS_NAMES[code]`` is the name of an outcome code.
STATUS_NAMES = ("converged", "diverged", "step_limit")


class Trajectory(eqx.Module):
    """A simulated training run; every field carries the recorded-time axis first.

    **Fields:**

    - `ts`: (T,) times of the records (for gradient descent: step counts, ``t = k``).
    - `params`: the parameters at each record (tuple of (T, n_l, n_{l-1}) or a Network (ShallowNet,
      MLP) of stacked arrays).
    - `loss`: (T,) full-batch loss; ``inf`` from the record where the run diverged on.
    - `status`: () int32 outcome code: :data:`CONVERGED` (0), :data:`DIVERGED` (1) or
      :data:`STEP_LIMIT` (2); ``STATUS_NAMES[status]`` names it.
    - `diverged`: () bool, ``status == DIVERGED``: the run blew up (non-finite or exploding loss,
      or the ODE solver failed); the parameters are then frozen at the last good record. A run
      stopped by its step budget is *not* diverged (see ``status``).
    - `diverged_at`: () time of the first bad record (``inf`` when the run did not diverge).
    - `observables`: dict of (T, ...) arrays from the `observe` callback.
    - `output_scale`: () the output scale kappa the run used.
    - `stats`: dict of solver statistics (number of steps, ...).
    """

    ts: Float[Array, " T"]
    params: object
    loss: Float[Array, " T"]
    status: Int[Array, ""]
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


def _floating_leaves(tree):
    return [
        x
        for x in jax.tree_util.tree_leaves(tree)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
    ]


def common_dtype(params0, task: Task):
    """The widest floating dtype of the parameters and the task (NumPy promotion rules)."""
    leaves = _floating_leaves(params0) + _floating_leaves(task)
    if not leaves:
        return jnp.asarray(0.0).dtype
    return jnp.result_type(*(x.dtype for x in leaves))


def _cast_floating(tree, dtype):
    return jax.tree_util.tree_map(
        lambda x: x.astype(dtype)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != dtype
        else x,
        tree,
    )


def prepare(params0, task: Task, lrs, output_scale):
    """Validate and normalise the inputs shared by every simulator (raises before any work).

    Parameters and task are brought to their widest floating dtype (float32 with float64 gives
    float64, as NumPy would); `lrs` and `output_scale` follow that dtype.
    """
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    if isinstance(params0, Network):
        dtype = common_dtype(params0, task)
        params0 = _cast_floating(params0, dtype)
        for path, value in jax.tree_util.tree_leaves_with_path(params0):
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
        dtype = common_dtype(params0, task)
        params0 = validate_params(params0, "params0", dtype)
        check_against_task(params0, task, "params0")
    task = _cast_floating(task, dtype)
    lrs = per_layer("lrs", lrs, n_layers(params0), dtype)
    output_scale = as_scalar("output_scale", output_scale, dtype)
    return params0, task, lrs, output_scale, dtype


def check_weight_decay(weight_decay, dtype):
    """`weight_decay` as a finite scalar >= 0 of `dtype` (ValueError naming it otherwise)."""
    return as_scalar("weight_decay", weight_decay, dtype, strict=False)


def with_weight_decay(grads, params, weight_decay):
    """``dL/dW + gamma W`` for every floating leaf: the gradient of ``L + (gamma/2) sum ||W||^2``."""

    def add(g, w):
        return g + weight_decay.astype(g.dtype) * w if jnp.issubdtype(g.dtype, jnp.floating) else g

    return jax.tree_util.tree_map(add, grads, params)


def is_int(value) -> bool:
    """A Python or NumPy integer, or an integral float; never a bool."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer | float | np.floating):
        return False
    return bool(np.isfinite(value)) and value == int(value)


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming `name` unless it is an integer >= `minimum`."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def freeze_after_failure(ts, params, loss, ok):
    """Freeze params at the last good record and mark the loss ``inf`` after the first bad one.

    `ok` (T,) marks good records; goodness is made monotone (a record after a bad one is bad).
    Returns ``(params, loss, failed, failed_at)``.
    """
    good = jnp.cumprod(ok.astype(jnp.int32)).astype(bool)
    last = jnp.maximum(jnp.sum(good) - 1, 0)
    params = jax.tree_util.tree_map(
        lambda y: jnp.where(good.reshape((-1,) + (1,) * (y.ndim - 1)), y, y[last]), params
    )
    loss = jnp.where(good, loss, jnp.inf)
    failed = ~jnp.all(good)
    first_bad = jnp.argmin(good)
    failed_at = jnp.where(failed, ts[first_bad], jnp.inf).astype(ts.dtype)
    return params, loss, failed, failed_at


def status_code(diverged, step_limit=False):
    """() int32 outcome code: DIVERGED wins over STEP_LIMIT, else CONVERGED."""
    return jnp.where(
        diverged, jnp.int32(DIVERGED), jnp.where(step_limit, jnp.int32(STEP_LIMIT), jnp.int32(CONVERGED))
    ).astype(jnp.int32)
