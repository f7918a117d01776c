"""Input normalisation and validation shared by every public entry point.

Every check here runs at trace time on shapes, and on values only when the value is concrete
(not a tracer): a function called under ``jit``/``vmap`` still gets its shape checks, and a plain
call gets the full ``ValueError`` before any work is done.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` has a value now (not an abstract tracer inside jit/vmap/grad)."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def default_float():
    """The floating dtype JAX uses for new arrays (float64 when x64 is on, else float32)."""
    return jnp.asarray(0.0).dtype


def float_dtype_of(*xs):
    """The floating dtype of the first floating array among ``xs`` (else the default)."""
    for x in xs:
        dtype = getattr(x, "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
            return dtype
    return default_float()


def as_float(x, name: str, dtype=None, *, ndim: int | None = None):
    """``x`` as a floating JAX array; checks its rank and (when concrete) that it is finite."""
    x = jnp.asarray(x)
    if dtype is None:
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else default_float()
    x = x.astype(dtype)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"`{name}` must be a {ndim}-D array; got shape {tuple(x.shape)}.")
    check_finite(name, x)
    return x


def check_finite(name: str, x) -> None:
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        bad = int(np.size(x) - np.sum(np.isfinite(np.asarray(x))))
        raise ValueError(
            f"`{name}` must be finite; got {bad} non-finite entr{'y' if bad == 1 else 'ies'}."
        )


def check_positive(name: str, x, *, strict: bool = True) -> None:
    """Raise unless every entry of ``x`` is > 0 (``strict``) or >= 0, when ``x`` is concrete."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    ok = np.all(arr > 0) if strict else np.all(arr >= 0)
    if not ok:
        which = "positive" if strict else "non-negative"
        raise ValueError(f"`{name}` must be {which}; got {arr.tolist()}.")


def per_layer(name: str, value, n_layers: int, dtype, *, strict: bool = True):
    """Broadcast a scalar or a length-``n_layers`` sequence to an array of shape (n_layers,).

    The result stays a traced array under jit, so sweeping it never recompiles.
    """
    arr = jnp.asarray(
        value if not isinstance(value, Sequence) else jnp.stack([jnp.asarray(v) for v in value])
    )
    arr = arr.astype(dtype)
    if arr.ndim == 0:
        arr = jnp.broadcast_to(arr, (n_layers,))
    elif arr.shape != (n_layers,):
        raise ValueError(
            f"`{name}` must be a scalar or have one entry per layer ({n_layers}); "
            f"got shape {tuple(arr.shape)}."
        )
    check_finite(name, arr)
    check_positive(name, arr, strict=strict)
    return arr


def validate_params(params, name: str = "params", dtype=None) -> tuple:
    """Deep linear net parameters ``(W1, ..., WL)``: 2-D, finite, consecutive shapes compatible."""
    if isinstance(params, jax.Array | np.ndarray):
        params = (params,)
    if not isinstance(params, Sequence) or len(params) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty tuple of weight matrices (W1, ..., WL); got {type(params)}."
        )
    dtype = dtype or float_dtype_of(*params)
    params = tuple(as_float(W, f"{name}[{i}]", dtype) for i, W in enumerate(params))
    for i, W in enumerate(params):
        if W.ndim != 2:
            raise ValueError(f"`{name}[{i}]` must be a 2-D matrix; got shape {tuple(W.shape)}.")
    for i in range(1, len(params)):
        if params[i].shape[1] != params[i - 1].shape[0]:
            raise ValueError(
                f"`{name}[{i}]` must have {params[i - 1].shape[0]} columns to follow "
                f"`{name}[{i - 1}]` of shape {tuple(params[i - 1].shape)}; "
                f"got shape {tuple(params[i].shape)}."
            )
    return params


def check_against_task(params: tuple, task, name: str = "params") -> None:
    """The network's input and output sizes must match the task's."""
    d_out, d_in = task.Syx.shape
    if params[0].shape[1] != d_in:
        raise ValueError(
            f"`{name}[0]` must have d_in={d_in} columns to match the task; "
            f"got shape {tuple(params[0].shape)}."
        )
    if params[-1].shape[0] != d_out:
        raise ValueError(
            f"`{name}[-1]` must have d_out={d_out} rows to match the task; "
            f"got shape {tuple(params[-1].shape)}."
        )


def as_scalar(name: str, value, dtype, *, strict: bool = True, positive: bool = True):
    arr = jnp.asarray(value).astype(dtype)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar; got shape {tuple(arr.shape)}.")
    check_finite(name, arr)
    if positive:
        check_positive(name, arr, strict=strict)
    return arr


def random_orthonormal(key, n: int, k: int, dtype):
    """An (n, k) matrix with orthonormal columns, Haar-distributed (k <= n)."""
    if k > n:
        raise ValueError(f"cannot draw {k} orthonormal columns in dimension {n}.")
    if k == 0:
        return jnp.zeros((n, 0), dtype)
    g = jax.random.normal(key, (n, k), dtype)
    q, r = jnp.linalg.qr(g)
    return q * jnp.sign(jnp.diagonal(r))[None, :]
