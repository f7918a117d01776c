"""Linear probes, decision-region agreement and plane grids against independent references."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve.analysis._probes import (
    LinearProbe,
    agreement_matrix,
    fit_logistic_probe,
    fit_probe,
    plane,
    predict,
    probe_agreement,
    probe_agreement_matrix,
    triplet_planes,
)

N, D, K = 60, 5, 3


def _rng(seed):
    return np.random.default_rng(seed)


def _blobs(seed, n=N, d=D, k=K, sep=3.0):
    rng = _rng(seed)
    means = sep * rng.normal(size=(k, d))
    labels = np.arange(n) % k
    return means[labels] + rng.normal(size=(n, d)), labels


# --- agreement of probes ----------------------------------------------------------------------


def test_agreement_identical_rescaled_and_shifted_probes():
    rng = _rng(0)
    probe = LinearProbe(rng.normal(size=(K, D)), rng.normal(size=K))
    pts = 3.0 * rng.normal(size=(500, D))
    assert float(probe_agreement(probe, probe, pts)) == 1.0
    scaled = LinearProbe(2.7 * probe.W, 2.7 * probe.b)
    assert float(probe_agreement(probe, scaled, pts)) == 1.0
    # adding one vector (and one offset) to every class row leaves every argmax unchanged
    shifted = LinearProbe(probe.W + rng.normal(size=(1, D)), probe.b + 1.3)
    assert float(probe_agreement(probe, shifted, pts)) == 1.0
    # a different probe disagrees somewhere; the count is the brute-force one
    other = LinearProbe(rng.normal(size=(K, D)), rng.normal(size=K))
    ref = np.mean(np.argmax(pts @ probe.W.T + probe.b, 1) == np.argmax(pts @ other.W.T + other.b, 1))
    assert abs(float(probe_agreement(probe, other, pts)) - ref) < 1e-12
    assert ref < 1.0


@pytest.mark.parametrize("theta", [0.3, np.pi / 2, 2.5])
def test_binary_probes_at_angle_agree_on_one_minus_theta_over_pi(theta):
    g = np.linspace(-1, 1, 601)
    P = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    disk = P[np.sum(P**2, 1) <= 1.0]
    a = LinearProbe(np.array([[1.0, 0.0]]), np.zeros(1))
    b = LinearProbe(np.array([[np.cos(theta), np.sin(theta)]]), np.zeros(1))
    assert abs(float(probe_agreement(a, b, disk)) - (1 - theta / np.pi)) < 5e-3


def test_predict_accepts_callables():
    rng = _rng(1)
    probe = LinearProbe(rng.normal(size=(K, D)), rng.normal(size=K))
    pts = rng.normal(size=(500, D))
    logits_fn = lambda X: X @ probe.W.T + probe.b
    labels_fn = lambda X: np.argmax(X @ probe.W.T + probe.b, 1)
    assert np.array_equal(predict(logits_fn, pts), predict(probe, pts))
    assert float(probe_agreement(probe, labels_fn, pts)) == 1.0


# --- closed-form probes -----------------------------------------------------------------------


def test_least_squares_probe_matches_lstsq():
    X, labels = _blobs(2)
    Y = np.eye(K)[labels]
    A = np.concatenate([X, np.ones((N, 1))], 1)
    sol = np.linalg.lstsq(A, Y, rcond=None)[0]  # (D + 1, K)
    probe = fit_probe(X, labels)
    assert np.max(np.abs(np.asarray(probe.W) - sol[:D].T)) < 1e-10
    assert np.max(np.abs(np.asarray(probe.b) - sol[D])) < 1e-10
    assert float(jnp.mean(probe(X) == labels)) > 0.8


@pytest.mark.parametrize("p", [D, 80], ids=["p<n", "p>n"])
def test_ridge_probe_matches_normal_equations(p):
    rng = _rng(3)
    X = rng.normal(size=(N, p)) + 1.0
    labels = rng.integers(0, K, N)
    ridge = 0.7
    A = np.concatenate([X, np.ones((N, 1))], 1)
    pen = np.diag(np.r_[np.ones(p), 0.0])  # the bias is not penalised
    sol = np.linalg.solve(A.T @ A + ridge * pen, A.T @ np.eye(K)[labels])
    probe = fit_probe(X, labels, ridge=ridge)
    assert np.max(np.abs(np.asarray(probe.W) - sol[:p].T)) < 1e-9
    assert np.max(np.abs(np.asarray(probe.b) - sol[p])) < 1e-9


def test_ls_probes_on_linear_layers_have_the_input_decision_regions():
    X, labels = _blobs(4)
    rng = _rng(5)
    pts = 4.0 * rng.normal(size=(500, D))
    raw = fit_probe(X, labels)
    W = rng.normal(size=(9, D))  # a full-rank (wide) layer: the same regions as on the input
    layer = fit_probe(X @ W.T, labels)
    assert float(probe_agreement(raw, lambda Z: layer(Z @ W.T), pts)) == 1.0
    W4 = rng.normal(size=(2, D))  # a rank-2 bottleneck changes them
    low = fit_probe(X @ W4.T, labels)
    assert float(probe_agreement(raw, lambda Z: low(Z @ W4.T), pts)) < 0.99


def test_logistic_probe_minimises_the_regularised_cross_entropy():
    X, labels = _blobs(6, sep=6.0)
    wd = 0.1  # strongly convex: full-batch gradient descent converges to the unique minimiser
    probe = fit_logistic_probe(X, labels, steps=1500, lr=1.0, weight_decay=wd, optimizer="sgd")
    assert float(jnp.mean(probe(X) == labels)) == 1.0  # separable blobs
    W, b = np.asarray(probe.W), np.asarray(probe.b)
    mu = X.mean(0)
    scale = np.sqrt(np.mean(np.sum((X - mu) ** 2, 1)))
    theta = np.concatenate([(W * scale).ravel(), b + W @ mu])  # the standardised coordinates
    Z = (X - mu) / scale

    def loss(th):
        Wz, bz = th[: K * D].reshape(K, D), th[K * D :]
        logits = Z @ Wz.T + bz
        m = logits.max(1, keepdims=True)
        logp = logits - m - np.log(np.sum(np.exp(logits - m), 1, keepdims=True))
        return -np.mean(logp[np.arange(N), labels]) + 0.5 * wd * np.sum(Wz**2)

    eye = 1e-6 * np.eye(theta.size)
    grad = np.array([(loss(theta + e) - loss(theta - e)) / 2e-6 for e in eye])  # finite differences
    assert np.max(np.abs(grad)) < 1e-6


# --- planes through triplets ------------------------------------------------------------------


def test_plane_through_three_points():
    rng = _rng(7)
    x1, x2, x3 = rng.normal(size=(3, D))
    pl = plane(x1, x2, x3, resolution=11, margin=0.1)
    a, b = np.asarray(pl.a), np.asarray(pl.b)
    assert abs(a @ b) < 1e-12 and abs(a @ a - 1) < 1e-12 and abs(b @ b - 1) < 1e-12
    anchors = np.asarray(pl.anchors)
    for x, (al, be) in zip((x1, x2, x3), anchors):
        assert np.max(np.abs(x1 + al * a + be * b - x)) < 1e-12
    coords = np.asarray(pl.coords)
    assert coords.shape == (121, 2) and pl.points.shape == (121, D)
    lo, hi = anchors.min(0), anchors.max(0)
    assert np.allclose(coords.min(0), lo - 0.1 * (hi - lo)) and np.allclose(
        coords.max(0), hi + 0.1 * (hi - lo)
    )
    assert np.max(np.abs(np.asarray(pl.points) - (x1 + coords[:, :1] * a + coords[:, 1:] * b))) < 1e-12


def test_triplet_planes_use_three_classes():
    X, labels = _blobs(8)
    planes = triplet_planes(jr.PRNGKey(0), X, labels, n_planes=4, resolution=5)
    assert planes.points.shape == (4, 25, D)
    # every anchor is a training input, and the three come from three different classes
    for o, a, b, anc in zip(planes.origin, planes.a, planes.b, planes.anchors):
        xs = np.asarray(o) + np.asarray(anc[:, :1]) * np.asarray(a) + np.asarray(anc[:, 1:]) * np.asarray(b)
        idx = [int(np.argmin(np.sum((X - x) ** 2, 1))) for x in xs]
        assert np.max(np.abs(X[idx] - xs)) < 1e-10
        assert len(set(labels[idx].tolist())) == 3


# --- epoch-by-epoch matrices ------------------------------------------------------------------


def test_agreement_matrix_brute_force():
    preds = _rng(9).integers(0, 3, size=(6, 4, 25))
    D_ = np.asarray(agreement_matrix(preds))
    ref = np.array([[np.mean(preds[i] == preds[j]) for j in range(6)] for i in range(6)])
    assert np.max(np.abs(D_ - ref)) < 1e-6


def test_probe_agreement_matrix_matches_pairwise_probes():
    X, labels = _blobs(10)
    rng = _rng(11)
    pts = 3.0 * rng.normal(size=(500, D))  # any evaluation points (e.g. plane grids)
    Ws = [rng.normal(size=(4, D)) for _ in range(3)] + [np.diag([1.0, 1, 0, 0, 0])[:4]]
    train = np.stack([X @ W.T for W in Ws])
    point_reps = np.stack([pts @ W.T for W in Ws])
    Dm = np.asarray(probe_agreement_matrix(train, labels, point_reps))
    probes = [fit_probe(train[t], labels) for t in range(len(Ws))]
    preds = [np.asarray(probes[t](point_reps[t])) for t in range(len(Ws))]
    ref = np.array([[np.mean(pi == pj) for pj in preds] for pi in preds])
    assert np.max(np.abs(Dm - ref)) < 1e-6
    assert np.allclose(np.diagonal(Dm), 1.0)
    assert np.min(Dm) < 1.0  # the rank-2 snapshot differs


# --- bad input --------------------------------------------------------------------------------


def test_errors():
    X, labels = _blobs(12)
    with pytest.raises(ValueError, match="labels"):
        fit_probe(X, labels[:-1])
    with pytest.raises(ValueError, match="labels"):
        fit_probe(X, labels.astype(float))
    with pytest.raises(ValueError, match="num_classes"):
        fit_probe(X, labels, num_classes=2)
    with pytest.raises(ValueError, match="ridge"):
        fit_probe(X, labels, ridge=-1.0)
    with pytest.raises(ValueError, match="collinear"):
        plane(X[0], X[1], 2 * X[1] - X[0])
    with pytest.raises(ValueError, match="points"):
        probe_agreement(fit_probe(X, labels), fit_probe(X, labels), np.zeros((0, D)))
    with pytest.raises(ValueError, match="point_reps"):
        probe_agreement_matrix(X[None], labels, np.zeros((2, 10, D)))
    with pytest.raises(ValueError, match="steps"):
        fit_logistic_probe(X, labels, steps=0)
