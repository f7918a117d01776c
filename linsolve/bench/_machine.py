"""What the benchmarks ran on, the machine's measured GEMM peak, and timing helpers."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ._baselines import SINGLE_THREAD_ENV

__all__ = ["machine_info", "gemm_peak", "best_time", "compile_events", "run_python"]


def machine_info() -> dict:
    """Versions, device, CPU and thread settings, to be printed with every result."""
    import linsolve

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    devices = jax.local_devices()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "linsolve": linsolve.__version__,
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", ""),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "device": f"{len(devices)} x {devices[0].platform}:{getattr(devices[0], 'device_kind', '')}",
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "matmul precision": str(jax.config.jax_default_matmul_precision),
        "baselines": "one BLAS thread each (" + ", ".join(f"{k}=1" for k in SINGLE_THREAD_ENV) + ")",
    }


def best_time(fn, repeats: int = 3) -> float:
    """Best wall time of ``fn()`` (blocking on its result) over `repeats` calls."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak(dtype, n: int = 2048) -> dict:
    """GFLOP/s of one large ``n x n`` GEMM, in JAX (all devices' threads) and in NumPy (its BLAS
    with default threads); the larger is the machine's peak the benchmarks divide by."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    f = jax.jit(lambda a: a @ a)
    jax_gflops = 2 * n**3 / best_time(lambda: f(a), 5) / 1e9
    code = (
        "import numpy as np, time\n"
        f"a = np.random.default_rng(0).standard_normal(({n}, {n})).astype('{jnp.dtype(dtype).name}')\n"
        "a @ a\nb = 1e9\n"
        "for _ in range(5):\n    t = time.perf_counter(); a @ a; b = min(b, time.perf_counter() - t)\n"
        f"print(2 * {n}**3 / b / 1e9)\n"
    )
    numpy_gflops = float(run_python(code, env={}).strip().splitlines()[-1])
    return {"jax": jax_gflops, "numpy": numpy_gflops, "peak": max(jax_gflops, numpy_gflops)}


def run_python(code_or_args, env: dict | None = None, timeout: float | None = None) -> str:
    """Run Python in a fresh process (a code string, or a list of arguments); returns stdout."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    full_env = dict(os.environ)
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        raise RuntimeError(f"subprocess failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


@contextlib.contextmanager
def compile_events():
    """Yields a dict with the number of XLA compilations and the seconds spent tracing,
    lowering and compiling inside the block (from ``jax.monitoring`` events)."""
    stats = {"compilations": 0, "seconds": 0.0}

    def listener(name, seconds, *args, **kwargs):
        if name.endswith("backend_compile_duration"):
            stats["compilations"] += 1
        if name.startswith("/jax/core/compile/"):
            stats["seconds"] += seconds

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield stats
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
