"""Deep linear networks and shallow nonlinear networks: forward, loss, NTK, conserved quantities.

Deep linear parameters are a tuple ``(W1, ..., WL)``, ``W_l`` of shape ``(n_l, n_{l-1})``; the network
is ``f(x) = kappa W_L ... W_1 x`` and ``P = kappa W_L ... W_1`` its end-to-end map. A shallow nonlinear
network is a :class:`Network` PyTree (:class:`ShallowNet` ``f(x) = kappa (W2 act(W1 x + b1) + b2)``,
or the deep :class:`~linsolve.mlp.MLP`). Both kinds train through the same simulators; their
"layers" (the unit a learning rate applies to) come from :func:`layer_rates`.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from ._validate import (
    as_float,
    as_scalar,
    check_against_task,
    check_finite,
    check_float_dtype,
    check_key,
    check_size,
    float_dtype_of,
    per_layer,
    validate_params,
)
from .tasks import Task

__all__ = [
    "Network",
    "ShallowNet",
    "shallow_init",
    "apply",
    "end_to_end",
    "loss",
    "data_loss",
    "gradients",
    "loss_and_gradients",
    "ntk",
    "ntk_data",
    "conserved_quantities",
    "Parametrization",
    "parametrization",
    "PARAMETRIZATIONS",
    "n_layers",
    "layer_rates",
]

_ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "linear": lambda z: z,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
}


class Network(eqx.Module):
    """Base of the nonlinear networks trained on data (:class:`ShallowNet`, :class:`~linsolve.mlp.MLP`).

    A subclass is a PyTree of arrays (``None`` for absent biases) with `d_in`, `d_out`, `n_layers`
    (units that carry their own learning rate), `layer_rates(lrs)` (a PyTree like itself whose
    leaves hold their layer's rate) and ``__call__(X)`` mapping (n, d_in) to (n, d_out).
    """

    @property
    @abc.abstractmethod
    def d_in(self) -> int: ...

    @property
    @abc.abstractmethod
    def d_out(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_layers(self) -> int: ...

    @abc.abstractmethod
    def layer_rates(self, lrs: Float[Array, " L"]) -> Network: ...

    @abc.abstractmethod
    def __call__(self, X: Float[Array, "n d_in"]) -> Float[Array, "n d_out"]: ...


def _fill(x, rate):
    return None if x is None else jnp.full_like(x, rate)


class ShallowNet(Network):
    """One-hidden-layer network ``f(x) = W2 act(W1 x + b1) + b2`` (output scale applied outside).

    **Fields:** `W1` (h, d_in), `b1` (h,) or None, `W2` (d_out, h), `b2` (d_out,) or None,
    `activation` (static name: relu, tanh, linear, gelu, sigmoid).
    """

    W1: Float[Array, "h d_in"]
    b1: Float[Array, " h"] | None
    W2: Float[Array, "d_out h"]
    b2: Float[Array, " d_out"] | None
    activation: str = eqx.field(static=True, default="relu")

    def __check_init__(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {self.activation!r}."
            )
        if self.W1.ndim < 2 or self.W2.ndim < 2 or self.W2.shape[-1] != self.W1.shape[-2]:
            raise ValueError(
                f"`W1` (h, d_in) and `W2` (d_out, h) must share h; got {tuple(self.W1.shape)} "
                f"and {tuple(self.W2.shape)}."
            )
        if self.b1 is not None and self.b1.shape[-1:] != self.W1.shape[-2:-1]:
            raise ValueError(f"`b1` must have shape ({self.W1.shape[-2]},); got {self.b1.shape}.")
        if self.b2 is not None and self.b2.shape[-1:] != self.W2.shape[-2:-1]:
            raise ValueError(f"`b2` must have shape ({self.W2.shape[-2]},); got {self.b2.shape}.")
        for name in ("W1", "b1", "W2", "b2"):
            value = getattr(self, name)
            if value is not None:
                check_finite(name, value)

    @property
    def d_in(self) -> int:
        return self.W1.shape[-1]

    @property
    def d_out(self) -> int:
        return self.W2.shape[-2]

    @property
    def n_layers(self) -> int:
        return 2

    def layer_rates(self, lrs: Float[Array, " L"]) -> ShallowNet:
        W1, b1, W2, b2 = (_fill(x, lrs[i // 2]) for i, x in enumerate((self.W1, self.b1, self.W2, self.b2)))
        return ShallowNet(W1, b1, W2, b2, self.activation)

    def features(self, X: Float[Array, "n d_in"]) -> Float[Array, "n h"]:
        """Hidden-layer activations ``act(W1 x + b1)`` for rows of ``X``."""
        z = X @ self.W1.T
        if self.b1 is not None:
            z = z + self.b1
        return _ACTIVATIONS[self.activation](z)

    def __call__(self, X: Float[Array, "n d_in"]) -> Float[Array, "n d_out"]:
        out = self.features(X) @ self.W2.T
        return out if self.b2 is None else out + self.b2


def shallow_init(
    key,
    d_in: int,
    width: int,
    d_out: int,
    *,
    scales=(1.0, 1.0),
    activation="relu",
    bias: bool = True,
    dtype=None,
) -> ShallowNet:
    """Gaussian shallow net: ``W1 ~ N(0, scales[0]^2)``, ``W2 ~ N(0, scales[1]^2)``, zero biases.

    **Arguments:** `key` PRNG key; `d_in`, `width`, `d_out` positive integers; `scales` finite,
    >= 0, a scalar or one per layer (W1, W2); `activation` one of relu, tanh, linear, gelu,
    sigmoid; `bias` True/False; `dtype` floating (default: the widest of `scales`).
    **Returns:** a :class:`ShallowNet`.
    """
    key = check_key(key)
    d_in, width = check_size("d_in", d_in), check_size("width", width)
    d_out = check_size("d_out", d_out)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {activation!r}.")
    if not isinstance(bias, bool):
        raise ValueError(f"`bias` must be True or False; got {bias!r}.")
    seq = scales if isinstance(scales, tuple | list) else ()
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(scales, *seq)
    scales = per_layer("scales", scales, 2, dtype, strict=False)
    k1, k2 = jr.split(key)
    W1 = scales[0] * jr.normal(k1, (width, d_in), dtype)
    W2 = scales[1] * jr.normal(k2, (d_out, width), dtype)
    b1 = jnp.zeros((width,), dtype) if bias else None
    b2 = jnp.zeros((d_out,), dtype) if bias else None
    return ShallowNet(W1, b1, W2, b2, activation)


def _linear(params, name: str = "params") -> tuple:
    """Deep linear parameters: a non-empty tuple of 2-D finite matrices with chained shapes."""
    if isinstance(params, Network):
        raise ValueError(f"`{name}` must be deep linear weights (W1, ..., WL) here; got a Network.")
    return validate_params(params, name)


def _task(task, name: str = "task") -> Task:
    if not isinstance(task, Task):
        raise ValueError(f"`{name}` must be a linsolve.Task; got {type(task).__name__}.")
    return task


def _data_task(net, task: Task) -> None:
    if task.X is None:
        raise ValueError(
            f"`task` must carry data (build it with `Task.from_data`) to evaluate a "
            f"{type(net).__name__}; got a population task."
        )


def _scale(output_scale, dtype):
    return as_scalar("output_scale", output_scale, dtype)


def _inputs(X, name: str, d_in: int, dtype):
    X = as_float(X, name, dtype, ndim=2)
    if X.shape[1] != d_in:
        raise ValueError(f"`{name}` must have shape (n, d_in={d_in}); got {tuple(X.shape)}.")
    return X


def _d_in(params) -> int:
    return params.d_in if isinstance(params, Network) else params[0].shape[1]


def _check_params(params, name: str = "params"):
    return params if isinstance(params, Network) else _linear(params, name)


def _dtype_of(params):
    return jax.tree_util.tree_leaves(params)[0].dtype


def n_layers(params) -> int:
    """Number of layers (units that carry their own learning rate)."""
    return params.n_layers if isinstance(params, Network) else len(params)


def layer_rates(params, lrs: Float[Array, " L"]):
    """A PyTree like ``params`` whose leaves are the learning rate of the leaf's layer."""
    if isinstance(params, Network):
        return params.layer_rates(lrs)
    return tuple(lrs[i] for i in range(len(params)))


def _chain(mats, size: int, dtype):
    """Product ``mats[-1] @ ... @ mats[0]``; the identity of `size` when empty."""
    out = jnp.eye(size, dtype=dtype)
    for M in mats:
        out = M @ out
    return out


def end_to_end(params, output_scale=1.0) -> Float[Array, "d_out d_in"]:
    """``P = kappa W_L ... W_1`` for deep linear parameters ``(W1, ..., WL)`` (kappa > 0)."""
    params = _linear(params)
    return _end_to_end(params, _scale(output_scale, params[0].dtype))


def _end_to_end(params, output_scale):
    return output_scale * _chain(params, params[0].shape[1], params[0].dtype)


def apply(params, X: Float[Array, "n d_in"], output_scale=1.0) -> Float[Array, "n d_out"]:
    """Network outputs for rows of ``X`` (n, d_in) (deep linear tuple or Network)."""
    params = _check_params(params)
    dtype = _dtype_of(params)
    X = _inputs(X, "X", _d_in(params), dtype)
    return _apply(params, X, _scale(output_scale, dtype))


def _apply(params, X, output_scale):
    if isinstance(params, Network):
        return output_scale * params(X)
    return X @ _end_to_end(params, output_scale).T


def data_loss(params, X, Y, output_scale=1.0) -> Float[Array, ""]:
    """Mean over samples of ``1/2 |f(x) - y|^2``; `X` (n, d_in), `Y` (n, d_out)."""
    params = _check_params(params)
    dtype = _dtype_of(params)
    X = _inputs(X, "X", _d_in(params), dtype)
    Y = as_float(Y, "Y", dtype)
    d_out = params.d_out if isinstance(params, Network) else params[-1].shape[0]
    if Y.shape != (X.shape[0], d_out):
        raise ValueError(
            f"`Y` must have shape (n={X.shape[0]}, d_out={d_out}); got {tuple(Y.shape)}."
        )
    return _data_loss(params, X, Y, _scale(output_scale, dtype))


def _data_loss(params, X, Y, output_scale):
    r = _apply(params, X, output_scale) - Y
    return 0.5 * jnp.mean(jnp.sum(r * r, axis=-1))


def loss(params, task: Task, output_scale=1.0) -> Float[Array, ""]:
    """Full-batch loss: covariance form for deep linear nets, data form for a Network.

    A Network needs a task that carries data (``Task.from_data``); deep linear ``params`` must
    match the task's ``d_in`` and ``d_out``.
    """
    task = _task(task)
    if isinstance(params, Network):
        _data_task(params, task)
        return data_loss(params, task.X, task.Y, output_scale)
    params = _linear(params)
    check_against_task(params, task)
    return task.loss(_end_to_end(params, _scale(output_scale, params[0].dtype)))


def loss_and_gradients(params, task: Task, output_scale=1.0):
    """Full-batch loss and ``dL/dW_l`` of a deep linear net, in O(L) thin matrix products.

    With ``A_l = W_L..W_{l+1}`` (d_out, n_l), ``B_l = W_{l-1}..W_1`` (n_{l-1}, d_in),
    ``P = kappa A_0``-chain, ``G = dL/dP = P Sxx - Syx``:
    ``dL/dW_l = kappa A_l^T (G B_l^T)``. The suffixes ``A_l`` and the products ``R_l = G B_l^T =
    R_{l-1} W_{l-1}^T`` both have d_out rows, so a step costs ``O(L d_out n^2 + d_out d_in^2)``
    and no product of two wide factors is formed; the loss reuses ``P Sxx``:
    ``L = 1/2 tr Syy - <Syx, P> + 1/2 <P Sxx, P>``.
    """
    task = _task(task)
    params = _linear(params)
    check_against_task(params, task)
    output_scale = _scale(output_scale, params[0].dtype)
    L = len(params)
    suffix = [None] * L  # suffix[l] = W_L..W_{l+2} in 0-based layers (None: identity)
    for l in range(L - 2, -1, -1):
        suffix[l] = params[l + 1] if suffix[l + 1] is None else suffix[l + 1] @ params[l + 1]
    P = output_scale * (params[0] if suffix[0] is None else suffix[0] @ params[0])
    PS = P @ task.Sxx
    value = 0.5 * jnp.trace(task.Syy) - jnp.sum(task.Syx * P) + 0.5 * jnp.sum(PS * P)
    R = PS - task.Syx
    grads = []
    for l in range(L):
        grads.append(output_scale * (R if suffix[l] is None else suffix[l].T @ R))
        if l < L - 1:
            R = R @ params[l].T
    return value, tuple(grads)


def gradients(params, task: Task, output_scale=1.0):
    """``dL/dW_l`` for every layer (closed form for deep linear nets, autodiff otherwise).

    For the deep linear net, with ``G = dL/dP = P Sxx - Syx``:
    ``dL/dW_l = kappa (W_L..W_{l+1})^T G (W_{l-1}..W_1)^T`` (see :func:`loss_and_gradients`).
    """
    if isinstance(params, Network):
        _data_task(params, _task(task))
        return jax.grad(loss)(params, task, output_scale)
    return loss_and_gradients(params, task, output_scale)[1]


def _factors(params, output_scale):
    """``(A_l, B_l)`` with ``A_l = W_L..W_{l+1}`` (d_out, n_l) and ``B_l = W_{l-1}..W_1``."""
    dtype = params[0].dtype
    return [
        (
            _chain(params[l + 1 :], params[l].shape[0], dtype),
            _chain(params[:l], params[0].shape[1], dtype),
        )
        for l in range(len(params))
    ]


def ntk(params, task: Task | None = None, output_scale=1.0, lrs=1.0):
    """Matrix-form NTK of a deep linear net: the operator with ``dP/dt = -Theta[dL/dP]``.

    ``Theta = kappa^2 sum_l eta_l (A_l A_l^T) (x) (B_l^T B_l)`` on row-major ``vec(P)``
    (shape (d_out d_in, d_out d_in)), ``A_l = W_L..W_{l+1}``, ``B_l = W_{l-1}..W_1``.
    For the width-d one-dimensional model this is ``kappa^2 (eta_u |w|^2 + eta_w |u|^2)``.
    `task` is accepted for symmetry with the data NTK and is not needed.
    """
    del task
    params = _linear(params)
    output_scale = _scale(output_scale, params[0].dtype)
    lrs = per_layer("lrs", lrs, len(params), params[0].dtype, strict=False)
    terms = [
        lrs[l] * jnp.kron(A @ A.T, B.T @ B)
        for l, (A, B) in enumerate(_factors(params, output_scale))
    ]
    return output_scale**2 * sum(terms)


def ntk_data(params, X, X2=None, output_scale=1.0, lrs=1.0):
    """Empirical NTK on inputs, shape (n, n2, d_out, d_out):
    ``K(x, x')_{oo'} = sum_l eta_l d f_o(x)/d theta_l . d f_o'(x')/d theta_l``.

    Deep linear nets use the closed form ``kappa^2 sum_l eta_l (A_l A_l^T) (x^T B_l^T B_l x')``;
    Networks use autodiff Jacobians.
    """
    params = _check_params(params)
    dtype = _dtype_of(params)
    X = _inputs(X, "X", _d_in(params), dtype)
    X2 = X if X2 is None else _inputs(X2, "X2", _d_in(params), dtype)
    L = n_layers(params)
    output_scale = _scale(output_scale, dtype)
    lrs = per_layer("lrs", lrs, L, dtype, strict=False)
    if not isinstance(params, Network):
        out = 0.0
        for l, (A, B) in enumerate(_factors(params, output_scale)):
            gram = (X @ B.T) @ (X2 @ B.T).T
            out = out + lrs[l] * gram[:, :, None, None] * (A @ A.T)[None, None]
        return output_scale**2 * out
    rates = layer_rates(params, lrs)
    J1 = jax.jacrev(lambda p: _apply(p, X, output_scale))(params)
    J2 = jax.jacrev(lambda p: _apply(p, X2, output_scale))(params)

    def contract(j1, j2, r):
        if j1 is None:
            return 0.0
        j1 = (j1 * r).reshape(j1.shape[0], j1.shape[1], -1)
        j2 = j2.reshape(j2.shape[0], j2.shape[1], -1)
        return jnp.einsum("aop,bqp->aboq", j1, j2)

    parts = jax.tree_util.tree_map(contract, J1, J2, rates, is_leaf=lambda x: x is None)
    return sum(jax.tree_util.tree_leaves(parts))


def conserved_quantities(params, lrs=1.0) -> tuple:
    """``C_l = eta_l W_{l+1}^T W_{l+1} - eta_{l+1} W_l W_l^T`` for l = 1..L-1, each (n_l, n_l).

    Exactly conserved by gradient flow ``dW_l/dt = -eta_l dL/dW_l`` for any loss of the
    end-to-end map (Arora et al. 2018; Du et al. 2018; Kunin et al. 2024).
    """
    params = _linear(params)
    lrs = per_layer("lrs", lrs, len(params), params[0].dtype, strict=False)
    return tuple(
        lrs[l] * params[l + 1].T @ params[l + 1] - lrs[l + 1] * params[l] @ params[l].T
        for l in range(len(params) - 1)
    )


class Parametrization(NamedTuple):
    """A two-layer parametrisation at a given width: output scale, init stds, layer rates.

    Layer order is (first layer w, readout u), matching ``params = (W1, W2)``.
    """

    output_scale: float
    init_scales: tuple[float, float]
    lrs: tuple[float, float]


# Exponents (a_w, a_u, b_w, b_u, c): sigma_w^2 = d^-a_w, sigma_u^2 = d^-a_u,
# eta_w = eta d^b_w, eta_u = eta d^b_u, kappa = d^-c  (see exact.width_exponent).
PARAMETRIZATIONS = {
    "ntk": (0.0, 0.0, 0.0, 0.0, 0.5),
    "mean_field": (0.0, 0.0, 1.0, 1.0, 1.0),
    "standard": (0.0, 1.0, -1.0, -1.0, 0.0),
    "mup": (0.0, 2.0, 1.0, -1.0, 0.0),
    "small_init": (2.0, 2.0, 0.0, 0.0, 0.0),
}


def parametrization(name: str, width: int, *, lr: float = 1.0) -> Parametrization:
    """Preset (output scale, init scales, rates) of a two-layer net of hidden `width`.

    ``ntk``: kappa = d^-1/2, eta = 1, sigma = 1. ``mean_field``: kappa = 1/d, eta = d, sigma = 1.
    ``standard``: kappa = 1, eta = 1/d, sigma_u^2 = 1/d, sigma_w = 1. ``mup`` (SGD muP, Yang & Hu
    2021): sigma_w = 1, sigma_u = 1/d, eta_w = d, eta_u = 1/d. ``small_init``: sigma = 1/d.
    Their width exponent of the richness ratio (``exact.width_exponent``) is -1/2, 0, -1, 0, +1.
    """
    if name not in PARAMETRIZATIONS:
        raise ValueError(f"`name` must be one of {sorted(PARAMETRIZATIONS)}; got {name!r}.")
    width = check_size("width", width)
    as_scalar("lr", lr, float_dtype_of(lr))  # finite and > 0 (checked when concrete)
    a_w, a_u, b_w, b_u, c = PARAMETRIZATIONS[name]
    d = float(width)
    return Parametrization(
        output_scale=d**-c,
        init_scales=(d ** (-a_w / 2), d ** (-a_u / 2)),
        lrs=(lr * d**b_w, lr * d**b_u),
    )
