r"""Kernel-regime (linearised) training dynamics on the training set.

A model linearised around its initialisation, trained by gradient flow on the mean-squared loss
``L = (1/n) sum_a 1/2 |f(x_a) - y_a|^2``, moves its training-set outputs by

    df/dt = -(1/n) Theta (f - y),    f(t) = y + e^{-Theta t / n} (f(0) - y),

with ``Theta`` the (rate-weighted) NTK on the training inputs (Jacot, Gabriel &
Hongler 2018; Lee et al. 2019). We evaluate the matrix exponential through the eigendecomposition
``Theta = V diag(theta) V^T`` of the symmetric PSD kernel: only decaying exponentials
``e^{-theta t/n}`` appear, so any ``t`` is stable, and ``t = inf`` keeps exactly the component of
``f(0) - y`` in the kernel's null space: ``f(inf) = y + P_null (f(0) - y)`` (for a linear model this
is the least-squares fit reached from the initialisation).

**Null space.** Only eigenvalues the eigensolver cannot tell from zero count as the null space:
``theta <= m eps max|theta|`` (``m`` the kernel's size, ``eps`` the dtype's machine epsilon), the
size of the backward error of a symmetric eigensolver (Golub & Van Loan, *Matrix Computations*,
Ch. 8). Slow but genuine modes (eigenvalues far below ``sqrt(eps) max|theta|``) are therefore
followed at every time. The float64 kernel itself carries absolute eigenvalue errors ~ eps, so the
result is accurate to about ``eps t`` relative; with exact zeros next to tiny eigenvalues the null
space is only determined to ``eps / theta_min``.

**Time convention.** The default loss is the mean over the n *samples* of ``1/2 |f - y|^2``. The
``neural_tangents.predict.gradient_descent_mse`` convention is the mean over all ``n k`` output
entries (``normalization="outputs"``): its time is ``k`` times ours for the same kernel.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import as_float, float_dtype_of, is_concrete

__all__ = ["LinearizedSolution", "linearized"]

_NORMALIZATIONS = ("samples", "outputs")


class LinearizedSolution(NamedTuple):
    """Kernel-regime prediction on the training set; time axes first.

    **Fields:**

    - `f`: (*t, n) or (*t, n, k) outputs on the training inputs.
    - `loss`: (*t,) mean over samples of ``1/2 |f - y|^2``.
    """

    f: Float[Array, "*t n ..."]
    loss: Float[Array, "*t"]


def _validate(f0, y, ntk, tol):
    dtype = float_dtype_of(f0, y, ntk)
    f0 = as_float(f0, "f0", dtype)
    y = as_float(y, "y", dtype)
    ntk = as_float(ntk, "ntk", dtype)
    if f0.ndim not in (1, 2):
        raise ValueError(f"`f0` must have shape (n,) or (n, k); got {tuple(f0.shape)}.")
    if f0.size == 0:
        raise ValueError(f"`f0` must hold at least one sample and one output; got shape {tuple(f0.shape)}.")
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"`tol` must be a finite number >= 0 or None; got {tol!r}.")
    if y.shape != f0.shape:
        raise ValueError(f"`y` must have the shape of `f0` {tuple(f0.shape)}; got {tuple(y.shape)}.")
    n = f0.shape[0]
    k = 1 if f0.ndim == 1 else f0.shape[1]
    allowed = [(n, n)] + ([(n, n, k, k)] if f0.ndim == 2 else [])
    if ntk.shape not in allowed:
        raise ValueError(
            f"`ntk` must have shape {' or '.join(str(s) for s in allowed)} for `f0` of shape "
            f"{tuple(f0.shape)}; got {tuple(ntk.shape)}."
        )
    if ntk.ndim == 4:  # (n, n, k, k) -> (n k, n k) on row-major vec(f)
        ntk = jnp.transpose(ntk, (0, 2, 1, 3)).reshape(n * k, n * k)
    if is_concrete(ntk):
        K = np.asarray(ntk, np.float64)
        scale = float(np.max(np.abs(K)))
        tol = float(np.sqrt(np.finfo(np.dtype(dtype)).eps)) if tol is None else float(tol)
        asym = float(np.max(np.abs(K - K.T)))
        if asym > tol * scale:
            raise ValueError(
                f"`ntk` must be symmetric (K(x_a, x_b)_{{oq}} = K(x_b, x_a)_{{qo}}); got "
                f"max |K - K^T| = {asym:.3g}, {asym / scale:.3g} relative (tolerance {tol:.3g})."
            )
        lo = float(np.min(np.linalg.eigvalsh(0.5 * (K + K.T))))
        if lo < -tol * scale:
            raise ValueError(
                f"`ntk` must be positive semi-definite; its smallest eigenvalue is {lo:.3g} "
                f"({lo / scale:.3g} relative to max |K|, tolerance {tol:.3g}), so the flow "
                "would diverge."
            )
    return f0, y, ntk, dtype


def linearized(
    t: Float[ArrayLike, "*t"],
    f0: Float[ArrayLike, "n ..."],
    y: Float[ArrayLike, "n ..."],
    ntk: Float[ArrayLike, "n n ..."],
    *,
    tol: float | None = None,
    null_rtol: float | None = None,
    normalization: str = "samples",
) -> LinearizedSolution:
    r"""Kernel-regime outputs on the training set: ``f(t) = y + expm(-ntk t / n) (f0 - y)``.

    Solves ``df/dt = -(1/n) Theta (f - y)`` exactly (the gradient flow of the mean-squared loss
    ``1/n sum 1/2 |f - y|^2`` for a model that is linear in its parameters, Theta its rate-weighted
    NTK) through the eigendecomposition of the symmetric PSD ``Theta``. Eigenvalues at or below
    ``null_rtol * max|theta|`` (what the eigensolver cannot tell from 0) count as its null space,
    where ``f0 - y`` is kept for all t; every other mode decays as ``exp(-theta t / n)``.

    **Arguments:**

    - `t`: times >= 0 of any shape (``inf`` allowed); the results gain these leading axes.
      ``t = 0`` returns ``f0`` exactly; ``t = inf`` returns ``y + P_null (f0 - y)``.
    - `f0`: (n,) or (n, k) outputs at initialisation (n, k >= 1); `y`: targets of the same shape.
    - `ntk`: (n, n) kernel (shared by the k outputs), or (n, n, k, k) with
      ``ntk[a, b, o, q] = Theta(x_a, x_b)_{oq}`` (the layout of ``models.ntk_data``).
    - `tol`: relative tolerance of the symmetry and PSD checks (default ``sqrt(eps)``).
    - `null_rtol`: relative null-space threshold (default ``m eps`` for an (m, m) kernel matrix,
      ``m = n`` or ``n k``: the eigensolver's backward error). Raise it to freeze modes slower
      than you care about.
    - `normalization`: ``"samples"`` (default; loss averaged over the n samples, rate
      ``theta / n``) or ``"outputs"`` (averaged over all ``n k`` entries, rate ``theta / (n k)``,
      the convention of ``neural_tangents.predict.gradient_descent_mse``; the two differ by a
      factor k in time and agree when k = 1).

    **Returns:** a :class:`LinearizedSolution` with `f` (*t, n[, k]) and `loss` (*t,) (the mean
    over samples of ``1/2 |f - y|^2`` in both normalisations).

    References: Jacot, Gabriel & Hongler (NeurIPS 2018); Lee et al. (NeurIPS 2019).
    """
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {_NORMALIZATIONS}; got {normalization!r}.")
    if null_rtol is not None and not (np.isfinite(null_rtol) and null_rtol >= 0):
        raise ValueError(f"`null_rtol` must be a finite number >= 0 or None; got {null_rtol!r}.")
    f0, y, K, dtype = _validate(f0, y, ntk, tol)
    m = K.shape[0]
    null_rtol = m * float(np.finfo(np.dtype(dtype)).eps) if null_rtol is None else float(null_rtol)
    if is_concrete(t):
        arr = np.asarray(t, dtype=np.float64)
        if np.any(np.isnan(arr) | (arr < 0)):
            raise ValueError(f"`t` must be non-negative (inf allowed); got {arr}.")
    t = jnp.asarray(t).astype(dtype)
    scale = f0.shape[0] * (1 if normalization == "samples" or f0.ndim == 1 else f0.shape[1])
    f = _solve(t.reshape(-1), f0, y, K, null_rtol, scale)
    f = f.reshape(t.shape + f0.shape)
    r = (f - y).reshape(t.shape + (f0.shape[0], -1))
    loss = 0.5 * jnp.mean(jnp.sum(r * r, axis=-1), axis=-1)
    return LinearizedSolution(f, loss)


@partial(jax.jit, static_argnums=(4, 5))
def _solve(flat, f0, y, K, null_rtol: float, scale: int):
    n = f0.shape[0]
    shared = K.shape[0] == n  # one kernel for every output column
    r0 = (f0 - y).reshape(n, -1) if shared else (f0 - y).reshape(-1, 1)
    theta, V = jnp.linalg.eigh(0.5 * (K + K.T))
    null = theta <= null_rtol * jnp.max(jnp.abs(theta))
    rate = jnp.where(null, 0.0, theta) / scale
    c = V.T @ r0  # (m, cols): coefficients in the eigenbasis
    t = flat[:, None]
    finite_t = jnp.where(jnp.isinf(t), 0.0, t)
    decay = jnp.where(jnp.isinf(t), jnp.where(null, 1.0, 0.0), jnp.exp(-rate * finite_t))
    r = jnp.einsum("im,mc,tm->tic", V, c, decay)
    f = y.reshape(1, -1) + r.reshape(flat.shape[0], -1)
    f = jnp.where((flat == 0)[:, None], f0.reshape(1, -1), f)
    return f
