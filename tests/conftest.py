"""Test configuration: float64 on two CPU devices, cheap XLA compilation, a persistent compile cache.

Most of the suite's time is XLA compiling many small programs, so the session
- compiles cheaply: `jax_disable_most_optimizations` (XLA's backend/LLVM optimisation level 0) and,
  where the installed XLA knows the flag, ``--xla_cpu_use_fusion_emitters=false`` (XLA's older,
  faster-to-compile CPU code generator). Together they halve the suite's CPU time; the HLO, hence
  the arithmetic, is the same, only the machine code differs. ``LINSOLVE_TEST_FAST_COMPILE=0``
  turns both off, to test the code users run.
- keeps JAX's persistent compilation cache in ``.pytest_cache/jax`` (override with the environment
  variable ``LINSOLVE_TEST_JAX_CACHE=DIR``; ``LINSOLVE_TEST_JAX_CACHE=`` turns it off). A rerun then
  loads most executables instead of compiling them (tests of tasks/models/MLP: 24 s -> 9 s of CPU).
  The folder is pruned to its newest 1 GB at start; ``pytest --cache-clear`` empties it.
The settings go into the environment too, so that subprocesses started by tests inherit them.

`compilations` counts the executables built inside a block (compiled, or loaded from the cache).
"""

import contextlib
import os
import pathlib
import subprocess
import sys

# Two CPU devices run LAPACK (eigh, svd) concurrently; keep the OpenBLAS behind it single-threaded
# (as `sweep.cpu_devices` does), before anything loads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.random as jr
import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_CACHE_LIMIT_BYTES = 1 << 30
_FAST_XLA_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)


def _xla_accepts(flags: str) -> bool:
    """Whether XLA starts with these XLA_FLAGS (it aborts the process on a flag it does not know)."""
    probe = "import jax; jax.numpy.zeros(1).block_until_ready()"
    try:
        env = {**os.environ, "XLA_FLAGS": flags}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _fast_compilation() -> None:
    """Cheaper XLA compilation for the whole session (see the module docstring)."""
    if os.environ.get("LINSOLVE_TEST_FAST_COMPILE", "1") == "0":
        return
    if "JAX_DISABLE_MOST_OPTIMIZATIONS" not in os.environ:
        jax.config.update("jax_disable_most_optimizations", True)
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    current = os.environ.get("XLA_FLAGS", "")
    extra = [flag for flag in _FAST_XLA_FLAGS if flag.split("=")[0] not in current]
    flags = " ".join([current, *extra]).strip()
    if extra and _xla_accepts(flags):
        os.environ["XLA_FLAGS"] = flags  # read when the backend starts, after this file is imported


_fast_compilation()
jax.config.update("jax_enable_x64", True)
# Two CPU devices, so the sweep's sharded path runs in the tests as it does under the CLI.
jax.config.update("jax_num_cpu_devices", 2)


def _prune(folder: pathlib.Path, limit: int) -> None:
    """Delete the oldest cache entries until the folder holds at most `limit` bytes."""
    entries = []
    for path in folder.iterdir():
        with contextlib.suppress(OSError):  # another test run may be pruning too
            stat = path.stat()
            entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            path.unlink()
        total -= size


def _use_compilation_cache() -> None:
    folder = os.environ.get("LINSOLVE_TEST_JAX_CACHE", str(_ROOT / ".pytest_cache" / "jax"))
    if not folder:
        return
    path = pathlib.Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        _prune(path, _CACHE_LIMIT_BYTES)
    except OSError:  # a read-only checkout: run without the cache
        return
    settings = {
        "jax_compilation_cache_dir": str(path),
        "jax_persistent_cache_min_compile_time_secs": 0,  # the suite is many small compilations
        "jax_persistent_cache_min_entry_size_bytes": -1,
    }
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)


_use_compilation_cache()


@pytest.fixture
def getkey():
    """A fresh PRNG key per call, deterministic per test."""
    state = {"key": jr.PRNGKey(0)}

    def _getkey():
        state["key"], sub = jr.split(state["key"])
        return sub

    return _getkey


@contextlib.contextmanager
def count_compilations():
    """Yields a list whose length is the number of executables built inside the block. JAX times
    every build with the same event, whether XLA compiles it or loads it from the persistent cache,
    so a test of "compiles once" means the same with a warm cache."""
    events = []

    def listener(name, *args, **kwargs):
        if name.endswith("backend_compile_duration"):
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def compilations():
    return count_compilations
