"""Tasks and initialisations: statistics, reproducibility, balance, feasibility."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linsolve as lns
from linsolve import init, models, tasks


def test_teacher_population_has_prescribed_spectrum(getkey):
    s = jnp.array([3.0, 1.5, 0.2])
    task = tasks.teacher(getkey(), 6, 4, s, noise=0.1)
    np.testing.assert_allclose(jnp.linalg.svd(task.Syx, compute_uv=False)[:3], s, rtol=1e-12)
    np.testing.assert_allclose(task.Sxx, jnp.eye(6), atol=0)
    np.testing.assert_allclose(task.Syy, task.Syx @ task.Syx.T + 0.01 * jnp.eye(4), atol=1e-12)
    assert float(task.whitening_error()) == 0.0


def test_teacher_sampled_is_whitened_and_reproducible():
    s = jnp.array([2.0, 1.0])
    t1 = tasks.teacher(jr.PRNGKey(3), 5, 3, s, n=200)
    t2 = tasks.teacher(jr.PRNGKey(3), 5, 3, s, n=200)
    np.testing.assert_array_equal(t1.X, t2.X)
    assert float(t1.whitening_error()) < 1e-12
    # Noise-free sampled teacher with whitened inputs: Syx is exactly the teacher map.
    np.testing.assert_allclose(jnp.linalg.svd(t1.Syx, compute_uv=False)[:2], s, rtol=1e-12)
    t3 = tasks.teacher(jr.PRNGKey(4), 5, 3, s, n=200, noise=0.5, whiten=False)
    assert float(t3.whitening_error()) > 1e-3


def test_from_data_statistics_and_loss(getkey):
    X = jr.normal(getkey(), (50, 4))
    Y = jr.normal(getkey(), (50, 3))
    task = lns.Task.from_data(X, Y)
    P = jr.normal(getkey(), (3, 4))
    direct = 0.5 * jnp.mean(jnp.sum((X @ P.T - Y) ** 2, axis=1))
    np.testing.assert_allclose(task.loss(P), direct, rtol=1e-12)
    # Leading batch axes of P are kept.
    Ps = jnp.stack([P, 2 * P])
    assert task.loss(Ps).shape == (2,)
    # The optimum is the least-squares solution.
    np.testing.assert_allclose(task.optimum(), jnp.linalg.lstsq(X, Y)[0].T, atol=1e-10)


def test_scalar_task():
    task = tasks.scalar(s=-1.5, m2=2.0)
    np.testing.assert_allclose(task.loss(jnp.array([[0.5]])), 0.5 * 2.0 * (0.5 + 1.5) ** 2)
    assert task.loss(jnp.array([[-1.5]])) == 0


def test_gaussian_mixture(getkey):
    task = tasks.gaussian_mixture(getkey(), 90, 5, 3, separation=4.0, noise=0.5, targets="pm1")
    assert task.X.shape == (90, 5) and task.Y.shape == (90, 3)
    assert set(np.unique(np.asarray(task.Y)).tolist()) == {-1.0, 1.0}
    np.testing.assert_array_equal(np.bincount(np.asarray(task.labels)), [30, 30, 30])
    means = jnp.stack([task.X[task.labels == c].mean(0) for c in range(3)])
    assert float(jnp.min(jnp.linalg.norm(means, axis=1))) > 3.0


def test_random_init_scales(getkey):
    params = init.random(getkey(), (300, 200, 100), (0.5, 2.0))
    assert [W.shape for W in params] == [(200, 300), (100, 200)]
    np.testing.assert_allclose([float(jnp.std(W)) for W in params], [0.5, 2.0], rtol=0.02)


@pytest.mark.parametrize("sizes", [(4, 6, 3), (5, 5, 5, 2), (3, 2, 4)])
def test_balanced_init_is_balanced(getkey, sizes):
    params = init.balanced(getkey(), sizes, 0.7)
    for C in models.conserved_quantities(params):
        np.testing.assert_allclose(C, 0, atol=1e-12)


def test_aligned_init_product(getkey):
    task = tasks.teacher(getkey(), 5, 4, jnp.array([3.0, 2.0, 1.0, 0.5]))
    u0 = jnp.array([1e-3, 2e-3, 3e-3, 4e-3])
    params = init.aligned(task, (5, 6, 7, 4), u0, key=getkey())
    U, _, Vt = task.svd()
    np.testing.assert_allclose(models.end_to_end(params), U @ jnp.diag(u0) @ Vt, atol=1e-14)
    for C in models.conserved_quantities(params):
        np.testing.assert_allclose(C, 0, atol=1e-14)


@pytest.mark.parametrize(
    "sizes,lam", [((4, 3, 5), 0.7), ((5, 3, 4), -0.4), ((3, 3, 3), 0.0), ((2, 6, 3), 0.0)]
)
def test_lambda_balanced_init(getkey, sizes, lam):
    W1, W2 = init.lambda_balanced(getkey(), sizes, lam, 0.5)
    assert W1.shape == (sizes[1], sizes[0]) and W2.shape == (sizes[2], sizes[1])
    np.testing.assert_allclose(W2.T @ W2 - W1 @ W1.T, lam * jnp.eye(sizes[1]), atol=1e-12)


def test_lambda_balanced_infeasible(getkey):
    with pytest.raises(ValueError, match=r"lam.*> 0 is infeasible for hidden=5 > d_out=3"):
        init.lambda_balanced(getkey(), (6, 5, 3), 0.5, 1.0)
    with pytest.raises(ValueError, match=r"< 0 is infeasible for hidden=5 > d_in=2"):
        init.lambda_balanced(getkey(), (2, 5, 6), -0.5, 1.0)
