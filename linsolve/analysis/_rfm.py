r"""Deep Recursive Feature Machines (Deep RFM): AGOP projections that collapse the data layer by layer.

Algorithm 1 of Beaglehole et al. (2024), one AGOP step per layer. With ``X_1 = X`` and targets ``Y``
(N, K) (+-1 one-hot), for ``l = 1..L``:

1. normalise every sample to unit norm;
2. kernel ridge regression ``alpha_l = (k(X_l, X_l) + gamma I)^+ Y``, ``f_l(x) = sum_j alpha_lj k(x, x_j)``
   (minimum-norm solution when ridgeless and singular);
3. ``M_l = AGOP(f_l, X_l) = (1/N) sum_i sum_c grad f_lc(x_i) grad f_lc(x_i)^T`` in closed form;
4. ``X_{l+1} = Phi_l(M_l^{1/2} X_l)``, ``Phi_l(z) = ReLU(W_l z)``, ``W_l`` i.i.d. ``N(0, 2/d_l)`` (width D).

Finally the normalised ``X_{L+1}`` is fit once more (``alpha_{L+1}``). Kernels, bandwidth ``b``:

* Laplace ``k(x, z) = exp(-|x - z|/b)``:
  ``grad f_c(x) = -(1/b) sum_j alpha_jc k(x, x_j) (x - x_j)/|x - x_j|``; at a training point
  ``x_i`` the non-differentiable ``j = i`` term is dropped (as in the RFM code);
* Gaussian ``k(x, z) = exp(-|x - z|^2/(2 b^2))``:
  ``grad f_c(x) = -(1/b^2) sum_j alpha_jc k(x, x_j)(x - x_j)`` (its ``j = i`` term vanishes);
* linear ``k(x, z) = x.z``: ``grad f_c = beta_c = sum_j alpha_jc x_j`` and ``M = beta beta^T``
  (the gradient is constant); ridgeless interpolation then collapses the data in one step, since
  ``(M^{1/2} x_i).(M^{1/2} x_j) = x_i^T beta beta^T x_j = y_i . y_j``.

NC1 (``tr Sigma_W / tr Sigma_B``) and NC2 are recorded per layer on ``X_l`` (normalised), on
``M_l^{1/2} X_l`` and on ``Phi_l(M_l^{1/2} X_l)``: in the paper the decrease of NC1 comes from the
AGOP projection, while the ReLU random features slightly increase it. ``use_agop=False`` replaces
``M_l`` by the identity (random features alone) for that comparison.

References: Beaglehole, Sukenik, Mondelli & Belkin (NeurIPS 2024), arXiv 2402.13728; Radhakrishnan,
Beaglehole, Pandit & Belkin, Science 383 (2024) (RFM).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validate import as_float, as_scalar
from ._agop import _check_chunk, _check_normalization, _gram_sum, _normalize, psd_sqrt
from ._collapse import _nc1, _nc2, _prepare

__all__ = ["deep_rfm", "DeepRFM", "kernel_matrix", "kernel_gradients", "kernel_agop", "KERNELS"]

KERNELS = ("laplace", "gaussian", "linear")
FEATURE_MAPS = ("relu", "none")


def _sq_dist(A, B):
    d2 = jnp.sum(A * A, 1)[:, None] - 2 * A @ B.T + jnp.sum(B * B, 1)[None, :]
    return jnp.clip(d2, 0.0)


def _kernel(A, B, kernel: str, bandwidth):
    if kernel == "linear":
        return A @ B.T
    d2 = _sq_dist(A, B)
    if kernel == "gaussian":
        return jnp.exp(-d2 / (2 * bandwidth**2))
    return jnp.exp(-jnp.sqrt(d2) / bandwidth)


def _check_kernel(kernel: str, bandwidth, dtype):
    if kernel not in KERNELS:
        raise ValueError(f"`kernel` must be one of {KERNELS}; got {kernel!r}.")
    return as_scalar("bandwidth", bandwidth, dtype)


def kernel_matrix(
    A: Float[Array, "n d"], B: Float[Array, "m d"], *, kernel: str = "laplace", bandwidth=2.0
) -> Float[Array, "n m"]:
    r"""``k(a_i, b_j)`` for the Laplace (``exp(-|a-b|/bw)``), Gaussian (``exp(-|a-b|^2/(2 bw^2))``)
    or linear (``a.b``) kernel."""
    A = as_float(A, "A", ndim=2)
    B = as_float(B, "B", A.dtype, ndim=2)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"`A` and `B` must share d; got {tuple(A.shape)} and {tuple(B.shape)}.")
    return _kernel_jit(A, B, kernel, _check_kernel(kernel, bandwidth, A.dtype))


_kernel_jit = jax.jit(_kernel, static_argnums=2)


def _grads(Xe, X, alpha, kernel: str, bandwidth):
    """(m, K, d) gradients of ``f = sum_j alpha_j k(., x_j)`` at the rows of ``Xe``.

    Laplace: a term whose centre coincides with the point (``j = i`` at a training point) is not
    differentiable there and is dropped.
    """
    if kernel == "linear":
        beta = X.T @ alpha  # (d, K)
        return jnp.broadcast_to(beta.T, (Xe.shape[0],) + beta.T.shape)
    d2 = _sq_dist(Xe, X)
    if kernel == "gaussian":
        w = -jnp.exp(-d2 / (2 * bandwidth**2)) / bandwidth**2
    else:
        # |a|^2 - 2 a.b + |b|^2 carries a rounding error ~ eps (|a|^2 + |b|^2): below a few times
        # that the points coincide at working precision, and the (non-differentiable) term is dropped.
        scale = jnp.sum(Xe * Xe, 1)[:, None] + jnp.sum(X * X, 1)[None, :]
        ok = d2 > 64 * jnp.finfo(X.dtype).eps * scale
        dist = jnp.sqrt(jnp.where(ok, d2, 1.0))
        w = jnp.where(ok, -jnp.exp(-dist / bandwidth) / (bandwidth * dist), 0.0)
    # grad f_c(x_i) = sum_j w_ij alpha_jc (x_i - x_j)
    first = (w @ alpha)[:, :, None] * Xe[:, None, :]
    second = jnp.einsum("ij,jc,jd->icd", w, alpha, X)
    return first - second


def kernel_gradients(
    Xe: Float[Array, "m d"],
    X: Float[Array, "n d"],
    alpha: Float[Array, "n K"],
    *,
    kernel: str = "laplace",
    bandwidth=2.0,
) -> Float[Array, "m K d"]:
    r"""Input gradients of the kernel predictor ``f_c(x) = sum_j alpha_jc k(x, x_j)`` at rows of `Xe`.

    For the Laplace kernel a centre ``x_j`` equal to the point itself (``j = i`` at a training
    point) contributes nothing: the kernel is not differentiable there and the Deep RFM AGOP drops
    that term (Beaglehole et al. 2024).
    """
    X = as_float(X, "X", ndim=2)
    Xe = as_float(Xe, "Xe", X.dtype, ndim=2)
    alpha = as_float(alpha, "alpha", X.dtype)
    alpha = alpha[:, None] if alpha.ndim == 1 else alpha
    if Xe.shape[1] != X.shape[1] or alpha.ndim != 2 or alpha.shape[0] != X.shape[0]:
        raise ValueError(
            f"need `Xe` (m, d), `X` (n, d), `alpha` (n, K); got {tuple(Xe.shape)}, {tuple(X.shape)}, "
            f"{tuple(alpha.shape)}."
        )
    return _grads_jit(Xe, X, alpha, kernel, _check_kernel(kernel, bandwidth, X.dtype))


_grads_jit = jax.jit(_grads, static_argnums=3)


def _kernel_agop(X, alpha, kernel, bandwidth, chunk):
    if kernel == "linear":
        beta = X.T @ alpha
        return beta @ beta.T
    return _gram_sum(lambda Xc: _grads(Xc, X, alpha, kernel, bandwidth), X, chunk)


def kernel_agop(
    X: Float[Array, "n d"],
    alpha: Float[Array, "n K"],
    *,
    kernel: str = "laplace",
    bandwidth=2.0,
    chunk_size: int | None = None,
    normalization: str = "mean",
) -> Float[Array, "d d"]:
    r"""Closed-form AGOP of the kernel predictor at its training points, ``(1/N) sum_i J_i^T J_i``.

    The ``j = i`` term is dropped at ``x_i`` (Laplace; it is 0 for the Gaussian kernel); the linear
    kernel gives ``beta beta^T``, ``beta = X^T alpha``. `chunk_size` bounds the rows of gradients
    held at once. `normalization`: ``"mean"`` (default), ``"sum"`` (no ``1/N``) or ``"max"``
    (divided by the largest entry, as the ``rfm`` package's ``fit_M`` does; the Deep RFM
    metrics do not depend on this factor).
    """
    X = as_float(X, "X", ndim=2)
    alpha = as_float(alpha, "alpha", X.dtype)
    alpha = alpha[:, None] if alpha.ndim == 1 else alpha
    if alpha.ndim != 2 or alpha.shape[0] != X.shape[0]:
        raise ValueError(f"`alpha` must have shape (n={X.shape[0]}, K); got {tuple(alpha.shape)}.")
    bw = _check_kernel(kernel, bandwidth, X.dtype)
    _check_normalization(normalization)
    M = _kernel_agop_jit(X, alpha, kernel, bw, _check_chunk(chunk_size, X.shape[0]))
    return _normalize(M, normalization, X.shape[0])


@functools.partial(jax.jit, static_argnames=("kernel", "chunk"))
def _kernel_agop_jit(X, alpha, kernel, bandwidth, chunk):
    return _kernel_agop(X, alpha, kernel, bandwidth, chunk)


def _normalise(X):
    return X / jnp.linalg.norm(X, axis=1, keepdims=True)


def _krr(Kmat, T, ridge):
    """``(K + ridge I)^+ T`` by eigendecomposition (minimum-norm when singular)."""
    n = Kmat.shape[0]
    lam, Q = jnp.linalg.eigh(0.5 * (Kmat + Kmat.T) + ridge * jnp.eye(n, dtype=Kmat.dtype))
    cut = n * jnp.finfo(Kmat.dtype).eps * jnp.max(jnp.abs(lam))
    inv = jnp.where(jnp.abs(lam) > cut, 1.0 / jnp.where(jnp.abs(lam) > cut, lam, 1.0), 0.0)
    return Q @ (inv[:, None] * (Q.T @ T))


def _features(Z, W, feature_map: str):
    return jax.nn.relu(Z @ W.T) if feature_map == "relu" else Z


@functools.partial(jax.jit, static_argnames=("kernel", "feature_map", "width", "chunk"))
def _rfm_layer(X, T, Y, key, in_dim, bandwidth, ridge, use_agop, last, kernel, feature_map, width, chunk):
    """One Deep RFM layer on (N, d) inputs whose last ``d - in_dim`` columns may be zero padding.

    Zero columns change neither the kernel, nor the AGOP (its padded rows and columns are 0), nor
    the random features ``ReLU(W z)`` (they multiply zeros), so the first layer can run through the
    program compiled for the feature width. With ``last`` only the kernel regression runs (the
    final readout), the rest being zeros: one program serves every layer and the readout.
    """
    Xn = _normalise(X)
    d = X.shape[1]
    Kmat = _kernel(Xn, Xn, kernel, bandwidth)
    alpha = _krr(Kmat, T, ridge)
    acc = jnp.mean((jnp.argmax(Kmat @ alpha, 1) == jnp.argmax(Y, 1)).astype(X.dtype))

    def step(_):
        agop = _kernel_agop(Xn, alpha, kernel, bandwidth, chunk)
        M = jnp.where(use_agop, agop, jnp.eye(d, dtype=X.dtype))
        root = psd_sqrt(M)
        Xm = Xn @ root
        if feature_map == "relu":
            W = jnp.sqrt(2.0 / in_dim) * jr.normal(key, (width, d), X.dtype)
        else:
            W = jnp.eye(d, dtype=X.dtype)
        Xf = _features(Xm, W, feature_map)
        stages = (Xn, Xm, Xf)
        n1 = jnp.stack([_nc1(S, Y) for S in stages])
        n2 = jnp.stack([_nc2(S, Y) for S in stages])
        return Xf, M, root, W, n1, n2

    skip = lambda _: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(step, None))
    return jax.lax.cond(last, skip, step, None), (Xn, alpha, acc)


class DeepRFM(eqx.Module):
    """A fitted Deep RFM and its per-layer collapse metrics (every array field has L = `layers` rows).

    **Fields:**

    - `nc1_input`, `nc1_agop`, `nc1_features`: (L,) NC1 (``tr Sigma_W / tr Sigma_B``) of the
      normalised layer input ``X_l``, of ``M_l^{1/2} X_l`` and of ``Phi_l(M_l^{1/2} X_l)``.
    - `nc2_input`, `nc2_agop`, `nc2_features`: (L,) NC2 (Frobenius distance to the simplex ETF).
    - `agops`, `sqrt_agops`: tuples of the AGOPs ``M_l`` and ``M_l^{1/2}`` (d_l, d_l).
    - `feature_weights`: tuple of the random feature matrices ``W_l`` (width, d_l) (the identity when
      ``feature_map="none"``).
    - `alpha`: (N, K) coefficients of the final kernel regression on `train_features`
      (N, D) (normalised ``X_{L+1}``); `train_accuracy`: () fraction of training points classified
      correctly by it.
    - `bandwidth`, `kernel`, `feature_map`.

    ``model(X)`` predicts (m, K) outputs for new points; ``model.layers(X)`` gives, per layer, the
    triple ``(X_l, M_l^{1/2} X_l, Phi_l(M_l^{1/2} X_l))`` for new points.
    """

    nc1_input: Float[Array, " L"]
    nc1_agop: Float[Array, " L"]
    nc1_features: Float[Array, " L"]
    nc2_input: Float[Array, " L"]
    nc2_agop: Float[Array, " L"]
    nc2_features: Float[Array, " L"]
    agops: tuple
    sqrt_agops: tuple
    feature_weights: tuple
    alpha: Float[Array, "N K"]
    train_features: Float[Array, "N D"]
    train_accuracy: Float[Array, ""]
    bandwidth: Float[Array, ""]
    kernel: str = eqx.field(static=True, default="laplace")
    feature_map: str = eqx.field(static=True, default="relu")

    @eqx.filter_jit
    def layers(self, X: Float[Array, "m d"]) -> tuple:
        """Per layer ``(X_l, M_l^{1/2} X_l, Phi_l(M_l^{1/2} X_l))`` on new points (rows of `X`)."""
        out, h = [], X
        for root, W in zip(self.sqrt_agops, self.feature_weights):
            hn = _normalise(h)
            z = hn @ root
            h = _features(z, W, self.feature_map)
            out.append((hn, z, h))
        return tuple(out)

    def transform(self, X: Float[Array, "m d"]) -> Float[Array, "m D"]:
        """The normalised last-layer features of new points."""
        return _normalise(self.layers(X)[-1][2])

    @eqx.filter_jit
    def __call__(self, X: Float[Array, "m d"]) -> Float[Array, "m K"]:
        Kmat = _kernel(self.transform(X), self.train_features, self.kernel, self.bandwidth)
        return Kmat @ self.alpha


def deep_rfm(
    X: Float[Array, "N d"],
    y,
    *,
    layers: int,
    kernel: str = "laplace",
    bandwidth=2.0,
    ridge=0.0,
    width: int = 1024,
    feature_map: str = "relu",
    key: PRNGKeyArray,
    use_agop: bool = True,
    chunk_size: int | None = None,
) -> DeepRFM:
    r"""Deep Recursive Feature Machine (Beaglehole et al. 2024, Algorithm 1) with per-layer NC metrics.

    **Arguments:**

    - `X`: (N, d) training inputs (rows).
    - `y`: (N,) integer labels (targets become +-1 one-hot: 1 for the class, -1 otherwise) or
      (N, K) targets used as given (classes = argmax). At least 2 classes of >= 2 samples each.
    - `layers`: number of AGOP + random-feature layers L >= 1.
    - `kernel`: ``"laplace"`` (default), ``"gaussian"`` or ``"linear"``; `bandwidth` > 0 (2.0 as in
      the paper); `ridge` >= 0 (0 = ridgeless, minimum-norm).
    - `width`: number of ReLU random features D; `feature_map`: ``"relu"`` (``ReLU(W z)``,
      ``W ~ N(0, 2/d)``) or ``"none"`` (no random features: ``X_{l+1} = M_l^{1/2} X_l``).
    - `key`: PRNG key of the random features.
    - `use_agop`: False replaces every ``M_l`` by the identity (random features alone; ablation).
    - `chunk_size`: training rows whose kernel gradients are held at once (memory ``chunk K d``).

    **Returns:** a :class:`DeepRFM`. Every layer runs through one jit-compiled program (the input is
    zero-padded to the feature width D when d < D; compiled a second time only when d > D).
    """
    X, Y, K = _prepare(X, y, None, "X")
    y = jnp.asarray(y)
    T = y.astype(X.dtype) if y.ndim == 2 else 2 * Y - 1
    if int(layers) != layers or layers < 1:
        raise ValueError(f"`layers` must be a positive integer; got {layers!r}.")
    if int(width) != width or width < 1:
        raise ValueError(f"`width` must be a positive integer; got {width!r}.")
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"`feature_map` must be one of {FEATURE_MAPS}; got {feature_map!r}.")
    bw = _check_kernel(kernel, bandwidth, X.dtype)
    ridge = as_scalar("ridge", ridge, X.dtype, strict=False)
    if np.any(np.linalg.norm(np.asarray(X), axis=1) == 0):
        raise ValueError("`X` must not contain all-zero rows (samples are normalised to unit norm).")
    chunk = _check_chunk(chunk_size, X.shape[0])
    d = X.shape[1]
    # zero-pad the input to the feature width (when it is wider), so every layer runs one program
    pad = max(int(width) - d, 0) if feature_map == "relu" else 0
    h = jnp.concatenate([X, jnp.zeros((X.shape[0], pad), X.dtype)], axis=1) if pad else X
    flag = jnp.asarray(bool(use_agop))
    Ms, roots, Ws, nc1s, nc2s = [], [], [], [], []
    for l in range(int(layers) + 1):
        in_dim = jnp.asarray(d if l == 0 else h.shape[1], X.dtype)
        last = jnp.asarray(l == int(layers))
        args = (h, T, Y, jr.fold_in(key, l), in_dim, bw, ridge, flag, last)
        (Xf, M, root, W, n1, n2), (Xn, alpha, acc) = _rfm_layer(*args, kernel, feature_map, int(width), chunk)
        if l == int(layers):
            break
        if l == 0 and pad:
            M, root, W = M[:d, :d], root[:d, :d], W[:, :d]
        h = Xf
        Ms.append(M)
        roots.append(root)
        Ws.append(W)
        nc1s.append(n1)
        nc2s.append(n2)
    nc1s, nc2s = jnp.stack(nc1s), jnp.stack(nc2s)
    return DeepRFM(
        *(nc1s[:, i] for i in range(3)),
        *(nc2s[:, i] for i in range(3)),
        tuple(Ms),
        tuple(roots),
        tuple(Ws),
        alpha,
        Xn,
        acc,
        bw,
        kernel,
        feature_map,
    )
