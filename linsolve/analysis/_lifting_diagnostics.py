"""Diagnostics of the embedding principle in depth: layer linearisation and output-preserving manifolds.

Bai, Luo, Xu & Zhang, "Embedding Principle in Depth for the Loss Landscape Analysis of Deep
Neural Networks" (arXiv 2205.13283).

* Layer linearisation: a ReLU neuron that is sign-constant on the training inputs (pre-activation
  ``z_ik > 0`` for every sample i, or ``z_ik < 0`` for every i) acts linearly on the data. The
  linearisation index of a hidden layer is the fraction of such neurons; at 1 the layer is
  ``sigma(z_i) = D z_i`` on the data (``D`` the 0/1 diagonal of active neurons), the condition under
  which :func:`~._lifting.lift` inserts a layer without changing the outputs. With batch
  normalisation the signs are those of the normalised pre-activations. The masks and the index are
  jit-compiled functions of the parameters (the index is an observable for ``gradient_descent``).
* Output-preserving manifold: the set ``{theta : f_theta(X) = f_theta0(X)}`` through ``theta_0``
  has local dimension ``P - rank J``, ``J = d vec f_theta(X) / d theta`` of shape (n d_out, P),
  computed by forward-mode autodiff; adding data points adds constraints and shrinks it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from ..mlp import MLP
from ..models import ShallowNet, apply

__all__ = ["sign_constant", "linearisation_index", "output_manifold_dimension", "ManifoldDimension"]


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
