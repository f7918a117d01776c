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
from linsolve.analysis._assignment import _solve_wide_numpy, _solve_wide_python, linear_sum_assignment
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
        if n <= m:  # both back ends (lists for small, vectorised for large matrices)
            for solve in (_solve_wide_python, _solve_wide_numpy):
                assert C[np.arange(n), solve(C)].sum() == pytest.approx(brute, abs=1e-12)


def test_assignment_back_ends_agree_on_large_matrix():
    C = np.random.default_rng(0).random((60, 90))
    a, b = _solve_wide_python(C), _solve_wide_numpy(C)
    assert C[np.arange(60), a].sum() == pytest.approx(C[np.arange(60), b].sum(), abs=1e-12)
    assert C[np.arange(60), a].sum() < C[np.arange(60), np.arange(60)].sum()


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
        spectral_distance(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        spectral_distance(np.array([1.0, np.inf]), np.ones(2))
    with pytest.raises(ValueError, match="shuffles"):
        conjugacy_test(np.ones(3), np.ones(3), shuffles=0, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[1.0, np.nan]]))
    traj = simulate.Trajectory(
        jnp.arange(4.0),
        (jnp.ones((4, 1, 2)),),
        jnp.zeros(4),
        jnp.array(False),
        jnp.array(jnp.inf),
        {"loss2": jnp.zeros(4)},
        jnp.array(1.0),
        {},
    )
    with pytest.raises(ValueError, match="not recorded"):
        dmd(traj, delays=0, observable="missing")
    with pytest.raises(ValueError, match="zero"):
        dmd(traj, delays=0, observable="loss2")
    with pytest.raises(ValueError, match="observable"):
        dmd(X, delays=0, observable=output_weights)
