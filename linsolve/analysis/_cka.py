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

from .._validate import as_float, is_concrete

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


# The epoch-by-epoch matrices and the closed forms along exact solutions live in their own
# modules; importable from here as before.
from ._cka_exact import cka_matrix_exact, cka_matrix_saxe  # noqa: E402
from ._cka_matrix import _input_factor as _input_factor  # noqa: E402
from ._cka_matrix import _linear_matrix as _linear_matrix  # noqa: E402
from ._cka_matrix import _matrix as _matrix  # noqa: E402
from ._cka_matrix import cka_linear, cka_matrix, cka_matrix_linear  # noqa: E402
