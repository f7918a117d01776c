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

The *boundary lifting* adds one inserted neuron ``k`` with zero outgoing weight whose pre-activation
is ``>= 0`` on the data and ``= 0`` on exactly one sample ``i0`` with ``e_i0 != 0``. It is still
output-preserving and critical, but the piece where ``i0`` is switched off has negative curvature:
along ``(a_k, b'_k) = (-t alpha e_i0/|e_i0|, b'_k - t)`` the loss changes by
``-t^2 (alpha |e_i0| - alpha^2 c / 2) + O(t^3)`` (``c`` the curvature in ``a_k`` alone), so a local
minimum lifts to a strict saddle. Gradient descent from small noise around it escapes only when the
noise switches sample ``i0`` off (on the other side the piece is the all-active one).
(The derivations are checked numerically in the tests.)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._validate import as_float, check_finite, validate_params
from ..mlp import MLP
from ..models import ShallowNet, apply
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


class BoundaryLift(NamedTuple):
    """Result of :func:`boundary_lift`.

    **Fields:** `params` (lifted MLP); `direction` (PyTree like `params`: the escape direction,
    ``params + t direction`` lowers the loss like ``-t^2``); `sample` (i0, the sample at the kink);
    `neuron` (index of the kink neuron in the inserted layer); `curvature` (``d^2/dt^2`` of the loss
    along ``params + t direction`` at ``t -> 0+``, negative); `signal` ((n, n_{q+1}) ``e_i``).
    """

    params: MLP
    direction: MLP
    sample: int
    neuron: int
    curvature: Float[Array, ""]
    signal: Float[Array, "n width"]


def _risk(p, X, Y):
    r = p(X) - Y
    return 0.5 * jnp.mean(jnp.sum(r * r, axis=-1))


@jax.jit
def _quad_form(p, d, X, Y):
    """``d^T H d`` of the data risk at ``p`` (forward-over-reverse)."""
    Hd = jax.jvp(jax.grad(_risk), (p, X, Y), (d, jnp.zeros_like(X), jnp.zeros_like(Y)))[1]
    return sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(d), jax.tree_util.tree_leaves(Hd)))


def boundary_lift(
    params,
    X,
    Y,
    *,
    after_layer: int,
    width: int | None = None,
    sample: int | None = None,
    shift=None,
    margin: float = 1.0,
) -> BoundaryLift:
    """Identity-type lift plus one inserted ReLU neuron at its kink on one sample, zero outgoing weight.

    The kink neuron ``k`` reads ``z_ik = u.(h_i0 - h_i) >= 0`` with ``u`` the unit vector along
    ``h_i0 - mean(h)``, so that sample ``i0`` is the unique zero (``i0`` must be the farthest point
    of the data in its own direction from the mean, true e.g. for the point farthest from the mean). By
    default ``i0`` is the eligible sample with the largest back-propagated signal ``|e_i0|``. The
    escape direction moves ``a_k = -alpha e_i0/|e_i0|`` and ``b'_k -> b'_k - 1`` with
    ``alpha = |e_i0| / c`` (``c``: curvature of the loss in ``a_k`` along ``e_i0``), giving the
    second-order loss change ``-t^2 |e_i0|^2 / (2c)``.

    **Arguments:** as :func:`lift`; `X` (n, d_in) and `Y` (n, d_out) are required; `width >= n_q + 1`
    (default ``n_q + 1``; extra neurons are constant and active); `sample` forces ``i0``.
    """
    net, q, H = _prepare(params, after_layer, X)
    if net.activation != "relu" or net.is_tuple:
        raise ValueError("the boundary lift needs a ReLU network (MLP or ShallowNet with biases).")
    if Y is None:
        raise ValueError("the boundary lift needs the targets `Y` (to find a sample with non-zero residual).")
    X, Y = _data(net, X, Y)
    dtype = net.dtype
    n_q = net.weights[q].shape[1]
    m = n_q + 1 if width is None else width
    if isinstance(m, bool) or int(m) != m or m < n_q + 1:
        raise ValueError(
            f"inserted width too small: the boundary lift needs `width` >= n_q + 1 = {n_q + 1}; "
            f"got {width!r}."
        )
    m = int(m)
    e = np.asarray(backprop_signal(params, X, Y, layer=q))
    enorm = np.linalg.norm(e, axis=1)
    n = H.shape[0]
    center = H.mean(axis=0)
    eps = float(np.sqrt(np.finfo(dtype).eps))
    small = eps * max(enorm.max(), np.finfo(dtype).tiny)

    def kink(i):
        u = H[i] - center
        if np.linalg.norm(u) == 0:
            return None
        u = u / np.linalg.norm(u)
        z = (H[i] - H) @ u
        others = np.delete(z, i)
        return (u, H[i] @ u) if others.size == 0 or others.min() > eps * max(np.abs(z).max(), 1.0) else None

    if sample is not None:
        if isinstance(sample, bool) or int(sample) != sample or not 0 <= sample < n:
            raise ValueError(f"`sample` must be an integer in [0, {n - 1}]; got {sample!r}.")
        i0, found = int(sample), kink(int(sample))
        if found is None:
            raise ValueError(
                f"sample {i0} is not the unique farthest point of h^[{q}] in its own direction from the "
                "mean; no kink neuron isolates it. Choose another `sample` (e.g. None)."
            )
        if enorm[i0] <= small:
            raise ValueError(
                f"sample {i0} has zero back-propagated residual; the boundary lift cannot escape."
            )
    else:
        found = None
        for i0 in np.argsort(-enorm):
            if enorm[i0] <= small:
                break
            found = kink(int(i0))
            if found is not None:
                break
        if found is None:
            raise ValueError(
                "no sample with a non-zero back-propagated residual can be isolated by a kink neuron "
                "(is the fit exact?); the boundary lift needs a residual at the kink."
            )
        i0 = int(i0)
    u, c0 = found
    beta = _default_shift(H, margin) if shift is None else float(shift)
    Wn = np.zeros((m, n_q), dtype)
    Wn[:n_q] = np.eye(n_q)
    Wn[n_q] = -u
    bn = np.full((m,), beta, dtype)
    bn[n_q] = c0
    keep = np.arange(m) != n_q
    _sign_sets(H @ Wn[keep].T + bn[keep], f"boundary lift, after_layer={q}")
    W_next = net.weights[q]
    Wt = np.zeros((W_next.shape[0], m), dtype)
    Wt[:, :n_q] = W_next
    bt = net.biases[q] - W_next @ bn[:n_q]
    lifted = insert_layer(net, after_layer=q, weight=Wn, next_weight=Wt, bias=bn, next_bias=bt)

    ehat = e[i0] / enorm[i0]

    def along(a_dir, b_dir):
        ws = [np.zeros(W.shape, dtype) for W in lifted.weights]
        bs = [np.zeros(b.shape, dtype) for b in lifted.biases]
        ws[q + 1][:, n_q] = a_dir
        bs[q][n_q] = b_dir
        dev = lambda xs: tuple(jnp.asarray(x) for x in xs)
        return MLP(dev(ws), dev(bs), None, None, lifted.activation)

    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    c = float(_quad_form(lifted, along(ehat, 0.0), Xj, Yj))
    alpha = enorm[i0] / c if c > 0 else 1.0
    direction = along(-alpha * ehat, -1.0)
    return BoundaryLift(lifted, direction, i0, n_q, _quad_form(lifted, direction, Xj, Yj), jnp.asarray(e))


@jax.jit
def sign_constant(params, X) -> tuple:
    """Per hidden layer, ``(active, dead)`` boolean masks (width,): pre-activation ``> 0`` (resp.
    ``< 0``) on every row of `X`. Uses the pre-activations after batch normalisation when on."""
    if isinstance(params, ShallowNet):
        pre = X @ params.W1.T + (0.0 if params.b1 is None else params.b1)
        pres = (pre,)
    elif isinstance(params, MLP):
        pres = params.layers(X).pre[:-1]
    else:
        raise ValueError(f"`params` must be a ShallowNet or an MLP; got {type(params).__name__}.")
    return tuple((jnp.all(z > 0, axis=0), jnp.all(z < 0, axis=0)) for z in pres)


@jax.jit
def linearisation_index(params, X) -> Float[Array, " L-1"]:
    """Layer linearisation index: per hidden layer, the fraction of neurons whose pre-activation has
    one sign on all rows of `X` (always active or always dead, so the ReLU layer acts linearly on
    the data; Bai et al. 2022, arXiv 2205.13283). Shape (L - 1,); a layer is fully linearised when
    its entry is 1. jit/vmap-friendly (e.g. as a `gradient_descent` observable)."""
    return jnp.stack([jnp.mean(a | d) for a, d in sign_constant(params, X)])


@jax.jit
def _output_jacobian(params, X):
    flat, unravel = ravel_pytree(params)
    return jax.jacfwd(lambda th: apply(unravel(th), X).reshape(-1))(flat)


class ManifoldDimension(NamedTuple):
    """``dimension = n_params - rank``: local dimension of ``{theta : f_theta(X) = f_theta0(X)}``."""

    dimension: int
    rank: int
    n_params: int


def output_manifold_dimension(params, X, *, n=None, rtol: float | None = None):
    """Dimension of the output-preserving manifold through `params`: ``P - rank J`` with
    ``J = d vec f_theta(X) / d theta`` ((n d_out, P), by forward-mode autodiff). For a lifted linear
    model the constraint rank is ``d_out min(n, dim h + 1)`` (generic data): adding data points
    shrinks the manifold until ``n > dim h``.

    **Arguments:** `params` (deep linear tuple or Network), `X` (N, d_in); `n`: None (all rows), an
    int, or a sequence of ints (the first `n` rows each; one Jacobian is computed for all);
    `rtol`: singular values ``<= rtol * s_max`` count as zero (default ``max(J.shape) * eps``).

    **Returns:** a :class:`ManifoldDimension`, or a list of them when `n` is a sequence.
    """
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"`X` must have shape (n, d_in); got {tuple(X.shape)}.")
    ns = [X.shape[0]] if n is None else list(np.atleast_1d(n))
    if any(int(k) != k or not 1 <= k <= X.shape[0] for k in ns):
        raise ValueError(f"`n` must hold integers in [1, {X.shape[0]}]; got {n!r}.")
    ns = [int(k) for k in ns]
    P = int(ravel_pytree(params)[0].shape[0])
    J = np.asarray(_output_jacobian(params, X[: max(ns)]))
    d_out = J.shape[0] // max(ns)
    out = []
    for k in ns:
        sub = J[: k * d_out]
        s = np.linalg.svd(sub, compute_uv=False)
        tol = (max(sub.shape) * float(np.finfo(s.dtype).eps) if rtol is None else float(rtol)) * s[0]
        rank = int(np.sum(s > tol)) if s[0] > 0 else 0
        out.append(ManifoldDimension(P - rank, rank, P))
    return out if n is not None and np.ndim(n) else out[0]
