"""Hessian spectra of a loss at a point, and the second-order classification of critical points.

The parameters (any PyTree: a deep linear tuple, a :class:`~linsolve.models.ShallowNet`, an
:class:`~linsolve.mlp.MLP`, ...) are flattened with ``jax.flatten_util.ravel_pytree`` into a vector
``theta`` of length P, and the loss is read as ``R(theta)``.

* ``method="full"``: the dense Hessian ``jax.hessian(R)`` (P, P) and all its eigenvalues
  (``eigh``); for small nets (P up to a few thousand).
* ``method="lanczos"``: ``k`` steps of the Lanczos iteration (Lanczos 1950) on Hessian-vector
  products ``H v = d/de grad R(theta + e v)`` (forward-over-reverse, Pearlmutter 1994), with full
  reorthogonalisation; the Ritz values (eigenvalues of the tridiagonal ``T_k = V_k^T H V_k``)
  converge first at the two ends of the spectrum, so they give the extreme eigenvalues of large
  nets. With ``k = P`` they are the whole spectrum.

Eigenvalues with ``|lambda| <= tol`` count as zero, ``tol = rtol * max |lambda|`` (relative to the
spectrum's scale) unless an absolute `tol` is given. At a critical point the counts give the
second-order classification (e.g. Bai et al. 2022, arXiv 2205.13283, section "lifted critical points"):
a negative eigenvalue makes a *strict saddle*; a positive definite Hessian a *strict minimum*; a
positive semidefinite singular one a *degenerate minimum* (the second-order necessary condition
holds; higher-order terms decide, as they do for lifted critical manifolds).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

__all__ = [
    "HessianSpectrum",
    "hessian_spectrum",
    "flat_hessian",
    "hvp",
    "lanczos",
    "is_critical",
    "gradient_norm",
    "classify",
]

_METHODS = ("full", "lanczos")


class HessianSpectrum(eqx.Module):
    """Eigenvalues of a Hessian and their signs.

    **Fields:**

    - `eigenvalues`: (P,) all eigenvalues (``method="full"``), or (k,) Ritz values (Lanczos), ascending.
    - `n_negative`, `n_zero`, `n_positive`: counts of ``lambda < -tol``, ``|lambda| <= tol``,
      ``lambda > tol`` among `eigenvalues`.
    - `tol`: the absolute threshold used; `scale`: ``max |lambda|``.
    - `min_direction`: unit eigen (Ritz) vector of the smallest eigenvalue, as a PyTree like the
      parameters (the direction of steepest negative curvature at a strict saddle).
    - `hessian`: the dense (P, P) Hessian (``method="full"``) or None (Lanczos).
    - `classification`: one of "strict minimum", "degenerate minimum", "strict saddle",
      "strict maximum", "degenerate maximum", "flat" (all eigenvalues zero); with Lanczos and
      ``k < P`` only the extremes are known: "strict saddle", "minimum (second order)",
      "maximum (second order)" or "flat".
    - `complete`: True when `eigenvalues` is the whole spectrum.
    """

    eigenvalues: Float[Array, " k"]
    n_negative: int
    n_zero: int
    n_positive: int
    tol: Float[Array, ""]
    scale: Float[Array, ""]
    min_direction: object
    hessian: Float[Array, "P P"] | None
    classification: str = eqx.field(static=True)
    complete: bool = eqx.field(static=True)


def _hashable(loss_fn):
    """`loss_fn` itself when hashable (compiled kernels are then cached on it), else a wrapper."""
    try:
        hash(loss_fn)
        return loss_fn
    except TypeError:
        return lambda p: loss_fn(p)


def _flat_loss(loss_fn, params):
    flat, unravel = ravel_pytree(params)
    if flat.size == 0:
        raise ValueError("`params` must hold at least one array entry; got an empty PyTree.")
    if not jnp.issubdtype(flat.dtype, jnp.floating):
        raise ValueError(f"`params` must be floating point; got dtype {flat.dtype}.")
    return flat, unravel, lambda theta: loss_fn(unravel(theta))


# The kernels below are jitted with `loss_fn` static: calling again with the same function object and
# parameter shapes (e.g. spectra along a trajectory) reuses the compiled program.


@functools.partial(jax.jit, static_argnums=0)
def _dense_hessian(loss_fn, params):
    flat, unravel = ravel_pytree(params)
    H = jax.hessian(lambda th: loss_fn(unravel(th)))(flat)
    return 0.5 * (H + H.T)


@functools.partial(jax.jit, static_argnums=0)
def _flat_grad(loss_fn, params):
    return ravel_pytree(jax.grad(loss_fn)(params))[0]


@functools.partial(jax.jit, static_argnums=0)
def _lanczos_hessian(loss_fn, params, draws):
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(lambda th: loss_fn(unravel(th)))
    matvec = lambda v: jax.jvp(grad, (flat,), (v,))[1]
    return lanczos(matvec, draws[0], draws.shape[0] - 1, restarts=draws[1:])


def flat_hessian(loss_fn, params) -> tuple[Float[Array, "P P"], object]:
    """Dense Hessian of ``loss_fn`` on the flattened parameters.

    **Arguments:** `loss_fn`: ``params -> scalar``; `params`: any PyTree of arrays.

    **Returns:** ``(H, unravel)``: the symmetrised (P, P) Hessian ``d^2 R / d theta^2`` and the
    function mapping a flat (P,) vector back to a PyTree like `params`.
    """
    _, unravel, _ = _flat_loss(loss_fn, params)
    return _dense_hessian(_hashable(loss_fn), params), unravel


@functools.partial(jax.jit, static_argnums=0)
def _hvp(loss_fn, params, v):
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def hvp(loss_fn, params, v):
    """Hessian-vector product ``H v`` (forward-over-reverse, jitted); `v` a PyTree like `params`."""
    return _hvp(_hashable(loss_fn), params, v)


def lanczos(matvec, v0: Float[Array, " P"], k: int, *, restarts=None):
    """``k`` Lanczos steps with full reorthogonalisation (Gram-Schmidt twice per step); jittable.

    Builds ``V`` (k, P) with orthonormal rows and the tridiagonal ``T = V H V^T`` (diagonal
    `alpha`, off-diagonal `beta[:-1]`). On breakdown (an invariant subspace is found, ``beta ~ 0``)
    the iteration restarts from a fresh random vector orthogonal to ``V``, with ``beta = 0``, so the
    Ritz values (eigenvalues of ``T``) stay exact eigenvalues. Ritz vectors are ``V^T y`` for the
    eigenvectors ``y`` of ``T``. `restarts` (k, P): the fresh vectors (default: fixed Gaussian draws).

    **Returns:** ``(alpha (k,), beta (k,), V (k, P))``.
    """
    P = v0.shape[0]
    dtype = v0.dtype
    if restarts is None:
        restarts = np.random.default_rng(0).standard_normal((k, P))
    restarts = jnp.asarray(restarts, dtype)
    eps = jnp.finfo(dtype).eps

    def orth(w, V):
        for _ in range(2):
            w = w - V.T @ (V @ w)
        return w

    def body(j, state):
        V, alpha, beta, v, v_prev, b_prev, scale = state
        V = V.at[j].set(v)
        w = matvec(v)
        a = jnp.vdot(v, w)
        w = orth(w - a * v - b_prev * v_prev, V)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.abs(a) + b)
        broke = b <= 1e3 * eps * P * scale
        fresh = orth(restarts[j], V)
        fresh = fresh / jnp.linalg.norm(fresh)
        v_next = jnp.where(broke, fresh, w / jnp.where(broke, 1.0, b))
        b = jnp.where(broke, 0.0, b)
        return V, alpha.at[j].set(a), beta.at[j].set(b), v_next, v, b, scale

    v = v0 / jnp.linalg.norm(v0)
    state = (
        jnp.zeros((k, P), dtype),
        jnp.zeros((k,), dtype),
        jnp.zeros((k,), dtype),
        v,
        jnp.zeros_like(v),
        jnp.zeros((), dtype),
        jnp.zeros((), dtype),
    )
    V, alpha, beta, *_ = jax.lax.fori_loop(0, k, body, state)
    return alpha, beta, V


def _seed(key) -> list[int]:
    """Host seed from a JAX PRNG key (raw uint32 or typed), default 0."""
    if key is None:
        return [0]
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.key_data(key)
    return np.asarray(key, dtype=np.uint64).ravel().tolist()


def classify(n_negative: int, n_zero: int, n_positive: int, *, complete: bool = True) -> str:
    """Second-order classification of a critical point from the signs of its Hessian eigenvalues.

    With ``complete=False`` (only extreme eigenvalues known) zero counts are not trusted.
    """
    if n_negative + n_positive == 0:
        return "flat"
    if n_negative and n_positive:
        return "strict saddle"
    if not complete:
        return "minimum (second order)" if n_positive else "maximum (second order)"
    if n_positive:
        return "degenerate minimum" if n_zero else "strict minimum"
    return "degenerate maximum" if n_zero else "strict maximum"


def hessian_spectrum(
    loss_fn,
    params,
    *,
    method: str = "full",
    k: int | None = None,
    tol=None,
    rtol=None,
    key=None,
) -> HessianSpectrum:
    """Eigenvalues of the Hessian of ``loss_fn`` at ``params``, their signs and a classification.

    **Arguments:**

    - `loss_fn`: ``params -> scalar`` loss (e.g. ``lambda p: linsolve.models.loss(p, task)``).
    - `params`: the point, any PyTree of floating arrays (flattened by ``ravel_pytree``).
    - `method`: ``"full"`` (dense ``jax.hessian`` + ``eigh``) or ``"lanczos"`` (HVP-based, for
      the extreme eigenvalues of large nets).
    - `k`: Lanczos steps (1 <= k <= P; default ``min(P, 64)``); ``k = P`` gives the whole spectrum.
    - `tol`: absolute zero threshold; default ``rtol * max |lambda|``.
    - `rtol`: relative zero threshold; default ``sqrt(eps)`` of the dtype (1.5e-8 in float64).
    - `key`: PRNG key seeding the Lanczos start (and restart) vectors; default a fixed seed.

    **Returns:** a :class:`HessianSpectrum`. The classification assumes ``params`` is a critical
    point (check with :func:`is_critical`).
    """
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}; got {method!r}.")
    flat, unravel, _ = _flat_loss(loss_fn, params)
    P = flat.shape[0]
    dtype = flat.dtype
    if method == "full":
        if k is not None:
            raise ValueError("`k` is the number of Lanczos steps; it is not used with method='full'.")
        H = _dense_hessian(_hashable(loss_fn), params)
        evals, evecs = np.linalg.eigh(np.asarray(H))  # on the host: no compilation per shape
        vmin = jnp.asarray(evecs[:, 0], dtype)
        complete = True
    else:
        k = min(P, 64) if k is None else k
        if int(k) != k or not 1 <= k <= P:
            raise ValueError(f"`k` must be an integer in [1, P={P}] (Lanczos steps); got {k!r}.")
        k = int(k)
        # start and restart vectors drawn on the host (no random-number kernels to compile)
        draws = np.random.default_rng(_seed(key)).standard_normal((k + 1, P)).astype(dtype)
        alpha, beta, V = (np.asarray(x) for x in _lanczos_hessian(_hashable(loss_fn), params, draws))
        T = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
        evals, Yt = np.linalg.eigh(T)  # small tridiagonal: on the host
        vmin = V.T @ Yt[:, 0]
        vmin = jnp.asarray(vmin / np.linalg.norm(vmin), dtype)
        complete = k == P
        H = None
    evals_np = np.asarray(evals)
    if not np.all(np.isfinite(evals_np)):
        raise ValueError("the Hessian has non-finite entries at `params` (is the loss finite there?).")
    scale = float(np.max(np.abs(evals_np)))
    if tol is None:
        rtol = float(np.sqrt(np.finfo(evals_np.dtype).eps)) if rtol is None else float(rtol)
        if rtol < 0:
            raise ValueError(f"`rtol` must be non-negative; got {rtol}.")
        tol = rtol * scale
    else:
        if rtol is not None:
            raise ValueError("give either `tol` (absolute) or `rtol` (relative), not both.")
        tol = float(tol)
        if not np.isfinite(tol) or tol < 0:
            raise ValueError(f"`tol` must be a finite non-negative number; got {tol}.")
    n_neg = int(np.sum(evals_np < -tol))
    n_pos = int(np.sum(evals_np > tol))
    n_zero = evals_np.size - n_neg - n_pos
    return HessianSpectrum(
        eigenvalues=jnp.asarray(evals, dtype),
        n_negative=n_neg,
        n_zero=n_zero,
        n_positive=n_pos,
        tol=jnp.asarray(tol, dtype),
        scale=jnp.asarray(scale, dtype),
        min_direction=unravel(vmin),
        hessian=H,
        classification=classify(n_neg, n_zero, n_pos, complete=complete),
        complete=complete,
    )


def gradient_norm(loss_fn, params) -> Float[Array, ""]:
    """Euclidean norm of the gradient of ``loss_fn`` over all parameter entries."""
    _flat_loss(loss_fn, params)
    return jnp.linalg.norm(_flat_grad(_hashable(loss_fn), params))


def is_critical(loss_fn, params, tol=1e-8):
    """True (a 0-d bool array) when ``|grad loss_fn(params)|_2 <= tol``."""
    tol = jnp.asarray(tol)
    if tol.ndim or (not isinstance(tol, jax.core.Tracer) and not float(tol) >= 0):
        raise ValueError(f"`tol` must be a non-negative scalar; got {tol}.")
    return gradient_norm(loss_fn, params) <= tol
