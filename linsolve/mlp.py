"""Deep fully-connected networks (MLPs) with biases and optional batch normalisation.

``f(x) = W_L h_{L-1} + b_L``, ``h_l = act(BN(W_l h_{l-1} + b_l))``, ``h_0 = x``. The weights follow the
deep linear convention (``W_l`` of shape ``(n_l, n_{l-1})``), so an MLP with the linear activation,
no biases and no batch normalisation computes the same function as the tuple ``(W_1, ..., W_L)``.
Batch normalisation (Ioffe & Szegedy 2015) normalises each hidden pre-activation with the statistics
of the batch it is given, ``BN(z) = gamma (z - mean(z)) / sqrt(var(z) + eps) + beta``, in training and
evaluation alike (there are no running averages: full-batch evaluation uses the full batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from ._validate import (
    as_scalar,
    check_finite,
    check_float_dtype,
    check_key,
    check_size,
    float_dtype_of,
)
from .models import _ACTIVATIONS, Network, _fill

__all__ = ["MLP", "MLPLayers", "mlp_init"]


class MLPLayers(NamedTuple):
    """Per-layer signals of an MLP on a batch; each a tuple with one (n, width) array per layer.

    `inputs[l]` is the input of layer ``l + 1`` (``inputs[0] = X``), `pre[l]` its pre-activation
    (after batch normalisation when on), `post[l]` its output (``act(pre[l])`` for hidden layers,
    ``pre[l]`` for the last layer).
    """

    inputs: tuple
    pre: tuple
    post: tuple


class MLP(Network):
    """Deep fully-connected network; the output scale is applied outside (as for every Network).

    **Fields:** `weights` tuple of (n_l, n_{l-1}); `biases` tuple of (n_l,) or None (no biases);
    `bn_scale`, `bn_shift` tuples of (n_l,) for the L - 1 hidden layers, or None (no batch
    normalisation); `activation` (static name: relu, tanh, linear, gelu, sigmoid); `bn_eps` (static).
    """

    weights: tuple
    biases: tuple | None
    bn_scale: tuple | None
    bn_shift: tuple | None
    activation: str = eqx.field(static=True, default="relu")
    bn_eps: float = eqx.field(static=True, default=1e-5)

    def __check_init__(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {self.activation!r}."
            )
        if not isinstance(self.weights, tuple) or not self.weights:
            raise ValueError("`weights` must be a non-empty tuple of (n_l, n_{l-1}) arrays.")
        shapes = [tuple(W.shape[-2:]) for W in self.weights]
        for l in range(1, len(shapes)):
            if shapes[l][1] != shapes[l - 1][0]:
                raise ValueError(
                    f"`weights[{l}]` must have {shapes[l - 1][0]} columns to follow `weights[{l - 1}]` "
                    f"of shape {shapes[l - 1]}; got shape {shapes[l]}."
                )
        if self.biases is not None:
            _check_vectors("biases", self.biases, [s[0] for s in shapes])
        if (self.bn_scale is None) != (self.bn_shift is None):
            raise ValueError("`bn_scale` and `bn_shift` must both be tuples or both be None.")
        if self.bn_scale is not None:
            hidden = [s[0] for s in shapes[:-1]]
            _check_vectors("bn_scale", self.bn_scale, hidden)
            _check_vectors("bn_shift", self.bn_shift, hidden)
        for name in ("weights", "biases", "bn_scale", "bn_shift"):
            for l, x in enumerate(getattr(self, name) or ()):
                check_finite(f"{name}[{l}]", x)
        if not (isinstance(self.bn_eps, int | float) and self.bn_eps > 0):
            raise ValueError(f"`bn_eps` must be a positive number; got {self.bn_eps!r}.")

    @property
    def depth(self) -> int:
        """Number of weight matrices L."""
        return len(self.weights)

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L)``."""
        return (self.weights[0].shape[-1],) + tuple(W.shape[-2] for W in self.weights)

    @property
    def d_in(self) -> int:
        return self.weights[0].shape[-1]

    @property
    def d_out(self) -> int:
        return self.weights[-1].shape[-2]

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def batchnorm(self) -> bool:
        return self.bn_scale is not None

    def layer_rates(self, lrs: Float[Array, " L"]) -> MLP:
        per = lambda xs: None if xs is None else tuple(_fill(x, lrs[l]) for l, x in enumerate(xs))
        return MLP(
            per(self.weights),
            per(self.biases),
            per(self.bn_scale),
            per(self.bn_shift),
            self.activation,
            self.bn_eps,
        )

    def layers(self, X: Float[Array, "n d_in"]) -> MLPLayers:
        """Inputs, pre-activations and outputs of every layer on the rows of `X`."""
        act = _ACTIVATIONS[self.activation]
        inputs, pre, post = [], [], []
        h = X
        for l, W in enumerate(self.weights):
            inputs.append(h)
            z = h @ W.T
            if self.biases is not None:
                z = z + self.biases[l]
            if l < self.depth - 1:
                if self.bn_scale is not None:
                    mean = jnp.mean(z, axis=0)
                    var = jnp.var(z, axis=0)
                    z = self.bn_scale[l] * (z - mean) / jnp.sqrt(var + self.bn_eps) + self.bn_shift[l]
                h = act(z)
            else:
                h = z
            pre.append(z)
            post.append(h)
        return MLPLayers(tuple(inputs), tuple(pre), tuple(post))

    def __call__(self, X: Float[Array, "n d_in"]) -> Float[Array, "n d_out"]:
        return self.layers(X).post[-1]


def _check_vectors(name: str, xs, lengths: list[int]) -> None:
    if not isinstance(xs, tuple) or len(xs) != len(lengths):
        raise ValueError(f"`{name}` must be a tuple of {len(lengths)} vectors; got {type(xs).__name__}.")
    for l, (x, n) in enumerate(zip(xs, lengths)):
        if x.shape[-1:] != (n,):
            raise ValueError(f"`{name}[{l}]` must have shape ({n},); got {tuple(x.shape)}.")


def mlp_init(
    key,
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    bias: bool = True,
    batchnorm: bool = False,
    scale=1.0,
    dtype=None,
) -> MLP:
    """Gaussian MLP with layer sizes ``(d_in, n_1, ..., n_{L-1}, d_out)``.

    ``W_l ~ N(0, scale^2 gain / n_{l-1})`` with gain 2 for ReLU (He et al. 2015) and 1 otherwise;
    zero biases; batch-normalisation scales 1 and shifts 0.

    **Arguments:** `key` PRNG key; `sizes` at least two positive integers; `activation` one of
    relu, tanh, linear, gelu, sigmoid; `bias`, `batchnorm` True/False; `scale` finite, >= 0;
    `dtype` floating (default: the dtype of `scale`, else the default float).
    """
    key = check_key(key)
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(f"`sizes` must hold at least two positive integers; got {sizes!r}.")
    try:
        sizes = tuple(check_size("sizes", n) for n in sizes)
    except ValueError:
        raise ValueError(
            f"`sizes` must hold at least two positive integers; got {tuple(sizes)!r}."
        ) from None
    if activation not in _ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}; got {activation!r}.")
    for name, flag in (("bias", bias), ("batchnorm", batchnorm)):
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False; got {flag!r}.")
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(scale)
    scale = as_scalar("scale", scale, dtype, strict=False)
    gain = 2.0 if activation == "relu" else 1.0
    keys = jr.split(key, len(sizes) - 1)
    weights = tuple(
        scale * jnp.sqrt(gain / n_in) * jr.normal(k, (n_out, n_in), dtype)
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
    )
    biases = tuple(jnp.zeros((n,), dtype) for n in sizes[1:]) if bias else None
    hidden = sizes[1:-1]
    bn_scale = tuple(jnp.ones((n,), dtype) for n in hidden) if batchnorm else None
    bn_shift = tuple(jnp.zeros((n,), dtype) for n in hidden) if batchnorm else None
    return MLP(weights, biases, bn_scale, bn_shift, activation)
