r"""Neural collapse layer by layer in trained networks, and along training.

For a deep linear tuple, a ShallowNet or an MLP, NC1 (:func:`~._collapse.nc1`) of every layer's
input ``h_{l-1}``, of ``S_l V_l^T h_{l-1}`` (``W_l = U_l S_l V_l^T``; equal to NC1 of
``W_l h_{l-1}`` by rotation invariance), of the pre-activation and after the nonlinearity, with
the Neural Feature Ansatz correlation ``rho(W_l^T W_l, AGOP_l^{1/2})`` (:func:`~._agop.layer_nfa`);
along training, the same at every record of a trajectory by one compiled program.

Reference: Beaglehole, Sukenik, Mondelli & Belkin (NeurIPS 2024), arXiv 2402.13728, Sec. 4.3.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..mlp import MLP
from ..models import ShallowNet
from ..simulate import Trajectory
from ._agop import _layer_weights, layer_nfa
from ._collapse import _NC1_KINDS, _nc1, _prepare

__all__ = ["LayerCollapse", "layer_collapse", "collapse_along_training"]


class LayerCollapse(NamedTuple):
    """Per-layer NC1 and NFA of a network; each field (..., L), layer l = 1..L.

    - `input`: NC1 of the layer input ``h_{l-1}`` (``h_0 = x``; for an MLP the previous layer's
      output after its nonlinearity).
    - `svd`: NC1 of ``S_l V_l^T h_{l-1}`` (``W_l = U_l S_l V_l^T``; ``V_l``, ``S_l^2`` from the
      eigendecomposition of ``W_l^T W_l``); equal to NC1 of ``W_l h_{l-1}`` (rotation invariance).
    - `pre`: NC1 of the pre-activation (with bias, after batch normalisation when on).
    - `post`: NC1 after the nonlinearity (the pre-activation for the last and for linear layers).
    - `nfa`: ``rho(W_l^T W_l, AGOP_l^{1/2})``, AGOP w.r.t. the layer input (:func:`layer_nfa`).
    """

    input: Float[Array, "*T L"]
    svd: Float[Array, "*T L"]
    pre: Float[Array, "*T L"]
    post: Float[Array, "*T L"]
    nfa: Float[Array, "*T L"]


def _signals(params, X):
    """(inputs, pre, post) tuples of one (N, n_l) array per layer."""
    if isinstance(params, MLP):
        return tuple(params.layers(X))
    if isinstance(params, ShallowNet):
        z1 = X @ params.W1.T + (0.0 if params.b1 is None else params.b1)
        h = params.features(X)
        z2 = params(X)
        return (X, h), (z1, z2), (h, z2)
    inputs, pre, h = [], [], X
    for W in params:
        inputs.append(h)
        h = h @ W.T
        pre.append(h)
    return tuple(inputs), tuple(pre), tuple(pre)


@eqx.filter_jit
def _layer_collapse(params, X, Y, kappa, kind, chunk):
    inputs, pre, post = _signals(params, X)
    weights = _layer_weights(params)

    def svd_features(h, W):
        # S V^T from W^T W = V S^2 V^T (an eigendecomposition: ~3x cheaper than the SVD of W)
        lam, V = jnp.linalg.eigh(W.T @ W)
        return (h @ V) * jnp.sqrt(jnp.clip(lam, 0.0))

    stack = lambda xs: jnp.stack([_nc1(x, Y, kind) for x in xs])
    return LayerCollapse(
        stack(inputs),
        stack([svd_features(h, W) for h, W in zip(inputs, weights)]),
        stack(pre),
        stack(post),
        layer_nfa(params, X, output_scale=kappa, chunk_size=chunk),
    )


def _prepare_net(params, X, labels, kind, num_classes):
    if kind not in _NC1_KINDS:
        raise ValueError(f"`kind` must be one of {_NC1_KINDS}; got {kind!r}.")
    X, Y, _ = _prepare(X, labels, num_classes, "X")
    if not isinstance(params, MLP | ShallowNet | tuple | list):
        raise ValueError(
            f"`params` must be a deep linear tuple, a ShallowNet or an MLP; got {type(params).__name__}."
        )
    weights = _layer_weights(params)
    if weights[0].shape[-1] != X.shape[1]:
        raise ValueError(
            f"`X` must have shape (n, d_in={weights[0].shape[-1]}) for `params`; got {tuple(X.shape)}."
        )
    return X, Y


def layer_collapse(
    params,
    X,
    labels,
    *,
    output_scale=1.0,
    kind: str = "trace",
    num_classes: int | None = None,
    chunk_size: int | None = None,
) -> LayerCollapse:
    r"""NC1 at every layer's input, after ``S V^T``, before and after the nonlinearity, and the NFA.

    **Arguments:**

    - `params`: deep linear tuple ``(W1, ..., WL)``, a :class:`~linsolve.models.ShallowNet` or an
      :class:`~linsolve.mlp.MLP`.
    - `X`: (N, d_in) inputs; `labels`: as for :func:`nc1`.
    - `output_scale`: kappa (enters the AGOP only; the correlations do not depend on it).
    - `kind`: NC1 variant (:func:`nc1`); `chunk_size`: samples per Jacobian chunk for the AGOP.

    **Returns:** a :class:`LayerCollapse` of (L,) arrays.

    Reference: Beaglehole et al. (2024), Sec. 4.3 (right singular structure and NFA).
    """
    X, Y = _prepare_net(params, X, labels, kind, num_classes)
    return _layer_collapse(params, X, Y, jnp.asarray(output_scale, X.dtype), kind, chunk_size)


def collapse_along_training(
    trajectory,
    X,
    labels,
    *,
    output_scale=None,
    kind: str = "trace",
    num_classes: int | None = None,
    chunk_size: int | None = None,
) -> LayerCollapse:
    r""":func:`layer_collapse` at every record of a training run, fields (T, L).

    `trajectory` is a :class:`~linsolve.simulate.Trajectory` (its `params` and `output_scale` are
    used) or parameters with a leading time axis (a tuple of (T, n_l, n_{l-1}) arrays, or a
    ShallowNet/MLP of stacked arrays). Records are processed one after another by one compiled
    program (the record index is traced), so memory is that of one record. Other arguments as
    :func:`layer_collapse`.
    """
    if isinstance(trajectory, Trajectory):
        params = trajectory.params
        output_scale = trajectory.output_scale if output_scale is None else output_scale
    else:
        params, output_scale = trajectory, 1.0 if output_scale is None else output_scale
    params = tuple(params) if isinstance(params, list) else params
    T = jax.tree_util.tree_leaves(params)[0].shape[0]
    first = jax.tree_util.tree_map(lambda x: x[0], params)
    X, Y = _prepare_net(first, X, labels, kind, num_classes)
    kappa = jnp.asarray(output_scale, X.dtype)
    records = [_record_collapse(params, jnp.asarray(t), X, Y, kappa, kind, chunk_size) for t in range(T)]
    return LayerCollapse(*(jnp.stack(field) for field in zip(*records)))


@eqx.filter_jit
def _record_collapse(params, t, X, Y, kappa, kind, chunk):
    return _layer_collapse(jax.tree_util.tree_map(lambda x: x[t], params), X, Y, kappa, kind, chunk)
