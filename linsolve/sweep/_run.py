"""`run`: evaluate a function at every grid point, vmapped in chunks, resumable, distributable.

Each chunk is one call of ``jit(vmap(fn))`` on a fixed chunk shape (the last chunk is padded by
repeating its final point and trimmed afterwards), so a whole sweep compiles once per shape and
dtype: the swept values are traced arrays. With `out`, every finished chunk is written atomically
to ``out/chunks/chunk_<i>.npz`` (portable `.npz`, no pickle) next to ``out/meta.json``; a rerun skips
finished chunks, so an interrupted sweep loses at most the chunks in flight.
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
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._grid import Grid
from ._result import SweepResult

__all__ = ["run", "cpu_devices"]

_COMPILED: dict = {}


def _batched(fn, with_key: bool, batch_size: int | None, n_devices: int):
    """The compiled chunk function, cached per (function, batching, devices).

    Points run as ``vmap`` over the whole chunk (`batch_size` None) or as ``lax.map`` over
    vmapped groups of `batch_size` points: on a CPU, small groups keep each point's matrices in
    cache and its matrix products large enough for the GEMM kernels, where one wide vmap makes
    thin batched products. With several local devices (``cpu_devices``, or GPUs) the chunk is
    split evenly across them by ``shard_map``: still one executable, one compilation.
    """
    cache_key = (fn, with_key, batch_size, n_devices)
    if cache_key not in _COMPILED:
        if with_key:
            # keys = (base key, flat index) per point, folded inside the compiled function, so
            # that deriving the keys costs no compilation of its own.
            point_fn = lambda point, key: fn(**point, key=jr.fold_in(key[0], key[1]))
        else:
            point_fn = lambda point, key: fn(**point)
        if batch_size is None:
            chunk_fn = jax.vmap(point_fn)
        else:
            chunk_fn = lambda points, keys: jax.lax.map(
                lambda a: point_fn(*a), (points, keys), batch_size=batch_size
            )
        if n_devices > 1:
            mesh = Mesh(np.array(jax.local_devices()[:n_devices]), ("points",))
            spec = PartitionSpec("points")
            chunk_fn = jax.jit(
                jax.shard_map(chunk_fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False),
                in_shardings=NamedSharding(mesh, spec),
            )
        else:
            chunk_fn = jax.jit(chunk_fn)
        _COMPILED[cache_key] = chunk_fn
    return _COMPILED[cache_key]


def _default_batch_size() -> int | None:
    """Small vmapped groups under ``lax.map`` on CPUs, one wide vmap on accelerators."""
    return 8 if jax.default_backend() == "cpu" else None


def _evaluate_chunk(
    fn, points: dict, keys, x64: bool, with_key: bool, batch_size="auto", n_devices=None
) -> dict:
    """Evaluate one (padded) chunk; returns numpy arrays. Runs locally or on an executor worker.

    `n_devices` None uses every local device the chunk divides evenly over.
    """
    with jax.enable_x64(x64):
        # Plain numpy in, so the only compilation is the sweep function's own.
        dtype = np.float64 if x64 else np.float32
        args = {
            name: np.asarray(v, dtype)
            if np.issubdtype(np.asarray(v).dtype, np.floating)
            else np.asarray(v, np.int64 if x64 else np.int32)
            for name, v in points.items()
        }
        size = len(next(iter(args.values())))
        if batch_size == "auto":
            batch_size = _default_batch_size()
        if n_devices is None:
            n_devices = jax.local_device_count()
        n_devices = math.gcd(size, n_devices)
        out = _batched(fn, with_key, batch_size, n_devices)(args, keys)
        if not isinstance(out, dict):
            raise ValueError(f"`fn` must return a dict of arrays; got {type(out).__name__}.")
        return {name: np.asarray(value) for name, value in out.items()}


def cpu_devices(n: int | None = None) -> int:
    """Split the host CPU into `n` XLA devices (default: one per core) so that a sweep on a CPU
    runs one shard of every chunk per core. Call it before any JAX computation (the CLI does);
    returns the number of devices. Raises ``RuntimeError`` if JAX already runs with another count.
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
    jax.config.update("jax_num_cpu_devices", n)
    return n


def _accepts_key(fn) -> bool:
    try:
        return "key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _metadata(grid: Grid, chunk_size: int, config, x64: bool) -> dict:
    import linsolve

    device = jax.devices()[0]
    return {
        "grid": grid.to_dict(),
        "chunk_size": chunk_size,
        "n_chunks": math.ceil(grid.size / chunk_size),
        "dtype": "float64" if x64 else "float32",
        "config": config,
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


def _check_resumable(out: str, meta: dict) -> None:
    path = os.path.join(out, "meta.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    for field in ("grid", "chunk_size", "dtype", "config"):
        if old.get(field) != meta[field]:
            raise ValueError(
                f"`out`={out!r} holds a different sweep (its {field!r} differs); resume needs the "
                f"same grid, chunk_size, dtype and config, or use a new folder."
            )


def _chunk_path(out: str, i: int) -> str:
    return os.path.join(out, "chunks", f"chunk_{i:06d}.npz")


def _save_chunk(out: str, i: int, values: dict) -> None:
    path = _chunk_path(out, i)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **values)
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written chunk


def _load_chunk(out: str, i: int) -> dict | None:
    path = _chunk_path(out, i)
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


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
    batch_size: int | None | str = "auto",
    devices: int | None = None,
) -> SweepResult:
    """Evaluate ``fn(**point)`` at every point of `grid`; returns a :class:`SweepResult`.

    **Arguments:**
    - `fn`: takes one scalar per grid axis (by name; plus ``key`` if it has such a parameter)
      and returns a dict of arrays. It is traced once and vmapped over each chunk.
    - `grid`: the :class:`Grid`.
    - `chunk_size`: points per compiled call (default: the whole grid, at most 256 on a CPU and
      4096 on an accelerator).
    - `out`: folder for the resumable store (meta.json, chunks/, and result.npz at the end).
    - `executor`: any ``concurrent.futures.Executor`` (e.g. a Dask ``Client.get_executor()``);
      chunks are submitted to it and written as they finish. `fn` must then be picklable
      (cloudpickle-able for Dask).
    - `progress`: tqdm progress bar over chunks.
    - `key`: base PRNG key; point ``i`` gets ``fold_in(key, i)`` (independent of chunking).
    - `config`: JSON-able description stored in the metadata (checked on resume).
    - `resume`: reuse finished chunks found in `out` (default True).
    - `batch_size`: points vmapped together inside a chunk, the groups running under
      ``lax.map``; None vmaps the whole chunk; "auto" (default): 8 on a CPU, None elsewhere.
    - `devices`: number of local devices a chunk is split over (default: all of them; see
      :func:`cpu_devices` to give a CPU one device per core). The chunk size is rounded up to a
      multiple of it.

    **Returns:** outputs with shape ``grid.shape + output shape``.
    """
    if not isinstance(grid, Grid):
        raise ValueError(f"`grid` must be a linsolve.sweep.Grid; got {type(grid).__name__}.")
    if not callable(fn):
        raise ValueError(f"`fn` must be callable; got {type(fn).__name__}.")
    if chunk_size is None:
        # On a CPU split into several devices, XLA's sharded while loops hold memory growing with
        # the work of one call (~300 B per point-step), so CPU chunks stay small.
        chunk_size = min(grid.size, 256 if jax.default_backend() == "cpu" else 4096)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer; got {chunk_size}.")
    if batch_size not in ("auto", None) and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive integer, None or 'auto'; got {batch_size!r}.")
    n_devices = jax.local_device_count() if devices is None else int(devices)
    if not 1 <= n_devices <= jax.local_device_count():
        raise ValueError(
            f"`devices` must be in [1, {jax.local_device_count()}] (the local devices); got {devices}."
        )
    if executor is None:
        chunk_size = -(-chunk_size // n_devices) * n_devices
    with_key = _accepts_key(fn)
    if with_key and key is None:
        key = jr.PRNGKey(0)
    if key is not None and jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jr.key_data(key)  # raw uint32 keys travel to workers as plain arrays
    x64 = bool(jax.config.jax_enable_x64)
    n_chunks = math.ceil(grid.size / chunk_size)
    meta = _metadata(grid, chunk_size, config, x64)
    done: dict[int, dict] = {}
    if out is not None:
        os.makedirs(os.path.join(out, "chunks"), exist_ok=True)
        if resume:
            _check_resumable(out, meta)
            for i in range(n_chunks):
                chunk = _load_chunk(out, i)
                if chunk is not None:
                    done[i] = chunk
        with open(os.path.join(out, "meta.json"), "w") as f:
            json.dump(meta, f, indent=2)

    def chunk_inputs(i):
        start, stop = i * chunk_size, min((i + 1) * chunk_size, grid.size)
        idx = np.arange(start, start + chunk_size)
        idx = np.minimum(idx, stop - 1)  # pad by repeating the last point
        points = {name: values[idx - start] for name, values in grid.flat(start, stop).items()}
        keys = None
        if with_key:  # point i gets fold_in(key, i), as Grid.keys gives it
            keys = (np.broadcast_to(np.asarray(key), (chunk_size,) + np.shape(key)), idx.astype(np.uint32))
        return points, keys, stop - start

    todo = [i for i in range(n_chunks) if i not in done]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_chunks, initial=n_chunks - len(todo), unit="chunk", desc="sweep")

    def finish(i, values, n_real):
        values = {k: v[:n_real] for k, v in values.items()}
        if out is not None:
            _save_chunk(out, i, values)
        done[i] = values
        if bar is not None:
            bar.update(1)

    try:
        if executor is None:
            for i in todo:
                points, keys, n_real = chunk_inputs(i)
                values = _evaluate_chunk(fn, points, keys, x64, with_key, batch_size, n_devices)
                finish(i, values, n_real)
        else:
            futures = {}
            for i in todo:
                points, keys, n_real = chunk_inputs(i)
                fut = executor.submit(_evaluate_chunk, fn, points, keys, x64, with_key, batch_size)
                futures[fut] = (i, n_real)
            for fut in as_completed(futures):
                i, n_real = futures[fut]
                finish(i, fut.result(), n_real)
    finally:
        if bar is not None:
            bar.close()

    names = list(done[0])
    data = {name: grid.unflatten(np.concatenate([done[i][name] for i in range(n_chunks)])) for name in names}
    result = SweepResult(grid.axes, data, meta)
    if out is not None:
        result.save(os.path.join(out, "result.npz"))
    return result
