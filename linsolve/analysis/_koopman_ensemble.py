"""Ensembles of training runs for Koopman spectra: perturbed initial conditions, vmapped training.

The trajectories that :func:`~linsolve.analysis.dmd` pools (Redman et al., NeurIPS 2024, arXiv
2302.09160, train from several nearby initial conditions): perturb one initialisation, train every
member with :func:`linsolve.simulate.gradient_descent` in one vmapped call, and record observables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validate import check_finite
from ..simulate import gradient_descent
from ..tasks import Task
from ._koopman import output_weights

__all__ = ["perturbed_ensemble", "EnsembleRun", "ensemble_observables"]


def perturbed_ensemble(params, size: int, *, key, rel: float = 1e-3):
    """One initialisation plus ``size - 1`` multiplicatively perturbed copies, stacked on axis 0.

    Member 0 is `params`; member ``m >= 1`` is ``w (1 + rel u)`` elementwise with
    ``u ~ U(-1, 1)`` (Redman et al.'s FCN ensembles: 10 members, ``rel = 0.001``). Zero entries
    (e.g. zero biases) stay zero. Works for any PyTree of arrays (deep linear tuples, ShallowNet).
    """
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"`size` must be a positive integer; got {size!r}.")
    if not rel >= 0:
        raise ValueError(f"`rel` must be non-negative; got {rel!r}.")
    return _perturb(params, key, int(size), jnp.asarray(rel))


@eqx.filter_jit
def _perturb(params, key, size: int, rel):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jr.split(key, max(len(leaves), 1))
    out = []
    for leaf, k in zip(leaves, keys):
        leaf = jnp.asarray(leaf)
        copies = jnp.broadcast_to(leaf, (size - 1,) + leaf.shape)
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            u = jr.uniform(k, copies.shape, leaf.dtype, -1.0, 1.0)
            copies = copies * (1 + jnp.asarray(rel, leaf.dtype) * u)
        out.append(jnp.concatenate([leaf[None], copies]))
    return jax.tree_util.tree_unflatten(treedef, out)


class EnsembleRun(NamedTuple):
    """Observables of an ensemble of training runs, in the (T, D, N) layout that :func:`dmd` takes.

    **Fields:** `observables` (T, D, N), `loss` (T, N) full-batch loss, `diverged` (N,) bool,
    `ts` (T,) step counts of the records.
    """

    observables: np.ndarray
    loss: np.ndarray
    diverged: np.ndarray
    ts: np.ndarray


@eqx.filter_jit
def _run_ensemble(
    params0, task, lrs, key, output_scale, observable, steps, record_every, optimizer, batch_size
):
    def one(p):
        traj = gradient_descent(
            p,
            task,
            lrs=lrs,
            steps=steps,
            record_every=record_every,
            output_scale=output_scale,
            optimizer=optimizer,
            batch_size=batch_size,
            key=key,
            observe=lambda q: {"y": jnp.ravel(observable(q))},
        )
        return traj.observables["y"], traj.loss, traj.diverged, traj.ts

    return jax.vmap(one)(params0)


def ensemble_observables(
    params0,
    task: Task,
    *,
    lrs,
    steps: int,
    observable: Callable = output_weights,
    record_every: int = 1,
    batch_size: int | None = None,
    key=None,
    optimizer=None,
    output_scale=1.0,
) -> EnsembleRun:
    """Train every member of an ensemble with :func:`linsolve.simulate.gradient_descent` (vmapped,
    one compilation) and record ``observable(params)`` at ``t = 0, record_every, ..., steps``.

    All members share `key`, so minibatch SGD sees the same batch sequence in every run (as in
    Redman et al., where a seed fixes the batch order and the ensemble varies the initialisation).

    **Arguments:**

    - `params0`: stacked initialisations (leading axis N), e.g. from :func:`perturbed_ensemble`.
    - `task`, `lrs`, `steps`, `record_every`, `batch_size`, `key`, `optimizer`, `output_scale`:
      as for ``gradient_descent``.
    - `observable`: ``params -> array`` (default :func:`output_weights`); reuse the same function
      object across calls to reuse the compiled program.

    **Returns:** an :class:`EnsembleRun` with `observables` (T, D, N).
    """
    leaves = jax.tree_util.tree_leaves(params0)
    if not leaves or any(jnp.ndim(x) < 1 for x in leaves):
        raise ValueError("`params0` must be a PyTree of arrays stacked along a leading ensemble axis.")
    N = leaves[0].shape[0]
    if any(x.shape[0] != N for x in leaves):
        raise ValueError(f"every leaf of `params0` must have the ensemble size {N} as leading axis.")
    for i, x in enumerate(leaves):
        check_finite(f"params0 leaf {i}", x)
    if not callable(observable):
        raise ValueError(f"`observable` must be a function params -> array; got {type(observable).__name__}.")
    if batch_size is not None and key is None:
        raise ValueError("`key` is required for minibatch SGD (`batch_size` is set).")
    dtype = leaves[0].dtype
    key = jr.PRNGKey(0) if key is None else key
    obs, loss, diverged, ts = _run_ensemble(
        params0,
        task,
        jnp.asarray(lrs, dtype),
        key,
        jnp.asarray(output_scale, dtype),
        observable,
        int(steps),
        int(record_every),
        optimizer,
        batch_size,
    )
    return EnsembleRun(
        np.moveaxis(np.asarray(obs), 0, 2),
        np.asarray(loss).T,
        np.asarray(diverged),
        np.asarray(ts[0]),
    )
