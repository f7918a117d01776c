"""The problem the benchmarks share, its FLOP count, the timing helpers and the registry B1-B6.

Each benchmark returns a table (title, column names, rows, notes) for RESULTS.md. B1 and B2
(against hand-written baselines) are in :mod:`._suite_baselines`, B3-B6 (accuracy per cost,
batch scaling, compilation, depth) in :mod:`._suite_costs`.

The problem of B1, B2, B4 and B6 is covariance-form gradient descent on a deep linear net with
``d_in = n_l = 100``, ``d_out = 10`` (a non-whitened teacher task, so ``Sxx`` is a full matrix),
init ``W_l ~ N(0, scale^2 / n_{l-1})``, layer rates ``(lr, lr * ratio)``, loss logged every 100
steps. FLOPs are counted analytically (:func:`flops_per_step`) from the matrix products one step
needs, so GFLOP/s compare across implementations that do the same products.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import init, simulate, sweep, tasks
from ._machine import compile_events, gemm_peak

LR = 0.02


def flops_per_step(sizes) -> int:
    """FLOPs of one covariance-form GD step of a deep linear net, as
    :func:`linsolve.models.loss_and_gradients` does it: the suffix products and ``P`` (d_out rows),
    ``P Sxx``, and per layer the rank-d_out gradient and the product carrying ``G`` down."""
    sizes = list(sizes)
    k, L = sizes[-1], len(sizes) - 1
    flops = 2 * k * sizes[0] ** 2  # P Sxx
    flops += sum(2 * k * sizes[l] * sizes[l + 1] for l in range(L - 1))  # suffixes and P
    flops += sum(2 * k * sizes[l] * sizes[l + 1] for l in range(L - 1))  # gradients below the top
    flops += sum(2 * k * sizes[l] * sizes[l + 1] for l in range(L - 1))  # G carried down
    return flops


def _task(sizes, dtype):
    d, k = sizes[0], sizes[-1]
    s = jnp.linspace(2.0, 0.2, k)
    return tasks.teacher(jr.PRNGKey(0), d, k, s, n=4 * d, whiten=False, dtype=dtype)


def _point_fn(sizes, steps, record_every, dtype):
    """The sweep function of one grid point; one object per problem, so one compilation."""
    task = _task(sizes, dtype)
    fan_in = jnp.asarray(sizes[:-1], dtype)

    def point(scale, ratio, key):
        params0 = init.random(key, sizes, scale / jnp.sqrt(fan_in), dtype=dtype)
        lrs = jnp.asarray([LR] * (len(sizes) - 2) + [LR], dtype) * jnp.where(
            jnp.arange(len(sizes) - 1) == len(sizes) - 2, ratio, 1.0
        )
        traj = simulate.gradient_descent(
            params0, task, lrs=lrs, steps=steps, record_every=record_every, record_params=False
        )
        return {"loss": traj.loss, "diverged": traj.diverged}

    return task, point


def _grid(n):
    return sweep.Grid(scale=np.logspace(-2, 0, n), ratio=np.logspace(-1, 1, n))


def _timed_sweep(point, grid, **kwargs):
    with compile_events() as events:
        start = time.perf_counter()
        result = sweep.run(point, grid, progress=False, key=jr.PRNGKey(1), **kwargs)
        total = time.perf_counter() - start
    return result, total, events


def peaks() -> dict:
    """Measured GEMM peaks for float32 and float64."""
    out = {"float32": gemm_peak(jnp.float32)}
    with jax.enable_x64(True):
        out["float64"] = gemm_peak(jnp.float64, 1536)
    return out


# The benchmarks live in their own modules; importable from here as before.
from ._suite_baselines import _baseline as _baseline  # noqa: E402
from ._suite_baselines import _baseline_inputs as _baseline_inputs  # noqa: E402
from ._suite_baselines import _torch_available as _torch_available  # noqa: E402
from ._suite_baselines import b1_sweep, b2_single  # noqa: E402
from ._suite_costs import _COLD as _COLD  # noqa: E402
from ._suite_costs import b3_accuracy, b4_scaling, b5_compile, b6_depth  # noqa: E402

BENCHMARKS = {
    "B1": b1_sweep,
    "B2": b2_single,
    "B3": b3_accuracy,
    "B4": b4_scaling,
    "B5": b5_compile,
    "B6": b6_depth,
}
