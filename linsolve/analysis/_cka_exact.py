r"""Closed-form epoch-by-epoch CKA matrices along exact solutions of linear networks (no simulation).

The CKA of a linear layer ``h = W x`` depends on ``M(t) = W(t)^T W(t)`` alone
(:func:`~._cka_matrix.cka_matrix_linear`). Along an exact two-layer linear solution
(``linsolve.exact.lambda_balanced``) ``M(t)`` is known in closed form, so the epoch-by-epoch CKA
matrix needs no simulation; for a balanced, task-aligned (Saxe) solution
``M(t) = V diag(u(t)^{2l/L}) V^T`` and

    CKA(t1, t2) = a(t1) . a(t2) / (|a(t1)| |a(t2)|),        a = u^{2l/L}.

References: Kornblith, Norouzi, Lee & Hinton (ICML 2019), arXiv 1905.00414; Saxe, McClelland &
Ganguli (ICLR 2014), arXiv 1312.6120; Sharon & Dar (2024), arXiv 2405.17377.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._validate import float_dtype_of, is_concrete
from ..tasks import Task
from ._cka import _as_float, _check_self, _ratio
from ._cka_matrix import cka_matrix_linear

__all__ = ["cka_matrix_exact", "cka_matrix_saxe"]


def cka_matrix_exact(
    t: Float[ArrayLike, " T"],
    W1: Float[ArrayLike, "h d_in"],
    W2: Float[ArrayLike, "d_out h"],
    task: Task,
    *,
    tau=1.0,
    layer: str = "hidden",
    cov=None,
    X=None,
    debiased: bool = False,
) -> Float[Array, "T T"]:
    r"""Closed-form epoch-by-epoch CKA matrix of a two-layer linear net along its exact gradient flow.

    The net ``f(x) = W2 W1 x`` from a lambda-balanced init (``W2^T W2 - W1 W1^T = lam I``, any
    lam, whitened task) follows :func:`linsolve.exact.lambda_balanced`, which gives
    ``W1^T W1(t)`` (``input_gram``) and ``W2 W1(t)`` (``product``) in closed form; the hidden
    layer's CKA matrix is :func:`cka_matrix_linear` of ``M(t) = W1^T W1(t)``, the output's of
    ``M(t) = P(t)^T P(t)``. No simulation: it equals :func:`cka_matrix` of the simulated
    activations (to the accuracy of the simulation). Small inits show stage-like learning as
    diagonal blocks.

    **Arguments:**

    - `t`: (T,) times >= 0 (gradient descent with rate ``lr`` after k steps: ``t = k``, ``tau = 1/lr``).
    - `W1`, `W2`, `task`, `tau`: as for :func:`linsolve.exact.lambda_balanced`.
    - `layer`: ``"hidden"`` (``h = W1 x``) or ``"output"`` (``f = W2 W1 x``).
    - `cov`, `X`, `debiased`: the evaluation inputs, as for :func:`cka_matrix_linear`
      (default: centred whitened inputs, ``S = I``).

    **Returns:** (T, T) CKA matrix.
    """
    from ..exact import lambda_balanced

    if layer not in ("hidden", "output"):
        raise ValueError(f"`layer` must be 'hidden' or 'output'; got {layer!r}.")
    t = _as_float(t, "t", float_dtype_of(W1, W2, task.Syx), ndim=1)
    sol = lambda_balanced(t, W1, W2, task, tau=tau)
    if layer == "hidden":
        Ms = sol.input_gram
    else:
        Ms = jnp.einsum("toi,toj->tij", sol.product, sol.product)
    return cka_matrix_linear(Ms, cov=cov, X=X, debiased=debiased)


def cka_matrix_saxe(
    t: Float[ArrayLike, " T"], *, s, u0, tau=1.0, depth: int = 2, layer: int = 1
) -> Float[Array, "T T"]:
    r"""Closed-form CKA matrix of layer ``l`` of a balanced, task-aligned deep linear net (Saxe).

    With whitened, centred inputs and decoupled modes ``u_alpha(t)`` (:func:`linsolve.exact.saxe_mode`),
    ``W_l...W_1 = R_l diag(u^{l/L}) V^T`` so ``M(t) = V diag(a(t)) V^T`` with ``a = u^{2l/L}`` and

        CKA(t1, t2) = a(t1) . a(t2) / (|a(t1)| |a(t2)|).

    **Arguments:** `t` (T,) times; `s` (r,) task singular values; `u0` (r,) initial strengths
    (``> 0``); `tau`; `depth` L; `layer` l in 1..L (L is the network output).

    **Returns:** (T, T). Reference: Saxe et al. (2014).
    """
    from ..exact import saxe_mode

    if int(depth) != depth or depth < 1 or int(layer) != layer or not 1 <= layer <= depth:
        raise ValueError(f"need integers 1 <= `layer` <= `depth`; got layer={layer}, depth={depth}.")
    dtype = float_dtype_of(t, s, u0)
    t = _as_float(t, "t", dtype, ndim=1)
    s = _as_float(s, "s", dtype, ndim=1)
    u0 = _as_float(jnp.broadcast_to(jnp.asarray(u0), s.shape), "u0", dtype)
    if is_concrete(u0) and bool(jnp.any(u0 < 0)):
        raise ValueError(f"`u0` must be non-negative (balanced strengths); got {u0}.")
    u = saxe_mode(t[:, None], s=s, u0=u0, tau=tau, depth=int(depth))
    a = jnp.abs(u) ** (2.0 * layer / depth)
    norms = jnp.sqrt(jnp.sum(a * a, axis=1))
    _check_self(norms, lambda i: f"the layer at t[{i}]", False)
    return _ratio(a @ a.T, norms[:, None] ** 2, norms[None, :] ** 2)
