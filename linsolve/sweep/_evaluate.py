"""Evaluation of a set of grid points in one compiled call: the chunk function and its cache.

A call evaluates ``fn`` at up to ``call_size`` points: the points are padded (by repeating the
last one) to ``call_size`` rounded up to a multiple of the device count, run through
``jit(vmap(fn))`` (or ``lax.map`` over vmapped groups, sharded over the devices), and trimmed. So
every call of a sweep has one shape and the sweep compiles once, whatever the number of points a
call carries and whatever the machine; the padding never reaches the stored results.
"""

from __future__ import annotations

import collections
import math
import threading
from typing import NamedTuple

import jax
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["CallSpec", "evaluate_points", "output_specs"]

# Compiled chunk functions. Keyed on the function object in the calling process, and on the
# function's fingerprint on executor workers, where every task unpickles a new function object
# (so a worker compiles once per sweep, not once per chunk). Least recently used entries go first.
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_MAX_COMPILED = 32
_COMPILED_LOCK = threading.Lock()  # executor threads share the cache


class CallSpec(NamedTuple):
    """How a sweep's calls are compiled; the same for every call of one sweep.

    `cache_id`: the function fingerprint (executor workers) or None (key on the function object);
    `n_devices`: devices a call is split over (None: every local device of the machine running it).
    """

    cache_id: str | None
    x64: bool
    with_key: bool
    batch_size: int | None | str
    n_devices: int | None
    call_size: int


def _point_fn(fn, with_key: bool):
    if with_key:
        # (base key, flat index) per point, folded inside the compiled function, so deriving the
        # keys costs no compilation of its own; point i gets fold_in(key, i) whatever the chunking.
        return lambda point, key: fn(**point, key=jr.fold_in(key[0], key[1]))
    return lambda point, key: fn(**point)


def _default_batch_size() -> int | None:
    """Small vmapped groups under ``lax.map`` on CPUs, one wide vmap on accelerators."""
    return 8 if jax.default_backend() == "cpu" else None


def _batched(fn, spec: CallSpec, batch_size: int | None, n_devices: int):
    """The compiled chunk function, cached per (function or fingerprint, batching, devices).

    Points run as ``vmap`` over the whole call (`batch_size` None) or as ``lax.map`` over vmapped
    groups of `batch_size` points: on a CPU, small groups keep each point's matrices in cache and
    its matrix products large enough for the GEMM kernels, where one wide vmap makes thin batched
    products. With several local devices (``cpu_devices``, or GPUs) the call is split evenly
    across them by ``shard_map``: still one executable, one compilation.
    """
    ident = spec.cache_id
    if ident is None:
        try:
            ident = (hash(fn), fn)
        except TypeError:  # an unhashable callable object: its id (the entry keeps it alive)
            ident = ("id", id(fn))
    cache_key = (ident, spec.with_key, batch_size, n_devices)
    with _COMPILED_LOCK:
        if cache_key in _COMPILED:
            _COMPILED.move_to_end(cache_key)
            return _COMPILED[cache_key][0]
        chunk_fn = _build(fn, spec.with_key, batch_size, n_devices)
        _COMPILED[cache_key] = (chunk_fn, fn)
        while len(_COMPILED) > _MAX_COMPILED:
            _COMPILED.popitem(last=False)
        return chunk_fn


def _build(fn, with_key: bool, batch_size: int | None, n_devices: int):
    point_fn = _point_fn(fn, with_key)
    if batch_size is None:
        chunk_fn = jax.vmap(point_fn)
    else:
        chunk_fn = lambda points, keys: jax.lax.map(
            lambda a: point_fn(*a), (points, keys), batch_size=batch_size
        )
    if n_devices == 1:
        return jax.jit(chunk_fn)
    mesh = Mesh(np.array(jax.local_devices()[:n_devices]), ("points",))
    spec = PartitionSpec("points")
    return jax.jit(
        jax.shard_map(chunk_fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False),
        in_shardings=NamedSharding(mesh, spec),
    )


def as_inputs(points: dict, x64: bool) -> dict:
    """Axis values as plain numpy arrays in the sweep's dtype (floats) or integers."""
    dtype = np.float64 if x64 else np.float32
    return {
        name: np.asarray(v, dtype)
        if np.issubdtype(np.asarray(v).dtype, np.floating)
        else np.asarray(v, np.int64 if x64 else np.int32)
        for name, v in points.items()
    }


def output_specs(fn, point: dict, key, x64: bool, with_key: bool) -> dict:
    """Names, shapes and dtypes of `fn`'s outputs at one point, by ``jax.eval_shape`` (no computing).

    **Returns:** ``{name: {"shape": [...], "dtype": "float64"}}``. Raises ``ValueError`` unless
    `fn` returns a dict of arrays with string keys.
    """
    with jax.enable_x64(x64):
        args = {k: jax.ShapeDtypeStruct((), v.dtype) for k, v in as_inputs(point, x64).items()}
        keys = None
        if with_key:
            keys = (
                jax.ShapeDtypeStruct(np.shape(key), np.asarray(key).dtype),
                jax.ShapeDtypeStruct((), np.uint32),
            )
        out = jax.eval_shape(_point_fn(fn, with_key), args, keys)
    if not isinstance(out, dict):
        raise ValueError(f"`fn` must return a dict of arrays; got {type(out).__name__}.")
    specs = {}
    for name, value in out.items():
        if not isinstance(name, str) or not isinstance(value, jax.ShapeDtypeStruct):
            raise ValueError(
                f"`fn` must return a dict mapping names (str) to arrays; "
                f"got {name!r}: {type(value).__name__}."
            )
        specs[name] = {"shape": list(value.shape), "dtype": np.dtype(value.dtype).name}
    return specs


def evaluate_points(fn, points: dict, index, key, spec: CallSpec) -> dict:
    """Evaluate `fn` at the grid points `points` (flat indices `index`, shape (m,), m <= call_size)
    in one compiled call; returns numpy arrays with m rows. Runs locally or on an executor worker.
    """
    with jax.enable_x64(spec.x64):
        # Plain numpy in, so the only compilation is the sweep function's own.
        args = as_inputs(points, spec.x64)
        index = np.asarray(index)
        m = len(index)
        batch_size = _default_batch_size() if spec.batch_size == "auto" else spec.batch_size
        n_devices = jax.local_device_count() if spec.n_devices is None else spec.n_devices
        call = math.ceil(spec.call_size / n_devices) * n_devices
        pad = np.minimum(np.arange(call), m - 1)  # pad by repeating the last point
        args = {name: v[pad] for name, v in args.items()}
        keys = None
        if spec.with_key:
            keys = (np.broadcast_to(np.asarray(key), (call, *np.shape(key))), index[pad].astype(np.uint32))
        out = _batched(fn, spec, batch_size, n_devices)(args, keys)
        if not isinstance(out, dict):
            raise ValueError(f"`fn` must return a dict of arrays; got {type(out).__name__}.")
        return {name: np.asarray(value)[:m] for name, value in out.items()}
