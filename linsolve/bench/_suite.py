"""Benchmarks B1-B6: each returns a table (title, column names, rows, notes) for RESULTS.md.

The problem of B1, B2, B4 and B6 is covariance-form gradient descent on a deep linear net with
``d_in = n_l = 100``, ``d_out = 10`` (a non-whitened teacher task, so ``Sxx`` is a full matrix),
init ``W_l ~ N(0, scale^2 / n_{l-1})``, layer rates ``(lr, lr * ratio)``, loss logged every 100
steps. FLOPs are counted analytically (:func:`flops_per_step`) from the matrix products one step
needs, so GFLOP/s compare across implementations that do the same products.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import exact, init, simulate, sweep, tasks
from ._baselines import SINGLE_THREAD_ENV
from ._machine import best_time, compile_events, gemm_peak, run_python

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


BENCHMARKS = {
    "B1": b1_sweep,
    "B2": b2_single,
    "B3": b3_accuracy,
    "B4": b4_scaling,
    "B5": b5_compile,
    "B6": b6_depth,
}


def peaks() -> dict:
    """Measured GEMM peaks for float32 and float64."""
    out = {"float32": gemm_peak(jnp.float32)}
    with jax.enable_x64(True):
        out["float64"] = gemm_peak(jnp.float64, 1536)
    return out
