r"""Linear classifier probes and the agreement of their decision regions on planes through data.

A probe on a representation ``r`` (p,) is ``g(r) = argmax_c [W r + b]_c`` (a single output column
means two classes, ``g = 1[w.r + b > 0]``). Closed-form probes regress the one-hot labels ``Y``:

    (W, b) = argmin |R W^T + 1 b^T - Y|^2 + ridge |W|^2   =>   W^T = (R_c^T R_c + ridge I)^+ R_c^T Y_c,
    b = mean(Y) - W mean(R)

(``R_c``, ``Y_c`` centred; the unpenalised bias absorbs the means; ``ridge = 0`` is the
minimum-norm least-squares probe, computed in the dual form ``R_c^T (R_c R_c^T + ridge I)^+ Y_c``
when ``p > n``). A least-squares probe on a full-rank linear layer has exactly the decision regions
of the probe on the raw input. Logistic probes minimise the softmax cross
entropy with optax (not invariant in that way: max-margin directions depend on the metric).

**Decision regions on planes** (Somepalli et al. 2022, code somepago/dbViz): three training
inputs ``x1, x2, x3`` span a plane with orthonormal basis ``a = (x2 - x1)/|x2 - x1|`` and
``b = normalise((x3 - x1) - (a.(x3 - x1)) a)``; an ``r x r`` grid over the bounding box of the three
points (extended by `margin` on each side) gives inputs ``x1 + alpha a + beta b``. Mapped through
the network to a layer and then through the layer's probe, the grid is a label image; the
agreement of two classifiers is the fraction of grid points with the same label, averaged over
planes. The epoch-by-epoch version compares one layer's probes at two training times,
``D[i, j] = mean_planes mean_grid 1[g_{t_i} = g_{t_j}]`` (Sharon & Dar 2024).

References: Alain & Bengio (2016), arXiv 1610.01644 (linear probes); Somepalli et al. (CVPR 2022),
arXiv 2203.08124 (decision regions on planes); Sharon & Dar (2024), arXiv 2405.17377.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, Int

from .._validate import as_float, check_positive, is_concrete
from ._cka import _on_device

__all__ = [
    "LinearProbe",
    "fit_probe",
    "fit_logistic_probe",
    "predict",
    "probe_agreement",
    "Plane",
    "plane",
    "triplet_planes",
    "agreement_matrix",
    "probe_agreement_matrix",
]


def _as_float(x, name, dtype=None, *, ndim=None):
    return as_float(_on_device(x), name, dtype, ndim=ndim)


class LinearProbe(NamedTuple):
    """A linear classifier ``argmax_c [W r + b]_c`` (one output: ``1[W r + b > 0]``).

    **Fields:** `W` (*batch, K, p) weights, `b` (*batch, K) biases. Leading batch axes (e.g. one
    probe per snapshot, from ``jax.vmap(fit_probe)``) are allowed.
    """

    W: Float[Array, "*batch K p"]
    b: Float[Array, "*batch K"]

    def logits(self, R: Float[ArrayLike, "*n p"]) -> Float[Array, "*n K"]:
        return _logits(self.W, self.b, _on_device(R))

    def __call__(self, R: Float[ArrayLike, "*n p"]) -> Int[Array, "*n"]:
        """Predicted classes of the rows of `R`."""
        return _predict_linear(self.W, self.b, _on_device(R))


@jax.jit
def _logits(W, b, R):
    return R @ jnp.swapaxes(W, -1, -2) + b[..., None, :]


@jax.jit
def _predict_linear(W, b, R):
    return _classes(R @ jnp.swapaxes(W, -1, -2) + b[..., None, :])


@jax.jit
def _classes(logits):
    if logits.shape[-1] == 1:
        return (logits[..., 0] > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _check_data(R, labels, num_classes):
    R = _as_float(R, "R", ndim=2)
    labels = jnp.asarray(_on_device(labels))
    if labels.shape != (R.shape[0],) or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"`labels` must be integer class labels of shape (n={R.shape[0]},); "
            f"got {labels.dtype} of shape {tuple(labels.shape)}."
        )
    if num_classes is None:
        if not is_concrete(labels):
            raise ValueError("`num_classes` is required when `labels` are traced.")
        num_classes = int(jnp.max(labels)) + 1
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}.")
    if is_concrete(labels) and (int(jnp.min(labels)) < 0 or int(jnp.max(labels)) >= num_classes):
        raise ValueError(
            f"`labels` must lie in [0, num_classes={num_classes}); got range "
            f"[{int(jnp.min(labels))}, {int(jnp.max(labels))}]."
        )
    return R, labels, int(num_classes)


@partial(jax.jit, static_argnames=("num_classes",))
def _ridge(R, labels, ridge, *, num_classes: int):
    n, p = R.shape
    Y = jax.nn.one_hot(labels, num_classes, dtype=R.dtype)
    rm, ym = jnp.mean(R, axis=0), jnp.mean(Y, axis=0)
    Rc, Yc = R - rm, Y - ym
    if p <= n:
        G = Rc.T @ Rc
        Wt = jnp.linalg.pinv(G + ridge * jnp.eye(p, dtype=R.dtype), hermitian=True) @ (Rc.T @ Yc)
    else:
        G = Rc @ Rc.T
        Wt = Rc.T @ (jnp.linalg.pinv(G + ridge * jnp.eye(n, dtype=R.dtype), hermitian=True) @ Yc)
    W = Wt.T
    return LinearProbe(W, ym - W @ rm)


def fit_probe(
    R: Float[ArrayLike, "n p"],
    labels: Int[ArrayLike, " n"],
    *,
    num_classes: int | None = None,
    ridge=0.0,
) -> LinearProbe:
    r"""Closed-form ridge (or minimum-norm least-squares) probe on one-hot targets.

    ``W^T = (R_c^T R_c + ridge I)^+ R_c^T Y_c``, ``b = mean(Y) - W mean(R)`` (module notes).

    **Arguments:**

    - `R`: (n, p) representation of the n training inputs (a layer at one snapshot).
    - `labels`: (n,) integer classes in ``[0, num_classes)``.
    - `num_classes`: K (default ``max(labels) + 1``; required under ``jit``/``vmap``).
    - `ridge`: penalty >= 0 on ``W`` (0: minimum-norm least squares via the pseudo-inverse).

    **Returns:** a :class:`LinearProbe` with ``W`` (K, p) and ``b`` (K,). jit/vmap-able in `R`,
    `labels` and `ridge` (pass `num_classes`).
    """
    R, labels, K = _check_data(R, labels, num_classes)
    ridge = jnp.asarray(ridge, R.dtype)
    if ridge.ndim != 0:
        raise ValueError(f"`ridge` must be a scalar; got shape {tuple(ridge.shape)}.")
    check_positive("ridge", ridge, strict=False)
    return _ridge(R, labels, ridge, num_classes=K)


@partial(jax.jit, static_argnames=("num_classes", "steps", "optimizer"))
def _logistic(R, labels, lr, weight_decay, *, num_classes, steps, optimizer):
    n, p = R.shape
    rm = jnp.mean(R, axis=0)
    scale = jnp.sqrt(jnp.mean(jnp.sum((R - rm) ** 2, axis=1)))
    scale = jnp.where(scale > 0, scale, 1.0)
    Z = (R - rm) / scale  # standardised inputs: one learning rate fits every layer
    Y = jax.nn.one_hot(labels, num_classes, dtype=R.dtype)
    opt = optax.adam(1.0) if optimizer == "adam" else optax.sgd(1.0)

    def loss(params):
        W, b = params
        logits = Z @ W.T + b
        ce = jnp.mean(optax.softmax_cross_entropy(logits, Y))
        return ce + 0.5 * weight_decay * jnp.sum(W * W)

    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        updates = jax.tree_util.tree_map(lambda u: lr * u, updates)
        return (optax.apply_updates(params, updates), state), None

    params0 = (jnp.zeros((num_classes, p), R.dtype), jnp.zeros((num_classes,), R.dtype))
    ((W, b), _), _ = jax.lax.scan(step, (params0, opt.init(params0)), None, length=steps)
    W = W / scale
    return LinearProbe(W, b - W @ rm)


def fit_logistic_probe(
    R: Float[ArrayLike, "n p"],
    labels: Int[ArrayLike, " n"],
    *,
    num_classes: int | None = None,
    steps: int = 500,
    lr=0.1,
    weight_decay=0.0,
    optimizer: str = "adam",
) -> LinearProbe:
    r"""Multinomial logistic-regression probe trained with optax from zero weights.

    Minimises ``mean_i CE(softmax(W z_i + b), y_i) + weight_decay/2 |W|^2`` on standardised
    features ``z = (r - mean r) / rms`` for `steps` full-batch steps of ``optax.adam`` (or
    ``"sgd"``) with rate `lr`, then maps the probe back to the raw features. Deterministic.

    **Returns:** a :class:`LinearProbe` (K, p) / (K,).
    """
    R, labels, K = _check_data(R, labels, num_classes)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"`steps` must be a positive integer; got {steps!r}.")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"`optimizer` must be 'adam' or 'sgd'; got {optimizer!r}.")
    lr = jnp.asarray(lr, R.dtype)
    weight_decay = jnp.asarray(weight_decay, R.dtype)
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, strict=False)
    return _logistic(R, labels, lr, weight_decay, num_classes=K, steps=int(steps), optimizer=optimizer)


def predict(probe, points: Float[ArrayLike, "*m p"]) -> Int[Array, "*m"]:
    """Class labels of a probe at `points`.

    `probe` is a :class:`LinearProbe` or any callable ``points -> logits (*m, K)`` (argmax; one
    column: ``1[logit > 0]``) or ``-> integer labels (*m,)``.
    """
    if isinstance(probe, LinearProbe):
        return probe(points)
    if not callable(probe):
        raise ValueError(f"a probe must be a LinearProbe or a callable; got {type(probe).__name__}.")
    out = jnp.asarray(_on_device(probe(points)))
    if jnp.issubdtype(out.dtype, jnp.integer) or out.dtype == bool:
        return out.astype(jnp.int32)
    return _classes(out)


def probe_agreement(probe_a, probe_b, points: Float[ArrayLike, "*m p"]) -> Float[Array, ""]:
    r"""Fraction of `points` where two classifiers predict the same class.

    ``mean_x 1[g_a(x) = g_b(x)]`` (dbViz's ``calculate_iou_simple``, the decision-region
    similarity of Somepalli et al. 2022). With equal-sized grids on several planes stacked along
    leading axes of `points`, this is the plane-averaged agreement.

    **Arguments:**

    - `probe_a`, `probe_b`: :class:`LinearProbe` s or callables (see :func:`predict`); e.g.
      ``lambda X: probe_t(features_t(X))`` to compare a layer's probes at two training times on
      the same input grid.
    - `points`: (*m, p) points where both classifiers are evaluated (e.g. plane grid points).

    **Returns:** a scalar in [0, 1]. Identical or positively rescaled probes agree everywhere; two
    binary probes through the origin at angle theta agree on ``1 - theta/pi`` of a centred disk.
    """
    points = _as_float(points, "points")
    if points.ndim < 1 or points.size == 0:
        raise ValueError(f"`points` must be a non-empty (m, p) array; got shape {tuple(points.shape)}.")
    ga, gb = predict(probe_a, points), predict(probe_b, points)
    if ga.shape != gb.shape:
        raise ValueError(f"the probes predicted shapes {ga.shape} and {gb.shape} on the same points.")
    return _equal_fraction(ga, gb, points.dtype)


@partial(jax.jit, static_argnums=2)
def _equal_fraction(ga, gb, dtype):
    return jnp.mean((ga == gb).astype(dtype))




@jax.jit
def _agreement(preds):
    T = preds.shape[0]
    flat = preds.reshape(T, -1)
    return jax.lax.map(lambda p: jnp.mean((flat == p[None, :]).astype(jnp.float32), axis=1), flat)


def agreement_matrix(preds: Int[ArrayLike, "T ..."]) -> Float[Array, "T T"]:
    """Epoch-by-epoch agreement ``D[i, j] = mean_x 1[preds[i, x] = preds[j, x]]``.

    **Arguments:** `preds` (T, *m) predicted classes of one classifier family (a layer's probes, or
    the network output) at T snapshots on the same points (e.g. all grid points of all planes).

    **Returns:** (T, T) symmetric, unit diagonal (float32 counts are exact for < 2^24 points).
    """
    preds = jnp.asarray(_on_device(preds))
    if preds.ndim < 2 or preds.shape[0] == 0 or preds[0].size == 0:
        raise ValueError(f"`preds` must have shape (T, m, ...) with T, m >= 1; got {preds.shape}.")
    return _agreement(preds)


def probe_agreement_matrix(
    train_reps: Float[ArrayLike, "T n p"],
    labels: Int[ArrayLike, " n"],
    point_reps: Float[ArrayLike, "T *m p"],
    *,
    num_classes: int | None = None,
    ridge=0.0,
) -> Float[Array, "T T"]:
    r"""Decision-region similarity matrix of a layer's ridge probes across T snapshots.

    For each snapshot t a probe :func:`fit_probe` is fitted on ``train_reps[t]`` (the layer on the
    training inputs) and evaluated on ``point_reps[t]`` (the layer on the plane grid points, all
    planes stacked); ``D[i, j]`` is the fraction of points where the probes of snapshots i and j
    agree (Sharon & Dar 2024; Somepalli et al. 2022).

    **Arguments:**

    - `train_reps`: (T, n, p) the layer on the n training inputs at each snapshot.
    - `labels`: (n,) training labels the probes are fitted to (noisy or clean, the caller's choice).
    - `point_reps`: (T, *m, p) the layer on the evaluation points at each snapshot.
    - `num_classes`, `ridge`: as for :func:`fit_probe`.

    **Returns:** (T, T) agreement matrix.
    """
    train_reps = _as_float(train_reps, "train_reps", ndim=3)
    point_reps = _as_float(point_reps, "point_reps", train_reps.dtype)
    T, n, p = train_reps.shape
    if point_reps.ndim < 2 or point_reps.shape[0] != T or point_reps.shape[-1] != p:
        raise ValueError(
            f"`point_reps` must have shape (T={T}, ..., p={p}) to match `train_reps`; "
            f"got {tuple(point_reps.shape)}."
        )
    _, labels, K = _check_data(train_reps[0], labels, num_classes)
    ridge = jnp.asarray(ridge, train_reps.dtype)
    check_positive("ridge", ridge, strict=False)
    probes = jax.vmap(lambda R: _ridge(R, labels, ridge, num_classes=K))(train_reps)
    flat = point_reps.reshape(T, -1, p)
    preds = jax.vmap(lambda pr, P: pr(P))(probes, flat)
    return agreement_matrix(preds)


# The planes through data live in their own module; importable from here as before.
from ._probes_planes import Plane, plane, triplet_planes  # noqa: E402
from ._probes_planes import _distinct_classes as _distinct_classes  # noqa: E402
from ._probes_planes import _distinct_rows as _distinct_rows  # noqa: E402
from ._probes_planes import _plane as _plane  # noqa: E402
from ._probes_planes import _planes as _planes  # noqa: E402
from ._probes_planes import _triplets as _triplets  # noqa: E402
