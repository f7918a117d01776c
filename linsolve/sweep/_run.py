"""`run`: evaluate a function at every grid point, vmapped in chunks, resumable, distributable.

The flat grid is cut into stored chunks of `chunk_size` points (by default from the grid size
alone: about 20 chunks of at most 256 points). Each compiled call evaluates the missing points of
one or a few consecutive chunks (enough to keep every device busy), padded inside the evaluation to
one fixed shape, so a whole sweep compiles once per shape and dtype: the swept values are traced
arrays. With `out`, every finished point range is written atomically to
``out/chunks/points_<start>-<stop>.npz`` (portable ``.npz``, no pickle) next to ``out/meta.json``,
which records the grid, dtype, key, configuration, point-function fingerprint and outputs. A rerun
of the same sweep computes only the points not yet stored, whatever its chunk size or machine; a
different sweep raises :class:`StoreError` instead of returning stale results.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import platform
import time
from concurrent.futures import Executor, as_completed

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._evaluate import CallSpec, output_specs
from ._evaluate import evaluate_points as _evaluate_chunk
from ._fingerprint import fingerprint
from ._grid import Grid
from ._result import SweepResult
from ._store import StoreError, check_store, load_chunks, locked, save_chunk, write_meta

__all__ = ["run", "cpu_devices", "default_chunk_size", "StoreError"]

_TARGET_CHUNKS = 20  # stored chunks of a default sweep: many progress ticks, little lost on a kill
_MAX_CHUNK = 256  # CPU calls hold memory growing with their work (~300 B per point-step)
_ACCELERATOR_CALL = 4096  # points per call on a GPU/TPU, gathered from several chunks


def default_chunk_size(size: int) -> int:
    """Stored chunk size for a grid of `size` points: about 20 chunks (10-20 for 10 to 5120
    points), at most 256 points; a power of two up to 8, a multiple of 8 above (so compiled calls
    split evenly over 1, 2, 4 or 8 devices). It depends on nothing but `size`."""
    per_chunk = math.ceil(size / _TARGET_CHUNKS)
    if per_chunk <= 8:
        per_chunk = 1 << (per_chunk - 1).bit_length()
    else:
        per_chunk = math.ceil(per_chunk / 8) * 8
    return max(1, min(per_chunk, _MAX_CHUNK, size))


def cpu_devices(n: int | None = None) -> int:
    """Split the host CPU into `n` XLA devices (default: one per core) so that a sweep on a CPU
    runs one shard of every chunk per core. Call it before any JAX computation (the CLI does);
    returns the number of devices. Raises ``RuntimeError`` if JAX already runs with another count.

    With several devices, LAPACK calls (``eigh``, ``svd``, ...) run concurrently from the device
    threads; the OpenBLAS behind them is then limited to one thread each
    (``OPENBLAS_NUM_THREADS=1`` unless the variable is set), which avoids oversubscribing the
    cores and the stalls seen when threaded OpenBLAS calls overlap.
    """
    n = (os.cpu_count() or 1) if n is None else int(n)
    if n < 1:
        raise ValueError(f"`n` must be a positive integer; got {n}.")
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        have = jax.local_device_count("cpu")
        if have != n:
            raise RuntimeError(
                f"JAX already started with {have} CPU device(s); call cpu_devices({n}) before any "
                f"JAX computation (or set jax_num_cpu_devices at start-up)."
            )
        return have
    if n > 1:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read when OpenBLAS is loaded
    jax.config.update("jax_num_cpu_devices", n)
    return n


def _accepts_key(fn) -> bool:
    try:
        return "key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _metadata(grid: Grid, chunk_size: int, config, x64: bool, key, function: dict, outputs: dict) -> dict:
    import linsolve

    device = jax.devices()[0]
    return {
        "grid": grid.to_dict(),
        "dtype": "float64" if x64 else "float32",
        "key": None if key is None else np.asarray(key).tolist(),
        "config": config,
        "function": function,
        "outputs": outputs,
        "chunk_size": chunk_size,
        "versions": {
            "linsolve": linsolve.__version__,
            "jax": jax.__version__,
            "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _plan(present: np.ndarray, chunk_size: int, chunks_per_call: int) -> list[np.ndarray]:
    """Flat indices of the missing points, one array per compiled call: the missing points of
    `chunks_per_call` consecutive stored chunks (chunks with nothing missing are skipped)."""
    calls, pending, n_chunks = [], [], 0
    for start in range(0, len(present), chunk_size):
        missing = start + np.flatnonzero(~present[start : start + chunk_size])
        if missing.size == 0:
            continue
        pending.append(missing)
        n_chunks += 1
        if n_chunks == chunks_per_call:
            calls.append(np.concatenate(pending))
            pending, n_chunks = [], 0
    if pending:
        calls.append(np.concatenate(pending))
    return calls


def _ranges(index: np.ndarray, chunk_size: int) -> list[np.ndarray]:
    """Positions in `index` of its contiguous runs, cut at stored chunk boundaries."""
    breaks = np.flatnonzero((np.diff(index) != 1) | (index[1:] % chunk_size == 0)) + 1
    return np.split(np.arange(len(index)), breaks)


def _chunks_per_call(chunk_size: int, n_devices: int, executor) -> int:
    """Chunks gathered into one call: enough to give every device a point on a CPU, about 4096
    points on an accelerator, one per task on an executor (its workers pad to their devices)."""
    if executor is not None:
        return 1
    if jax.default_backend() == "cpu":
        return max(1, math.ceil(n_devices / chunk_size))
    return max(1, _ACCELERATOR_CALL // chunk_size)


def _compute(fn, grid, values, present, *, key, spec_args, chunk_size, per_call, executor, progress, save):
    """Evaluate the points not `present`, filling `values` and calling `save(start, arrays)` per
    finished range; returns the number of compiled calls made."""
    calls = _plan(present, chunk_size, per_call)
    if not calls:
        return 0
    spec = CallSpec(call_size=max(len(c) for c in calls), **spec_args)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=grid.size, initial=int(present.sum()), unit="point", desc="sweep")

    def finish(index, out):
        for name in values:
            values[name][index] = out[name]
        present[index] = True
        if save is not None:
            for pos in _ranges(index, chunk_size):
                save(int(index[pos[0]]), {name: out[name][pos] for name in values})
        if bar is not None:
            bar.update(len(index))

    futures = {}
    try:
        if executor is None:
            for index in calls:
                finish(index, _evaluate_chunk(fn, grid.take(index), index, key, spec))
        else:
            for index in calls:
                futures[executor.submit(_evaluate_chunk, fn, grid.take(index), index, key, spec)] = index
            for fut in as_completed(futures):
                finish(futures[fut], fut.result())
    finally:
        for fut in futures:
            fut.cancel()  # after an error or interrupt; finished futures ignore it
        if bar is not None:
            bar.close()
    return len(calls)


def run(
    fn,
    grid: Grid,
    *,
    chunk_size: int | None = None,
    out: str | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    key=None,
    config: dict | None = None,
    resume: bool = True,
    overwrite: bool = False,
    batch_size: int | None | str = "auto",
    devices: int | None = None,
) -> SweepResult:
    """Evaluate ``fn(**point)`` at every point of `grid`; returns a :class:`SweepResult`.

    **Arguments:**

    - `fn`: takes one scalar per grid axis (by name; plus ``key`` if it has such a parameter)
      and returns a dict of arrays. It is traced once and vmapped over each call.
    - `grid`: the :class:`Grid`.
    - `chunk_size`: points per stored chunk (default :func:`default_chunk_size`: about 20 chunks
      of at most 256 points, from the grid size alone). It sets the progress ticks and what a kill
      loses; the points per compiled call follow the machine (a CPU call gathers chunks until every
      device has a point, an accelerator call about 4096 points) and are padded to a multiple of
      the device count inside the evaluation, never in the store.
    - `out`: folder for the resumable store: meta.json, chunks/, a lock file while running, and
      result.npz at the end. A rerun of the same sweep computes only the points not stored yet,
      with any chunk size or device count. A damaged chunk file is reported, deleted and recomputed.
    - `executor`: any ``concurrent.futures.Executor`` (e.g. a Dask ``Client.get_executor()``);
      calls are submitted to it and written as they finish. `fn` must then be picklable
      (cloudpickle-able for Dask). Each worker compiles once per sweep.
    - `progress`: tqdm progress bar over points.
    - `key`: base PRNG key; point ``i`` gets ``fold_in(key, i)`` (independent of chunking).
    - `config`: JSON-able description stored in the metadata (checked on resume).
    - `resume`: continue the sweep stored in `out` (default True); False raises
      :class:`StoreError` if `out` already holds a sweep.
    - `overwrite`: discard whatever `out` holds (chunks, result, metadata) and recompute.
    - `batch_size`: points vmapped together inside a call, the groups running under
      ``lax.map``; None vmaps the whole call; "auto" (default): 8 on a CPU, None elsewhere.
    - `devices`: number of local devices a call is split over (default: all of them; see
      :func:`cpu_devices` to give a CPU one device per core). With an `executor`, each worker
      uses all of its own local devices.

    **Returns:** outputs with shape ``grid.shape + output shape``.

    **Raises:** :class:`StoreError` (a ``ValueError``), before any computing, when `out` holds a
    different sweep (grid, dtype, key, config, point-function fingerprint or outputs differ),
    holds results without a meta.json, or is locked by another running sweep.
    """
    if not isinstance(grid, Grid):
        raise ValueError(f"`grid` must be a linsolve.sweep.Grid; got {type(grid).__name__}.")
    if not callable(fn):
        raise ValueError(f"`fn` must be callable; got {type(fn).__name__}.")
    chunk_size = default_chunk_size(grid.size) if chunk_size is None else chunk_size
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer; got {chunk_size!r}.")
    chunk_size = int(chunk_size)
    if batch_size not in ("auto", None) and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive integer, None or 'auto'; got {batch_size!r}.")
    n_devices = jax.local_device_count() if devices is None else int(devices)
    if not 1 <= n_devices <= jax.local_device_count():
        raise ValueError(
            f"`devices` must be in [1, {jax.local_device_count()}] (the local devices); got {devices}."
        )
    if out is not None and (not isinstance(out, (str, os.PathLike)) or os.path.isfile(out)):
        raise ValueError(f"`out` must be a folder path or None; got {out!r}.")
    with_key = _accepts_key(fn)
    if not with_key:
        key = None
    elif key is None:
        key = jr.PRNGKey(0)
    if key is not None and jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jr.key_data(key)  # raw uint32 keys travel to workers as plain arrays
    key = None if key is None else np.asarray(key)
    x64 = bool(jax.config.jax_enable_x64)
    outputs = output_specs(fn, grid.point(0), key, x64, with_key)
    fp = fingerprint(fn) if (out is not None or executor is not None) else None
    function = {
        "name": getattr(fn, "__qualname__", type(fn).__name__),
        "fingerprint": fp,
        "python": platform.python_version(),
    }
    try:  # as it reads back from meta.json, so that a resume compares like with like
        meta = json.loads(json.dumps(_metadata(grid, chunk_size, config, x64, key, function, outputs)))
    except TypeError as error:
        raise ValueError(f"`config` must be JSON-able (dicts, lists, str, numbers); {error}") from None
    values = {k: np.zeros((grid.size, *s["shape"]), s["dtype"]) for k, s in outputs.items()}
    present = np.zeros(grid.size, bool)
    compute = dict(
        key=key,
        spec_args=dict(
            cache_id=fp if executor is not None else None,
            x64=x64,
            with_key=with_key,
            batch_size=batch_size,
            n_devices=None if executor is not None else n_devices,
        ),
        chunk_size=chunk_size,
        per_call=_chunks_per_call(chunk_size, n_devices, executor),
        executor=executor,
        progress=progress,
    )
    if out is None:
        _compute(fn, grid, values, present, save=None, **compute)
        return _result(grid, values, meta)
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    with locked(out):
        old = check_store(out, meta, resume=resume, overwrite=overwrite)
        if old is not None:
            meta["created"] = old.get("created", meta["created"])
            meta["resumed"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            values, present = load_chunks(out, grid.size, outputs)
        os.makedirs(os.path.join(out, "chunks"), exist_ok=True)
        write_meta(out, meta)
        _compute(fn, grid, values, present, save=lambda start, v: save_chunk(out, start, v), **compute)
        result = _result(grid, values, meta)
        result.save(os.path.join(out, "result.npz"))
    return result


def _result(grid: Grid, values: dict, meta: dict) -> SweepResult:
    return SweepResult(grid.axes, {name: grid.unflatten(v) for name, v in values.items()}, meta)
