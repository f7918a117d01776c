"""Critical lifting into deeper networks (embedding principle in depth) and its diagnostics.

Bai, Luo, Xu & Zhang, "Embedding Principle in Depth for the Loss Landscape Analysis of Deep
Neural Networks" (arXiv 2205.13283): every critical point of a network is mapped to critical points
of deeper networks with the same outputs on the training inputs, by inserting a layer that acts
linearly on the data ("layer linearisation").

Insertion after layer ``q`` (``h_i = h^[q](x_i)``, ``h^[0] = x``): a new layer ``(W', b')`` of width
``m`` with outputs ``sigma(z_i)``, ``z_i = W' h_i + b'``, and layer ``q + 1`` replaced by
``(W~, b~)``. When every inserted ReLU neuron is sign-constant on the data (active, ``z_ik > 0`` for
all i, or dead, ``z_ik < 0`` for all i) the inserted layer is ``sigma(z_i) = D (W' h_i + b')`` with the
0/1 diagonal ``D`` of active neurons, and

    W~ D W' = W^[q+1],        b~ = b^[q+1] - W~ D b'

preserve the outputs. With ``e_i = dR/dz^[q+1]_i`` unchanged, a critical point of the shallow net
(``sum_i e_i h_i^T = 0``, ``sum_i e_i = 0``) lifts to a critical point:
``grad_W~ = (sum e_i h_i^T) W'^T D + (sum e_i) b'^T D = 0``, ``grad_b~ = sum e_i = 0``,
``grad_W' = D W~^T sum e_i h_i^T = 0``, ``grad_b' = D W~^T sum e_i = 0``, and earlier layers receive
``W'^T D W~^T e_i = W^[q+1]T e_i`` as before. Linear layers need no sign condition:
any ``W'`` whose row space holds that of ``W^[q+1]`` (e.g. left-invertible) with ``W~ = W^[q+1] W'^+``.

Hessian: on the all-active/dead piece the deep loss is ``R o Phi`` with the reparametrisation
``Phi(W', b', W~, b~) = (W~ D W', W~ D b' + b~)``; at a critical point ``H' = J^T H J``. When ``J`` is
onto (e.g. ``W'`` of full column rank) the numbers of negative and positive eigenvalues are kept and
``dim ker J`` zeros are added (``m^2 + m`` for the identity insertion of width ``m = n_q``).

The *boundary lifting* (a local minimum lifted to a strict saddle) is in
:mod:`._lifting_boundary`; the layer linearisation index and the dimension of the
output-preserving manifold, in :mod:`._lifting_diagnostics`.
(The derivations are checked numerically in the tests.)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import as_float, check_finite, validate_params
from ..mlp import MLP
from ..models import ShallowNet
from ._hessian import _seed

__all__ = [
    "lift",
    "boundary_lift",
    "BoundaryLift",
    "insert_layer",
    "backprop_signal",
    "sign_constant",
    "linearisation_index",
    "output_manifold_dimension",
    "ManifoldDimension",
]

_KINDS = ("identity", "random", "general", "boundary")


class _Net(NamedTuple):
    """A network read as tuples of host (NumPy) weights and biases (None for deep linear tuples)."""

    weights: tuple
    biases: tuple | None
    activation: str
    is_tuple: bool
    dtype: object


def _as_net(params) -> _Net:
    if isinstance(params, ShallowNet):
        if (params.b1 is None) != (params.b2 is None):
            raise ValueError("a ShallowNet with only one of `b1`, `b2` cannot be lifted; give both or none.")
        weights, biases = (params.W1, params.W2), None if params.b1 is None else (params.b1, params.b2)
        activation, is_tuple = params.activation, False
    elif isinstance(params, MLP):
        if params.batchnorm:
            raise ValueError(
                "lifting is defined for MLPs without batch normalisation (BN makes a neuron depend on "
                "the whole batch); got an MLP with `bn_scale`/`bn_shift`."
            )
        weights, biases, activation, is_tuple = params.weights, params.biases, params.activation, False
    elif isinstance(params, tuple | list):
        weights, biases, activation, is_tuple = validate_params(tuple(params)), None, "linear", True
    else:
        raise ValueError(
            "`params` must be a deep linear tuple (W1, ..., WL), a ShallowNet or an MLP; "
            f"got {type(params).__name__}."
        )
    dtype = np.dtype(weights[0].dtype)
    for i, W in enumerate(weights):
        check_finite(f"params weights[{i}]", W)
    host = lambda xs: None if xs is None else tuple(np.asarray(x, dtype) for x in xs)
    return _Net(host(weights), host(biases), activation, is_tuple, dtype)


def _from_net(net: _Net):
    dev = lambda xs: None if xs is None else tuple(jnp.asarray(x, net.dtype) for x in xs)
    if net.is_tuple:
        return dev(net.weights)
    return MLP(dev(net.weights), dev(net.biases), None, None, net.activation)


def _check_after_layer(after_layer, depth: int) -> int:
    if isinstance(after_layer, bool) or int(after_layer) != after_layer or not 0 <= after_layer < depth:
        raise ValueError(
            f"`after_layer` must be an integer in [0, {depth - 1}] (0 inserts before the first of the "
            f"{depth} layers); got {after_layer!r}."
        )
    return int(after_layer)


def _hidden_inputs(net: _Net, X, q: int):
    """``h^[q]`` on the rows of X (NumPy): the input of layer ``q + 1`` (0-based weights index q)."""
    h = X
    for l in range(q):
        z = h @ net.weights[l].T
        if net.biases is not None:
            z = z + net.biases[l]
        h = np.maximum(z, 0) if net.activation == "relu" else z
    return h


@functools.partial(jax.jit, static_argnums=(4, 5))
def _signal(weights, biases, X, Y, q: int, relu: bool):
    """``dR/dz`` at the pre-activation of ``weights[q]`` for ``R = mean 1/2 |f - y|^2``."""

    def risk(delta):
        h = X
        for l, W in enumerate(weights):
            z = h @ W.T + (0.0 if biases is None else biases[l])
            z = z + delta if l == q else z
            h = (jax.nn.relu(z) if relu else z) if l < len(weights) - 1 else z
        r = h - Y
        return 0.5 * jnp.mean(jnp.sum(r * r, axis=-1))

    return jax.grad(risk)(jnp.zeros((X.shape[0], weights[q].shape[0]), X.dtype))


def _data(net: _Net, X, Y=None):
    X = np.asarray(as_float(X, "X", net.dtype, ndim=2))
    if X.shape[1] != net.weights[0].shape[1]:
        raise ValueError(f"`X` must have shape (n, d_in={net.weights[0].shape[1]}); got {X.shape}.")
    if Y is None:
        return X, None
    Y = np.asarray(as_float(Y, "Y", net.dtype))
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.shape != (X.shape[0], net.weights[-1].shape[0]):
        raise ValueError(
            f"`Y` must have shape (n={X.shape[0]}, d_out={net.weights[-1].shape[0]}); got {Y.shape}."
        )
    return X, Y


def backprop_signal(params, X, Y, *, layer: int) -> Float[Array, "n width"]:
    """``e_i = dR/dz_i`` for ``R = mean_i 1/2 |f(x_i) - y_i|^2`` and ``z_i`` the pre-activation of
    ``weights[layer]`` on sample i (shape (n, n_{layer+1})). Networks without batch normalisation."""
    net = _as_net(params)
    layer = _check_after_layer(layer, len(net.weights))
    X, Y = _data(net, X, Y)
    dev = lambda xs: None if xs is None else tuple(jnp.asarray(x) for x in xs)
    return _signal(dev(net.weights), dev(net.biases), X, Y, layer, net.activation == "relu")


def insert_layer(params, *, after_layer: int, weight, next_weight, bias=None, next_bias=None):
    """Structural insertion: ``(.., W_q, weight, next_weight, W_{q+2}, ..)`` replacing ``W_{q+1}``.

    No output-preservation check (see :func:`lift`). For MLPs/ShallowNets with biases, `bias` and
    `next_bias` are required; deep linear tuples take none. Returns a tuple or an MLP.
    """
    net = params if isinstance(params, _Net) else _as_net(params)
    q = _check_after_layer(after_layer, len(net.weights))
    n_q, n_next = net.weights[q].shape[1], net.weights[q].shape[0]
    host = lambda x, name, ndim: np.asarray(as_float(x, name, net.dtype, ndim=ndim))
    weight, next_weight = host(weight, "weight", 2), host(next_weight, "next_weight", 2)
    m = weight.shape[0]
    if weight.shape[1] != n_q:
        raise ValueError(f"`weight` must have shape (m, n_q={n_q}); got {weight.shape}.")
    if next_weight.shape != (n_next, m):
        raise ValueError(f"`next_weight` must have shape ({n_next}, {m}); got {next_weight.shape}.")
    weights = net.weights[:q] + (weight, next_weight) + net.weights[q + 1 :]
    if net.biases is None:
        if bias is not None or next_bias is not None:
            raise ValueError("`bias`/`next_bias` given but the network has no biases.")
        return _from_net(net._replace(weights=weights))
    if bias is None or next_bias is None:
        raise ValueError("the network has biases: `bias` and `next_bias` are required.")
    bias, next_bias = host(bias, "bias", 1), host(next_bias, "next_bias", 1)
    if bias.shape != (m,) or next_bias.shape != (n_next,):
        raise ValueError(
            f"`bias` and `next_bias` must have shapes ({m},) and ({n_next},); "
            f"got {bias.shape} and {next_bias.shape}."
        )
    biases = net.biases[:q] + (bias, next_bias) + net.biases[q + 1 :]
    return _from_net(net._replace(weights=weights, biases=biases))


def _sign_sets(Z, what: str):
    """Active / dead masks of the columns of Z; ValueError naming the mixed-sign neurons."""
    active = np.all(Z > 0, axis=0)
    dead = np.all(Z < 0, axis=0)
    mixed = np.flatnonzero(~(active | dead))
    if mixed.size:
        shown = mixed[:10].tolist()
        raise ValueError(
            f"{what}: {mixed.size} of {Z.shape[1]} inserted ReLU neurons are not sign-constant on the "
            f"{Z.shape[0]} data points (neither z > 0 nor z < 0 on every sample): neurons {shown}"
            f"{' ...' if mixed.size > 10 else ''}. Shift their biases or choose other weights."
        )
    return active, dead


def _complete(net: _Net, q: int, Wn, bn, H, dead_weights, rtol, what: str):
    """``(W~, b~)`` with ``W~ D W' = W^[q+1]`` and ``b~ = b^[q+1] - W~ D b'``; returns the lift."""
    W_next = net.weights[q]
    m = Wn.shape[0]
    if net.activation == "relu":
        active, dead = _sign_sets(H @ Wn.T + bn, what)
    else:
        active, dead = np.ones(m, bool), np.zeros(m, bool)
    idx = np.flatnonzero(active)
    A = Wn[idx]
    Wt_a = W_next @ np.linalg.pinv(A) if idx.size else np.zeros((W_next.shape[0], 0), net.dtype)
    err = float(np.max(np.abs(Wt_a @ A - W_next))) if idx.size else float(np.max(np.abs(W_next)))
    scale = float(np.max(np.abs(W_next))) + float(np.finfo(net.dtype).tiny)
    if err > rtol * scale:
        sv = np.linalg.svd(W_next, compute_uv=False)
        need = int(np.sum(sv > rtol * sv[0])) if sv.size and sv[0] > 0 else 0
        have = int(np.linalg.matrix_rank(A)) if idx.size else 0
        raise ValueError(
            f"inserted width too small for the required rank: the {idx.size} active inserted neurons "
            f"span rank {have}, but layer {q + 1} (weights[{q}], shape {W_next.shape}) has rank "
            f"{need}; its row space must lie in that of D W' (relative residual {err / scale:.2e})."
        )
    Wt = np.zeros((W_next.shape[0], m), net.dtype)
    Wt[:, idx] = Wt_a
    if dead_weights is not None and dead.any():
        dead_weights = np.asarray(as_float(dead_weights, "dead_weights", net.dtype, ndim=2))
        if dead_weights.shape != (W_next.shape[0], m):
            raise ValueError(
                f"`dead_weights` must have shape ({W_next.shape[0]}, {m}); got {dead_weights.shape}."
            )
        Wt[:, dead] = dead_weights[:, dead]
    if net.biases is None:
        return insert_layer(net, after_layer=q, weight=Wn, next_weight=Wt)
    bt = net.biases[q] - Wt_a @ bn[idx]
    return insert_layer(net, after_layer=q, weight=Wn, next_weight=Wt, bias=bn, next_bias=bt)


def _prepare(params, after_layer, X):
    net = _as_net(params)
    q = _check_after_layer(after_layer, len(net.weights))
    if net.activation not in ("relu", "linear"):
        raise ValueError(
            f"exact lifting needs layers that are affine on the data: activation 'relu' or 'linear'; "
            f"got {net.activation!r} (smooth nonlinear activations are affine on generic data only "
            "approximately)."
        )
    if net.activation == "relu" and net.biases is None:
        raise ValueError("lifting into a ReLU network needs biases (the inserted neurons are shifted).")
    if X is None:
        if net.activation == "relu":
            raise ValueError(
                "`X` (the training inputs) is required to lift a ReLU network (sign conditions)."
            )
        return net, q, None
    return net, q, _hidden_inputs(net, _data(net, X)[0], q)


def _default_shift(H, margin):
    return margin + max(0.0, -float(np.min(H)))


def lift(
    params,
    *,
    after_layer: int,
    width: int | None = None,
    kind: str = "identity",
    X=None,
    Y=None,
    inserted=None,
    dead_weights=None,
    shift=None,
    margin: float = 1.0,
    key=None,
    sample: int | None = None,
    rtol: float | None = None,
):
    """Critical lifting: insert one layer after layer `after_layer` keeping the outputs on `X`.

    **Arguments:**

    - `params`: deep linear tuple ``(W1, ..., WL)``, a ShallowNet or an MLP (ReLU or linear
      activation, no batch normalisation).
    - `after_layer`: ``q`` in ``[0, L-1]``: the new layer reads ``h^[q]`` (``q = 0``: the input) and
      layer ``q + 1`` is replaced.
    - `width`: inserted width ``m`` (default ``n_q``, or ``n_q + 1`` for ``kind="boundary"``).
    - `kind`:
        * ``"identity"``: ``W' = [I; 0]``, ``b' = beta 1`` with ``beta = shift`` (default
          ``margin - min(0, min_ik h_ik)``), so every inserted ReLU neuron is active on the data;
          ``W~ = W^[q+1] [I, 0]``, ``b~ = b^[q+1] - beta W~ 1``. Needs ``m >= n_q``.
        * ``"random"``: ``W'`` Gaussian (std ``1/sqrt(n_q)``, drawn on the host from a seed taken
          from the PRNG `key`, which is required), ``b'`` so that ``min_i z_ik = margin`` (all active).
        * ``"general"``: ``inserted = W'`` (deep linear tuple) or ``(W', b')``; the active / dead
          sets ``D`` are read from the data; ``W~ = W^[q+1] (D W')^+`` on active columns and
          `dead_weights` (default 0) on dead ones.
        * ``"boundary"``: :func:`boundary_lift` (needs `Y`), returning its lifted parameters.
    - `X`, `Y`: training inputs (required for ReLU networks) and targets (boundary only).
    - `rtol`: relative tolerance of the factorisation check ``W~ D W' = W^[q+1]``
      (default ``sqrt(eps)``).

    **Returns:** the deeper parameters (a tuple for a tuple, else an MLP), ``L + 1`` layers.

    Raises ``ValueError`` for `after_layer` out of range, a width too small for the rank of
    ``W^[q+1]``, or inserted ReLU neurons that are not sign-constant on the data (naming them).
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}; got {kind!r}.")
    if kind == "boundary":
        return boundary_lift(
            params, X, Y, after_layer=after_layer, width=width, sample=sample, shift=shift, margin=margin
        ).params
    net, q, H = _prepare(params, after_layer, X)
    dtype = net.dtype
    n_q = net.weights[q].shape[1]
    m = n_q if width is None else width
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"`width` must be a positive integer; got {width!r}.")
    m = int(m)
    rtol = float(np.sqrt(np.finfo(dtype).eps)) if rtol is None else float(rtol)
    relu = net.activation == "relu"
    if kind == "identity":
        if m < n_q:
            raise ValueError(
                f"inserted width too small: kind='identity' needs `width` >= n_q = {n_q} "
                f"(a left-invertible inserted map); got {m}."
            )
        Wn = np.eye(m, n_q, dtype=dtype)
        beta = 0.0
        if relu:
            beta = _default_shift(H, margin) if shift is None else float(shift)
        bn = np.full((m,), beta, dtype)
    elif kind == "random":
        if key is None:
            raise ValueError("kind='random' needs a PRNG `key`.")
        Wn = np.random.default_rng(_seed(key)).standard_normal((m, n_q)).astype(dtype) / np.sqrt(n_q)
        bn = margin - np.min(H @ Wn.T, axis=0) if relu else np.zeros((m,), dtype)
    else:
        if inserted is None:
            raise ValueError("kind='general' needs `inserted` = W' (linear nets) or (W', b').")
        if isinstance(inserted, tuple | list):
            if len(inserted) != 2:
                raise ValueError(f"`inserted` must be W' or a pair (W', b'); got {len(inserted)} items.")
            Wn, bn = inserted
        else:
            Wn, bn = inserted, None
        Wn = np.asarray(as_float(Wn, "inserted[0]", dtype, ndim=2))
        if Wn.shape[1] != n_q:
            raise ValueError(f"the inserted weight must have shape (m, n_q={n_q}); got {Wn.shape}.")
        m = Wn.shape[0]
        if width is not None and width != m:
            raise ValueError(f"`width`={width} disagrees with the inserted weight's {m} rows.")
        if bn is None:
            if relu:
                raise ValueError("a ReLU lift needs the inserted bias: `inserted` = (W', b').")
            bn = np.zeros((m,), dtype)
        bn = np.asarray(as_float(bn, "inserted[1]", dtype, ndim=1))
        if bn.shape != (m,):
            raise ValueError(f"the inserted bias must have shape ({m},); got {bn.shape}.")
    if net.biases is None and np.any(bn != 0):
        raise ValueError("the network has no biases, so the inserted bias must be zero.")
    H = H if H is not None else np.zeros((1, n_q), dtype)
    return _complete(net, q, Wn, bn, H, dead_weights, rtol, f"kind={kind!r}, after_layer={q}")


# The boundary lift and the diagnostics live in their own modules; importable from here as before.
from ._lifting_boundary import BoundaryLift, boundary_lift  # noqa: E402
from ._lifting_boundary import _quad_form as _quad_form  # noqa: E402
from ._lifting_boundary import _risk as _risk  # noqa: E402
from ._lifting_diagnostics import (  # noqa: E402
    ManifoldDimension,
    linearisation_index,
    output_manifold_dimension,
    sign_constant,
)
from ._lifting_diagnostics import _output_jacobian as _output_jacobian  # noqa: E402
