"""Diagonal linear networks: implicit bias and dual flow against the (u, v) simulation."""

import jax.numpy as jnp
import numpy as np
import pytest

from linsolve.exact import diagonal_flow, diagonal_implicit_bias, diagonal_potential, mode
from linsolve.simulate import diagonal_gradient_flow

N, D = 10, 30


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, D)), rng.standard_normal(N)


def _alphas():
    per_coordinate = np.geomspace(0.03, 3.0, D)
    return [np.full(D, a) for a in (1e-2, 0.1, 1.0, 10.0)] + [per_coordinate]


def test_limit_of_the_parameter_flow(data):
    """(u, v) gradient flow (Dopri8, float64) run far past convergence = the dual Newton solve."""
    X, y = data
    alphas = _alphas()
    horizons = (1e3, 300.0, 30.0, 0.3, 100.0)  # ~ 20 relaxation times of the slowest mode
    for alpha, T in zip(alphas, horizons):
        # 81 saves, as in the next test: one compilation for both.
        run = diagonal_gradient_flow(X, y, jnp.linspace(0.0, T, 81), alpha=alpha)
        assert int(run.status) == 0
        bias = diagonal_implicit_bias(X, y, alpha=alpha)
        assert float(bias.residual) <= 1e-13
        err = float(np.max(np.abs(run.beta[-1] - bias.beta)))
        assert err <= 1e-9, (alpha[:2], err)


def test_kkt_and_minimality(data):
    """beta = 2 alpha^2 sinh(X^T nu), X beta = y, and Q_alpha grows along the null space."""
    X, y = data
    rng = np.random.default_rng(1)
    null = np.linalg.svd(X)[2][N:].T  # (D, D - N)
    for alpha in _alphas():
        bias = diagonal_implicit_bias(X, y, alpha=alpha)
        beta = np.asarray(bias.beta)
        np.testing.assert_allclose(beta, 2 * alpha**2 * np.sinh(X.T @ np.asarray(bias.nu)),
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(X @ beta, y, atol=1e-13)
        q0 = float(diagonal_potential(beta, alpha=alpha))
        for _ in range(5):
            step = null @ rng.standard_normal(D - N) * 1e-3
            assert float(diagonal_potential(beta + step, alpha=alpha)) > q0
            assert float(diagonal_potential(beta - step, alpha=alpha)) > q0


def test_small_and_large_alpha_limits(data):
    """alpha -> 0 approaches the LP's minimum-l1 interpolator, alpha -> inf the pseudo-inverse."""
    X, y = data
    l1 = np.asarray(diagonal_implicit_bias(X, y, alpha=0.0).beta)
    l2 = np.asarray(diagonal_implicit_bias(X, y, alpha=np.inf).beta)
    np.testing.assert_allclose(l2, np.linalg.pinv(X) @ y, atol=1e-13)
    np.testing.assert_allclose(X @ l1, y, atol=1e-12)
    assert np.sum(np.abs(l1) > 1e-12) == N  # a vertex: n nonzeros
    gaps = [np.max(np.abs(diagonal_implicit_bias(X, y, alpha=a).beta - l1))
            for a in (1e-4, 1e-16, 1e-64, 1e-150)]
    assert np.all(np.diff(gaps) < 0) and gaps[-1] < 0.05, gaps
    # The l1 norms: min-l1 below every finite alpha, approached from above.
    assert np.sum(np.abs(l1)) < np.sum(np.abs(diagonal_implicit_bias(X, y, alpha=1e-150).beta))
    assert np.max(np.abs(diagonal_implicit_bias(X, y, alpha=1e4).beta - l2)) < 1e-12
    gap_l2 = np.max(np.abs(diagonal_implicit_bias(X, y, alpha=1e2).beta - l2))
    assert 1e-13 < gap_l2 < 1e-10  # O(alpha^-4)


def test_dual_flow_follows_the_parameter_flow(data):
    X, y = data
    ts = jnp.linspace(0.0, 40.0, 81)
    for alpha in (1e-3, 0.1, 1.0, np.geomspace(0.03, 3.0, D)):
        dual = diagonal_flow(ts, X, y, alpha=alpha)
        sim = diagonal_gradient_flow(X, y, ts, alpha=alpha)
        assert not dual.closed_form and int(dual.status) == 0
        err = float(jnp.max(jnp.abs(dual.beta - sim.beta)))
        assert err <= 1e-8, (alpha, err)
        np.testing.assert_allclose(dual.loss, sim.loss, rtol=1e-7, atol=1e-16)


@pytest.mark.parametrize("shape", [(6, 6), (4, 9)])
def test_decoupled_closed_form_against_the_ode(shape):
    """X^T X diagonal (orthogonal design; or n < d with zero columns): the master mode."""
    n, d = shape
    rng = np.random.default_rng(2)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0] * np.sqrt(n)
    X = np.zeros((n, d))
    X[:, :n] = Q * np.array([1.0, 0.5, 2.0, 1.0, 0.7, 1.3][:n])
    X = X[:, rng.permutation(d)]
    y = rng.standard_normal(n)
    alpha = np.geomspace(0.01, 1.0, d)
    ts = jnp.linspace(0.0, 30.0, 61)
    closed = diagonal_flow(ts, X, y, alpha=alpha)
    ode = diagonal_flow(ts, X, y, alpha=alpha, method="ode")
    assert closed.closed_form and not ode.closed_form
    np.testing.assert_allclose(closed.beta, ode.beta, atol=1e-9)
    if n == d:  # and the parameter-space flow
        sim = diagonal_gradient_flow(X, y, ts, alpha=alpha)
        np.testing.assert_allclose(closed.beta, sim.beta, atol=1e-9)
    # Coordinate by coordinate: dbeta/dt = -4 c sqrt(beta^2 + 4 alpha^4) (beta - b/c).
    c, b = np.sum(X * X, 0) / n, X.T @ y / n
    i = int(np.argmax(c))
    np.testing.assert_allclose(
        closed.beta[:, i], mode(ts, F0=0.0, s=b[i], k=4.0, A=1.0, B=2 * alpha[i] ** 2,
                                variance=c[i]), rtol=1e-13, atol=1e-15)


def test_bad_input(data):
    X, y = data
    for bad, name in [(-1.0, "alpha"), (np.ones(3), "alpha"), ([0.0] + [1.0] * (D - 1), "alpha")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            diagonal_implicit_bias(X, y, alpha=bad)
    with pytest.raises(ValueError, match="`y`"):
        diagonal_implicit_bias(X, y[:5], alpha=1.0)
    with pytest.raises(ValueError, match="`X`"):
        diagonal_implicit_bias(X[0], y, alpha=1.0)
    with pytest.raises(ValueError, match="`y` must lie in the range"):
        diagonal_implicit_bias(np.vstack([X, X[:1]]), np.r_[y, y[0] + 1], alpha=1.0)
    with pytest.raises(ValueError, match="`alpha`"):
        diagonal_flow([0.0, 1.0], X, y, alpha=0.0)
    with pytest.raises(ValueError, match="`method`"):
        diagonal_flow([0.0, 1.0], X, y, alpha=1.0, method="closed_form")
    with pytest.raises(ValueError, match="`ts`"):
        diagonal_flow([1.0, 0.0], X, y, alpha=1.0)


def test_overdetermined_consistent_system(data):
    """n > d with y in the range: the unique solution, whatever alpha."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 5))
    beta = rng.standard_normal(5)
    for alpha in (1e-6, 1.0, 0.0, np.inf):
        got = diagonal_implicit_bias(X, X @ beta, alpha=alpha).beta
        np.testing.assert_allclose(got, beta, rtol=1e-10)
