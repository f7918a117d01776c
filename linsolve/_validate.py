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
    """The widest floating dtype among the floating arrays in ``xs`` (else the default float).

    Promotion follows JAX (as NumPy would for arrays): float32 with float64 gives float64.
    Python floats and weakly typed scalars (``jnp.asarray(1.0)``) do not widen the result, so a
    float32 array with a Python float stays float32. Non-floating inputs (ints, bools, None,
    lists) are ignored.
    """
    floats = []
    for x in xs:
        dtype = getattr(x, "dtype", None)
        if dtype is None:
            continue
        try:
            floating = jnp.issubdtype(dtype, jnp.floating)
        except TypeError:  # e.g. a PRNG key dtype
            continue
        if floating:
            floats.append(x)
    if not floats:
        return default_float()
    return jnp.result_type(*floats)


def _describe(x) -> str:
    if getattr(x, "ndim", 0) and getattr(x, "size", 0) > 1:
        return f"an array of shape {tuple(x.shape)} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def as_array(x, name: str):
    """``jnp.asarray(x)``, or a ValueError naming `name` when ``x`` is not numeric."""
    if isinstance(x, str | bytes) or x is None:
        raise ValueError(f"`{name}` must be a number or an array of numbers; got {_describe(x)}.")
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"`{name}` must be a number or an array of numbers; got {_describe(x)} ({e})."
        ) from None


def as_float(x, name: str, dtype=None, *, ndim: int | None = None):
    """``x`` as a floating JAX array; checks its type, rank and (when concrete) that it is finite.

    Booleans, complex numbers, strings and other non-numeric input raise a ValueError naming
    `name`; integers are converted to `dtype` (default: the default float).
    """
    x = as_array(x, name)
    if x.dtype == jnp.bool_:
        raise ValueError(f"`{name}` must be a real number (or array), not a bool; got {_describe(x)}.")
    if jnp.issubdtype(x.dtype, jnp.complexfloating) or not jnp.issubdtype(x.dtype, jnp.number):
        raise ValueError(f"`{name}` must be real; got dtype {x.dtype}.")
    if dtype is None:
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else default_float()
    x = x.astype(dtype)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"`{name}` must be a {ndim}-D array; got shape {tuple(x.shape)}.")
    check_finite(name, x)
    return x


def check_size(name: str, value, *, minimum: int = 1) -> int:
    """A size (an integer >= `minimum`; integral floats accepted, bools not) as a Python int."""
    if isinstance(value, bool | np.bool_) or (
        isinstance(value, np.ndarray | jax.Array) and value.dtype == bool
    ):
        raise ValueError(f"`{name}` must be an integer >= {minimum}, not a bool; got {value!r}.")
    try:
        as_int = int(value)
        integral = as_int == value
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral or isinstance(value, str | bytes):
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {_describe(value)}.")
    if as_int < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {as_int}.")
    return as_int


def check_key(key, name: str = "key"):
    """A JAX PRNG key: a typed key array (``jax.random.key``) or raw ``uint32`` key data."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None:
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            return key
        if dtype == jnp.uint32 and getattr(key, "ndim", 0) >= 1:
            return key
    raise ValueError(
        f"`{name}` must be a JAX PRNG key (jax.random.PRNGKey(seed) or jax.random.key(seed)); "
        f"got {_describe(key)}."
    )


def check_float_dtype(dtype, name: str = "dtype"):
    """A floating dtype (None: the default float)."""
    if dtype is None:
        return default_float()
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ValueError(f"`{name}` must be a floating dtype; got {_describe(dtype)}.") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"`{name}` must be a floating dtype (e.g. jnp.float32); got {dt}.")
    return jnp.asarray(jnp.zeros((), dt)).dtype  # canonical (float32 when x64 is off)


def check_overflow(message: str, *values) -> None:
    """Raise ``ValueError(message)`` when a concrete value in ``values`` is not finite.

    For results of an input's range check (e.g. ``B * B`` in the input's dtype), computed by the
    caller; the message names the arguments responsible and the limit.
    """
    if not is_concrete(values):
        return
    for v in values:
        if not bool(np.all(np.isfinite(np.asarray(v)))):
            raise ValueError(message)


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
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) == 0:
            raise ValueError(
                f"`{name}` must be a scalar or have one entry per layer ({n_layers}); got {value!r}."
            )
        arr = jnp.stack([as_float(v, name, dtype) for v in value])
    else:
        arr = as_float(value, name, dtype)
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
    """A finite scalar of `dtype` (positive when `positive`: > 0 if `strict`, else >= 0)."""
    arr = as_float(value, name, dtype)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar; got shape {tuple(arr.shape)}.")
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
