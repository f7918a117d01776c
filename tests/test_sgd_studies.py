"""Helpers of the SGD studies (experiments/sgd_power_law.py, experiments/sgd_kernel_regime.py)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import exact, models
from linsolve.gallery import load_experiment


@pytest.fixture(scope="module")
def power_law():
    return load_experiment("sgd_power_law")


@pytest.fixture(scope="module")
def kernel_regime():
    return load_experiment("sgd_kernel_regime")


def test_power_law_problem_and_exponents(power_law):
    lam, c0 = power_law.power_law_problem(50, 1.5, 4.0)
    k = np.arange(1, 51)
    np.testing.assert_allclose(lam * c0, k**-4.0, rtol=1e-14)
    np.testing.assert_allclose(lam, k**-1.5, rtol=1e-14)
    assert power_law.signal_exponent(1.5, 4.0) == pytest.approx(2.0)
    assert power_law.noise_exponent(1.5) == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="`d`"):
        power_law.power_law_problem(0, 1.5, 2.0)
    with pytest.raises(ValueError, match="`b`"):
        power_law.power_law_problem(10, 1.5, -1.0)


def test_local_slope_of_a_power_law_is_its_exponent(power_law):
    t = np.geomspace(1.0, 1e5, 37)
    np.testing.assert_allclose(power_law.local_slope(t, 3.0 * t**-0.7), -0.7, atol=1e-12)
    with pytest.raises(ValueError, match="`steps`"):
        power_law.local_slope(t[::-1], t)


def test_critical_batch_size(power_law):
    B = np.array([1, 2, 4, 8, 16])
    assert power_law.critical_batch_size(B, [1.0, 1.0, 1.5, 2.5, 9.0]) == 8
    assert power_law.critical_batch_size(B, [5.0, 1.0, 1.0, 1.0, 1.0]) == np.inf  # only below
    with pytest.raises(ValueError, match="`batch_sizes`"):
        power_law.critical_batch_size(B, [1.0])


def test_online_sgd_simulation_matches_the_exact_recursion(power_law):
    # Independent: Monte Carlo of the explicit update (fixed key) vs the exact second moments.
    lam, c0 = np.array([1.0, 0.5, 0.2]), np.array([1.0, 2.0, 3.0])
    runs = power_law.simulate_online_sgd(jr.PRNGKey(3), lam, c0, lr=0.4, batch_size=2, steps=3,
                                         seeds=20000, noise=0.3)
    theory = np.asarray(exact.sgd_risk(np.arange(4), eigenvalues=lam, c0=c0, lr=0.4,
                                       batch_size=2, noise=0.3).risk)
    assert runs[:, 0] == pytest.approx(theory[0], rel=1e-14)
    sem = runs.std(0, ddof=1)[1:] / np.sqrt(runs.shape[0])
    assert np.all(np.abs(runs.mean(0)[1:] - theory[1:]) < 4 * sem)
    # a wrong batch scaling (lr/B -> lr) would be off by far more than 4 SEM
    wrong = np.asarray(exact.sgd_risk(np.arange(4), eigenvalues=lam, c0=c0, lr=0.4,
                                      batch_size=1, noise=0.3).risk)
    assert np.all(np.abs(runs.mean(0)[1:] - wrong[1:]) > 4 * sem)
    with pytest.raises(ValueError, match="`batch_size`"):
        power_law.simulate_online_sgd(jr.PRNGKey(0), lam, c0, lr=0.1, batch_size=0, steps=2,
                                      seeds=2)


def _net(h=5, d=3, seed=0):
    k1, k2 = jr.split(jr.PRNGKey(seed))
    return jr.normal(k1, (h, d), jnp.float64), jr.normal(k2, (1, h), jnp.float64)


def test_kernel_is_the_learning_rate_weighted_jacobian_metric(kernel_regime):
    # Independent: M = sum_l eta_l J_l^T J_l with J_l = d beta / d W_l by autodiff.
    params, kappa, lrs = _net(), 0.3, np.array([0.7, 1.9])
    d = params[0].shape[1]
    problem = kernel_regime.kernel_sgd_problem(
        params, output_scale=kappa, lrs=lrs, covariance=np.eye(d), teacher=np.zeros(d)
    )
    jac = jax.jacobian(lambda p: models.end_to_end(p, kappa)[0])(params)
    dense = sum(eta * J.reshape(d, -1) @ J.reshape(d, -1).T for eta, J in zip(lrs, jac))
    np.testing.assert_allclose(problem.kernel, dense, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(problem.beta0, models.end_to_end(params, kappa)[0], rtol=1e-12)


def test_kernel_problem_reproduces_the_dense_preconditioned_recursion(kernel_regime):
    # Independent: iterate C' = (I - M S) C (I - S M) + (1/B) M (S C S + tr(S C) S + s^2 S) M
    # for the function-space error C = E[(beta - beta*)(beta - beta*)^T] in input coordinates.
    params, kappa, lrs, B, noise = _net(h=7, d=4, seed=1), 0.4, np.array([0.5, 0.8]), 3, 0.2
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    S, teacher = A @ A.T / 4 + 0.1 * np.eye(4), rng.normal(size=4)
    problem = kernel_regime.kernel_sgd_problem(params, output_scale=kappa, lrs=lrs,
                                               covariance=S, teacher=teacher)
    M, e0 = problem.kernel, problem.beta0 - teacher
    C, dense = np.outer(e0, e0), []
    for _ in range(6):
        dense.append(0.5 * np.trace(S @ C) + 0.5 * noise**2)
        G = np.eye(4) - M @ S
        C = G @ C @ G.T + M @ (S @ C @ S + np.trace(S @ C) * S + noise**2 * S) @ M / B
    risk = exact.sgd_risk(np.arange(6), eigenvalues=problem.eigenvalues, c0=problem.c0, lr=1.0,
                          batch_size=B, noise=noise).risk
    np.testing.assert_allclose(risk, dense, rtol=1e-10)


def test_kernel_problem_rejects_bad_input(kernel_regime):
    params = _net()
    kw = dict(output_scale=1.0, lrs=(1.0, 1.0), covariance=np.eye(3), teacher=np.zeros(3))
    with pytest.raises(ValueError, match="`params0`"):
        kernel_regime.kernel_sgd_problem(params[:1], **kw)
    with pytest.raises(ValueError, match="`lrs`"):
        kernel_regime.kernel_sgd_problem(params, **{**kw, "lrs": (1.0, 0.0)})
    with pytest.raises(ValueError, match="`covariance`"):
        kernel_regime.kernel_sgd_problem(params, **{**kw, "covariance": np.eye(2)})
    with pytest.raises(ValueError, match="`teacher`"):
        kernel_regime.kernel_sgd_problem(params, **{**kw, "teacher": np.zeros(2)})


def test_deviation_in_sem(kernel_regime):
    samples = np.array([[1.0, 2.0], [3.0, 2.0]])
    z = kernel_regime.deviation_in_sem(samples, np.array([1.0, 2.0]))
    assert z[0] == pytest.approx(1.0 / (np.std([1.0, 3.0], ddof=1) / np.sqrt(2)))
    assert np.isnan(z[1])
    with pytest.raises(ValueError, match="`samples`"):
        kernel_regime.deviation_in_sem(samples[:1], np.array([1.0, 2.0]))
