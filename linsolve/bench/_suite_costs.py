"""Benchmarks B3-B6: the costs of linsolve itself (accuracy per cost, batch size, compilation, depth).

B3 compares adaptive gradient flow with small-step gradient descent against the closed form of a
sigmoidal learning curve; B4 measures throughput against the number of grid points; B5 counts
compilations and the time to first result with a cold and a warm persistent cache; B6 the cost
per step of deep linear nets of depth 2, 4, 8 (about linear in L).
"""

from __future__ import annotations

import math
import tempfile

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import exact, init, simulate, sweep, tasks
from ._machine import best_time, run_python
from ._suite import _grid, _point_fn, _timed_sweep, flops_per_step

__all__ = ["b3_accuracy", "b4_scaling", "b5_compile", "b6_depth"]


def b3_accuracy(quick: bool, peaks: dict) -> dict:
    """B3: gradient flow to 1e-8 over a full sigmoidal learning curve: diffrax vs small-step GD."""
    del quick, peaks
    with jax.enable_x64(True):
        task = tasks.teacher(jr.PRNGKey(3), 6, 4, jnp.asarray([3.0, 2.0, 1.0]))
        params0 = init.aligned(task, (6, 8, 4), 1e-3)
        T = 12.0
        ts = jnp.linspace(0.0, T, 25)
        exact_P = lambda t: exact.saxe_product(t, params0, task)
        reference = exact_P(ts)
        scale = float(jnp.max(jnp.abs(reference)))
        rows = []
        for rtol in (1e-6, 1e-8, 1e-10, 1e-12):
            run = lambda: simulate.gradient_flow(params0, task, ts, rtol=rtol, atol=rtol * 1e-2)
            traj = run()
            err = float(jnp.max(jnp.abs(traj.product() - reference))) / scale
            evals = 13 * int(traj.stats["num_steps"] + traj.stats.get("num_rejected_steps", 0))
            rows.append(
                [f"diffrax Dopri8, rtol={rtol:g}", f"{err:.1e}", f"{evals:,}", f"{best_time(run, 2):.3f}"]
            )
        gd_errors = []
        for steps in (120, 480, 1200, 4800):
            eta, every = T / steps, steps // 24
            run = lambda: simulate.gradient_descent(
                params0, task, lrs=eta, steps=steps, record_every=every, record_params=True
            )
            traj = run()
            got = traj.product()
            err = float(jnp.max(jnp.abs(got - exact_P(traj.ts * eta)))) / scale
            gd_errors.append((eta, err))
            rows.append([f"GD, step {eta:.3g}", f"{err:.1e}", f"{steps:,}", f"{best_time(run, 2):.3f}"])
        # Forward Euler is first order: err = C eta; extrapolate the step count for 1e-8.
        etas, errs = np.array(gd_errors).T
        C = float(np.exp(np.mean(np.log(errs / etas))))
        steps_1e8 = T / (1e-8 / C)
        rows.append(["GD at 1e-8 (extrapolated, err = C eta)", "1.0e-08", f"{steps_1e8:,.0f}", "-"])
        run = lambda: exact_P(ts)
        rows.append(["closed form (saxe_product)", "0 (reference)", "-", f"{best_time(run, 5):.4f}"])
        flow_evals = [
            int(r[2].replace(",", "")) for r in rows if r[0].startswith("diffrax") and float(r[1]) <= 1e-8
        ]
        ratio = steps_1e8 / min(flow_evals) if flow_evals else float("nan")
    return {
        "title": "B3 accuracy per cost: sigmoidal learning curve of a two-layer net from init 1e-3",
        "columns": ["method", "max rel. error vs closed form", "RHS evaluations", "wall s"],
        "rows": rows,
        "notes": [
            f"GD needs {ratio:,.0f}x more RHS evaluations than adaptive gradient flow to reach 1e-8 "
            f"(fitted C = {C:.3g}). Dopri8 evaluations = 13 stages x (accepted + rejected steps)."
        ],
    }


def b4_scaling(quick: bool, peaks: dict) -> dict:
    """B4: throughput against the number of grid points (chunks of 256 on a CPU, 4096 on a GPU)."""
    steps = 100
    sizes = (100, 100, 10)
    flops = flops_per_step(sizes)
    counts = [1, 4, 16, 64, 256, 1024, 4096] + ([] if quick else [16384, 65536])
    rows = []
    _, point = _point_fn(sizes, steps, 100, jnp.float32)
    peak = peaks["float32"]["peak"]
    for count in counts:
        grid = sweep.Grid(scale=np.logspace(-2, 0, count), ratio=np.ones(1))
        chunk = min(count, 256 if jax.default_backend() == "cpu" else 4096)
        _timed_sweep(point, sweep.Grid(scale=np.ones(chunk), ratio=np.ones(1)), chunk_size=chunk)  # compile
        _, total, events = _timed_sweep(point, grid, chunk_size=chunk)
        rate = count * steps / (total - events["seconds"])
        rows.append(
            [
                count,
                f"{total:.3f}",
                f"{rate:,.0f}",
                f"{rate * flops / 1e9:.1f}",
                f"{100 * rate * flops / 1e9 / peak:.0f}%",
            ]
        )
    return {
        "title": f"B4 batch scaling: float32, {steps} steps per point",
        "columns": ["points", "wall s", "point-steps/s", "GFLOP/s", "% of peak"],
        "rows": rows,
        "notes": ["Compilation excluded (a warm-up sweep of the same chunk shape runs first)."],
    }


_COLD = """
import time, sys
start = time.perf_counter()
import jax, numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
from linsolve.bench._suite import _point_fn
from linsolve import sweep
import jax.numpy as jnp
_, point = _point_fn((100, 100, 10), 1000, 100, jnp.float32)
t0 = time.perf_counter()
sweep.run(point, sweep.Grid(scale=np.logspace(-2, 0, 16), ratio=np.ones(1)), progress=False)
print(time.perf_counter() - t0, time.perf_counter() - start)
"""


def b5_compile(quick: bool, peaks: dict) -> dict:
    """B5: compilations per sweep, and time to first result with a cold / warm persistent cache."""
    del quick, peaks
    rows = []
    for dtype in (jnp.float32, jnp.float64):
        with jax.enable_x64(dtype == jnp.float64):
            _, point = _point_fn((100, 100, 10), 200, 100, dtype)
            grid = _grid(8)
            _, _, events = _timed_sweep(point, grid, chunk_size=16)
            rows.append(
                [
                    f"sweep of {grid.size} points in {math.ceil(grid.size / 16)} chunks, "
                    f"{jnp.dtype(dtype).name}",
                    events["compilations"],
                    f"{events['seconds']:.2f}",
                ]
            )
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "warm"):
            first, process = map(float, run_python(["-c", _COLD, cache]).split())
            rows.append(
                [
                    f"time to first result, {label} persistent cache (process: {process:.1f} s)",
                    "-",
                    f"{first:.2f}",
                ]
            )
    return {
        "title": "B5 compilation",
        "columns": ["case", "compilations", "seconds"],
        "rows": rows,
        "notes": [
            "A sweep compiles its chunk function once per (shape, dtype); the persistent "
            "cache (`jax_compilation_cache_dir`) removes the compile from a second process."
        ],
    }


def b6_depth(quick: bool, peaks: dict) -> dict:
    """B6: deep linear nets of depth 2, 4, 8: cost per step should grow about linearly in L."""
    steps = 200 if quick else 1000
    rows = []
    base = None
    for L in (2, 4, 8):
        sizes = (100,) + (100,) * (L - 1) + (10,)
        _, point = _point_fn(sizes, steps, 100, jnp.float32)
        grid = sweep.Grid(scale=np.logspace(-1, 0, 64), ratio=np.ones(1))
        _timed_sweep(point, grid)
        _, total, events = _timed_sweep(point, grid)
        per = (total - events["seconds"]) / (grid.size * steps)
        base = base or per
        rows.append(
            [
                L,
                f"{per * 1e6:.2f}",
                f"{per / base:.2f}",
                f"{flops_per_step(sizes) / flops_per_step(sizes[:2] + sizes[-1:]):.2f}",
                f"{flops_per_step(sizes) / per / 1e9:.1f}",
            ]
        )
    return {
        "title": f"B6 depth: 64 points x {steps} steps, float32",
        "columns": ["L", "us per point-step", "time / time(L=2)", "FLOP / FLOP(L=2)", "GFLOP/s"],
        "rows": rows,
        "notes": [],
    }
