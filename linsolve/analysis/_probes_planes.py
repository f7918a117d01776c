r"""Planes through three training inputs and their grids, where decision regions are compared.

Somepalli et al. (CVPR 2022, code somepago/dbViz): three inputs ``x1, x2, x3`` span a plane with
orthonormal basis ``a = (x2 - x1)/|x2 - x1|`` and ``b = normalise((x3 - x1) - (a.(x3 - x1)) a)``; an
``r x r`` grid over the bounding box of the three points (extended by `margin` on each side) gives
inputs ``x1 + alpha a + beta b``. Mapped through a network and a probe (:mod:`._probes`), the grid
is a label image; random triplets (one input of each of three distinct classes) give many planes.

References: Somepalli et al. (CVPR 2022), arXiv 2203.08124; Sharon & Dar (2024), arXiv 2405.17377.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._validate import is_concrete
from ._probes import _as_float

__all__ = ["Plane", "plane", "triplet_planes"]


class Plane(NamedTuple):
    """A grid on the plane through three inputs (Somepalli et al. 2022); batch axes in front.

    **Fields:** `points` (*batch, r*r, d) grid inputs ``origin + alpha a + beta b``; `coords`
    (*batch, r*r, 2) their plane coordinates ``(alpha, beta)``; `anchors` (*batch, 3, 2) the plane
    coordinates of the three inputs; `origin`, `a`, `b` (*batch, d) the plane frame.
    """

    points: Float[Array, "*batch m d"]
    coords: Float[Array, "*batch m 2"]
    anchors: Float[Array, "*batch 3 2"]
    origin: Float[Array, "*batch d"]
    a: Float[Array, "*batch d"]
    b: Float[Array, "*batch d"]


@partial(jax.jit, static_argnames=("resolution",))
def _plane(x1, x2, x3, resolution: int, margin):
    a = x2 - x1
    la = jnp.linalg.norm(a)
    a = a / la
    c = x3 - x1
    ca = a @ c
    bp = c - ca * a
    lb = jnp.linalg.norm(bp)
    b = bp / lb
    anchors = jnp.stack([jnp.zeros(2, x1.dtype), jnp.stack([la, 0.0 * la]), jnp.stack([ca, lb])])
    lo, hi = jnp.min(anchors, axis=0), jnp.max(anchors, axis=0)
    span = hi - lo
    lo, hi = lo - margin * span, hi + margin * span
    u = jnp.linspace(0.0, 1.0, resolution, dtype=x1.dtype)
    al = lo[0] + u * (hi[0] - lo[0])
    be = lo[1] + u * (hi[1] - lo[1])
    A_, B_ = jnp.meshgrid(al, be, indexing="xy")
    coords = jnp.stack([A_.reshape(-1), B_.reshape(-1)], axis=-1)
    points = x1 + coords[:, :1] * a + coords[:, 1:] * b
    return Plane(points, coords, anchors, x1, a, b), jnp.minimum(la, lb)


def plane(x1, x2, x3, *, resolution: int = 50, margin=0.1) -> Plane:
    """An ``r x r`` grid on the plane through `x1`, `x2`, `x3` (each (d,)), over the bounding box of
    the three points extended by `margin` (a fraction of the box size) on every side (dbViz
    ``plane_dataset``: ``range_l = range_r = 0.1``). ``ValueError`` for collinear points."""
    x1 = _as_float(x1, "x1", ndim=1)
    x2, x3 = _as_float(x2, "x2", x1.dtype, ndim=1), _as_float(x3, "x3", x1.dtype, ndim=1)
    if not x1.shape == x2.shape == x3.shape:
        raise ValueError(f"`x1`, `x2`, `x3` must have one shape; got {x1.shape}, {x2.shape}, {x3.shape}.")
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"`resolution` must be an integer >= 2; got {resolution!r}.")
    out, gap = _plane(x1, x2, x3, int(resolution), jnp.asarray(margin, x1.dtype))
    scale = float(np.max(np.abs(np.stack([x1, x2, x3])))) if is_concrete(x1) else 1.0
    if is_concrete(gap) and not float(gap) > 1e-10 * max(scale, 1e-300):
        raise ValueError("`x1`, `x2`, `x3` must not be collinear (they span no plane).")
    return out


def triplet_planes(
    key, X: Float[ArrayLike, "n d"], labels=None, *, n_planes: int = 10, resolution: int = 30, margin=0.1
) -> Plane:
    """Planes through `n_planes` random triplets of rows of `X` (batched :class:`Plane`).

    With `labels` and at least three classes, each triplet takes three distinct classes (one
    random input of each), as in Somepalli et al. (2022); otherwise three distinct inputs.
    ``ValueError`` if a drawn triplet is collinear.
    """
    X = _as_float(X, "X", ndim=2)
    n = X.shape[0]
    if n < 3:
        raise ValueError(f"`X` needs at least 3 rows to span planes; got n={n}.")
    if int(n_planes) != n_planes or n_planes < 1:
        raise ValueError(f"`n_planes` must be a positive integer; got {n_planes!r}.")
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"`resolution` must be an integer >= 2; got {resolution!r}.")
    lab = None if labels is None else np.asarray(labels)
    if lab is not None and lab.shape != (n,):
        raise ValueError(f"`labels` must have shape (n={n},); got {lab.shape}.")
    idx = np.asarray(_triplets(key, n_planes, n, lab))
    planes, gaps = _planes(X, idx, jnp.asarray(margin, X.dtype), resolution=int(resolution))
    scale = float(np.max(np.abs(np.asarray(X))))
    if not bool(np.all(np.asarray(gaps) > 1e-10 * max(scale, 1e-300))):
        raise ValueError("a drawn triplet of `X` is collinear (spans no plane); check for duplicate rows.")
    return planes


@partial(jax.jit, static_argnames=("resolution",))
def _planes(X, idx, margin, *, resolution: int):
    return jax.vmap(_plane, in_axes=(0, 0, 0, None, None))(
        X[idx[:, 0]], X[idx[:, 1]], X[idx[:, 2]], resolution, margin
    )


def _triplets(key, n_planes: int, n: int, labels) -> Int[Array, "planes 3"]:
    """Indices of `n_planes` triplets: distinct classes when `labels` has >= 3, else distinct rows."""
    classes = None if labels is None else np.unique(labels)
    if classes is None or classes.size < 3:
        return _distinct_rows(key, n_planes=n_planes, n=n)
    counts = np.array([np.sum(labels == c) for c in classes])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return _distinct_classes(key, np.argsort(labels, kind="stable"), counts, starts, n_planes=n_planes)


@partial(jax.jit, static_argnames=("n_planes", "n"))
def _distinct_rows(key, *, n_planes: int, n: int):
    return jax.vmap(lambda k: jr.choice(k, n, (3,), replace=False))(jr.split(key, n_planes))


@partial(jax.jit, static_argnames=("n_planes",))
def _distinct_classes(key, order, counts, starts, *, n_planes: int):
    def one(k):
        kc, km = jr.split(k)
        c = jr.choice(kc, counts.shape[0], (3,), replace=False)
        pos = jnp.floor(jr.uniform(km, (3,)) * counts[c]).astype(counts.dtype)
        return order[starts[c] + jnp.minimum(pos, counts[c] - 1)]

    return jax.vmap(one)(jr.split(key, n_planes))
