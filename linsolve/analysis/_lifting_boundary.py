"""Boundary lifting: a critical point lifted to a strict saddle of the deeper network.

Bai, Luo, Xu & Zhang, "Embedding Principle in Depth for the Loss Landscape Analysis of Deep
Neural Networks" (arXiv 2205.13283); the insertion itself is :func:`~._lifting.lift`.

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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..mlp import MLP
from ._lifting import _data, _default_shift, _prepare, _sign_sets, backprop_signal, insert_layer

__all__ = ["boundary_lift", "BoundaryLift"]


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
