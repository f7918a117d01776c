"""Koopman spectra (time-delay DMD), spectral distance, conjugacy test (Redman et al. 2024).

References are independent of the code under test: eigenvalues of known linear maps, the GD
linearisation ``1 - eta lambda(H)``, brute force over permutations, and the exact outcome of the
shuffle test for well-separated sets.
"""

import importlib.util
import itertools
import pathlib

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import Task, models, simulate, tasks
from linsolve.analysis._assignment import linear_sum_assignment
from linsolve.analysis._koopman import (
    conjugacy_test,
    dmd,
    ensemble_observables,
    match_spectra,
    output_weights,
    pca,
    perturbed_ensemble,
    seed_baseline,
    snapshot_pairs,
    spectral_distance,
    time_delay,
)
from linsolve.analysis._wasserstein import uniform_wasserstein
from linsolve.mlp import mlp_init

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _iterate(A, x0, steps):
    """Trajectories of ``x_{t+1} = A x_t`` from the columns of ``x0``: (steps, D, N)."""
    X = np.empty((steps,) + x0.shape)
    X[0] = x0
    for t in range(1, steps):
        X[t] = A @ X[t - 1]
    return X


def _random_orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


# ------------------------------------------------------------------------------ embedding / DMD


def test_time_delay_and_snapshot_layout():
    X = np.arange(2 * 6 * 3, dtype=float).reshape(6, 2, 3)
    Z = time_delay(X, 2)
    assert Z.shape == (4, 6, 3)
    for t, n, d in itertools.product(range(4), range(3), range(3)):
        np.testing.assert_array_equal(Z[t, 2 * d : 2 * d + 2, n], X[t + d, :, n])
    Zm, Zp = snapshot_pairs(Z)
    assert Zm.shape == Zp.shape == (6, 9)
    np.testing.assert_array_equal(Zm[:, 3:6], Z[:3, :, 1].T)  # trajectory 1, times 0..2
    np.testing.assert_array_equal(Zp[:, 3:6], Z[1:, :, 1].T)


@pytest.mark.parametrize("delays", [0, 1, 3])
def test_dmd_recovers_eigenvalues_of_linear_map(delays):
    A = np.array([[0.9, 0.2], [0.0, 0.7]])
    X = _iterate(A, np.random.default_rng(0).normal(size=(2, 4)), 25)
    eigs, modes = dmd(X, delays=delays, return_modes=True)
    np.testing.assert_allclose(eigs, [0.9, 0.7], atol=1e-12)
    if delays == 0:  # exact DMD modes are the eigenvectors of A
        np.testing.assert_allclose(A @ modes, modes * eigs, atol=1e-12)
    # Delay blocks of a mode are lambda^d times its first block.
    for d in range(1, delays + 1):
        np.testing.assert_allclose(modes[2 * d : 2 * d + 2], modes[:2] * eigs**d, atol=1e-10)


def test_dmd_complex_pair_of_rotation():
    theta, r = 0.3, 0.95
    A = r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    X = _iterate(A, np.random.default_rng(1).normal(size=(2, 3)), 30)
    eigs = dmd(X, delays=2)
    np.testing.assert_allclose(np.sort_complex(eigs), r * np.exp([-1j * theta, 1j * theta]), atol=1e-12)


def test_gd_on_quadratic_gives_one_minus_eta_lambda():
    # (a) the textbook diagonal case, (b) a random SPD Hessian run through linsolve's simulator:
    # a one-layer "deep linear" net on Sxx = H, Syx = 0 is GD on 1/2 w^T H w.
    H, eta = np.diag([1.0, 3.0, 10.0]), 0.05
    X = _iterate(np.eye(3) - eta * H, np.random.default_rng(2).normal(size=(3, 5)), 40)
    np.testing.assert_allclose(np.sort(dmd(X, delays=0).real), np.sort(1 - eta * np.diag(H)), atol=1e-12)

    rng = np.random.default_rng(3)
    B = rng.normal(size=(4, 4))
    H = B @ B.T / 4 + 0.2 * np.eye(4)
    eta = 1.0 / np.linalg.eigvalsh(H).max()
    task = Task(jnp.asarray(H), jnp.zeros((1, 4)), jnp.zeros((1, 1)))
    w0 = jnp.asarray(rng.normal(size=(6, 1, 4)))
    run = jax.vmap(lambda w: simulate.gradient_descent((w,), task, lrs=eta, steps=30))
    traj = run(w0)
    eigs = dmd(traj, delays=0)  # a vmapped Trajectory; observable: all parameters
    np.testing.assert_array_equal(eigs, dmd(traj, delays=0, observable=output_weights))
    np.testing.assert_array_equal(eigs, dmd([traj], delays=0))
    np.testing.assert_allclose(np.sort(eigs.real), np.sort(1 - eta * np.linalg.eigvalsh(H)), atol=1e-10)
    assert np.max(np.abs(eigs.imag)) < 1e-12


def test_gd_rotated_coordinates_is_conjugate_and_step_change_is_not():
    rng = np.random.default_rng(4)
    H, eta = np.diag([1.0, 3.0, 10.0]), 0.05
    Q = _random_orthogonal(rng, 3)
    x0 = rng.normal(size=(3, 6))
    X = _iterate(np.eye(3) - eta * H, x0, 40)
    Y = _iterate(np.eye(3) - eta * Q.T @ H @ Q, Q.T @ x0, 40)  # simulated in the new coordinates
    assert spectral_distance(dmd(X, delays=0), dmd(Y, delays=0)) < 1e-12
    X2 = _iterate(np.eye(3) - 0.08 * H, x0, 40)
    expected = np.mean(np.abs((0.08 - 0.05) * np.diag(H)))  # 1-D sets: monotone matching
    assert spectral_distance(dmd(X, delays=0), dmd(X2, delays=0)) == pytest.approx(expected, abs=1e-12)


def _two_layer_gd(W1, W2, Sxx, Syx, lr, steps):
    """Plain NumPy GD on L = 1/2 tr(P Sxx P^T) - tr(Syx P^T), P = W2 W1: (steps, n_params, N)."""
    out = []
    for _ in range(steps):
        out.append(np.concatenate([W1.reshape(len(W1), -1), W2.reshape(len(W2), -1)], axis=1))
        G = W2 @ W1 @ Sxx - Syx  # dL/dP, batched over the ensemble
        W1, W2 = W1 - lr * np.swapaxes(W2, 1, 2) @ G, W2 - lr * G @ np.swapaxes(W1, 1, 2)
    return np.stack(out).transpose(0, 2, 1)


def test_two_layer_linear_net_orthogonal_reparametrisation():
    # GD commutes with (W1, W2) -> (R W1, W2 R^T): the two ensembles are linearly conjugate.
    rng = np.random.default_rng(6)
    Sxx, Syx = np.eye(3), np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    W1 = 0.5 * rng.normal(size=(4, 3)) * (1 + 0.1 * rng.uniform(-1, 1, size=(6, 4, 3)))
    W2 = 0.5 * rng.normal(size=(2, 4)) * (1 + 0.1 * rng.uniform(-1, 1, size=(6, 2, 4)))
    R = _random_orthogonal(rng, 4)
    e = dmd(_two_layer_gd(W1, W2, Sxx, Syx, 0.1, 60), delays=1, rank=8)
    e_rot = dmd(_two_layer_gd(R @ W1, W2 @ R.T, Sxx, Syx, 0.1, 60), delays=1, rank=8)
    e_lr = dmd(_two_layer_gd(W1, W2, Sxx, Syx, 0.15, 60), delays=1, rank=8)
    assert spectral_distance(e, e_rot) < 1e-9
    assert spectral_distance(e, e_lr) > 1e-3


# ------------------------------------------------------------------------------ matching / distances


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_wasserstein_matching_agrees_with_brute_force(k):
    rng = np.random.default_rng(k)
    for _ in range(5):
        e1 = rng.normal(size=k) + 1j * rng.normal(size=k)
        e2 = rng.normal(size=k) + 1j * rng.normal(size=k)
        brute = min(np.mean(np.abs(e1 - e2[list(p)])) for p in itertools.permutations(range(k)))
        W, perm = match_spectra(e1, e2)
        assert W == pytest.approx(brute, abs=1e-13)
        assert sorted(perm) == list(range(k))
        assert np.mean(np.abs(e1 - e2[perm])) == pytest.approx(brute, abs=1e-13)


@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3), (6, 6)])
def test_linear_sum_assignment_brute_force_with_ties(shape):
    rng = np.random.default_rng(sum(shape))
    n, m = shape
    for C in (rng.normal(size=shape), rng.integers(0, 3, size=shape).astype(float)):
        rows, cols = linear_sum_assignment(C)
        assert len(set(rows.tolist())) == len(set(cols.tolist())) == min(n, m)
        assert list(rows) == sorted(rows)
        if n <= m:
            brute = min(C[np.arange(n), list(p)].sum() for p in itertools.permutations(range(m), n))
        else:
            brute = min(C[list(p), np.arange(m)].sum() for p in itertools.permutations(range(n), m))
        assert C[rows, cols].sum() == pytest.approx(brute, abs=1e-12)


def test_assignment_of_a_large_matrix_matches_the_linear_program():
    # The assignment polytope is integral: the LP optimum equals the best assignment.
    from scipy.optimize import linprog

    n, m = 12, 18
    C = np.random.default_rng(0).random((n, m))
    rows, cols = linear_sum_assignment(C)
    A_rows = np.kron(np.eye(n), np.ones((1, m)))  # each row assigned once
    A_cols = np.kron(np.ones((1, n)), np.eye(m))  # each column at most once
    lp = linprog(C.ravel(), A_ub=A_cols, b_ub=np.ones(m), A_eq=A_rows, b_eq=np.ones(n), bounds=(0, 1))
    assert C[rows, cols].sum() == pytest.approx(lp.fun, abs=1e-10)
    assert C[rows, cols].sum() < C[np.arange(n), np.arange(n)].sum()


def test_conjugacy_test_identical_and_separated_sets(getkey):
    rng = np.random.default_rng(7)
    e = 0.9 + 0.01 * (rng.normal(size=10) + 1j * rng.normal(size=10))
    W, p = conjugacy_test(e, e.copy(), shuffles=200, key=getkey())
    assert W == 0.0 and p == 1.0
    # Two far-apart clusters: only "swap none" and "swap all" keep W, so p -> 2 / 2^10.
    far = -0.9 + 0.01 * (rng.normal(size=10) + 1j * rng.normal(size=10))
    W, p = conjugacy_test(e, far, shuffles=2000, key=getkey())
    assert W > 1.7 and p < 0.006


def test_seed_baseline_is_pairwise_distance():
    rng = np.random.default_rng(8)
    spectra = [rng.normal(size=4) + 1j * rng.normal(size=4) for _ in range(4)]
    base = seed_baseline(spectra)
    expected = [
        min(np.mean(np.abs(a - b[list(p)])) for p in itertools.permutations(range(4)))
        for a, b in itertools.combinations(spectra, 2)
    ]
    np.testing.assert_allclose(base.distances, expected, atol=1e-13)
    assert base.mean == pytest.approx(np.mean(expected)) and base.std == pytest.approx(np.std(expected))


def _load_experiment(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mirror_descent_vs_gradient_descent_vs_bisection(getkey):
    md = _load_experiment("koopman_mirror_descent")
    eigs = md.spectra()
    assert all(e.shape == (10,) for e in eigs.values())
    # OMD and OGD are both real spectra close to 1 - eta * (linearisation rates); bisection is not.
    assert np.max(np.abs(eigs["OMD"].imag)) < 1e-8 and np.max(np.abs(eigs["OGD"].imag)) < 1e-8
    W_eq, p_eq = conjugacy_test(eigs["OMD"], eigs["OGD"], shuffles=300, key=getkey())
    W_bm, p_bm = conjugacy_test(eigs["OGD"], eigs["BM"], shuffles=300, key=getkey())
    W_bm2, p_bm2 = conjugacy_test(eigs["OMD"], eigs["BM"], shuffles=300, key=getkey())
    assert W_eq < 0.05 * min(W_bm, W_bm2)
    assert p_eq > 0.05 and p_bm < 0.05 and p_bm2 < 0.05


# ------------------------------------------------------------------------------ helpers


def test_perturbed_ensemble_and_sgd_observables(getkey):
    task = tasks.gaussian_mixture(getkey(), 60, 5, 3)
    net = models.shallow_init(getkey(), 5, 4, 3)
    ens = perturbed_ensemble(net, 3, key=getkey(), rel=1e-3)
    assert ens.W1.shape == (3, 4, 5) and ens.activation == net.activation
    np.testing.assert_array_equal(ens.W1[0], net.W1)
    ratio = ens.W2[1:] / net.W2
    assert np.all(np.abs(ratio - 1) <= 1e-3) and np.all(ratio != 1)
    np.testing.assert_array_equal(ens.b1, 0.0)  # zero biases stay zero
    run = ensemble_observables(ens, task, lrs=0.1, steps=20, batch_size=10, key=getkey())
    assert run.observables.shape == (21, 12, 3) and run.loss.shape == (21, 3)
    assert not run.diverged.any()
    for n in range(3):  # the first record is the initial output layer of member n
        member = jax.tree_util.tree_map(lambda x: x[n], ens)
        np.testing.assert_array_equal(run.observables[0, :, n], output_weights(member))
    assert np.all(np.diff(run.loss.mean(axis=1)[::5]) < 0)  # training happened
    assert dmd(run.observables, delays=2, rank=5).shape == (5,)


def test_output_weights_selector(getkey):
    net = mlp_init(getkey(), (3, 4, 5, 2))
    np.testing.assert_array_equal(output_weights(net), net.weights[-1].ravel())
    W = (jnp.ones((4, 3)), jnp.arange(8.0).reshape(2, 4))
    np.testing.assert_array_equal(output_weights(W), np.arange(8.0))
    with pytest.raises(ValueError, match="observable"):
        output_weights({"W": W[0]})


def test_pca_components_span_the_motion():
    rng = np.random.default_rng(9)
    basis = _random_orthogonal(rng, 6)[:, :2]
    coeffs = rng.normal(size=(15, 2, 4))
    X = np.einsum("dk,tkn->tdn", basis, coeffs) + rng.normal(size=(6, 1))  # offset + 2-D motion
    projected, C = pca(X, 2)
    assert projected.shape == (15, 2, 4)
    np.testing.assert_allclose(C @ C.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(C.T @ C @ basis, basis, atol=1e-10)  # same subspace


# ------------------------------------------------------------------------------ bad input


def test_bad_input_raises():
    X = _iterate(np.diag([0.9, 0.5]), np.ones((2, 3)), 6)
    with pytest.raises(ValueError, match="too few snapshots"):
        dmd(X, delays=5)
    with pytest.raises(ValueError, match="rank"):
        dmd(X, delays=1, rank=100)
    with pytest.raises(ValueError, match="numerical rank"):
        dmd(X, delays=2, rank=5)  # the data span only 2 dimensions
    with pytest.raises(ValueError, match="delays"):
        dmd(X, delays=-1)
    with pytest.raises(ValueError, match="rtol"):
        dmd(X, delays=0, rtol=-1.0)
    bad = X.copy()
    bad[3, 0, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        dmd(bad, delays=0)
    with pytest.raises(ValueError, match=r"\(T, D, N\)"):
        dmd(np.zeros((3, 2, 2, 2)), delays=0)
    with pytest.raises(ValueError, match="same size"):
        match_spectra(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="same size"):
        conjugacy_test(np.ones(3), np.ones(4), key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="non-empty"):
        spectral_distance(np.ones(3), np.ones(0))
    with pytest.raises(ValueError, match="1-D"):
        spectral_distance(np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="finite"):
        spectral_distance(np.array([1.0, np.inf]), np.ones(2))
    with pytest.raises(ValueError, match="shuffles"):
        conjugacy_test(np.ones(3), np.ones(3), shuffles=0, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[1.0, np.nan]]))
    traj = simulate.Trajectory(
        ts=jnp.arange(4.0),
        params=(jnp.ones((4, 1, 2)),),
        loss=jnp.zeros(4),
        status=jnp.array(0, jnp.int32),
        diverged=jnp.array(False),
        diverged_at=jnp.array(jnp.inf),
        observables={"loss2": jnp.zeros(4)},
        output_scale=jnp.array(1.0),
        stats={},
    )
    with pytest.raises(ValueError, match="not recorded"):
        dmd(traj, delays=0, observable="missing")
    with pytest.raises(ValueError, match="zero"):
        dmd(traj, delays=0, observable="loss2")
    with pytest.raises(ValueError, match="observable"):
        dmd(X, delays=0, observable=output_weights)


# ------------------------------------------------------------------------------ Wasserstein, any sizes


def _brute_force_w1(x, y):
    """W1 between uniform measures by expanding both sets to lcm(n, m) equally weighted copies and
    solving the assignment problem exactly (the optimum of a uniform transport problem with equal
    counts is a permutation, Birkhoff-von Neumann)."""
    L = np.lcm(len(x), len(y))
    X, Y = np.repeat(x, L // len(x)), np.repeat(y, L // len(y))
    C = np.abs(X[:, None] - Y[None, :])
    rows, cols = linear_sum_assignment(C)
    return C[rows, cols].mean()


def _points(rng, n):
    return rng.normal(size=n) + 1j * rng.normal(size=n)


def test_spectral_distance_hand_computable_unequal_sizes():
    assert spectral_distance([0.0], [0.0, 1.0]) == pytest.approx(0.5, abs=1e-15)
    assert spectral_distance([0.0, 1.0], [0.0]) == pytest.approx(0.5, abs=1e-15)
    rng = np.random.default_rng(11)
    pts = _points(rng, 7)
    # One point against several: every unit of mass of the single point is spread over them.
    centre = 0.3 + 0.2j
    assert spectral_distance([centre], pts) == pytest.approx(np.mean(np.abs(pts - centre)), rel=1e-12)
    # A set against itself repeated: the same uniform measure.
    assert spectral_distance(pts, np.concatenate([pts, pts])) == pytest.approx(0.0, abs=1e-13)
    # Two clusters: {0, 0, 0} vs {0, 1}: half the mass of the second set sits at 1, at distance 1.
    assert spectral_distance([0.0, 0.0, 0.0], [0.0, 1.0]) == pytest.approx(0.5, abs=1e-15)
    # {0, 1} vs {0, 0.5, 1}: move 1/6 of the mass from 0 and from 1 to 0.5, each a distance 1/2.
    assert spectral_distance([0.0, 1.0], [0.0, 0.5, 1.0]) == pytest.approx(1 / 6, abs=1e-15)


def test_spectral_distance_against_brute_force_and_matching():
    rng = np.random.default_rng(12)
    for n, m in [(2, 3), (3, 4), (4, 6), (5, 3), (6, 10), (10, 6), (4, 4)]:
        x, y = _points(rng, n), _points(rng, m)
        expected = _brute_force_w1(x, y)
        assert spectral_distance(x, y) == pytest.approx(expected, rel=1e-10), (n, m)
        W, plan = uniform_wasserstein(x, y, method="lp")
        assert W == pytest.approx(expected, rel=1e-10)
        np.testing.assert_allclose(plan.sum(1), 1 / n, rtol=1e-12)
        np.testing.assert_allclose(plan.sum(0), 1 / m, rtol=1e-12)
        assert np.all(plan >= 0)
    for k in (1, 3, 8):  # equal sizes: the LP and the matching distance of Redman et al. agree
        x, y = _points(rng, k), _points(rng, k)
        matched = min(np.mean(np.abs(x - y[list(p)])) for p in itertools.permutations(range(k))) \
            if k <= 3 else match_spectra(x, y)[0]
        assert spectral_distance(x, y) == pytest.approx(matched, rel=1e-12)
        assert uniform_wasserstein(x, y, method="lp")[0] == pytest.approx(matched, rel=1e-10)


def test_spectral_distance_is_a_metric():
    rng = np.random.default_rng(13)
    for _ in range(20):
        a, b, c = (_points(rng, int(rng.integers(1, 9))) for _ in range(3))
        ab, ba = spectral_distance(a, b), spectral_distance(b, a)
        assert ab == pytest.approx(ba, rel=1e-10, abs=1e-14)
        assert ab <= spectral_distance(a, c) + spectral_distance(c, b) + 1e-12
        assert ab > 0 or set(np.round(a, 12)) == set(np.round(b, 12))
    # Scale and translation: W(s x + t, s y + t) = |s| W(x, y) (the plan is unchanged).
    x, y = _points(rng, 4), _points(rng, 7)
    assert spectral_distance(3j * x + 2, 3j * y + 2) == pytest.approx(3 * spectral_distance(x, y), rel=1e-10)
    # Tiny and huge costs are solved as accurately (costs are scaled before the LP).
    assert spectral_distance(1e-9 * x, 1e-9 * y) == pytest.approx(1e-9 * _brute_force_w1(x, y), rel=1e-10)
    assert spectral_distance(1e9 * x, 1e9 * y) == pytest.approx(1e9 * _brute_force_w1(x, y), rel=1e-10)


def test_seed_baseline_accepts_unequal_sizes():
    rng = np.random.default_rng(14)
    spectra = [_points(rng, k) for k in (3, 4, 6)]
    base = seed_baseline(spectra)
    expected = [_brute_force_w1(a, b) for a, b in itertools.combinations(spectra, 2)]
    np.testing.assert_allclose(base.distances, expected, rtol=1e-10)


def test_dmd_rank_none_rtol_zero_is_the_reference_k_minus_one():
    """Redman et al.'s ``dmd(X, Y, k=-1)``, written out: SVD of the snapshot matrix with every
    singular value kept, ``A = (U^T Y V) * (1/S)``, eigenvalues of A."""
    rng = np.random.default_rng(15)
    A = 0.9 * _random_orthogonal(rng, 3) @ np.diag([1.0, 0.8, 0.5])
    X = _iterate(A, rng.normal(size=(3, 4)), 12) + 0.01 * rng.normal(size=(12, 3, 4))  # noisy: full rank
    delays = 2
    Z = time_delay(X, delays)  # (T', n, N)
    Zm = np.concatenate([Z[:-1, :, i] for i in range(Z.shape[2])], axis=0).T  # (n, M)
    Zp = np.concatenate([Z[1:, :, i] for i in range(Z.shape[2])], axis=0).T
    U, S, Vh = np.linalg.svd(Zm, full_matrices=False)
    ref = np.linalg.eigvals((U.T @ Zp @ Vh.T) * (1.0 / S))
    ours = dmd(X, delays=delays, rank=None, rtol=0.0)
    assert ours.size == ref.size == 9
    assert spectral_distance(ours, ref) < 1e-10
    k = 4  # their k > 0: the first k singular values = rank=k
    ref_k = np.linalg.eigvals((U[:, :k].T @ Zp @ Vh[:k].T) * (1.0 / S[:k]))
    assert spectral_distance(dmd(X, delays=delays, rank=k), ref_k) < 1e-10


def test_default_rank_spectra_of_different_sizes_are_compared():
    """With the default numerical-rank cutoff OGD keeps 10 eigenvalues and bisection 6 (its
    iterates freeze at machine precision); the Wasserstein distance still separates them."""
    md = _load_experiment("koopman_mirror_descent")
    eigs = {name: dmd(X, delays=md.DELAYS) for name, X in md.trajectories().items()}
    assert eigs["OGD"].size == eigs["OMD"].size == 10 and eigs["BM"].size < 10
    near, far = spectral_distance(eigs["OMD"], eigs["OGD"]), spectral_distance(eigs["OGD"], eigs["BM"])
    assert far == pytest.approx(_brute_force_w1(eigs["OGD"], eigs["BM"]), rel=1e-10)
    assert near < 0.05 * far
