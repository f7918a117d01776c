"""Initialisations of deep linear networks: Gaussian, balanced, aligned (decoupled), lambda-balanced.

`sizes` is always ``(n_0, n_1, ..., n_L)`` = (d_in, hidden..., d_out) and the result is the tuple
``(W1, ..., WL)`` with ``W_l`` of shape ``(n_l, n_{l-1})``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import jax.random as jr

from ._validate import (
    as_float,
    as_scalar,
    check_float_dtype,
    check_key,
    check_overflow,
    check_positive,
    check_size,
    float_dtype_of,
    per_layer,
    random_orthonormal,
)
from .tasks import Task

__all__ = ["random", "balanced", "aligned", "decoupled", "lambda_balanced"]


def _check_sizes(sizes) -> tuple[int, ...]:
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(
            f"`sizes` must be a sequence (d_in, ..., d_out) of >= 2 ints; got {sizes!r}."
        )
    out = []
    for n in sizes:
        try:
            out.append(check_size("sizes", n))
        except ValueError:
            raise ValueError(f"`sizes` must be positive integers; got {tuple(sizes)}.") from None
    return tuple(out)


def _check_weights(names: str, weights, dtype) -> None:
    """The drawn weights are finite (large scales can overflow the dtype)."""
    check_overflow(f"{names} too large: the weights overflow {dtype}.", *weights)


def random(key, sizes, scales, *, dtype=None) -> tuple:
    """Gaussian weights: ``W_l`` has i.i.d. ``N(0, scales[l]^2)`` entries (`scales` scalar or (L,)).

    **Arguments:** `key` PRNG key; `sizes` (d_in, ..., d_out) positive ints; `scales` finite,
    >= 0; `dtype` floating (default: the widest of `scales`, else the default float).
    **Returns:** ``(W1, ..., WL)``, ``W_l`` of shape (n_l, n_{l-1}).
    """
    key = check_key(key)
    sizes = _check_sizes(sizes)
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(
        scales, *(scales if isinstance(scales, Sequence) else ()))
    L = len(sizes) - 1
    scales = per_layer("scales", scales, L, dtype, strict=False)
    keys = jr.split(key, L)
    W = tuple(scales[l] * jr.normal(keys[l], (sizes[l + 1], sizes[l]), dtype) for l in range(L))
    _check_weights("`scales` are", W, dtype)
    return W


def decoupled(U, strengths, V, sizes, *, key=None) -> tuple:
    """Decoupled init with end-to-end map ``U diag(strengths) V^T``, shared equally by the layers.

    ``W_1 = R_1 S^{1/L} V^T``, ``W_l = R_l S^{1/L} R_{l-1}^T``, ``W_L = U S^{1/L} R_{L-1}^T``, with
    ``R_l`` (n_l, r) orthonormal columns (Haar-random with `key`, else the first r basis vectors).
    The result is balanced: ``W_{l+1}^T W_{l+1} = W_l W_l^T``. Needs every hidden n_l >= r.
    """
    sizes = _check_sizes(sizes)
    if key is not None:
        key = check_key(key)
    dtype = float_dtype_of(U, strengths, V)
    strengths = as_float(strengths, "strengths", dtype, ndim=1)
    check_positive("strengths", strengths, strict=False)
    U = as_float(U, "U", dtype, ndim=2)
    V = as_float(V, "V", dtype, ndim=2)
    r = strengths.shape[0]
    if U.shape != (sizes[-1], r):
        raise ValueError(f"`U` must be (d_out={sizes[-1]}, r={r}); got {tuple(U.shape)}.")
    if V.shape != (sizes[0], r):
        raise ValueError(f"`V` must be (d_in={sizes[0]}, r={r}); got {tuple(V.shape)}.")
    if min(sizes[1:-1], default=r) < r:
        raise ValueError(
            f"every hidden width must be >= the number of modes r={r}; got sizes {sizes}."
        )
    L = len(sizes) - 1
    root = jnp.diag(strengths ** (1.0 / L))
    keys = jr.split(key, max(L - 1, 1)) if key is not None else None
    R = [V]
    for l in range(1, L):
        if keys is None:
            R.append(jnp.eye(sizes[l], r, dtype=dtype))
        else:
            R.append(random_orthonormal(keys[l - 1], sizes[l], r, dtype))
    R.append(U)
    return tuple(R[l + 1] @ root @ R[l].T for l in range(L))


def balanced(key, sizes, scale, *, dtype=None) -> tuple:
    """Random balanced init (``W_{l+1}^T W_{l+1} = W_l W_l^T``), Arora et al. 2018.

    The end-to-end map is the product of a Gaussian chain with per-layer std `scale`, its
    singular values shared equally by the layers along random orthonormal frames.
    `scale`: finite, >= 0, scalar or one per layer.
    """
    key = check_key(key)
    sizes = _check_sizes(sizes)
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(scale)
    scale = per_layer("scale", scale, len(sizes) - 1, dtype, strict=False)
    k1, k2 = jr.split(key)
    r = min(sizes)
    P = jnp.eye(sizes[0], dtype=dtype)
    for W in random(k1, sizes, scale, dtype=dtype):
        P = W @ P
    U, s, Vt = jnp.linalg.svd(P, full_matrices=False)
    return decoupled(U[:, :r], s[:r], Vt[:r].T, sizes, key=k2)


def aligned(task: Task, sizes, strengths, *, key=None) -> tuple:
    """Saxe-style decoupled init aligned with the task: ``W_L...W_1 = U diag(strengths) V^T``.

    ``U, V`` are the singular vectors of ``task.Syx``; `strengths` (scalar or (r,)) are the initial
    mode strengths ``u_alpha(0)``, r = min(d_in, d_out) (Saxe, McClelland & Ganguli 2014).
    """
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    sizes = _check_sizes(sizes)
    if key is not None:
        key = check_key(key)
    if (sizes[0], sizes[-1]) != (task.d_in, task.d_out):
        raise ValueError(
            f"`sizes` must start with d_in={task.d_in} and end with d_out={task.d_out}; "
            f"got {sizes}."
        )
    U, _, Vt = task.svd()
    r = U.shape[1]
    dtype = float_dtype_of(task.Syx, strengths)
    strengths = as_float(strengths, "strengths", dtype)
    if strengths.ndim > 1 or strengths.shape not in ((), (r,)):
        raise ValueError(
            f"`strengths` must be a scalar or have r = min(d_in, d_out) = {r} entries; got shape "
            f"{tuple(strengths.shape)}."
        )
    check_positive("strengths", strengths, strict=False)
    strengths = jnp.broadcast_to(strengths, (r,))
    U, Vt = U.astype(dtype), Vt.astype(dtype)
    return decoupled(U, strengths, Vt.T, sizes, key=key)


def lambda_balanced(key, sizes, lam, scale, *, dtype=None) -> tuple:
    """Two-layer init with ``W2^T W2 - W1 W1^T = lam I`` (Dominé et al. 2024; Braun et al. 2022).

    `sizes` = (d_in, hidden, d_out). For ``lam >= 0`` (needs hidden <= d_out) ``W1`` is Gaussian with
    std `scale` and ``W2 = O (W1 W1^T + lam I)^{1/2}``; for ``lam <= 0`` (needs hidden <= d_in) ``W2``
    is Gaussian and ``W1 = (W2^T W2 - lam I)^{1/2} O^T``; ``O`` has Haar-random orthonormal columns.
    ``lam = 0`` with hidden > max(d_in, d_out) uses a random balanced (rank-deficient) init.

    Feasibility: ``W1 W1^T + lam I = W2^T W2`` has rank <= d_out, and ``W2^T W2 - lam I = W1 W1^T``
    rank <= d_in, so lam > 0 needs hidden <= d_out and lam < 0 needs hidden <= d_in.

    **Arguments:** `key` PRNG key; `sizes` (d_in, hidden, d_out); `lam` finite scalar (concrete:
    it selects the construction); `scale` finite, >= 0; `dtype` floating (default: the widest of
    `lam` and `scale`). ``lam`` and ``scale^2`` must leave the grams finite in the dtype.
    **Returns:** ``(W1, W2)`` of shapes (hidden, d_in), (d_out, hidden).
    """
    key = check_key(key)
    sizes = _check_sizes(sizes)
    if len(sizes) != 3:
        raise ValueError(
            f"lambda-balanced init is for two layers: `sizes` must be (d_in, hidden, d_out); got "
            f"{sizes}."
        )
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(lam, scale)
    lam_arr = as_scalar("lam", lam, dtype, positive=False)
    scale = as_scalar("scale", scale, dtype, strict=False)
    lam = float(lam_arr)
    d_in, h, d_out = sizes
    if lam > 0 and h > d_out:
        raise ValueError(
            f"`lam`={lam} > 0 is infeasible for hidden={h} > d_out={d_out}: W2^T W2 = W1 W1^T + lam I "
            f"would be positive definite of rank {h}, but W2^T W2 has rank <= {d_out}."
        )
    if lam < 0 and h > d_in:
        raise ValueError(
            f"`lam`={lam} < 0 is infeasible for hidden={h} > d_in={d_in}: W1 W1^T = W2^T W2 + |lam| I "
            f"would be positive definite of rank {h}, but W1 W1^T has rank <= {d_in}."
        )
    k1, k2 = jr.split(key)
    eye = jnp.eye(h, dtype=dtype)
    if lam == 0 and h > max(d_in, d_out):
        W1, W2 = balanced(key, sizes, scale, dtype=dtype)
    elif lam > 0 or (lam == 0 and h <= d_out):
        W1 = scale * jr.normal(k1, (h, d_in), dtype)
        W2 = random_orthonormal(k2, d_out, h, dtype) @ _sqrtm(W1 @ W1.T + lam * eye)
    else:
        W2 = scale * jr.normal(k1, (d_out, h), dtype)
        W1 = _sqrtm(W2.T @ W2 - lam * eye) @ random_orthonormal(k2, d_in, h, dtype).T
    _check_weights(
        f"`lam` = {lam:.3g} and `scale` are", (W1 @ W1.T, W2.T @ W2), dtype
    )
    return W1, W2


def _sqrtm(M):
    evals, evecs = jnp.linalg.eigh(M)
    return (evecs * jnp.sqrt(jnp.clip(evals, 0.0))) @ evecs.T
