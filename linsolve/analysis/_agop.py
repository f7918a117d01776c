r"""Average gradient outer product (AGOP) and the Neural Feature Ansatz (NFA).

For a predictor ``f: R^d -> R^K`` and samples ``x_1..x_N`` (rows of ``X``)

    AGOP(f, X) = (1/N) sum_i J_f(x_i)^T J_f(x_i) = (1/N) sum_i sum_c grad f_c(x_i) grad f_c(x_i)^T,

a (d, d) p.s.d. matrix (the uncentred covariance of input gradients). Taken with respect to the input
``h_{l-1}`` of layer ``l`` (the rest of the network as the predictor, evaluated at the data's layer
inputs) it is compared with the layer's ``W_l^T W_l`` by the Neural Feature Ansatz (Radhakrishnan et
al., Science 2024): ``rho(W_l^T W_l, AGOP_l^{1/2}) ~ 1`` for trained networks, ``rho`` the Pearson
correlation of the flattened matrices (Beaglehole et al. 2024).

Closed forms:

* deep linear net ``f(x) = kappa W_L..W_1 x``: the AGOP w.r.t. the input of layer ``l`` is
  ``A_l^T A_l`` with ``A_l = kappa W_L..W_l`` (independent of the data);
* two-layer net ``f(x) = kappa (W_2 act(W_1 x + b_1) + b_2)``: with ``D_i = diag(act'(W_1 x_i + b_1))``,
  ``AGOP = (kappa^2/N) sum_i W_1^T D_i W_2^T W_2 D_i W_1
  = kappa^2 W_1^T [(W_2^T W_2) o (Delta^T Delta/N)] W_1``
  (``o`` the entrywise product, rows of ``Delta`` the vectors ``act'(W_1 x_i + b_1)``).

**Normalisation.** The AGOP here is the *mean* over samples (the definition above). Reference
codes differ by a positive factor: Beaglehole et al.'s ``measure_agop`` returns the sum over
samples (``J^T J`` of the stacked Jacobians), and the ``rfm`` package of Radhakrishnan et al.
divides the summed AGOP by its largest entry (``M / M.max()``). :func:`agop` and
:func:`~linsolve.analysis.kernel_agop` take ``normalization="mean" | "sum" | "max"`` to give each.
Correlations (NFA) and the Deep RFM metrics do not depend on this factor.

Everything else uses ``vmap(jacrev)``, summed over chunks of samples so that memory stays
``O(chunk K d)``. For an :class:`~linsolve.mlp.MLP` with batch normalisation the batch statistics are
those of the full batch ``X``, held fixed while differentiating (the per-sample predictor of
evaluation mode).

References: Radhakrishnan, Beaglehole, Pandit & Belkin, Science 383 (2024), arXiv 2212.13881;
Beaglehole, Sukenik, Mondelli & Belkin (NeurIPS 2024), arXiv 2402.13728.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._validate import as_float, check_finite, is_concrete, validate_params
from ..mlp import MLP
from ..models import _ACTIVATIONS, ShallowNet

_AGOP_NORMALIZATIONS = ("mean", "sum", "max")

__all__ = [
    "agop",
    "agop_linear",
    "agop_shallow",
    "layer_agops",
    "layer_nfa",
    "nfa_correlation",
    "pearson",
    "psd_sqrt",
]


def psd_sqrt(M: Float[Array, "*batch d d"]) -> Float[Array, "*batch d d"]:
    r"""Square root of a symmetric p.s.d. matrix, ``V diag(sqrt(max(lambda, 0))) V^T``.

    ``M`` is symmetrised first; eigenvalues below zero (rounding) are clipped. Leading axes batch.
    """
    M = jnp.asarray(M)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"`M` must be a (..., d, d) square matrix; got shape {tuple(M.shape)}.")
    check_finite("M", M)
    return _psd_sqrt(M)


@jax.jit
def _psd_sqrt(M):
    lam, V = jnp.linalg.eigh(0.5 * (M + jnp.swapaxes(M, -1, -2)))
    root = jnp.sqrt(jnp.clip(lam, 0.0))
    return jnp.einsum("...ij,...j,...kj->...ik", V, root, V)


def pearson(A: Float[Array, "*batch m n"], B: Float[Array, "*batch m n"]) -> Float[Array, "*batch"]:
    """Pearson correlation of the flattened last two axes: ``<a - mean a, b - mean b>/(|.| |.|)``.

    ``nan`` when either matrix is constant.
    """
    A, B = jnp.asarray(A), jnp.asarray(B)
    if A.ndim < 2 or A.shape != B.shape:
        raise ValueError(f"`A` and `B` must share a (..., m, n) shape; got {A.shape} and {B.shape}.")
    return _pearson(A, B)


@jax.jit
def _pearson(A, B):
    a = A.reshape(A.shape[:-2] + (-1,))
    b = B.reshape(B.shape[:-2] + (-1,))
    a = a - jnp.mean(a, axis=-1, keepdims=True)
    b = b - jnp.mean(b, axis=-1, keepdims=True)
    return jnp.sum(a * b, -1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1))


def nfa_correlation(
    W: Float[Array, "*batch out d"], agop: Float[Array, "*batch d d"], *, sqrt: bool = True
) -> Float[Array, "*batch"]:
    r"""Neural Feature Ansatz correlation ``rho(W^T W, AGOP^{1/2})`` (or with the AGOP itself).

    ``rho`` is the Pearson correlation of the flattened matrices (mean-subtracted cosine, as in
    Beaglehole et al. 2024's code). A balanced two-layer linear net has ``AGOP = (W_1^T W_1)^2``,
    so ``rho(W_1^T W_1, AGOP^{1/2}) = 1``.

    **Arguments:** `W` (..., out, d) a layer's weight; `agop` (..., d, d) the AGOP w.r.t. the
    layer's input; `sqrt`: compare with ``AGOP^{1/2}`` (default, :func:`psd_sqrt`) or ``AGOP``.

    **Returns:** (...) correlations in [-1, 1].
    """
    W, agop = jnp.asarray(W), jnp.asarray(agop)
    if W.ndim < 2 or agop.shape[-2:] != (W.shape[-1], W.shape[-1]):
        raise ValueError(
            f"`agop` must have shape (..., d, d) with d = W.shape[-1]; got `W` {tuple(W.shape)} "
            f"and `agop` {tuple(agop.shape)}."
        )
    return _nfa(W, agop, sqrt)


@functools.partial(jax.jit, static_argnames="sqrt")
def _nfa(W, agop, sqrt: bool):
    return _pearson(jnp.swapaxes(W, -1, -2) @ W, _psd_sqrt(agop) if sqrt else agop)


def _check_normalization(normalization: str) -> None:
    if normalization not in _AGOP_NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {_AGOP_NORMALIZATIONS}; got {normalization!r}.")


def _normalize(M, normalization: str, n: int):
    """A mean AGOP ``M`` in the convention ``normalization`` (``"mean"``, ``"sum"``, ``"max"``)."""
    if normalization == "sum":
        return M * n
    if normalization == "max":
        top = jnp.max(M)
        return M / jnp.where(top > 0, top, 1.0)
    return M


def _check_chunk(chunk_size, n: int) -> int:
    if chunk_size is None:
        return n
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer or None; got {chunk_size!r}.")
    return min(int(chunk_size), n)


def _gram_sum(jac_fn, X, chunk: int):
    """``sum_i J_i^T J_i / N`` for every leaf of ``jac_fn(X_chunk)`` ((c, K, d_l) Jacobians).

    Chunks of `chunk` rows run under ``lax.scan``; the last one is padded with copies of row 0 and
    masked, so no per-sample outer product is ever materialised.
    """
    n = X.shape[0]
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    Xp = jnp.concatenate([X, jnp.broadcast_to(X[:1], (pad,) + X.shape[1:])]) if pad else X
    mask = (jnp.arange(n_chunks * chunk) < n).astype(X.dtype).reshape(n_chunks, chunk)
    Xp = Xp.reshape((n_chunks, chunk) + X.shape[1:])

    def contract(Xc, m):
        jacs = jac_fn(Xc)
        return jax.tree_util.tree_map(lambda J: jnp.einsum("nkd,n,nke->de", J, m, J), jacs)

    if n_chunks == 1:
        return jax.tree_util.tree_map(lambda S: S / n, contract(Xp[0], mask[0]))
    zero = jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(contract, Xp[0], mask[0]))

    def body(acc, xs):
        return jax.tree_util.tree_map(jnp.add, acc, contract(*xs)), None

    total, _ = jax.lax.scan(body, zero, (Xp, mask))
    return jax.tree_util.tree_map(lambda S: S / n, total)


@eqx.filter_jit
def _agop_autodiff(fn, X, chunk: int):
    def jac(Xc):
        J = jax.vmap(jax.jacrev(fn))(Xc)
        return J.reshape(Xc.shape[0], -1, X.shape[1])

    return _gram_sum(jac, X, chunk)


def agop(
    fn: Callable[[Float[Array, " d"]], Float[Array, "*out"]],
    X: Float[Array, "n d"],
    *,
    chunk_size: int | None = None,
    normalization: str = "mean",
) -> Float[Array, "d d"]:
    r"""Average gradient outer product ``(1/N) sum_i J_f(x_i)^T J_f(x_i)`` by ``vmap(jacrev)``.

    **Arguments:**

    - `fn`: the predictor on ONE sample, ``(d,) -> (K,)`` (or a scalar, or any shape: the outputs
      are flattened). Wrap a batched network as ``lambda x: net(x[None])[0]``.
    - `X`: (N, d) samples (rows).
    - `chunk_size`: Jacobians of at most this many samples are held at once (``lax.scan`` over
      chunks); None = all N.
    - `normalization`: ``"mean"`` (default, ``1/N``), ``"sum"`` (no ``1/N``: Beaglehole et al.'s
      ``measure_agop``) or ``"max"`` (divided by its largest entry, as the ``rfm`` package's
      ``fit_M``; a zero AGOP stays zero).

    **Returns:** (d, d) symmetric p.s.d. AGOP.

    Reference: Radhakrishnan et al. (2024); Beaglehole et al. (2024).
    """
    X = as_float(X, "X", ndim=2)
    if X.shape[0] < 1:
        raise ValueError("`X` must hold at least one sample; got 0 rows.")
    if not callable(fn):
        raise ValueError(f"`fn` must be callable (one sample (d,) -> outputs); got {type(fn).__name__}.")
    _check_normalization(normalization)
    M = _agop_autodiff(fn, X, _check_chunk(chunk_size, X.shape[0]))
    return _normalize(M, normalization, X.shape[0])


def agop_linear(params, *, output_scale=1.0, layer: int = 0) -> Float[Array, "d d"]:
    r"""Closed-form AGOP of a deep linear net ``f(x) = kappa W_L..W_1 x`` w.r.t. a layer's input.

    ``AGOP_l = A^T A``, ``A = kappa W_L..W_{l+1}`` (0-based `layer` = l: the input of
    ``params[l]``; ``layer=0`` is the network input, where ``AGOP = P^T P``). Independent of data.
    """
    params = validate_params(params)
    if not 0 <= layer < len(params):
        raise ValueError(f"`layer` must be in [0, {len(params) - 1}]; got {layer}.")
    return _linear_agops(params, jnp.asarray(output_scale, params[0].dtype))[layer]


@jax.jit
def _linear_agops(params, kappa):
    """``(A_l^T A_l)_l`` with ``A_l = kappa W_L..W_l``, accumulated from the output down."""
    out, A = [], None
    for W in reversed(params):
        A = kappa * W if A is None else A @ W
        out.append(A.T @ A)
    return tuple(reversed(out))


def _act_derivative(name: str):
    act = _ACTIVATIONS[name]
    if name == "relu":  # the a.e. derivative (1 where z > 0), as autodiff gives
        return lambda z: (z > 0).astype(z.dtype)
    return jax.vmap(jax.vmap(jax.grad(act)))


def agop_shallow(net: ShallowNet, X: Float[Array, "n d"], *, output_scale=1.0) -> Float[Array, "d d"]:
    r"""Closed-form input AGOP of a two-layer net ``kappa (W_2 act(W_1 x + b_1) + b_2)``.

    ``AGOP = kappa^2 W_1^T [(W_2^T W_2) o (Delta^T Delta / N)] W_1``, rows of ``Delta`` being
    ``act'(W_1 x_i + b_1)``: this is ``(kappa^2/N) sum_i W_1^T D_i W_2^T W_2 D_i W_1`` with
    ``D_i = diag(act'(W_1 x_i + b_1))``. Cost ``O(N h + h^2 d)``.
    """
    if not isinstance(net, ShallowNet):
        raise ValueError(f"`net` must be a linsolve.models.ShallowNet; got {type(net).__name__}.")
    X = as_float(X, "X", net.W1.dtype, ndim=2)
    if X.shape[1] != net.d_in:
        raise ValueError(f"`X` must have shape (n, d_in={net.d_in}); got {tuple(X.shape)}.")
    return _shallow_agop(net, X, jnp.asarray(output_scale, X.dtype))


@eqx.filter_jit
def _shallow_agop(net, X, kappa):
    z = X @ net.W1.T
    if net.b1 is not None:
        z = z + net.b1
    delta = _act_derivative(net.activation)(z)
    inner = (net.W2.T @ net.W2) * (delta.T @ delta / X.shape[0])
    return kappa**2 * net.W1.T @ inner @ net.W1


@eqx.filter_jit
def _mlp_agops(net: MLP, X, output_scale, chunk: int):
    """Per-layer AGOPs of an MLP: jacrev of the output w.r.t. offsets added to every layer input."""
    act = _ACTIVATIONS[net.activation]
    L = net.depth
    stats = []
    if net.bn_scale is not None:  # full-batch statistics, held fixed (evaluation-mode predictor)
        h = X
        for l, W in enumerate(net.weights[:-1]):
            z = h @ W.T + (0.0 if net.biases is None else net.biases[l])
            mean, var = jnp.mean(z, axis=0), jnp.var(z, axis=0)
            stats.append((mean, var))
            h = act(net.bn_scale[l] * (z - mean) / jnp.sqrt(var + net.bn_eps) + net.bn_shift[l])

    def forward(x, offsets):
        h = x
        for l, W in enumerate(net.weights):
            h = h + offsets[l]
            z = W @ h
            if net.biases is not None:
                z = z + net.biases[l]
            if l < L - 1:
                if stats:
                    mean, var = stats[l]
                    z = net.bn_scale[l] * (z - mean) / jnp.sqrt(var + net.bn_eps) + net.bn_shift[l]
                h = act(z)
        return output_scale * z

    zeros = tuple(jnp.zeros((W.shape[1],), X.dtype) for W in net.weights)
    per_sample = lambda x: jax.jacrev(forward, argnums=1)(x, zeros)
    return _gram_sum(jax.vmap(per_sample), X, chunk)


def layer_agops(params, X=None, *, output_scale=1.0, chunk_size: int | None = None) -> tuple:
    r"""AGOP of the network w.r.t. the input of every layer, ``(AGOP_1, ..., AGOP_L)``.

    ``AGOP_l = (1/N) sum_i J_l(x_i)^T J_l(x_i)``, ``J_l = d f / d h_{l-1}`` at the data's layer-l input
    ``h_{l-1}(x_i)`` (``h_0 = x``), each (n_{l-1}, n_{l-1}).

    **Arguments:**

    - `params`: deep linear tuple ``(W1, ..., WL)`` (closed form, `X` unused), a
      :class:`~linsolve.models.ShallowNet` (closed forms: :func:`agop_shallow` and
      ``kappa^2 W_2^T W_2``) or an :class:`~linsolve.mlp.MLP` (autodiff, batch-norm statistics of
      the full batch held fixed).
    - `X`: (N, d_in) samples (needed for nonlinear networks).
    - `output_scale`: kappa; `chunk_size`: samples per Jacobian chunk (MLP).
    """
    if isinstance(params, ShallowNet):
        if X is None:
            raise ValueError("`X` is required for the AGOP of a ShallowNet.")
        M1 = agop_shallow(params, X, output_scale=output_scale)
        return (M1, _linear_agops((params.W2,), jnp.asarray(output_scale, M1.dtype))[0])
    if isinstance(params, MLP):
        if X is None:
            raise ValueError("`X` is required for the AGOP of an MLP.")
        X = as_float(X, "X", params.weights[0].dtype, ndim=2)
        if X.shape[1] != params.d_in:
            raise ValueError(f"`X` must have shape (n, d_in={params.d_in}); got {tuple(X.shape)}.")
        if is_concrete(params):
            for l, W in enumerate(params.weights):
                check_finite(f"params.weights[{l}]", W)
        kappa = jnp.asarray(output_scale, X.dtype)
        return _mlp_agops(params, X, kappa, _check_chunk(chunk_size, X.shape[0]))
    params = validate_params(params)
    return _linear_agops(params, jnp.asarray(output_scale, params[0].dtype))


def _layer_weights(params) -> tuple:
    if isinstance(params, ShallowNet):
        return (params.W1, params.W2)
    if isinstance(params, MLP):
        return params.weights
    return tuple(params)


def layer_nfa(
    params, X=None, *, output_scale=1.0, sqrt: bool = True, chunk_size: int | None = None
) -> Float[Array, " L"]:
    r"""NFA correlation of every layer, ``rho(W_l^T W_l, AGOP_l^{1/2})`` (or with ``AGOP_l``).

    Arguments as for :func:`layer_agops`; returns (L,) Pearson correlations.
    """
    agops = layer_agops(params, X, output_scale=output_scale, chunk_size=chunk_size)
    return _layer_nfa(_layer_weights(params), agops, sqrt)


@functools.partial(jax.jit, static_argnames="sqrt")
def _layer_nfa(weights, agops, sqrt: bool):
    return jnp.stack([_nfa(W, M, sqrt) for W, M in zip(weights, agops)])
