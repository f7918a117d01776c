"""AGOP and NFA: autodiff and closed forms vs analytic values and NumPy finite differences."""

import jax.numpy as jnp
import numpy as np
import pytest

from linsolve.analysis._agop import (
    agop,
    agop_linear,
    agop_shallow,
    layer_agops,
    layer_nfa,
    nfa_correlation,
    pearson,
    psd_sqrt,
)
from linsolve.mlp import MLP
from linsolve.models import ShallowNet

TOL = 1e-10


def _fd_agop(fn, X, h=1e-5):
    """AGOP from central finite differences of a NumPy map ``fn`` (m, d) -> (m, K)."""
    X = np.asarray(X)
    n, d = X.shape
    E = h * np.eye(d)
    J = np.stack([(fn(X + E[k]) - fn(X - E[k])) / (2 * h) for k in range(d)], axis=-1)  # (n, K, d)
    return np.einsum("nkd,nke->de", J, J) / n


def _relu(z):
    return np.maximum(z, 0.0)


def test_agop_of_linear_map_is_gram():
    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(3, 5)), rng.normal(size=(7, 5))
    Wj = jnp.asarray(W)
    for chunk in (None, 1, 3, 7, 100):  # 3 does not divide 7: padded, masked last chunk
        np.testing.assert_allclose(agop(lambda x: Wj @ x, X, chunk_size=chunk), W.T @ W, atol=TOL)
    np.testing.assert_allclose(_fd_agop(lambda Z: Z @ W.T, X), W.T @ W, atol=1e-8)


def test_agop_matches_finite_differences():
    rng = np.random.default_rng(1)
    A, B, X = rng.normal(size=(4, 3)), rng.normal(size=(2, 4)), rng.normal(size=(5, 3))
    Aj, Bj = jnp.asarray(A), jnp.asarray(B)
    fn = lambda x: Bj @ jnp.tanh(Aj @ x) + jnp.sum(x**3)
    ref = lambda Z: np.tanh(Z @ A.T) @ B.T + np.sum(Z**3, 1, keepdims=True)
    np.testing.assert_allclose(agop(fn, X, chunk_size=2), _fd_agop(ref, X), rtol=1e-7, atol=1e-8)
    # a scalar output is one row of the Jacobian
    g = lambda x: jnp.sin(x[0]) * x[1]
    np.testing.assert_allclose(agop(g, X), _fd_agop(lambda Z: np.sin(Z[:, :1]) * Z[:, 1:2], X), atol=1e-8)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_shallow_closed_form(activation):
    rng = np.random.default_rng(2)
    W1, b1, W2, b2 = (rng.normal(size=s) for s in ((6, 4), (6,), (3, 6), (3,)))
    X = rng.normal(size=(9, 4))
    act = np.tanh if activation == "tanh" else _relu
    net = ShallowNet(*(jnp.asarray(a) for a in (W1, b1, W2, b2)), activation)
    got = agop_shallow(net, X, output_scale=1.7)
    ref = lambda Z: 1.7 * (act(Z @ W1.T + b1) @ W2.T + b2)
    np.testing.assert_allclose(got, _fd_agop(ref, X), rtol=1e-7, atol=1e-7)
    # the sum form (1/N) sum_i W1^T D_i W2^T W2 D_i W1, written out
    z = X @ W1.T + b1
    D = 1 - np.tanh(z) ** 2 if activation == "tanh" else (z > 0).astype(float)
    brute = sum(W1.T @ np.diag(d) @ W2.T @ W2 @ np.diag(d) @ W1 for d in D) / 9
    np.testing.assert_allclose(got, 1.7**2 * brute, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer_agops(net, X, output_scale=1.7)[1], 1.7**2 * W2.T @ W2, atol=TOL)


def test_deep_linear_layer_agops():
    rng = np.random.default_rng(3)
    Ws = [rng.normal(size=s) for s in ((5, 4), (3, 5), (2, 3))]
    X = rng.normal(size=(6, 4))
    agops = layer_agops(tuple(jnp.asarray(W) for W in Ws), output_scale=0.5)
    h = X
    for l, M in enumerate(agops):

        def rest(Z, l=l):
            for W in Ws[l:]:
                Z = Z @ W.T
            return 0.5 * Z

        np.testing.assert_allclose(M, _fd_agop(rest, h), atol=1e-8)
        h = h @ Ws[l].T
    P = 0.5 * Ws[2] @ Ws[1] @ Ws[0]
    np.testing.assert_allclose(agop_linear(tuple(Ws), output_scale=0.5), P.T @ P, atol=TOL)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_mlp_layer_agops_match_finite_differences(batchnorm):
    rng = np.random.default_rng(4)
    sizes = (3, 5, 4, 2)
    Ws = [rng.normal(size=(m, n)) / np.sqrt(n) for n, m in zip(sizes[:-1], sizes[1:])]
    bs = [0.3 * rng.normal(size=m) for m in sizes[1:]]
    gam = [1 + 0.2 * rng.normal(size=m) for m in sizes[1:-1]]
    bet = [0.2 * rng.normal(size=m) for m in sizes[1:-1]]
    X = rng.normal(size=(8, 3))
    eps = 1e-5
    # forward pass in NumPy: layer inputs and (for BN) the full-batch statistics
    inputs, stats, h = [], [], X
    for l in range(3):
        inputs.append(h)
        z = h @ Ws[l].T + bs[l]
        if l < 2:
            if batchnorm:
                stats.append((z.mean(0), z.var(0)))
                z = gam[l] * (z - stats[l][0]) / np.sqrt(stats[l][1] + eps) + bet[l]
            h = _relu(z)

    def rest(Z, l):  # layer l's input -> output, statistics held fixed
        for j in range(l, 3):
            Z = Z @ Ws[j].T + bs[j]
            if j < 2:
                if batchnorm:
                    Z = gam[j] * (Z - stats[j][0]) / np.sqrt(stats[j][1] + eps) + bet[j]
                Z = _relu(Z)
        return Z

    j = lambda xs: tuple(jnp.asarray(x) for x in xs)
    net = MLP(j(Ws), j(bs), j(gam) if batchnorm else None, j(bet) if batchnorm else None, "relu", eps)
    got = layer_agops(net, X, chunk_size=3)
    for l in range(3):
        np.testing.assert_allclose(got[l], _fd_agop(lambda Z: rest(Z, l), inputs[l]), rtol=1e-6, atol=1e-8)


def test_psd_sqrt_and_pearson():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(6, 4))
    M = A @ A.T  # rank 4: two zero eigenvalues
    R = np.asarray(psd_sqrt(M))
    np.testing.assert_allclose(R @ R, M, atol=1e-10)
    np.testing.assert_allclose(R, R.T, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(R) > -1e-10)
    B = rng.normal(size=(3, 3))
    np.testing.assert_allclose(pearson(A[:3, :3], B), np.corrcoef(A[:3, :3].ravel(), B.ravel())[0, 1])
    np.testing.assert_allclose(pearson(M, 3.0 * M + 2.0), 1.0, rtol=1e-12)


def _train_two_layer(scale, seed):
    """Plain GD (NumPy) on the whitened teacher loss 1/2 |W2 W1 - Syx|_F^2, singular values 3, 2, 1."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    V, _ = np.linalg.qr(rng.normal(size=(5, 3)))
    Syx = U @ np.diag([3.0, 2.0, 1.0]) @ V.T
    W1, W2 = scale * rng.normal(size=(8, 5)), scale * rng.normal(size=(3, 8))
    for _ in range(800):
        G = W2 @ W1 - Syx
        W1, W2 = W1 - 0.05 * W2.T @ G, W2 - 0.05 * G @ W1.T
    assert np.abs(W2 @ W1 - Syx).max() < 1e-8
    return W1, W2


def test_nfa_balanced_two_layer_linear_net():
    # tiny init stays balanced (W2^T W2 = W1 W1^T up to the init), so AGOP = (W1^T W1)^2
    W1, W2 = _train_two_layer(1e-3, 6)
    M = agop_linear((W1, W2))
    rho = nfa_correlation(W1, M)
    assert rho > 1 - 1e-6
    assert float(nfa_correlation(W1, M, sqrt=False)) < float(rho)
    np.testing.assert_allclose(layer_nfa((W1, W2))[0], rho, rtol=1e-12)
    # a large (unbalanced) init keeps a memory of its random start
    V1, V2 = _train_two_layer(1.0, 7)
    assert nfa_correlation(V1, agop_linear((V1, V2))) < 0.99


def test_bad_input():
    W = jnp.ones((3, 5))
    with pytest.raises(ValueError, match="`X` must be a 2-D"):
        agop(lambda x: W @ x, np.ones(5))
    with pytest.raises(ValueError, match="`X` must be finite"):
        agop(lambda x: W @ x, np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="`chunk_size`"):
        agop(lambda x: W @ x, np.ones((2, 5)), chunk_size=0)
    with pytest.raises(ValueError, match="`fn` must be callable"):
        agop(W, np.ones((2, 5)))
    with pytest.raises(ValueError, match="`agop` must have shape"):
        nfa_correlation(W, np.eye(3))
    with pytest.raises(ValueError, match="`layer`"):
        agop_linear((W,), layer=1)
    with pytest.raises(ValueError, match="`X` is required"):
        layer_agops(MLP((W,), None, None, None))
    with pytest.raises(ValueError, match="`M` must be"):
        psd_sqrt(np.ones((2, 3)))


def test_float32_keeps_dtype():
    rng = np.random.default_rng(8)
    W, X = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(7, 5)).astype(np.float32)
    Wj = jnp.asarray(W)
    M = agop(lambda x: Wj @ x, X, chunk_size=3)
    assert M.dtype == jnp.float32
    np.testing.assert_allclose(M, W.T @ W, rtol=1e-5, atol=1e-5)
    assert nfa_correlation(Wj, M).dtype == jnp.float32


def test_normalization_conventions_of_reference_codes():
    """``"sum"``: Beaglehole et al.'s ``measure_agop`` (``grad.T @ grad`` of the stacked (N K, d)
    Jacobians); ``"max"``: the rfm package's ``M / M.max()``; both written out from finite
    differences."""
    rng = np.random.default_rng(11)
    A, B, X = rng.normal(size=(4, 3)), rng.normal(size=(2, 4)), rng.normal(size=(6, 3))
    Aj, Bj = jnp.asarray(A), jnp.asarray(B)
    fn = lambda x: Bj @ jnp.tanh(Aj @ x)
    h, d = 1e-5, 3
    E = h * np.eye(d)
    ref = lambda Z: np.tanh(Z @ A.T) @ B.T
    grad = np.stack([(ref(X + E[k]) - ref(X - E[k])) / (2 * h) for k in range(d)], axis=-1)  # (N, K, d)
    grad = grad.reshape(-1, d)
    summed = grad.T @ grad
    np.testing.assert_allclose(agop(fn, X, normalization="sum"), summed, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(agop(fn, X, normalization="max"), summed / summed.max(), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(agop(fn, X), summed / X.shape[0], rtol=1e-7, atol=1e-8)
    zero = agop(lambda x: jnp.zeros(2), X, normalization="max")  # a zero AGOP stays zero, no NaN
    np.testing.assert_array_equal(zero, 0.0)
    with pytest.raises(ValueError, match="`normalization`"):
        agop(fn, X, normalization="median")


def test_psd_sqrt_rejects_non_finite():
    with pytest.raises(ValueError, match="`M` must be finite"):
        psd_sqrt(np.full((2, 2), np.nan))
