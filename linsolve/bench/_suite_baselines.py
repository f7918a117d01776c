"""Benchmarks B1 and B2: linsolve against the per-point loops a user would write by hand.

B1 runs the phase-diagram sweep of :mod:`._suite` against NumPy and PyTorch loops and a NumPy
process pool (:mod:`._baselines`, subprocesses with one BLAS thread each) on a subset of its grid
points, drawn with the same initial weights and rates; B2 times one long trajectory (scan unroll
choices, a Python loop over a jitted step, NumPy). Both report point-steps/s, GFLOP/s from
:func:`~._suite.flops_per_step` and the percentage of the measured GEMM peak.
"""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import init, simulate
from ._baselines import SINGLE_THREAD_ENV
from ._machine import best_time, compile_events, run_python
from ._suite import LR, _grid, _point_fn, _task, _timed_sweep, flops_per_step

__all__ = ["b1_sweep", "b2_single"]


def _baseline_inputs(sizes, grid, idx, dtype, task):
    """The initial weights and rates of grid points `idx`, drawn exactly as the sweep draws them."""
    keys = np.asarray(grid.keys(jr.PRNGKey(1), 0, grid.size))[idx]
    flat = grid.flat(0, grid.size)
    fan_in = np.asarray(sizes[:-1], np.float64)
    W1, W2 = [], []
    for key, scale in zip(keys, flat["scale"][idx]):
        p = init.random(jnp.asarray(key), sizes, jnp.asarray(scale / np.sqrt(fan_in), dtype), dtype=dtype)
        W1.append(np.asarray(p[0]))
        W2.append(np.asarray(p[1]))
    return {
        "W1": np.stack(W1),
        "W2": np.stack(W2),
        "lr1": np.full(len(idx), LR),
        "lr2": LR * flat["ratio"][idx],
        "Sxx": np.asarray(task.Sxx),
        "Syx": np.asarray(task.Syx),
        "Syy_tr": float(jnp.trace(task.Syy)),
    }


def _baseline(kind, inputs, steps, record_every, workers=1):
    with tempfile.TemporaryDirectory() as tmp:
        problem, out = os.path.join(tmp, "problem.npz"), os.path.join(tmp, "out.npz")
        np.savez(problem, steps=steps, record_every=record_every, workers=workers, **inputs)
        run_python(["-m", "linsolve.bench._baselines", kind, problem, out], env=SINGLE_THREAD_ENV)
        with np.load(out) as f:
            return f["losses"], float(f["seconds"])


def _torch_available() -> bool:
    try:
        run_python("import torch", env=SINGLE_THREAD_ENV)
        return True
    except RuntimeError:
        return False


def b1_sweep(quick: bool, peaks: dict) -> dict:
    """B1: the phase-diagram sweep against per-point NumPy / PyTorch loops and a NumPy pool."""
    n, steps, record_every = (16, 1000, 100) if quick else (64, 10_000, 100)
    sizes = (100, 100, 10)
    flops = flops_per_step(sizes)
    rows, notes = [], []
    workers = os.cpu_count() or 1
    for dtype in (jnp.float32, jnp.float64):
        name = jnp.dtype(dtype).name
        with jax.enable_x64(dtype == jnp.float64):
            task, point = _point_fn(sizes, steps, record_every, dtype)
            grid = _grid(n)
            result, total, events = _timed_sweep(point, grid)
            run_s = total - events["seconds"]
            rate = grid.size * steps / run_s
            gflops = rate * flops / 1e9
            peak = peaks[name]["peak"]
            rows.append(
                [
                    name,
                    "linsolve sweep.run",
                    grid.size,
                    f"{events['seconds']:.1f}",
                    f"{run_s:.2f}",
                    f"{rate:,.0f}",
                    f"{gflops:.1f}",
                    f"{100 * gflops / peak:.0f}%",
                    "1.00",
                    "-",
                ]
            )
            ref = np.asarray(result["loss"]).reshape(grid.size, -1)
            subset = 4 if quick else 8
            kinds = [("numpy", subset, 1), ("pool", subset * workers, workers)]
            if _torch_available():
                kinds.insert(1, ("torch", subset, 1))
            else:
                notes.append("PyTorch not installed (`pip install -e .[bench]`): its row is missing.")
            for kind, count, w in kinds:
                idx = np.linspace(0, grid.size - 1, count).astype(int)
                inputs = _baseline_inputs(sizes, grid, idx, dtype, task)
                losses, seconds = _baseline(kind, inputs, steps, record_every, w)
                b_rate = count * steps / seconds
                b_gflops = b_rate * flops / 1e9
                err = np.max(np.abs(losses - ref[idx])) / np.max(np.abs(ref[idx, 0]))
                label = {
                    "numpy": "NumPy loop, 1 thread",
                    "torch": "PyTorch loop, 1 thread",
                    "pool": f"NumPy pool, {w} procs",
                }[kind]
                rows.append(
                    [
                        name,
                        label,
                        count,
                        "-",
                        f"{seconds:.2f}",
                        f"{b_rate:,.0f}",
                        f"{b_gflops:.1f}",
                        f"{100 * b_gflops / peak:.0f}%",
                        f"{rate / b_rate:.2f}",
                        f"{err:.1e}",
                    ]
                )
    notes.append(
        f"{n} x {n} grid (init scale x lr ratio), {steps} steps, loss every {record_every}; "
        f"{flops:,} FLOP per point-step. Baselines run a subset of the grid's points (same inits and "
        "rates) and are compared per point-step; 'max diff.' is the largest difference of their logged "
        "losses from the sweep's at the same points, relative to the initial loss. "
        "Speed-up = linsolve point-steps/s over the row's."
    )
    cols = [
        "dtype",
        "implementation",
        "points",
        "compile s",
        "run s",
        "point-steps/s",
        "GFLOP/s",
        "% of peak",
        "linsolve speed-up",
        "max diff.",
    ]
    return {
        "title": "B1 sweep: two-layer linear net, d = h = 100, k = 10",
        "columns": cols,
        "rows": rows,
        "notes": notes,
    }


def b2_single(quick: bool, peaks: dict) -> dict:
    """B2: one long trajectory: scan unroll choices, a Python loop of a jitted step, NumPy."""
    steps = 10_000 if quick else 100_000
    sizes = (100, 100, 10)
    flops = flops_per_step(sizes)
    rows = []
    dtype = jnp.float32
    task = _task(sizes, dtype)
    params0 = init.random(jr.PRNGKey(2), sizes, jnp.asarray([0.01, 0.0316], dtype), dtype=dtype)
    lrs = jnp.asarray([LR, LR], dtype)
    for unroll in (1, 4, 16):
        run = lambda: (
            simulate.gradient_descent(
                params0, task, lrs=lrs, steps=steps, record_every=100, record_params=False, unroll=unroll
            ).loss
        )
        with compile_events() as events:
            jax.block_until_ready(run())
        seconds = best_time(run, 2)
        rows.append(
            [
                f"gradient_descent, scan unroll={unroll}",
                f"{events['seconds']:.2f}",
                f"{seconds:.3f}",
                f"{steps / seconds:,.0f}",
                f"{steps / seconds * flops / 1e9:.1f}",
            ]
        )
    from ..models import loss_and_gradients

    @jax.jit
    def step(p):
        _, g = loss_and_gradients(p, task)
        return tuple(W - LR * dW for W, dW in zip(p, g))

    n_py = steps // 10
    p = step(params0)
    start = time.perf_counter()
    for _ in range(n_py):
        p = step(p)
    jax.block_until_ready(p)
    seconds = (time.perf_counter() - start) * steps / n_py
    rows.append(
        [
            "Python loop over a jitted step",
            "-",
            f"{seconds:.3f}",
            f"{steps / seconds:,.0f}",
            f"{steps / seconds * flops / 1e9:.1f}",
        ]
    )
    inputs = {
        "W1": np.asarray(params0[0])[None],
        "W2": np.asarray(params0[1])[None],
        "lr1": np.array([LR]),
        "lr2": np.array([LR]),
        "Sxx": np.asarray(task.Sxx),
        "Syx": np.asarray(task.Syx),
        "Syy_tr": float(jnp.trace(task.Syy)),
    }
    _, seconds = _baseline("numpy", inputs, steps, 100)
    rows.append(
        [
            "NumPy loop, 1 thread",
            "-",
            f"{seconds:.3f}",
            f"{steps / seconds:,.0f}",
            f"{steps / seconds * flops / 1e9:.1f}",
        ]
    )
    return {
        "title": f"B2 single trajectory: {steps:,} steps of one point (float32)",
        "columns": ["implementation", "compile s", "run s", "steps/s", "GFLOP/s"],
        "rows": rows,
        "notes": ["Python-loop times are extrapolated from a tenth of the steps."],
    }
