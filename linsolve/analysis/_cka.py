r"""Centred kernel alignment (CKA) and its epoch-by-epoch matrices, with closed forms for linear layers.

For representations ``A`` (n, p) and ``B`` (n, q) of the same n inputs, with Gram matrices
``K = A A^T``, ``L = B B^T`` and the centring matrix ``H = I - 11^T/n``:

    HSIC_0(K, L) = tr(K H L H) / (n - 1)^2                                          (biased)
    HSIC_1(K, L) = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))
    CKA(A, B)    = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

``K~``, ``L~`` being ``K``, ``L`` with zeroed diagonals (``HSIC_1``: the unbiased estimator of
Song et al. 2012, n >= 4). With the linear kernel and centred features ``A_c = H A`` the biased CKA
is ``|B_c^T A_c|_F^2 / (|A_c^T A_c|_F |B_c^T B_c|_F)`` (Kornblith et al. 2019), and every term of
``HSIC_1`` reduces to feature-space quantities: ``tr(K~ L~) = |A_c^T B_c|_F^2 - r_A . r_B``,
``1^T K~ 1 = -sum r_A``, ``1^T K~ L~ 1 = r_A . r_B`` with ``r_A = diag(A_c A_c^T)`` (``HSIC_1`` is
translation invariant, so centring first changes nothing but rounding). The feature-space form
costs ``O(n p q)`` instead of ``O(n^2 (p + q))`` and is used when the widths are below ``n``.

**Linear layers.** For ``h = W x`` on centred inputs ``X_c`` with ``S = X_c^T X_c`` the Gram is
``X_c M X_c^T``, ``M = W^T W``, so ``CKA(t1, t2) = tr(S M1 S M2) / sqrt(tr(S M1 S M1) tr(S M2 S M2))``:
a function of ``M(t)`` alone (rotations of the hidden units are invisible). Along an exact
two-layer linear solution (``linsolve.exact``) ``M(t)`` is known in closed form, so the
epoch-by-epoch CKA matrix needs no simulation; for a balanced, task-aligned (Saxe) solution
``M(t) = V diag(u(t)^{2l/L}) V^T`` and ``CKA = a(t1).a(t2)/(|a(t1)| |a(t2)|)``, ``a = u^{2l/L}``.

**Zero variance.** A representation that is constant over the inputs (or, for ``HSIC_1``, whose
self-similarity is not positive, as for a single outlier among few samples) has no defined CKA:
concrete inputs raise ``ValueError``; under ``jit``/``vmap`` (traced inputs) such entries are 0.

References: Kornblith, Norouzi, Lee & Hinton (ICML 2019), arXiv 1905.00414; Song, Smola, Gretton,
Bedo & Borgwardt (JMLR 2012); Nguyen, Raghu & Kornblith (ICLR 2021), arXiv 2010.15327 (minibatch
CKA); Sharon & Dar (2024), arXiv 2405.17377 (epoch-by-epoch matrices).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import as_float, float_dtype_of, is_concrete
from ..tasks import Task

__all__ = [
    "cka",
    "cka_minibatch",
    "cka_matrix",
    "cka_linear",
    "cka_matrix_linear",
    "cka_matrix_exact",
    "cka_matrix_saxe",
    "hsic",
]

_KERNELS = ("linear", "rbf")
_MEDIANS = ("off_diagonal", "all")


def _on_device(x):
    """Host values to a JAX array without a per-shape compilation (``jnp.asarray`` of a NumPy
    array compiles a copy for every new shape; ``device_put`` does not)."""
    if isinstance(x, np.ndarray | np.generic | float | int | list | tuple):
        return jax.device_put(np.asarray(x))
    return x


def _as_float(x, name, dtype=None, *, ndim=None):
    return as_float(_on_device(x), name, dtype, ndim=ndim)


# ---------------------------------------------------------------------------------------------
# Validation.


def _reps(A, name: str, dtype=None) -> Float[Array, "n p"]:
    """``A`` as a floating (n, p) array; a 1-D array is one feature, (n, 1)."""
    A = _as_float(A, name, dtype)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2:
        raise ValueError(f"`{name}` must be a (n, p) array of n samples; got shape {tuple(A.shape)}.")
    return A


def _check_n(n: int, debiased: bool, name: str = "A") -> None:
    need = 4 if debiased else 2
    if n < need:
        what = "the debiased (unbiased HSIC) estimator" if debiased else "CKA"
        raise ValueError(f"{what} needs n >= {need} samples; `{name}` has n={n}.")


def _check_self(value, names, debiased: bool) -> None:
    """Raise when a self-similarity HSIC(K, K) is not positive (concrete inputs only)."""
    if not is_concrete(value):
        return
    bad = np.flatnonzero(~(np.asarray(value).reshape(-1) > 0))
    if bad.size:
        name = names(int(bad[0]))
        if debiased:
            raise ValueError(
                f"{name} has a non-positive unbiased self-similarity HSIC_1(K, K) "
                f"= {float(np.asarray(value).reshape(-1)[bad[0]]):.3g}: the representation is constant "
                f"(zero variance) or too concentrated on a few of the n samples for the debiased "
                f"estimator; CKA is undefined."
            )
        raise ValueError(
            f"{name} has zero variance over the samples (a constant representation); CKA is undefined."
        )


def _ratio(cross, self_a, self_b):
    """``cross / sqrt(self_a self_b)``, 0 where a self term is not positive (NaN-free)."""
    ok = (self_a > 0) & (self_b > 0)
    den = jnp.sqrt(jnp.where(ok, self_a * self_b, 1.0))
    return jnp.where(ok, cross / den, 0.0)


# ---------------------------------------------------------------------------------------------
# HSIC estimators.


def _center(A):
    return A - jnp.mean(A, axis=0, keepdims=True)


def _hsic0_gram(K, L):
    """``tr(K H L H) / (n-1)^2`` for (n, n) Grams."""
    n = K.shape[-1]
    Kc = K - jnp.mean(K, axis=-1, keepdims=True)
    Kc = Kc - jnp.mean(Kc, axis=-2, keepdims=True)
    return jnp.sum(Kc * L, axis=(-2, -1)) / (n - 1) ** 2


def _hsic1_gram(K, L):
    """Unbiased HSIC of Song et al. (2012) for (n, n) Grams, n >= 4."""
    n = K.shape[-1]
    eye = jnp.eye(n, dtype=bool)
    Kt, Lt = jnp.where(eye, 0.0, K), jnp.where(eye, 0.0, L)
    k1, l1 = jnp.sum(Kt, axis=-1), jnp.sum(Lt, axis=-1)  # K~ 1, L~ 1
    term1 = jnp.sum(Kt * Lt, axis=(-2, -1))
    term2 = jnp.sum(k1, -1) * jnp.sum(l1, -1) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * jnp.sum(k1 * l1, -1)
    return (term1 + term2 - term3) / (n * (n - 3))


def _hsic_from_terms(cross, ra, rb, n: int, debiased: bool):
    """HSIC from ``cross = tr(Kc Lc)`` and the diagonals ``ra = diag(Kc)``, ``rb = diag(Lc)``.

    ``Kc``, ``Lc`` are the centred linear Grams (features centred). Biased: ``cross / (n-1)^2``.
    Unbiased (with ``1^T Kc = 0``): ``tr(K~ L~) = cross - ra.rb``, ``1^T K~ 1 = -sum ra``,
    ``1^T K~ L~ 1 = ra.rb``.
    """
    if not debiased:
        return cross / (n - 1) ** 2
    rr = jnp.sum(ra * rb, axis=-1)
    sa, sb = jnp.sum(ra, axis=-1), jnp.sum(rb, axis=-1)
    return (cross - rr + sa * sb / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * rr) / (n * (n - 3))


def _rbf_gram(A, bandwidth, median: str = "off_diagonal"):
    """``exp(-|a_i - a_j|^2 / (2 sigma^2))``; ``sigma^2`` = median squared distance when None
    (over the pairs ``i < j``, or over all ``n^2`` entries with the zero diagonal: ``median="all"``)."""
    sq = jnp.sum(A * A, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * A @ A.T, 0.0)
    if bandwidth is None and median == "all":
        sigma2 = jnp.median(jnp.where(jnp.eye(A.shape[0], dtype=bool), 0.0, d2))
    elif bandwidth is None:
        iu = jnp.triu_indices(A.shape[0], k=1)
        sigma2 = jnp.median(d2[iu])
    else:
        sigma2 = jnp.asarray(bandwidth, A.dtype) ** 2
    sigma2 = jnp.where(sigma2 > 0, sigma2, 1.0)  # constant A: zero-variance Gram, caught later
    return jnp.exp(-d2 / (2.0 * sigma2))


def _gram(A, kernel, bandwidth, median="off_diagonal"):
    return A @ A.T if kernel == "linear" else _rbf_gram(A, bandwidth, median)


@partial(jax.jit, static_argnames=("debiased", "kernel", "median"))
def _hsic_triple(A, B, bandwidth_a, bandwidth_b, *, debiased: bool, kernel: str, median="off_diagonal"):
    """``(HSIC(K, L), HSIC(K, K), HSIC(L, L))`` (feature-space form for narrow linear layers)."""
    n, p = A.shape
    q = B.shape[1]
    if kernel == "linear" and max(p, q) < n:
        Ac, Bc = _center(A), _center(B)
        ra, rb = jnp.sum(Ac * Ac, axis=1), jnp.sum(Bc * Bc, axis=1)
        cab = jnp.sum((Ac.T @ Bc) ** 2)
        caa, cbb = jnp.sum((Ac.T @ Ac) ** 2), jnp.sum((Bc.T @ Bc) ** 2)
        f = partial(_hsic_from_terms, n=n, debiased=debiased)
        return f(cab, ra, rb), f(caa, ra, ra), f(cbb, rb, rb)
    if kernel == "linear":
        A, B = _center(A), _center(B)  # exact: both estimators are translation invariant
    K, L = _gram(A, kernel, bandwidth_a, median), _gram(B, kernel, bandwidth_b, median)
    f = _hsic1_gram if debiased else _hsic0_gram
    return f(K, L), f(K, K), f(L, L)


# ---------------------------------------------------------------------------------------------
# Public API.


def hsic(
    K: Float[ArrayLike, "n n"], L: Float[ArrayLike, "n n"], *, debiased: bool = False
) -> Float[Array, ""]:
    r"""HSIC of two (n, n) kernel matrices of the same n inputs.

    Biased: ``tr(K H L H) / (n-1)^2``; ``debiased``: the unbiased estimator of Song et al. (2012),
    ``[tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))`` with
    zeroed diagonals (n >= 4). Leading batch axes are allowed.
    """
    K = _as_float(K, "K")
    L = _as_float(L, "L", K.dtype)
    if K.ndim < 2 or K.shape[-1] != K.shape[-2] or K.shape != L.shape:
        raise ValueError(
            f"`K` and `L` must be square (..., n, n) kernel matrices of one shape; "
            f"got {tuple(K.shape)} and {tuple(L.shape)}."
        )
    _check_n(K.shape[-1], debiased, "K")
    return _hsic1_gram(K, L) if debiased else _hsic0_gram(K, L)


def cka(
    A: Float[ArrayLike, "n p"],
    B: Float[ArrayLike, "n q"],
    *,
    debiased: bool = False,
    kernel: str = "linear",
    bandwidth=None,
    median: str = "off_diagonal",
) -> Float[Array, ""]:
    r"""Centred kernel alignment ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` of two representations.

    **Arguments:**
    - `A`: (n, p) representation of n inputs (a 1-D array counts as one feature).
    - `B`: (n, q) representation of the same n inputs (same order).
    - `debiased`: use the unbiased HSIC of Song et al. (2012) (needs n >= 4) instead of the biased
      ``tr(KHLH)/(n-1)^2``. For independent features the unbiased CKA is near 0 while the biased
      one is positive, about ``sqrt(p q) / n``.
    - `kernel`: ``"linear"`` (``K = A A^T``; the feature-space form is used when p, q < n) or
      ``"rbf"`` (``K_ij = exp(-|a_i - a_j|^2 / (2 sigma^2))``).
    - `bandwidth`: the RBF ``sigma`` (absolute, same for both), or None for the median heuristic
      (``sigma^2`` = median squared pairwise distance, per representation; this keeps CKA invariant
      to isotropic scaling). Ignored by the linear kernel.
    - `median`: which distances the median heuristic takes: ``"off_diagonal"`` (default, the
      ``n(n-1)/2`` pairs ``i < j``) or ``"all"`` (all ``n^2`` entries including the zero
      diagonal, as ``gram_rbf(x, threshold=1.0)`` in Kornblith et al.'s CKA notebook; a smaller
      bandwidth, noticeably so for small n).

    **Returns:** a scalar in [0, 1] (biased; the debiased value can be slightly negative).
    Invariant to orthogonal maps, isotropic scaling and translations of either argument.

    **Raises:** ``ValueError`` for mismatched sample counts, too few samples, an unknown kernel,
    a non-positive bandwidth, or a constant representation (zero variance; see module notes).

    Reference: Kornblith et al. (2019), arXiv 1905.00414; Song et al. (2012).
    """
    if kernel not in _KERNELS:
        raise ValueError(f"`kernel` must be one of {_KERNELS}; got {kernel!r}.")
    if median not in _MEDIANS:
        raise ValueError(f"`median` must be one of {_MEDIANS}; got {median!r}.")
    A = _reps(A, "A")
    B = _reps(B, "B", A.dtype)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"`A` and `B` must hold the same n samples; got n={A.shape[0]} and n={B.shape[0]}.")
    _check_n(A.shape[0], debiased)
    if bandwidth is not None:
        bandwidth = jnp.asarray(bandwidth, A.dtype)
        if bandwidth.ndim != 0 or (is_concrete(bandwidth) and not 0 < float(bandwidth) < np.inf):
            raise ValueError(f"`bandwidth` must be a positive finite scalar or None; got {bandwidth}.")
    kab, kaa, kbb = _hsic_triple(A, B, bandwidth, bandwidth, debiased=debiased, kernel=kernel, median=median)
    _check_self(kaa, lambda i: "`A`", debiased)
    _check_self(kbb, lambda i: "`B`", debiased)
    return _ratio(kab, kaa, kbb)


def _batches(X, name: str, dtype=None) -> list:
    """A (b, m, p) array or a sequence of (m_i, p) arrays as a list of 2-D arrays."""
    if isinstance(X, Sequence) and not isinstance(X, str):
        return [_reps(x, f"{name}[{i}]", dtype) for i, x in enumerate(X)]
    X = _as_float(X, name, dtype)
    if X.ndim != 3:
        raise ValueError(
            f"`{name}` must be a (batches, m, p) array or a sequence of (m, p) arrays; "
            f"got shape {tuple(X.shape)}."
        )
    return list(X)


def cka_minibatch(A_batches, B_batches) -> Float[Array, ""]:
    r"""Minibatch CKA: unbiased HSIC accumulated over minibatches (Nguyen, Raghu & Kornblith 2021).

    ``CKA_mb = sum_b HSIC_1(K_b, L_b) / sqrt(sum_b HSIC_1(K_b, K_b) sum_b HSIC_1(L_b, L_b))``.

    **Arguments:**
    - `A_batches`: (b, m, p) array, or a sequence of (m_i, p) arrays (minibatches of the inputs).
    - `B_batches`: the same minibatches through the other representation, (b, m, q) or a
      sequence of (m_i, q); every m_i >= 4.

    **Returns:** a scalar; equals the debiased :func:`cka` when there is one batch.
    """
    As = _batches(A_batches, "A_batches")
    Bs = _batches(B_batches, "B_batches", As[0].dtype if As else None)
    if len(As) == 0 or len(As) != len(Bs):
        raise ValueError(
            f"`A_batches` and `B_batches` must hold the same (non-zero) number of minibatches; "
            f"got {len(As)} and {len(Bs)}."
        )
    tot = [0.0, 0.0, 0.0]
    for i, (a, b) in enumerate(zip(As, Bs)):
        if a.shape[0] != b.shape[0]:
            raise ValueError(
                f"minibatch {i} has m={a.shape[0]} samples in `A_batches` but m={b.shape[0]} in `B_batches`."
            )
        _check_n(a.shape[0], True, f"A_batches[{i}]")
        terms = _hsic_triple(a, b, None, None, debiased=True, kernel="linear")
        tot = [t + v for t, v in zip(tot, terms)]
    _check_self(tot[1], lambda i: "`A_batches`", True)
    _check_self(tot[2], lambda i: "`B_batches`", True)
    return _ratio(*tot)


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


def cka_matrix_exact(
    t: Float[ArrayLike, " T"],
    W1: Float[ArrayLike, "h d_in"],
    W2: Float[ArrayLike, "d_out h"],
    task: Task,
    *,
    tau=1.0,
    layer: str = "hidden",
    cov=None,
    X=None,
    debiased: bool = False,
) -> Float[Array, "T T"]:
    r"""Closed-form epoch-by-epoch CKA matrix of a two-layer linear net along its exact gradient flow.

    The net ``f(x) = W2 W1 x`` from a lambda-balanced init (``W2^T W2 - W1 W1^T = lam I``, any
    lam, whitened task) follows :func:`linsolve.exact.lambda_balanced`, which gives
    ``W1^T W1(t)`` (``input_gram``) and ``W2 W1(t)`` (``product``) in closed form; the hidden
    layer's CKA matrix is :func:`cka_matrix_linear` of ``M(t) = W1^T W1(t)``, the output's of
    ``M(t) = P(t)^T P(t)``. No simulation: it equals :func:`cka_matrix` of the simulated
    activations (to the accuracy of the simulation). Small inits show stage-like learning as
    diagonal blocks.

    **Arguments:**
    - `t`: (T,) times >= 0 (gradient descent with rate ``lr`` after k steps: ``t = k``, ``tau = 1/lr``).
    - `W1`, `W2`, `task`, `tau`: as for :func:`linsolve.exact.lambda_balanced`.
    - `layer`: ``"hidden"`` (``h = W1 x``) or ``"output"`` (``f = W2 W1 x``).
    - `cov`, `X`, `debiased`: the evaluation inputs, as for :func:`cka_matrix_linear`
      (default: centred whitened inputs, ``S = I``).

    **Returns:** (T, T) CKA matrix.
    """
    from ..exact import lambda_balanced

    if layer not in ("hidden", "output"):
        raise ValueError(f"`layer` must be 'hidden' or 'output'; got {layer!r}.")
    t = _as_float(t, "t", float_dtype_of(W1, W2, task.Syx), ndim=1)
    sol = lambda_balanced(t, W1, W2, task, tau=tau)
    if layer == "hidden":
        Ms = sol.input_gram
    else:
        Ms = jnp.einsum("toi,toj->tij", sol.product, sol.product)
    return cka_matrix_linear(Ms, cov=cov, X=X, debiased=debiased)


def cka_matrix_saxe(
    t: Float[ArrayLike, " T"], *, s, u0, tau=1.0, depth: int = 2, layer: int = 1
) -> Float[Array, "T T"]:
    r"""Closed-form CKA matrix of layer ``l`` of a balanced, task-aligned deep linear net (Saxe).

    With whitened, centred inputs and decoupled modes ``u_alpha(t)`` (:func:`linsolve.exact.saxe_mode`),
    ``W_l...W_1 = R_l diag(u^{l/L}) V^T`` so ``M(t) = V diag(a(t)) V^T`` with ``a = u^{2l/L}`` and

        CKA(t1, t2) = a(t1) . a(t2) / (|a(t1)| |a(t2)|).

    **Arguments:** `t` (T,) times; `s` (r,) task singular values; `u0` (r,) initial strengths
    (``> 0``); `tau`; `depth` L; `layer` l in 1..L (L is the network output).

    **Returns:** (T, T). Reference: Saxe et al. (2014).
    """
    from ..exact import saxe_mode

    if int(depth) != depth or depth < 1 or int(layer) != layer or not 1 <= layer <= depth:
        raise ValueError(f"need integers 1 <= `layer` <= `depth`; got layer={layer}, depth={depth}.")
    dtype = float_dtype_of(t, s, u0)
    t = _as_float(t, "t", dtype, ndim=1)
    s = _as_float(s, "s", dtype, ndim=1)
    u0 = _as_float(jnp.broadcast_to(jnp.asarray(u0), s.shape), "u0", dtype)
    if is_concrete(u0) and bool(jnp.any(u0 < 0)):
        raise ValueError(f"`u0` must be non-negative (balanced strengths); got {u0}.")
    u = saxe_mode(t[:, None], s=s, u0=u0, tau=tau, depth=int(depth))
    a = jnp.abs(u) ** (2.0 * layer / depth)
    norms = jnp.sqrt(jnp.sum(a * a, axis=1))
    _check_self(norms, lambda i: f"the layer at t[{i}]", False)
    return _ratio(a @ a.T, norms[:, None] ** 2, norms[None, :] ** 2)
