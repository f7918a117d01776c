r"""Epoch-by-epoch CKA matrices: of snapshots of a representation, and of a linear layer from ``W^T W``.

``C[i, j] = CKA(reps[i], reps[j])`` over T snapshots of one layer on the same n inputs (Sharon &
Dar 2024), with the HSIC estimators of :mod:`._cka` (biased, or the unbiased one of Song et al.
2012), each snapshot centred once.

**Linear layers.** For ``h = W x`` on centred inputs ``X_c`` with ``S = X_c^T X_c`` the Gram is
``X_c M X_c^T``, ``M = W^T W``, so ``CKA(t1, t2) = tr(S M1 S M2) / sqrt(tr(S M1 S M1) tr(S M2 S M2))``:
a function of ``M(t)`` alone (rotations of the hidden units are invisible), computed as the
normalised Frobenius Gram of ``C^T M_t C`` with ``C C^T = S``.

References: Kornblith, Norouzi, Lee & Hinton (ICML 2019), arXiv 1905.00414; Song, Smola, Gretton,
Bedo & Borgwardt (JMLR 2012); Sharon & Dar (2024), arXiv 2405.17377 (epoch-by-epoch matrices).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import is_concrete
from ._cka import _as_float, _center, _check_n, _check_self, _hsic_from_terms, _ratio

__all__ = ["cka_matrix", "cka_matrix_linear", "cka_linear"]


@partial(jax.jit, static_argnames=("debiased", "feature_space"))
def _matrix(reps, *, debiased: bool, feature_space: bool):
    """``(C, self)``: the (T, T) CKA matrix of centred-linear-kernel snapshots and HSIC(K_t, K_t)."""
    T, n, p = reps.shape
    R = reps - jnp.mean(reps, axis=1, keepdims=True)
    r = jnp.sum(R * R, axis=2)  # (T, n) diag of the centred Grams
    if feature_space:
        # tr(Kc_i Kc_j) = |R_i^T R_j|_F^2, one snapshot row at a time: O(T p^2) memory.
        def row(Ri):
            return jnp.sum(jnp.einsum("np,tnq->tpq", Ri, R) ** 2, axis=(1, 2))

        cross = jax.lax.map(row, R)
    else:
        G = jnp.einsum("tnp,tmp->tnm", R, R)  # centred Grams (T, n, n)
        cross = jnp.einsum("inm,jnm->ij", G, G)
    cross = 0.5 * (cross + cross.T)
    H = _hsic_from_terms(cross, r[:, None, :], r[None, :, :], n, debiased)
    d = jnp.diagonal(H)
    C = _ratio(H, d[:, None], d[None, :])
    C = jnp.where(jnp.eye(T, dtype=bool) & (d[:, None] > 0), 1.0, C)
    return C, d


def cka_matrix(reps: Float[ArrayLike, "T n p"], *, debiased: bool = False) -> Float[Array, "T T"]:
    r"""Epoch-by-epoch linear CKA matrix ``C[i, j] = CKA(reps[i], reps[j])`` of T snapshots.

    Each snapshot is centred once; the cross terms ``tr(Kc_i Kc_j)`` are computed in the
    feature-space form ``|R_i^T R_j|_F^2`` (``O(T^2 n p^2)`` flops, one snapshot row at a time)
    when the width ``p < n``, else from the T centred Gram matrices at once (``O(T^2 n^2)``).

    **Arguments:**

    - `reps`: (T, n, p) representations of the same n inputs at T snapshots (e.g. a layer's
      activations on a fixed evaluation set at log-spaced training times).
    - `debiased`: unbiased HSIC (Song et al. 2012; n >= 4) instead of the biased one.

    **Returns:** (T, T) symmetric matrix with unit diagonal.

    **Raises:** ``ValueError`` for a wrong shape, too few samples or a constant snapshot (its index
    is named); under ``jit`` such rows are 0 instead (module notes).

    Reference: Sharon & Dar (2024), arXiv 2405.17377; Kornblith et al. (2019).
    """
    reps = _as_float(reps, "reps")
    if reps.ndim != 3:
        raise ValueError(f"`reps` must have shape (T, n, p); got {tuple(reps.shape)}.")
    T, n, p = reps.shape
    if T == 0:
        raise ValueError("`reps` must hold at least one snapshot; got T=0.")
    _check_n(n, debiased, "reps")
    C, d = _matrix(reps, debiased=debiased, feature_space=p < n)
    _check_self(d, lambda i: f"snapshot {i} of `reps`", debiased)
    return C


# ---------------------------------------------------------------------------------------------
# Linear layers: closed forms in M = W^T W.


def _input_factor(cov, X, d: int, dtype):
    """``C`` with ``C C^T = S``: from data ``X`` (centred, ``S = X_c^T X_c``), `cov`, or ``I``."""
    if X is not None and cov is not None:
        raise ValueError("pass at most one of `cov` and `X`.")
    if X is not None:
        X = _as_float(X, "X", dtype, ndim=2)
        if X.shape[1] != d:
            raise ValueError(f"`X` must have shape (n, d={d}); got {tuple(X.shape)}.")
        return _center(X).T, X
    if cov is None:
        return jnp.eye(d, dtype=dtype), None
    cov = _as_float(cov, "cov", dtype, ndim=2)
    if cov.shape != (d, d):
        raise ValueError(f"`cov` must have shape (d, d)=({d}, {d}); got {tuple(cov.shape)}.")
    if is_concrete(cov) and not np.allclose(np.asarray(cov), np.asarray(cov).T):
        raise ValueError("`cov` must be symmetric.")
    evals, evecs = jnp.linalg.eigh(0.5 * (cov + cov.T))
    if is_concrete(evals) and float(jnp.min(evals)) < -1e-8 * float(jnp.max(jnp.abs(evals))):
        raise ValueError(f"`cov` must be positive semi-definite; got eigenvalue {float(evals[0]):.3g}.")
    return evecs * jnp.sqrt(jnp.clip(evals, 0.0)), None


@partial(jax.jit, static_argnames=("debiased",))
def _linear_matrix(Ms, C, Xc, *, debiased: bool):
    # tr(S M_i S M_j) = <C^T M_i C, C^T M_j C>_F for S = C C^T.
    N = jnp.einsum("ak,tab,bl->tkl", C, Ms, C)
    cross = jnp.einsum("ikl,jkl->ij", N, N)
    cross = 0.5 * (cross + cross.T)
    if debiased:
        r = jnp.einsum("na,tab,nb->tn", Xc, Ms, Xc)  # diag of the centred Grams X_c M X_c^T
        H = _hsic_from_terms(cross, r[:, None, :], r[None, :, :], Xc.shape[0], True)
    else:
        H = cross
    d = jnp.diagonal(H)
    C_ = _ratio(H, d[:, None], d[None, :])
    return jnp.where(jnp.eye(Ms.shape[0], dtype=bool) & (d[:, None] > 0), 1.0, C_), d


def cka_matrix_linear(
    Ms: Float[ArrayLike, "T d d"], *, cov=None, X=None, debiased: bool = False
) -> Float[Array, "T T"]:
    r"""Epoch-by-epoch CKA of a linear layer ``h = W x`` from ``M_t = W_t^T W_t`` alone.

    ``C[i, j] = tr(S M_i S M_j) / sqrt(tr(S M_i S M_i) tr(S M_j S M_j))`` with ``S = X_c^T X_c``
    (any positive multiple of the input covariance); computed as the normalised Frobenius Gram of
    ``C^T M_t C`` where ``C C^T = S``. Equals :func:`cka_matrix` of the activations ``X W_t^T``;
    a rotation of the hidden units (``W -> R W``) leaves ``M`` and so the matrix unchanged.

    **Arguments:**

    - `Ms`: (T, d, d) symmetric PSD matrices ``W_t^T W_t`` (or any ``B_t^T B_t`` of a linear map
      ``x -> B_t x``, e.g. ``P^T P`` for a network's output).
    - `cov`: (d, d) input covariance (default ``I``: whitened, centred inputs), or
    - `X`: (n, d) the inputs themselves (centred here; needed for ``debiased``).
    - `debiased`: the unbiased HSIC on the n rows of `X` (n >= 4).

    **Returns:** (T, T) matrix with unit diagonal. ``ValueError`` for an ``M_t`` that vanishes on the
    data (zero variance), wrong shapes, or ``debiased`` without `X`.

    Reference: Kornblith et al. 2019 (linear CKA).
    """
    Ms = _as_float(Ms, "Ms")
    if Ms.ndim != 3 or Ms.shape[1] != Ms.shape[2]:
        raise ValueError(f"`Ms` must have shape (T, d, d); got {tuple(Ms.shape)}.")
    if debiased and X is None:
        raise ValueError("the debiased estimator needs the inputs `X` (n, d), not only `cov`.")
    C, Xd = _input_factor(cov, X, Ms.shape[1], Ms.dtype)
    Xc = _center(Xd) if Xd is not None else jnp.zeros((4, Ms.shape[1]), Ms.dtype)
    if debiased:
        _check_n(Xc.shape[0], True, "X")
    out, d = _linear_matrix(Ms, C, Xc, debiased=debiased)
    _check_self(d, lambda i: f"`Ms[{i}]`", debiased)
    return out


def cka_linear(M1, M2, *, cov=None, X=None, debiased: bool = False) -> Float[Array, ""]:
    """CKA of two linear representations ``x -> W1 x`` and ``x -> W2 x`` from ``M_k = W_k^T W_k``.

    A convenience over :func:`cka_matrix_linear` (same arguments, (d, d) `M1` and `M2`).
    """
    M1 = _as_float(M1, "M1", ndim=2)
    M2 = _as_float(M2, "M2", M1.dtype, ndim=2)
    if M1.shape != M2.shape:
        raise ValueError(f"`M1` and `M2` must have one shape; got {M1.shape} and {M2.shape}.")
    return cka_matrix_linear(jnp.stack([M1, M2]), cov=cov, X=X, debiased=debiased)[0, 1]
