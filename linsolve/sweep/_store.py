"""The on-disk sweep store: ``meta.json`` (what the sweep is), ``chunks/`` (finished point ranges),
``lock`` (the one writer) and ``result.npz`` (the assembled result).

A chunk file ``chunks/points_<start>-<stop>.npz`` holds every output for the flat grid points
``start..stop-1``. The layout depends only on the grid and the points already stored, never on
the machine, so a sweep can be resumed with another chunk size, device count or backend: every
valid stored range is reused and only the missing points are computed. A store is resumed only
by the same sweep (grid, dtype, key, configuration, point-function fingerprint and outputs);
anything else raises :class:`StoreError` before any computing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
import uuid
import warnings

import numpy as np

__all__ = ["StoreError", "IDENTITY", "check_store", "locked", "load_chunks", "save_chunk", "write_meta"]

# Fields of meta.json that must agree for a resume.
IDENTITY = ("grid", "dtype", "key", "config", "function", "outputs")
_CHUNK = re.compile(r"^points_(\d+)-(\d+)\.npz$")


class StoreError(ValueError):
    """`out` holds results of another sweep or unidentified ones, or is locked by a running sweep."""


def _how_to_proceed(out: str) -> str:
    return (
        f"Use a new `out` folder, or pass overwrite=True (CLI: --overwrite) to discard the results "
        f"in {out!r} and recompute."
    )


def _describe(field: str, old, new) -> str:
    if field == "function":
        name = (new or {}).get("name", "?")
        text = (
            f"the point function `{name}` differs (its code, closure values, defaults or a helper it calls)"
        )
        old_py, new_py = (old or {}).get("python"), (new or {}).get("python")
        if old_py and old_py != new_py:
            text += f"; the store was written under Python {old_py}, whose bytecode differs from {new_py}'s"
        return text
    if field == "outputs":
        old, new = old or {}, new or {}
        changes = [f"new {sorted(set(new) - set(old))}" if set(new) - set(old) else ""]
        changes.append(f"dropped {sorted(set(old) - set(new))}" if set(old) - set(new) else "")
        changes += [
            f"`{k}` was {_spec(old[k])}, now {_spec(new[k])}"
            for k in sorted(set(old) & set(new))
            if old[k] != new[k]
        ]
        return "its outputs differ (" + "; ".join(c for c in changes if c) + ")"
    if field == "grid":
        return f"its grid differs (stored axes {_axes_summary(old)}, now {_axes_summary(new)})"
    return f"its {field!r} differs (stored {_short(old)}, now {_short(new)})"


def _spec(spec: dict) -> str:
    return f"{spec['dtype']}{tuple(spec['shape'])}"


def _axes_summary(axes) -> str:
    if not isinstance(axes, dict):
        return _short(axes)
    return "{" + ", ".join(f"{k}[{len(v)}]" for k, v in axes.items()) + "}"


def _short(value, limit: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _chunk_dir(out: str) -> str:
    return os.path.join(out, "chunks")


def _chunk_files(out: str) -> list[str]:
    folder = _chunk_dir(out)
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.endswith(".npz"))


def check_store(out: str, meta: dict, *, resume: bool, overwrite: bool) -> dict | None:
    """Decide what to do with `out` before any computing; call it holding the lock.

    Returns the stored metadata when the store is to be resumed, None when `out` starts empty
    (a new folder, a store that holds no results yet, or one whose results `overwrite`
    discarded). Raises :class:`StoreError` when `out` holds results that may not be reused.
    """
    meta_path = os.path.join(out, "meta.json")
    finished = [f for f in _chunk_files(out) if not f.endswith(".tmp.npz")]  # not half-written ones
    has_results = bool(finished) or os.path.exists(os.path.join(out, "result.npz"))
    if overwrite or not has_results:
        clear(out)  # nothing stale can come back from a store without results
        return None
    if not os.path.exists(meta_path):
        raise StoreError(
            f"`out`={out!r} holds sweep results but no meta.json, so nothing tells which sweep they "
            f"belong to; they are not reused. {_how_to_proceed(out)}"
        )
    try:
        with open(meta_path) as f:
            old = json.load(f)
    except (OSError, ValueError) as error:
        raise StoreError(
            f"`out`={out!r} has an unreadable meta.json ({error}). {_how_to_proceed(out)}"
        ) from None
    if not resume:
        raise StoreError(
            f"`out`={out!r} already holds a sweep and `resume` is False. Pass resume=True (CLI: --resume) "
            f"to continue it. {_how_to_proceed(out)}"
        )
    if "function" not in old:
        raise StoreError(
            f"`out`={out!r} holds a sweep written by an older linsolve, which did not record the point "
            f"function, so its results cannot be checked. {_how_to_proceed(out)}"
        )
    differ = [field for field in IDENTITY if old.get(field) != meta.get(field)]
    if differ:
        reasons = "; ".join(_describe(field, old.get(field), meta.get(field)) for field in differ)
        raise StoreError(f"`out`={out!r} holds a different sweep: {reasons}. {_how_to_proceed(out)}")
    return old


def clear(out: str) -> None:
    """Delete the store's chunks, result and metadata (not the lock, nor other files)."""
    shutil.rmtree(_chunk_dir(out), ignore_errors=True)
    for name in ("result.npz", "meta.json"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))


def write_meta(out: str, meta: dict) -> None:
    path = os.path.join(out, "meta.json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, path)


def save_chunk(out: str, start: int, values: dict) -> None:
    """Write outputs of points ``start..start+n-1`` atomically (a killed run leaves no half file)."""
    n = len(next(iter(values.values())))
    path = os.path.join(_chunk_dir(out), f"points_{start:010d}-{start + n:010d}.npz")
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **values)
    os.replace(tmp, path)


def load_chunks(out: str, size: int, outputs: dict) -> tuple[dict, np.ndarray]:
    """Read every valid chunk of `out` into full arrays.

    **Arguments:**

    - `size`: number of grid points; `outputs`: name -> {"shape", "dtype"} of one point.

    **Returns:** ``(values, present)``: `values` maps each output to a ``(size, *shape)`` array,
    `present` is a ``(size,)`` bool mask of the points read. A file that cannot be read or does not
    match the outputs (names, shapes, dtypes, its point range) is named in a warning and deleted,
    so its points are computed again; leftovers of interrupted writes are deleted silently.
    """
    values = {k: np.zeros((size, *spec["shape"]), spec["dtype"]) for k, spec in outputs.items()}
    present = np.zeros(size, bool)
    for name in _chunk_files(out):
        path = os.path.join(_chunk_dir(out), name)
        if name.endswith(".tmp.npz"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        problem, chunk, start = _read_chunk(path, name, size, outputs)
        if problem is not None:
            warnings.warn(
                f"sweep store: chunk file {path!r} is unusable ({problem}); it is deleted and its "
                "points are computed again.",
                stacklevel=3,
            )
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        stop = start + len(next(iter(chunk.values())))
        for k, v in chunk.items():
            values[k][start:stop] = v
        present[start:stop] = True
    return values, present


def _read_chunk(path: str, name: str, size: int, outputs: dict):
    """(problem or None, arrays, start) for one chunk file."""
    match = _CHUNK.match(name)
    if match is None:
        return "its name is not points_<start>-<stop>.npz", None, 0
    start, stop = int(match[1]), int(match[2])
    if not 0 <= start < stop <= size:
        return f"its point range {start}..{stop} is outside the grid of {size} points", None, 0
    try:
        with np.load(path, allow_pickle=False) as f:
            chunk = {k: f[k] for k in f.files}
    except Exception as error:  # noqa: BLE001 - any load error means a damaged file
        return f"{type(error).__name__}: {error}", None, 0
    if set(chunk) != set(outputs):
        return f"it holds outputs {sorted(chunk)}, expected {sorted(outputs)}", None, 0
    for k, spec in outputs.items():
        want = (stop - start, *spec["shape"])
        if chunk[k].shape != want or chunk[k].dtype != np.dtype(spec["dtype"]):
            return (
                f"output `{k}` is {chunk[k].dtype}{chunk[k].shape}, expected {spec['dtype']}{want}",
                None,
                0,
            )
    return None, chunk, start


# ------------------------------------------------------------------------------------- lock


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_lock(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _create_lock(path: str, token: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "token": token,
            },
            f,
        )
    return True


def _stale(holder: dict | None, path: str) -> str | None:
    """Why the lock at `path` is stale (its writer is gone), or None if it may be live."""
    if holder is None:
        # Unreadable: a writer killed between creating and filling it, if it is old enough.
        try:
            age = time.time() - os.path.getmtime(path)
        except OSError:
            return "it vanished"
        return f"it is unreadable and {age:.0f} s old" if age > 10 else None
    if holder.get("host") == socket.gethostname() and not _pid_running(int(holder.get("pid", -1))):
        return f"process {holder.get('pid')} that wrote it no longer runs"
    return None


@contextlib.contextmanager
def locked(out: str):
    """Hold ``out/lock`` for the block: created with O_EXCL, holding pid, host and time; released
    on exit, including on exceptions and KeyboardInterrupt. A lock left by a process that no longer
    runs on this host is taken over with a warning; a live one raises :class:`StoreError`."""
    path = os.path.join(out, "lock")
    token = uuid.uuid4().hex
    if not _create_lock(path, token):
        holder = _read_lock(path)
        reason = _stale(holder, path)
        if reason is None:
            who = (
                "an unknown process"
                if holder is None
                else (
                    f"process {holder.get('pid')} on host {holder.get('host')!r} since {holder.get('time')}"
                )
            )
            raise StoreError(
                f"`out`={out!r} is locked by another running sweep ({who}). Wait for it to finish or "
                f"use another folder; if no sweep writes there any more, delete {path!r}."
            )
        warnings.warn(f"sweep store: taking over the stale lock {path!r} ({reason}).", stacklevel=3)
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        if not _create_lock(path, token):
            raise StoreError(
                f"`out`={out!r} was locked by another sweep at the same moment; retry or use another folder."
            )
    try:
        yield
    finally:
        holder = _read_lock(path)
        if holder is not None and holder.get("token") == token:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
