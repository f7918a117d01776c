"""Neural-collapse metrics vs analytic values and NumPy brute force; per-layer NC1 along training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsolve.analysis._collapse import (
    collapse_along_training,
    collapse_metrics,
    layer_collapse,
    nc1,
    nc2,
    nc3,
    nc4,
)
from linsolve.mlp import MLP
from linsolve.simulate import Trajectory


def _brute(F, labels):
    """tr Sigma_W, tr Sigma_B, Papyan NC1 and NC2 with explicit class loops (NumPy)."""
    classes = np.unique(labels)
    K, N = len(classes), F.shape[0]
    means = np.stack([F[labels == c].mean(0) for c in classes])
    SW = sum(np.outer(x - means[k], x - means[k]) for k, c in enumerate(classes) for x in F[labels == c]) / N
    mbar = means.mean(0)
    SB = sum(np.outer(m - mbar, m - mbar) for m in means) / K
    M = (means - mbar) / np.linalg.norm(means - mbar, axis=1, keepdims=True)
    etf = (1 + 1 / (K - 1)) * np.eye(K) - np.ones((K, K)) / (K - 1)
    return np.trace(SW), np.trace(SB), np.trace(SW @ np.linalg.pinv(SB)) / K, np.linalg.norm(M @ M.T - etf)


@pytest.fixture
def imbalanced():
    rng = np.random.default_rng(0)
    labels = np.repeat([2, 5, 9], [4, 11, 7])  # unsorted class values, imbalanced
    rng.shuffle(labels)
    F = rng.normal(size=(3, 6))[np.searchsorted([2, 5, 9], labels)] * 2 + rng.normal(size=(22, 6))
    return F, labels


def test_metrics_match_brute_force(imbalanced):
    F, labels = imbalanced
    trW, trB, papyan, etf = _brute(F, labels)
    np.testing.assert_allclose(nc1(F, labels), trW / trB, rtol=1e-12)
    np.testing.assert_allclose(nc1(F, labels, kind="papyan"), papyan, rtol=1e-9)
    np.testing.assert_allclose(nc2(F, labels), etf, rtol=1e-12)
    np.testing.assert_allclose(nc2(F, labels, norm="mean_square"), etf**2 / 9, rtol=1e-12)
    m = collapse_metrics(F, labels)
    np.testing.assert_allclose(m.within_total + m.between_total, 1.0, rtol=1e-12)
    np.testing.assert_allclose(m.within_total, trW / (trW + trB), rtol=1e-12)
    # integer labels, +-1 one-hot targets and one-hot targets name the same classes
    idx = np.searchsorted([2, 5, 9], labels)
    onehot = np.eye(3)[idx]
    np.testing.assert_allclose(nc1(F, 2 * onehot - 1), trW / trB, rtol=1e-12)
    np.testing.assert_allclose(nc2(F, onehot), etf, rtol=1e-12)
    # NC4 by brute force: classifier decision vs nearest class centre
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    means = np.stack([F[idx == k].mean(0) for k in range(3)])
    ncc = np.argmin(((F[:, None, :] - means[None]) ** 2).sum(-1), 1)
    np.testing.assert_allclose(nc4(F, labels, W, b), np.mean(np.argmax(F @ W.T + b, 1) != ncc))


@pytest.mark.parametrize("counts", [(5, 5, 5, 5), (2, 9, 3, 6)])
def test_collapsed_features_score_zero(counts):
    K = len(counts)
    labels = np.repeat(np.arange(K), counts)
    for means in (np.eye(K), 2 * np.eye(K) - 1, np.eye(K) @ np.random.default_rng(2).normal(size=(K, 7))):
        F = means[labels] + 3.0  # a shift changes nothing
        assert float(nc1(F, labels)) < 1e-24
        assert float(nc1(F, labels, kind="papyan")) < 1e-24
        C = means - means.mean(0)
        assert float(nc3(F, labels, 0.5 * C)) < 1e-24
        # the nearest-class-centre rule as a linear classifier: W = mu_c, b = -|mu_c|^2 / 2
        mu = means + 3.0
        assert float(nc4(F, labels, mu, -0.5 * np.sum(mu**2, 1))) == 0.0
    # one-hot and +-1 one-hot means, centred, are a simplex ETF
    assert float(nc2(np.eye(K)[labels], labels)) < 1e-14
    assert float(nc2((2 * np.eye(K) - 1)[labels], labels)) < 1e-14


def test_isotropic_noise_population_value():
    rng = np.random.default_rng(3)
    K, D, n, s = 4, 10, 2500, 0.5
    means = 2.0 * rng.normal(size=(K, D))
    labels = np.repeat(np.arange(K), n)
    F = means[labels] + s * rng.normal(size=(K * n, D))
    C = means - means.mean(0)
    trB = np.sum(C**2) / K
    np.testing.assert_allclose(nc1(F, labels), s**2 * D / trB, rtol=0.03)
    SB = C.T @ C / K
    np.testing.assert_allclose(
        nc1(F, labels, kind="papyan"), s**2 * np.trace(np.linalg.pinv(SB)) / K, rtol=0.05
    )


def test_nc1_invariant_to_orthonormal_maps(imbalanced):
    F, labels = imbalanced
    rng = np.random.default_rng(4)
    W = rng.normal(size=(9, 6))  # wide: U has orthonormal columns
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    np.testing.assert_allclose(nc1(F @ W.T, labels), nc1((F @ Vt.T) * S, labels), rtol=1e-10)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    np.testing.assert_allclose(nc1(F @ Q, labels), nc1(F, labels), rtol=1e-10)


def _mlp_and_data():
    rng = np.random.default_rng(5)
    sizes = (4, 9, 7, 3)
    Ws = tuple(jnp.asarray(rng.normal(size=(m, n)) / np.sqrt(n)) for n, m in zip(sizes[:-1], sizes[1:]))
    bs = tuple(jnp.asarray(0.1 * rng.normal(size=m)) for m in sizes[1:])
    labels = np.arange(30) % 3
    X = rng.normal(size=(3, 4))[labels] + 0.7 * rng.normal(size=(30, 4))
    return MLP(Ws, bs, None, None, "relu"), X, labels


def test_layer_collapse_mlp():
    net, X, labels = _mlp_and_data()
    Xn = np.asarray(X)
    out = layer_collapse(net, X, labels)
    # NumPy forward pass, independent of MLP.layers
    ratio = lambda F: _brute(F, labels)[0] / _brute(F, labels)[1]
    h = Xn
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        W, b = np.asarray(W), np.asarray(b)
        np.testing.assert_allclose(out.input[l], ratio(h), rtol=1e-10)
        z = h @ W.T + b
        np.testing.assert_allclose(out.pre[l], ratio(z), rtol=1e-10)
        h = np.maximum(z, 0) if l < 2 else z
        np.testing.assert_allclose(out.post[l], ratio(h), rtol=1e-10)
    # NC1 after S V^T equals NC1 after W (no batch norm: the pre-activation, up to the bias)
    np.testing.assert_allclose(out.svd, out.pre, rtol=1e-10)
    np.testing.assert_allclose(out.post[:-1], out.input[1:], rtol=1e-12)
    assert np.all((np.asarray(out.nfa) > -1) & (np.asarray(out.nfa) < 1))


def _deep_linear_run(X, Y, rng):
    """GD (NumPy) on 1/2 mean |W3 W2 W1 x - y|^2 from a small random init, recorded at 0, 10, 300."""
    Ws = [0.3 * rng.normal(size=s) for s in ((6, 5), (6, 6), (3, 6))]
    records = []
    for step in range(301):
        if step in (0, 10, 300):
            records.append([W.copy() for W in Ws])
        G = (X @ Ws[0].T @ Ws[1].T @ Ws[2].T - Y).T @ X / X.shape[0]  # dL/dP
        grads = [(Ws[2] @ Ws[1]).T @ G, Ws[2].T @ G @ Ws[0].T, G @ (Ws[1] @ Ws[0]).T]
        Ws = [W - 0.02 * g for W, g in zip(Ws, grads)]
    params = tuple(jnp.asarray(np.stack(Wt)) for Wt in zip(*records))
    z = jnp.zeros(())
    return Trajectory(ts=jnp.array([0.0, 10.0, 300.0]), params=params, loss=jnp.zeros(3),
                      status=jnp.zeros((), jnp.int32), diverged=z > 0, diverged_at=z, observables={},
                      output_scale=z + 1, stats={})


def test_collapse_along_training_deep_linear():
    rng = np.random.default_rng(6)
    labels = np.arange(24) % 3
    X = 3 * rng.normal(size=(3, 5))[labels] + rng.normal(size=(24, 5))
    traj = _deep_linear_run(X, 2 * np.eye(3)[labels] - 1, rng)
    out = collapse_along_training(traj, X, labels)
    assert out.input.shape == (3, 3)
    ratio = lambda F: _brute(F, labels)[0] / _brute(F, labels)[1]
    for t in range(3):
        Ws = [np.asarray(W[t]) for W in traj.params]
        h = X
        for l, W in enumerate(Ws):
            np.testing.assert_allclose(out.input[t, l], ratio(h), rtol=1e-10)
            h = h @ W.T
            np.testing.assert_allclose(out.pre[t, l], ratio(h), rtol=1e-10)
        # NFA against the closed-form AGOP of layer 2's input, (W3 W2)^T (W3 W2), in NumPy
        A = Ws[2] @ Ws[1]
        lam, V = np.linalg.eigh(A.T @ A)
        R = (V * np.sqrt(np.clip(lam, 0, None))) @ V.T
        G = Ws[1].T @ Ws[1]
        np.testing.assert_allclose(out.nfa[t, 1], np.corrcoef(G.ravel(), R.ravel())[0, 1], rtol=1e-8)
    # linear layers: the input of layer l+1 is the output of layer l, and pre == post == svd
    np.testing.assert_allclose(out.post, out.pre, rtol=1e-12)
    np.testing.assert_allclose(out.svd, out.pre, rtol=1e-9)
    np.testing.assert_allclose(out.input[:, 1:], out.post[:, :-1], rtol=1e-12)
    # training reduces NC1 at the output
    assert float(out.post[-1, -1]) < float(out.post[0, -1])


def test_traced_labels_need_num_classes():
    F = np.random.default_rng(7).normal(size=(8, 3))
    labels = np.arange(8) % 2
    f = jax.jit(lambda F, y: nc1(F, y, num_classes=2))
    np.testing.assert_allclose(f(F, labels), nc1(F, labels), rtol=1e-12)
    with pytest.raises(ValueError, match="`num_classes` is required"):
        jax.jit(lambda F, y: nc1(F, y))(F, labels)


def test_bad_input():
    F = np.ones((6, 3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        nc1(F, np.zeros(6, int))
    with pytest.raises(ValueError, match="at least 2 samples"):
        nc1(F, np.array([0, 0, 0, 1, 1, 2]))
    with pytest.raises(ValueError, match="`labels` must have length n=6"):
        nc2(F, np.zeros(5, int))
    bad = F.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="`features` must be finite"):
        nc1(bad, np.arange(6) % 2)
    with pytest.raises(ValueError, match="`features` must be a 2-D"):
        nc1(np.ones(6), np.arange(6) % 2)
    with pytest.raises(ValueError, match="`kind`"):
        nc1(F, np.arange(6) % 2, kind="trace_ratio")
    with pytest.raises(ValueError, match="integer class"):
        nc1(F, np.arange(6) % 2 + 0.5)
    with pytest.raises(ValueError, match="`classifier` must have shape"):
        nc3(F, np.arange(6) % 2, np.ones((3, 3)))
    with pytest.raises(ValueError, match="num_classes"):
        nc1(F, np.arange(6) % 2, num_classes=1)
    with pytest.raises(ValueError, match=r"`X` must have shape \(n, d_in=4\)"):
        layer_collapse(_mlp_and_data()[0], F, np.arange(6) % 2)


def _beaglehole_code_nc(X, y_onehot, num_classes):
    """NC1 and NC2 as Beaglehole et al.'s scripts compute them (``get_class_variance`` with
    ``SigmaW /= (NUM_CLASSES * n)``, n the TOTAL sample count; ``get_NC2_from_means`` = mean of the
    squared entries), transcribed to NumPy."""
    n = X.shape[0]
    cls = np.argmax(y_onehot, axis=1)
    embeddings = [X[cls == c] for c in range(num_classes)]
    class_means = np.stack([Xc.mean(axis=0) for Xc in embeddings])
    muG = class_means.mean(axis=0)[None]
    SigmaB = (class_means - muG).T @ (class_means - muG) / num_classes
    SigmaW = sum((Xc - class_means[c]).T @ (Xc - class_means[c]) for c, Xc in enumerate(embeddings))
    SigmaW = SigmaW / (num_classes * n)
    u = class_means - muG
    u = u / np.linalg.norm(u, axis=1)[:, None]
    K = num_classes
    simplex = np.eye(K) * (1 + 1 / (K - 1)) - np.ones((K, K)) / (K - 1)
    return np.trace(SigmaW) / np.trace(SigmaB), np.mean((u @ u.T - simplex) ** 2)


def test_conventions_of_beaglehole_code(imbalanced):
    """Default NC1 is K times the code's value (``normalization="beaglehole_code"`` matches it);
    the code's NC2 is ``norm="mean_square"``; Papyan's NC1 is tr(Sigma_W Sigma_B^+)/K."""
    F, labels = imbalanced
    K = 3
    onehot = np.eye(K)[np.searchsorted([2, 5, 9], labels)]
    code_nc1, code_nc2 = _beaglehole_code_nc(F, 2 * onehot - 1, K)
    np.testing.assert_allclose(nc1(F, labels, normalization="beaglehole_code"), code_nc1, rtol=1e-12)
    np.testing.assert_allclose(nc1(F, labels), K * code_nc1, rtol=1e-12)
    np.testing.assert_allclose(nc2(F, labels, norm="mean_square"), code_nc2, rtol=1e-12)
    # Papyan et al.: Sw = (1/N) sum, Sb = (1/K) sum, NC1 = trace(Sw pinv(Sb)) / K.
    classes = np.searchsorted([2, 5, 9], labels)
    means = np.stack([F[classes == c].mean(0) for c in range(K)])
    Sb = np.cov((means - means.mean(0)).T, bias=True)
    Sw = sum(np.outer(f - means[c], f - means[c]) for f, c in zip(F, classes)) / F.shape[0]
    papyan = np.trace(Sw @ np.linalg.pinv(Sb)) / K
    np.testing.assert_allclose(nc1(F, labels, kind="papyan"), papyan, rtol=1e-9)
    np.testing.assert_allclose(nc1(F, labels, kind="papyan", normalization="beaglehole_code"), papyan / K,
                               rtol=1e-9)
    with pytest.raises(ValueError, match="`normalization`"):
        nc1(F, labels, normalization="code")


def test_undefined_metrics_raise():
    rng = np.random.default_rng(7)
    labels = np.arange(12) % 3
    order = np.argsort(labels, kind="stable")
    F = np.empty((12, 2))
    F[order] = np.tile(rng.normal(size=(4, 2)), (3, 1))  # every class holds the same 4 points
    for fn in (nc1, nc2, lambda F, y: nc1(F, y, kind="papyan")):
        with pytest.raises(ValueError, match="identical class means"):
            fn(F, labels)
    # Three classes, the middle one's mean at the average of the means: NC2 undefined, NC1 fine.
    G = np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])[labels] + 0.1 * rng.normal(size=(12, 2))
    G -= np.stack([G[labels == c].mean(0) for c in range(3)])[labels]  # exact class means ...
    G += np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])[labels]  # ... -1, 0, 1 on the first axis
    assert np.isfinite(float(nc1(G, labels)))
    with pytest.raises(ValueError, match="class 1 .* normalised direction"):
        nc2(G, labels)
    with pytest.raises(ValueError, match="`classifier` is zero"):
        nc3(G, labels, np.zeros((3, 2)))
