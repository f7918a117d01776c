"""Gradient descent, minibatch SGD and optax optimisers with layer-wise rates, under ``lax.scan``."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._validate import as_scalar, is_concrete
from ..models import Network, data_loss, layer_rates, loss, loss_and_gradients
from ..tasks import Task
from ._common import (
    Trajectory,
    check_int,
    check_weight_decay,
    is_int,
    prepare,
    status_code,
    with_weight_decay,
)

__all__ = ["gradient_descent", "OPTIMIZERS"]

# Named optimisers with unit learning rate: the layer-wise `lrs` scale their updates. Built once,
# so that naming one again reuses the compiled program.
OPTIMIZERS = {
    "sgd": optax.sgd(1.0),
    "momentum": optax.sgd(1.0, momentum=0.9),
    "nesterov": optax.sgd(1.0, momentum=0.9, nesterov=True),
    "adam": optax.adam(1.0),
    "rmsprop": optax.rmsprop(1.0),
}


def _check_record_at(record_at, steps: int):
    """Step counts to record at: increasing integers in [0, steps] (concrete checks when possible)."""
    targets = np.asarray(record_at) if is_concrete(record_at) else record_at
    if targets.ndim != 1 or targets.shape[0] < 1:
        raise ValueError(
            f"`record_at` must be a non-empty 1-D array of steps; got shape {targets.shape}."
        )
    if isinstance(targets, np.ndarray):
        if not np.issubdtype(targets.dtype, np.number) or np.issubdtype(targets.dtype, np.bool_):
            raise ValueError(f"`record_at` must hold integers; got dtype {targets.dtype}.")
        if (
            not np.all(np.isfinite(targets))
            or not np.all(targets == np.round(targets))
            or np.any(np.diff(targets) <= 0)
        ):
            raise ValueError(f"`record_at` must be increasing integers; got {targets}.")
        if targets[0] < 0 or targets[-1] > steps:
            raise ValueError(
                f"`record_at` must lie in [0, steps={steps}]; got {targets[0]} .. {targets[-1]}."
            )
    return jnp.asarray(targets).astype(int)


def _all_finite(tree):
    # One sum per leaf fuses with the update that produced it (cheaper than isfinite + all on a
    # CPU); a sum is non-finite iff an entry is (or the leaf's total overflows: divergence anyway).
    return jnp.isfinite(sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(tree)))


def _tree_where(pred, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


@eqx.filter_jit
def _descend(
    params0,
    task,
    lrs,
    kappa,
    weight_decay,
    key,
    factor,
    n_records,
    record_every,
    opt,
    batch_size,
    observe,
    targets,
    record_params,
    unroll,
):
    rates = layer_rates(params0, lrs)
    dtype = lrs.dtype

    def step_loss(p, k):
        if batch_size is None:
            return loss(p, task, kappa)
        idx = jr.choice(k, task.X.shape[0], (batch_size,), replace=False)
        return data_loss(p, task.X[idx], task.Y[idx], kappa)

    def value_and_grad(p, k):
        if batch_size is None and not isinstance(p, Network):
            return loss_and_gradients(p, task, kappa)  # thin products, no autodiff overhead
        return jax.value_and_grad(step_loss)(p, k)

    loss0 = loss(params0, task, kappa)
    threshold = factor * (jnp.abs(loss0) + 1)
    opt_state0 = opt.init(params0) if opt is not None else ()

    def step(carry, _):
        params, opt_state, key, diverged, div_step, k = carry
        if batch_size is None:
            sub = key  # full batch: no randomness, no per-step key split
        else:
            key, sub = jr.split(key)
        value, grads = value_and_grad(params, sub)
        grads = with_weight_decay(grads, params, weight_decay)
        if opt is None:
            updates, new_state = jax.tree_util.tree_map(lambda g, r: -r * g, grads, rates), ()
        else:
            updates, new_state = opt.update(grads, opt_state, params)
            updates = jax.tree_util.tree_map(lambda u, r: r * u, updates, rates)
        new_params = optax.apply_updates(params, updates)
        bad = ~jnp.isfinite(value) | (value > threshold) | ~_all_finite(new_params)
        now = diverged | bad
        params = _tree_where(now, params, new_params)
        opt_state = _tree_where(now, opt_state, new_state)
        div_step = jnp.where(bad & ~diverged, k, div_step)
        return (params, opt_state, key, now, div_step, k + 1), None

    def record(carry):
        params, diverged = carry[0], carry[3]
        value = jnp.where(diverged, jnp.inf, loss(params, task, kappa))
        obs = {} if observe is None else observe(params)
        return (params if record_params else None), value, obs

    def chunk(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=record_every, unroll=unroll)
        return carry, record(carry)

    def until(carry, target):
        # Variable gaps between records: step while the counter is short of the target.
        carry = jax.lax.while_loop(lambda c: c[5] < target, lambda c: step(c, None)[0], carry)
        return carry, record(carry)

    carry0 = (params0, opt_state0, key, jnp.zeros((), bool), jnp.full((), -1), jnp.zeros((), int))
    if targets is None:
        carry, (params, losses, obs) = jax.lax.scan(chunk, carry0, None, length=n_records)
        first = record(carry0)
        stack = lambda a, b: jnp.concatenate([a[None], b])
        params = jax.tree_util.tree_map(stack, first[0], params)
        losses = stack(first[1], losses)
        obs = jax.tree_util.tree_map(stack, first[2], obs)
        ts = (jnp.arange(n_records + 1) * record_every).astype(dtype)
    else:
        carry, (params, losses, obs) = jax.lax.scan(until, carry0, targets)
        ts = targets.astype(dtype)
    if not record_params:
        params = carry[0]
    diverged, div_step = carry[3], carry[4]
    diverged_at = jnp.where(diverged, div_step.astype(dtype), jnp.inf)
    stats = {"steps": carry[5], "diverged_step": div_step}
    return Trajectory(
        ts=ts,
        params=params,
        loss=losses,
        status=status_code(diverged),
        diverged=diverged,
        diverged_at=diverged_at,
        observables=obs,
        output_scale=kappa,
        stats=stats,
    )


def gradient_descent(
    params0,
    task: Task,
    *,
    lrs,
    steps: int,
    record_every: int = 1,
    record_at=None,
    record_params: bool = True,
    unroll: int = 1,
    output_scale=1.0,
    weight_decay=0.0,
    optimizer=None,
    batch_size: int | None = None,
    key=None,
    observe=None,
    divergence_factor=1e8,
) -> Trajectory:
    """Discrete training: ``W_l <- W_l - lr_l (dL/dW_l + gamma W_l)`` (or an optax optimiser).

    This is the forward-Euler discretisation of gradient flow with unit time step, so after ``k``
    steps the time is ``t = k`` and ``eta_l = lr_l``. Steps run under ``lax.scan`` in chunks of
    `record_every`; the parameters and the full-batch loss are recorded at ``t = 0, record_every,
    ..., steps``.

    **Arguments:**

    - `params0`: tuple ``(W1, ..., WL)`` or a Network (ShallowNet, MLP).
    - `task`: the :class:`~linsolve.Task`; full batch uses its covariance form (deep linear) or
      its data (Network).
    - `lrs`: per-layer learning rates (scalar or (L,)), > 0, traced: new values do not recompile.
    - `steps`, `record_every`: number of steps (a multiple of `record_every`) and record spacing.
    - `record_at`: instead of `record_every`, the step counts to record at (increasing integers in
      ``[0, steps]``, e.g. log-spaced for long runs; traced, so new values do not recompile). Memory
      is O(records), whatever the number of steps.
    - `record_params`: record the parameters at every record (default). With False only the
      final parameters are kept (``params`` then has no time axis), so a long run logging its
      loss needs memory independent of the number of records.
    - `unroll`: steps unrolled per iteration of the inner ``lax.scan`` (a compile-time choice;
      results are identical).
    - `output_scale`: kappa > 0.
    - `weight_decay`: gamma >= 0 (default 0), traced: the gradient of the penalty
      ``(gamma/2) sum_l ||W_l||_F^2`` (every floating parameter of a Network) is added to each
      gradient before the update, as in :func:`gradient_flow`; with an optax optimiser this is L2
      regularisation (the penalty's gradient goes through the optimiser; AdamW-style decoupled
      decay is ``optax.adamw``). The recorded loss is the task loss, without the penalty.
    - `optimizer`: None (plain GD), a name in :data:`OPTIMIZERS`, or an optax
      ``GradientTransformation`` built with learning rate 1; its updates are scaled by `lrs`
      per layer (reuse one object across calls to reuse the compiled program).
    - `batch_size`, `key`: minibatch SGD on the task's data (without replacement within a step).
    - `observe`: optional ``params -> dict of arrays``, recorded with the loss.
    - `divergence_factor`: the run is declared diverged when the loss is non-finite or exceeds
      ``divergence_factor * (L(0) + 1)``; parameters then freeze at the last good step and the
      recorded loss is ``inf``; ``diverged_at`` is the step at which it happened.

    **Returns:** a :class:`Trajectory` whose ``status`` is ``DIVERGED`` when the run blew up and
    ``CONVERGED`` otherwise (it ran the requested steps; the word says nothing about the loss).
    Works under ``jax.vmap`` over ``params0``, ``lrs``, ``output_scale`` and ``key`` with one
    compilation. Bad arguments (e.g. a `batch_size` that is not an integer in ``[1, n]``) raise a
    ``ValueError`` before any work.
    """
    params0, task, lrs, kappa, dtype = prepare(params0, task, lrs, output_scale)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    unroll = check_int("unroll", unroll, 1)
    if record_at is not None:
        targets = _check_record_at(record_at, steps)
    elif steps % record_every:
        raise ValueError(
            f"`steps` must be a multiple of `record_every`; got steps={steps}, "
            f"record_every={record_every}."
        )
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {sorted(OPTIMIZERS)}; got {optimizer!r}.")
        optimizer = OPTIMIZERS[optimizer]
    elif optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"`optimizer` must be None, a name or an optax GradientTransformation; "
            f"got {type(optimizer).__name__}."
        )
    if batch_size is not None:
        if task.X is None:
            raise ValueError("`batch_size` needs a task that carries data (`Task.from_data`).")
        n = task.X.shape[0]
        if not is_int(batch_size) or not 1 <= batch_size <= n:
            raise ValueError(
                f"`batch_size` must be None or an integer in [1, n={n}] (the number of samples); "
                f"got {batch_size!r}."
            )
        batch_size = int(batch_size)
        if key is None:
            raise ValueError("`key` is required for minibatch SGD (`batch_size` is set).")
    key = jr.PRNGKey(0) if key is None else key
    factor = as_scalar("divergence_factor", divergence_factor, dtype)
    if observe is not None and not callable(observe):
        raise ValueError(f"`observe` must be a callable params -> dict or None; got {observe!r}.")
    weight_decay = check_weight_decay(weight_decay, dtype)
    return _descend(
        params0,
        task,
        lrs,
        kappa,
        weight_decay,
        key,
        factor,
        int(steps) // int(record_every),
        int(record_every),
        optimizer,
        batch_size,
        observe,
        targets if record_at is not None else None,
        bool(record_params),
        unroll,
    )
