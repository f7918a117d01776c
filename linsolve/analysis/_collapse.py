r"""Neural-collapse metrics of labelled features, and per-layer collapse along training.

Features ``h_i`` (rows of an (N, D) array) with labels in K classes; class means ``mu_c`` (over the
``N_c`` samples of class c), their average ``mu_bar = (1/K) sum_c mu_c`` (equal to the global mean
for balanced classes; with imbalance it keeps the between-class terms independent of the class
frequencies, so perfectly collapsed features score 0 whatever the proportions):

    Sigma_W = (1/N) sum_c sum_{i in c} (h_i - mu_c)(h_i - mu_c)^T,
    Sigma_B = (1/K) sum_c (mu_c - mu_bar)(mu_c - mu_bar)^T.

* NC1 (variability collapse): ``tr Sigma_W / tr Sigma_B`` (Beaglehole et al. 2024, default), or
  Papyan's ``tr(Sigma_W Sigma_B^+) / K`` (Papyan, Han & Donoho 2020), computed without forming
  ``Sigma_B^+`` as ``(1/N) |Z C^+|_F^2`` (``Z`` the within-class residuals, ``C`` the centred means).
  Beaglehole et al.'s code divides ``Sigma_W`` by ``K N`` instead of N (its ``n`` is the total
  sample count), so the values it reports are the formula's divided by K:
  ``normalization="beaglehole_code"`` gives those.
* NC2 (simplex ETF): with ``m_c = (mu_c - mu_bar)/|mu_c - mu_bar|`` and
  ``Sigma_ETF = (1 + 1/(K-1)) I_K - 11^T/(K-1)``: ``|M M^T - Sigma_ETF|_F`` (default, the paper's
  formula) or the mean squared entry ``|M M^T - Sigma_ETF|_F^2 / K^2`` (``norm="mean_square"``,
  what Beaglehole et al.'s code reports).
* NC3 (self-duality): ``| W/|W|_F - C/|C|_F |_F^2`` for classifier rows ``W`` (K, D).
* NC4 (nearest class centre): the fraction of samples whose classifier decision
  ``argmax_c (W h + b)_c`` differs from ``argmin_c |h - mu_c|`` (``1 - NC4`` is the agreement).

All four are 0 at collapse. Every metric is invariant to a shift of the features, and NC1/NC2/NC3 to
a global rescaling; NC1 is invariant to any map with orthonormal columns, so NC1 after ``W = U S V^T``
equals NC1 after ``S V^T``.

References: Papyan, Han & Donoho, PNAS 117 (2020), arXiv 2008.08186; Beaglehole, Sukenik, Mondelli &
Belkin (NeurIPS 2024), arXiv 2402.13728.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import as_float, is_concrete

__all__ = [
    "nc1",
    "nc2",
    "nc3",
    "nc4",
    "collapse_metrics",
    "CollapseMetrics",
    "LayerCollapse",
    "layer_collapse",
    "collapse_along_training",
]

_NC1_KINDS = ("trace", "papyan")
_NC2_NORMS = ("fro", "mean_square")
_NC1_NORMALIZATIONS = ("paper", "beaglehole_code")


# ----------------------------------------------------------------------------- input handling
def _prepare(features, labels, num_classes=None, name: str = "features"):
    """``(F, Y, K)``: float features (N, D) and one-hot class indicators (N, K). Raises early."""
    F = as_float(features, name, ndim=2)
    n = F.shape[0]
    labels = jnp.asarray(labels)
    if labels.ndim not in (1, 2) or labels.shape[0] != n:
        raise ValueError(
            f"`labels` must have length n={n} to match `{name}` (integer classes (n,) or targets "
            f"(n, K)); got shape {tuple(labels.shape)}."
        )
    if labels.ndim == 2:  # one-hot or +-1 one-hot targets: the class is the largest entry
        if num_classes is not None and num_classes != labels.shape[1]:
            raise ValueError(
                f"`num_classes`={num_classes} disagrees with targets of {labels.shape[1]} columns."
            )
        num_classes = labels.shape[1]
        labels = jnp.argmax(labels, axis=1)
    if is_concrete(labels):
        lab = np.asarray(labels)
        if not np.all(lab == np.round(lab)):
            raise ValueError("`labels` must be integer class indices.")
        lab = lab.astype(np.int64)
        if num_classes is None:
            classes, lab = np.unique(lab, return_inverse=True)
            num_classes = len(classes)
        elif lab.min() < 0 or lab.max() >= num_classes:
            raise ValueError(
                f"`labels` must lie in [0, num_classes={num_classes}); got {lab.min()} .. {lab.max()}."
            )
        counts = np.bincount(lab, minlength=num_classes)
        if np.count_nonzero(counts) < 2:
            raise ValueError(f"`labels` must hold at least 2 classes; got {np.count_nonzero(counts)}.")
        if counts.min() < 2:
            bad = np.flatnonzero(counts < 2).tolist()
            raise ValueError(
                f"every class needs at least 2 samples; classes {bad} (in sorted order) have "
                f"{counts[counts < 2].tolist()}."
            )
        labels = jnp.asarray(lab)
    elif num_classes is None:
        raise ValueError("`num_classes` is required when `labels` are traced (under jit/vmap).")
    return F, jax.nn.one_hot(labels, int(num_classes), dtype=F.dtype), int(num_classes)


def _check_classifier(W, b, K: int, D: int, dtype):
    W = as_float(W, "classifier", dtype, ndim=2)
    if W.shape != (K, D):
        raise ValueError(f"`classifier` must have shape (K={K}, D={D}); got {tuple(W.shape)}.")
    if b is not None:
        b = as_float(b, "bias", dtype, ndim=1)
        if b.shape != (K,):
            raise ValueError(f"`bias` must have shape (K={K},); got {tuple(b.shape)}.")
    return W, b


def _check_means(F, Y, need_each: bool) -> None:
    """Raise (concrete inputs) when the class means coincide (``tr Sigma_B`` at rounding level:
    NC1 undefined) or, with `need_each`, when some class mean sits on the mean of the means (its
    direction, used by NC2/NC3, is undefined)."""
    if not is_concrete((F, Y)):
        return
    Fn, Yn = np.asarray(F, np.float64), np.asarray(Y, np.float64)
    means = (Yn.T @ Fn) / Yn.sum(0)[:, None]
    norms = np.linalg.norm(means - means.mean(0), axis=1)
    scale = np.sqrt(np.mean(np.sum((Fn - Fn.mean(0)) ** 2, axis=1)))  # rms spread of the features
    tiny = 64 * np.finfo(np.asarray(F).dtype).eps * max(scale, np.max(np.abs(Fn)))
    if not np.max(norms) > tiny:
        raise ValueError(
            "`features` have (numerically) identical class means: tr Sigma_B = 0, so the metric is "
            f"undefined (largest distance of a class mean to their average: {np.max(norms):.3g})."
        )
    if need_each and not np.min(norms) > tiny:
        raise ValueError(
            f"class {int(np.argmin(norms))} (in sorted order) has its mean at the average of the class "
            "means, so its normalised direction (NC2/NC3) is undefined."
        )


# ----------------------------------------------------------------------------- pure kernels
def _stats(F, Y):
    """Class means (K, D), centred means C (K, D) and within-class residuals Z (N, D)."""
    means = (Y.T @ F) / jnp.sum(Y, axis=0)[:, None]
    C = means - jnp.mean(means, axis=0)
    Z = F - Y @ means
    return means, C, Z


@functools.partial(jax.jit, static_argnames="kind")
def _nc1(F, Y, kind: str = "trace"):
    _, C, Z = _stats(F, Y)
    n, K = Y.shape
    if kind == "papyan":
        return jnp.sum((Z @ jnp.linalg.pinv(C)) ** 2) / n
    return (jnp.sum(Z * Z) / n) / (jnp.sum(C * C) / K)


def _etf_gram(C):
    K = C.shape[0]
    M = C / jnp.linalg.norm(C, axis=1, keepdims=True)
    etf = (1 + 1 / (K - 1)) * jnp.eye(K, dtype=C.dtype) - 1 / (K - 1)
    return M @ M.T - etf


@functools.partial(jax.jit, static_argnames="norm")
def _nc2(F, Y, norm: str = "fro"):
    R = _etf_gram(_stats(F, Y)[1])
    return jnp.mean(R * R) if norm == "mean_square" else jnp.linalg.norm(R)


@jax.jit
def _nc3(F, Y, W):
    C = _stats(F, Y)[1]
    return jnp.sum((W / jnp.linalg.norm(W) - C / jnp.linalg.norm(C)) ** 2)


@jax.jit
def _nc4(F, Y, W, b):
    means = _stats(F, Y)[0]
    logits = F @ W.T + (0.0 if b is None else b)
    d2 = jnp.sum(F * F, 1)[:, None] - 2 * F @ means.T + jnp.sum(means * means, 1)[None, :]
    return jnp.mean((jnp.argmax(logits, 1) != jnp.argmin(d2, 1)).astype(F.dtype))


# ----------------------------------------------------------------------------- public metrics
def nc1(
    features,
    labels,
    *,
    kind: str = "trace",
    normalization: str = "paper",
    num_classes: int | None = None,
) -> Float[Array, ""]:
    r"""NC1, within-class variability relative to between-class: ``tr Sigma_W / tr Sigma_B``.

    ``Sigma_W = (1/N) sum_i (h_i - mu_{c_i})(h_i - mu_{c_i})^T`` (N samples in all) and
    ``Sigma_B = (1/K) sum_c (mu_c - mu_bar)(mu_c - mu_bar)^T`` (module notes).

    **Arguments:**

    - `features`: (N, D) features, one row per sample (finite).
    - `labels`: (N,) integer classes (any K >= 2 distinct values, each with >= 2 samples; classes
      are taken in sorted order), or (N, K) one-hot / +-1 one-hot targets.
    - `kind`: ``"trace"`` (``tr Sigma_W / tr Sigma_B``, Beaglehole et al. 2024) or ``"papyan"``
      (``tr(Sigma_W Sigma_B^+)/K``, Papyan et al. 2020, equal to their code's value).
    - `normalization`: ``"paper"`` (default: the formulas above) or ``"beaglehole_code"``
      (``Sigma_W`` divided by ``K N`` as in Beaglehole et al.'s code, i.e. the value divided by K:
      the default is K times the numbers their code prints).
    - `num_classes`: K when `labels` are traced (then labels must be 0..K-1, unchecked).

    **Returns:** () NC1 >= 0; 0 when every sample sits on its class mean.
    """
    if kind not in _NC1_KINDS:
        raise ValueError(f"`kind` must be one of {_NC1_KINDS}; got {kind!r}.")
    if normalization not in _NC1_NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {_NC1_NORMALIZATIONS}; got {normalization!r}.")
    F, Y, K = _prepare(features, labels, num_classes)
    _check_means(F, Y, need_each=False)
    value = _nc1(F, Y, kind)
    return value / K if normalization == "beaglehole_code" else value


def nc2(features, labels, *, norm: str = "fro", num_classes: int | None = None) -> Float[Array, ""]:
    r"""NC2, distance of the normalised centred class means to a simplex ETF.

    ``|M M^T - Sigma_ETF|`` with rows ``m_c = (mu_c - mu_bar)/|mu_c - mu_bar|`` and
    ``Sigma_ETF = (1 + 1/(K-1)) I - 11^T/(K-1)``. `norm`: ``"fro"`` (the Frobenius norm of the
    paper's formula, default) or ``"mean_square"`` (the mean squared entry
    ``|M M^T - Sigma_ETF|_F^2 / K^2``, what Beaglehole et al.'s code reports; compare values
    across papers only in the same norm). Other arguments as :func:`nc1`.
    """
    if norm not in _NC2_NORMS:
        raise ValueError(f"`norm` must be one of {_NC2_NORMS}; got {norm!r}.")
    F, Y, _ = _prepare(features, labels, num_classes)
    _check_means(F, Y, need_each=True)
    return _nc2(F, Y, norm)


def nc3(features, labels, classifier, *, num_classes: int | None = None) -> Float[Array, ""]:
    r"""NC3, self-duality: ``| W/|W|_F - C/|C|_F |_F^2``, in [0, 4].

    `classifier` (K, D): the last layer's rows, in the order of the classes (sorted labels);
    ``C`` (K, D) the centred class means of `features`. Other arguments as :func:`nc1`.
    """
    F, Y, K = _prepare(features, labels, num_classes)
    W, _ = _check_classifier(classifier, None, K, F.shape[1], F.dtype)
    _check_means(F, Y, need_each=False)
    if is_concrete(W) and not np.any(np.asarray(W)):
        raise ValueError("`classifier` is zero; its normalised direction (NC3) is undefined.")
    return _nc3(F, Y, W)


def nc4(features, labels, classifier, bias=None, *, num_classes: int | None = None) -> Float[Array, ""]:
    r"""NC4, the fraction of samples where ``argmax_c (W h + b)_c != argmin_c |h - mu_c|``.

    `classifier` (K, D) and `bias` (K,) or None define the decision; ``1 - nc4`` is the agreement
    with the nearest-class-centre rule. Other arguments as :func:`nc1`.
    """
    F, Y, K = _prepare(features, labels, num_classes)
    W, b = _check_classifier(classifier, bias, K, F.shape[1], F.dtype)
    return _nc4(F, Y, W, b)


class CollapseMetrics(NamedTuple):
    """All collapse metrics of one set of features (``nan`` where no classifier was given).

    `within_total`, `between_total`: ``tr Sigma_W / tr Sigma_T`` and ``tr Sigma_B / tr Sigma_T``,
    ``Sigma_T = Sigma_W + Sigma_B``.
    """

    nc1: Float[Array, ""]
    nc1_papyan: Float[Array, ""]
    nc2: Float[Array, ""]
    nc3: Float[Array, ""]
    nc4: Float[Array, ""]
    within_total: Float[Array, ""]
    between_total: Float[Array, ""]


def collapse_metrics(
    features, labels, *, classifier=None, bias=None, num_classes: int | None = None
) -> CollapseMetrics:
    """Every metric of :func:`nc1` .. :func:`nc4` at once (NC3/NC4 need `classifier`)."""
    F, Y, K = _prepare(features, labels, num_classes)
    if classifier is not None:
        W, b = _check_classifier(classifier, bias, K, F.shape[1], F.dtype)
    else:
        W = b = None
    return _collapse_metrics(F, Y, W, b)


@jax.jit
def _collapse_metrics(F, Y, W, b):
    _, C, Z = _stats(F, Y)
    trW, trB = jnp.sum(Z * Z) / F.shape[0], jnp.sum(C * C) / Y.shape[1]
    nan = jnp.full((), jnp.nan, F.dtype)
    n3 = nan if W is None else _nc3(F, Y, W)
    n4 = nan if W is None else _nc4(F, Y, W, b)
    return CollapseMetrics(
        trW / trB, _nc1(F, Y, "papyan"), _nc2(F, Y), n3, n4, trW / (trW + trB), trB / (trW + trB)
    )


# Per-layer collapse of trained networks lives in its own module; importable from here as before.
from ._collapse_layers import LayerCollapse, collapse_along_training, layer_collapse  # noqa: E402
from ._collapse_layers import _layer_collapse as _layer_collapse  # noqa: E402
from ._collapse_layers import _prepare_net as _prepare_net  # noqa: E402
from ._collapse_layers import _record_collapse as _record_collapse  # noqa: E402
from ._collapse_layers import _signals as _signals  # noqa: E402
