"""Deep RFM: kernel gradients vs finite differences, exact one-layer collapse, NC1 over depth."""

import numpy as np
import pytest

from linsolve.analysis._rfm import deep_rfm, kernel_agop, kernel_gradients, kernel_matrix


def _np_kernel(A, B, kernel, bw):
    d2 = np.sum((A[:, None, :] - B[None, :, :]) ** 2, -1)
    if kernel == "laplace":
        return np.exp(-np.sqrt(d2) / bw)
    if kernel == "gaussian":
        return np.exp(-d2 / (2 * bw**2))
    return A @ B.T


def _fd_grad(f, x, h=1e-6):
    """(K, d) central-difference Jacobian of a NumPy map (d,) -> (K,)."""
    E = h * np.eye(x.shape[0])
    return np.stack([(f(x + e) - f(x - e)) / (2 * h) for e in E], axis=-1)


@pytest.mark.parametrize("kernel", ["laplace", "gaussian", "linear"])
def test_kernel_gradients_match_finite_differences(kernel):
    rng = np.random.default_rng(0)
    X, alpha, Xe = rng.normal(size=(12, 4)), rng.normal(size=(12, 3)), rng.normal(size=(5, 4))
    bw = 1.5
    np.testing.assert_allclose(
        kernel_matrix(Xe, X, kernel=kernel, bandwidth=bw), _np_kernel(Xe, X, kernel, bw)
    )
    f = lambda x: _np_kernel(x[None], X, kernel, bw)[0] @ alpha
    got = kernel_gradients(Xe, X, alpha, kernel=kernel, bandwidth=bw)
    for i in range(5):
        np.testing.assert_allclose(got[i], _fd_grad(f, Xe[i]), rtol=1e-6, atol=1e-8)
    # at a training point x_i, the j = i term is dropped (Laplace: it is not differentiable there)
    at_train = kernel_gradients(X, X, alpha, kernel=kernel, bandwidth=bw)
    for i in (0, 7):
        keep = np.arange(12) != i
        if kernel == "linear":  # the gradient is the constant sum_j alpha_j x_j
            f_i = f
        else:
            f_i = lambda x, keep=keep: _np_kernel(x[None], X[keep], kernel, bw)[0] @ alpha[keep]
        np.testing.assert_allclose(at_train[i], _fd_grad(f_i, X[i]), rtol=1e-6, atol=1e-8)
    # the AGOP is the average of J^T J over the training points
    J = np.asarray(at_train)
    M = kernel_agop(X, alpha, kernel=kernel, bandwidth=bw, chunk_size=5)
    np.testing.assert_allclose(M, np.einsum("nkd,nke->de", J, J) / 12, rtol=1e-10, atol=1e-12)


def _mixture(n, d, k, seed, separation=3.0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d))
    means = separation * means / np.linalg.norm(means, axis=1, keepdims=True)
    labels = np.arange(n) % k
    return means[labels] + rng.normal(size=(n, d)), labels


def test_linear_kernel_collapses_in_one_layer(getkey):
    # d = 60 >= N = 40, ridgeless: the linear predictor interpolates, M = beta beta^T, and
    # (M^{1/2} x_i).(M^{1/2} x_j) = y_i . y_j
    X, labels = _mixture(40, 60, 4, 1)
    model = deep_rfm(X, labels, layers=1, kernel="linear", feature_map="none", key=getkey())
    assert float(model.nc1_agop[0]) < 1e-12
    assert float(model.nc2_agop[0]) < 1e-6
    assert float(model.nc1_input[0]) > 0.1
    Z = np.asarray(model.layers(X)[0][1])
    Y = 2 * np.eye(4)[labels] - 1
    np.testing.assert_allclose(Z @ Z.T, Y @ Y.T, atol=1e-8)
    assert float(model.train_accuracy) == 1.0


def test_laplace_deep_rfm_collapses_over_depth(getkey):
    X, labels = _mixture(60, 12, 3, 2)
    model = deep_rfm(X, labels, layers=4, width=256, key=getkey())
    n1 = np.asarray(model.nc1_input)
    assert np.all(np.diff(n1) < 0), n1  # NC1 decreases monotonically over layers
    assert n1[-1] < 0.1 * n1[0]
    # within each layer the AGOP projection lowers NC1 and the ReLU random features raise it
    assert np.all(np.asarray(model.nc1_agop) < n1)
    assert np.all(np.asarray(model.nc1_features) > np.asarray(model.nc1_agop))
    assert len(model.agops) == 4 and model.agops[0].shape == (12, 12) and model.agops[1].shape == (256, 256)
    R = np.asarray(model.sqrt_agops[1])
    np.testing.assert_allclose(R @ R, model.agops[1], atol=1e-8)
    # the fitted model reproduces its labels on the training points
    pred = model(X)
    assert np.mean(np.argmax(np.asarray(pred), 1) == labels) == float(model.train_accuracy) == 1.0
    # without the AGOP (M = I), random features alone do not collapse the data
    plain = deep_rfm(X, labels, layers=4, width=256, key=getkey(), use_agop=False)
    assert float(plain.nc1_input[-1]) > 0.5 * float(plain.nc1_input[0])


def test_bad_input(getkey):
    X, labels = _mixture(12, 3, 3, 3)
    key = getkey()
    with pytest.raises(ValueError, match="`kernel`"):
        deep_rfm(X, labels, layers=1, kernel="cauchy", key=key)
    with pytest.raises(ValueError, match="`bandwidth` must be positive"):
        deep_rfm(X, labels, layers=1, bandwidth=0.0, key=key)
    with pytest.raises(ValueError, match="`ridge` must be non-negative"):
        deep_rfm(X, labels, layers=1, ridge=-1.0, key=key)
    with pytest.raises(ValueError, match="`layers`"):
        deep_rfm(X, labels, layers=0, key=key)
    with pytest.raises(ValueError, match="`feature_map`"):
        deep_rfm(X, labels, layers=1, feature_map="cos", key=key)
    with pytest.raises(ValueError, match="at least 2 classes"):
        deep_rfm(X, np.zeros(12, int), layers=1, key=key)
    with pytest.raises(ValueError, match="at least 2 samples"):
        deep_rfm(X, np.r_[np.zeros(11, int), 1], layers=1, key=key)
    with pytest.raises(ValueError, match="`labels` must have length n=12"):
        deep_rfm(X, labels[:5], layers=1, key=key)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="`X` must be finite"):
        deep_rfm(bad, labels, layers=1, key=key)
    with pytest.raises(ValueError, match="all-zero rows"):
        deep_rfm(np.zeros_like(X), labels, layers=1, key=key)
    with pytest.raises(ValueError, match="`alpha` must have shape"):
        kernel_agop(X, np.ones((5, 2)))


def test_kernel_agop_normalizations():
    """``"max"`` is the rfm package's ``M / M.max()`` of the summed outer products of the kernel
    gradients (dropping the j = i term), ``"sum"`` the sum itself."""
    rng = np.random.default_rng(5)
    X, alpha = rng.normal(size=(10, 4)), rng.normal(size=(10, 2))
    J = np.asarray(kernel_gradients(X, X, alpha, kernel="laplace", bandwidth=2.0))  # tested vs FD above
    summed = np.einsum("nkd,nke->de", J, J)
    got = kernel_agop(X, alpha, kernel="laplace", bandwidth=2.0, normalization="max")
    np.testing.assert_allclose(got, summed / summed.max(), rtol=1e-10, atol=1e-12)
    got = kernel_agop(X, alpha, kernel="laplace", bandwidth=2.0, normalization="sum")
    np.testing.assert_allclose(got, summed, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="`normalization`"):
        kernel_agop(X, alpha, normalization="none")
