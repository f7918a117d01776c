"""Committee-machine generalisation error, Gaussian integrals and ODEs (linsolve.exact)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.scipy.special import erf

from linsolve import exact
from linsolve.exact import _committee_integrals as ci
from linsolve.simulate import CONVERGED, DIVERGED

N_MC = 1_000_000


def _g(name, x):
    if name == "erf":
        return erf(x / np.sqrt(2.0))
    if name == "linear":
        return x
    return jnp.maximum(x, 0.0)


def _dg(x):
    return np.sqrt(2 / np.pi) * jnp.exp(-0.5 * x**2)


def _mean_sem(fn, key, n=N_MC, chunk=250_000):
    """Mean and standard error of ``fn(key_i)`` (a (chunk,) sample) over ``n`` samples."""
    vals = jax.lax.map(jax.jit(fn), jr.split(key, n // chunk)).ravel()
    return float(jnp.mean(vals)), float(jnp.std(vals) / np.sqrt(vals.shape[0]))


def _weights(key, K=3, M=2, N=8):
    k1, k2, k3, k4 = jr.split(key, 4)
    W = jr.normal(k1, (K, N)) * jnp.linspace(0.5, 1.5, K)[:, None]
    Ws = jr.normal(k2, (M, N)) + 0.5 * W[:M]
    return W, Ws, jr.normal(k3, (K,)), 1 + 0.5 * jr.normal(k4, (M,))


@pytest.mark.parametrize("activation", ["erf", "linear", "relu"])
def test_committee_error_against_monte_carlo_of_the_networks(activation):
    W, Ws, v, vs = _weights(jr.PRNGKey(0))
    N = W.shape[1]
    Q, R, T = W @ W.T / N, W @ Ws.T / N, Ws @ Ws.T / N

    def sample(key):
        x = jr.normal(key, (250_000, N))
        phi = _g(activation, x @ W.T / np.sqrt(N)) @ v
        phi_star = _g(activation, x @ Ws.T / np.sqrt(N)) @ vs
        return 0.5 * (phi - phi_star) ** 2

    mean, sem = _mean_sem(sample, jr.PRNGKey(1))
    exact_value = float(exact.committee_error(Q, R, T, v, vs, activation=activation))
    assert abs(exact_value - mean) < 3 * sem, (activation, exact_value, mean, sem)


def _covariance4():
    A = jr.normal(jr.PRNGKey(2), (4, 4)) * 0.8
    return A @ A.T + 0.3 * jnp.eye(4)


def _fields(C, key, n=250_000):
    return jr.normal(key, (n, 4)) @ jnp.linalg.cholesky(C).T


@pytest.mark.parametrize("integral", ["I2", "I3", "I4", "J2"])
def test_erf_integrals_against_monte_carlo(integral):
    C = _covariance4()
    c = {f"c{i + 1}{j + 1}": C[i, j] for i in range(4) for j in range(4)}
    if integral == "I2":
        value = ci.i2(c["c11"], c["c22"], c["c12"])
        fn = lambda f: _g("erf", f[:, 0]) * _g("erf", f[:, 1])  # noqa: E731
    elif integral == "I3":
        value = ci.i3(c["c11"], c["c12"], c["c13"], c["c23"], c["c33"])
        fn = lambda f: _dg(f[:, 0]) * f[:, 1] * _g("erf", f[:, 2])  # noqa: E731
    elif integral == "I4":
        value = ci.i4(*(c[k] for k in ("c11", "c12", "c13", "c14", "c22", "c23", "c24", "c33",
                                       "c34", "c44")))
        fn = lambda f: _dg(f[:, 0]) * _dg(f[:, 1]) * _g("erf", f[:, 2]) * _g("erf", f[:, 3])  # noqa: E731
    else:
        value = ci.j2(c["c11"], c["c22"], c["c12"])
        fn = lambda f: _dg(f[:, 0]) * _dg(f[:, 1])  # noqa: E731
    mean, sem = _mean_sem(lambda k: fn(_fields(C, k)), jr.PRNGKey(3))
    assert abs(float(value) - mean) < 3 * sem, (integral, float(value), mean, sem)


def test_tensors_match_the_scalar_integrals():
    W, Ws, _, _ = _weights(jr.PRNGKey(4))
    N = W.shape[1]
    omega = ci.field_covariance(W @ W.T / N, W @ Ws.T / N, Ws @ Ws.T / N)
    K, P = 3, 5
    i3, i4 = ci.i3_tensor(omega, K), ci.i4_tensor(omega, K)
    o = np.asarray(omega)
    for i, k, a, b in [(0, 1, 3, 4), (2, 2, 0, 4), (1, 0, 2, 2)]:
        want3 = ci.i3(o[i, i], o[i, k], o[i, a], o[k, a], o[a, a])
        want4 = ci.i4(o[i, i], o[i, k], o[i, a], o[i, b], o[k, k], o[k, a], o[k, b], o[a, a],
                      o[a, b], o[b, b])
        np.testing.assert_allclose(i3[i, k, a], want3, rtol=1e-13)
        np.testing.assert_allclose(i4[i, k, a, b], want4, rtol=1e-13)
    assert i4.shape == (K, K, P, P)
    # The ODE's contraction over the symmetric pairs equals the full tensor's.
    v, v_star = jr.normal(jr.PRNGKey(5), (K,)), jr.normal(jr.PRNGKey(6), (P - K,))
    u = jnp.concatenate([v, -v_star])
    for activation in ("erf", "linear"):
        full = jnp.einsum("ikcd,c,d->ik", ci.i4_tensor(omega, K, activation), u, u)
        np.testing.assert_allclose(
            ci.i4_quadratic_form(omega, v, v_star, activation), full, rtol=1e-13, atol=1e-15
        )


def _linear_setup():
    Q0 = jnp.array([[0.1, 0.02], [0.02, 0.15]])
    R0 = jnp.array([[0.02, 0.01], [0.0, 0.015]])
    T = jnp.array([[1.0, 0.2], [0.2, 0.8]])
    return Q0, R0, T, jnp.array([1.0, 0.5]), jnp.array([1.0, -0.7])


def test_linear_ode_is_linear_regression_in_closed_form():
    # phi = u.x/sqrt(N), u = sum_k v_k w_k; SGD on u with rate lr s, s = |v|^2:
    # dD/da = -2 lr s D + lr^2 s^2 (D + sigma^2), D = |u - u*|^2 / N = 2 eps_g.
    Q0, R0, T, v, vs = _linear_setup()
    lr, sigma = 0.3, 0.5
    t = jnp.linspace(0.0, 40.0, 11)
    sol = exact.committee_ode(t, Q0=Q0, R0=R0, T=T, v0=v, v_star=vs, lr=lr, noise=sigma,
                              train_readout=False, activation="linear")
    s = float(v @ v)
    D0 = float(v @ Q0 @ v - 2 * v @ R0 @ vs + vs @ T @ vs)
    D_inf = lr * s * sigma**2 / (2 - lr * s)
    D = D_inf + (D0 - D_inf) * np.exp(-(2 * lr * s - (lr * s) ** 2) * np.asarray(t))
    assert int(sol.status) == CONVERGED
    np.testing.assert_allclose(sol.eps_g, D / 2, rtol=1e-8)


def test_linear_ode_diverges_above_the_maximal_rate():
    Q0, R0, T, v, vs = _linear_setup()
    s = float(v @ v)
    t = jnp.linspace(0.0, 40.0, 11)
    sol = exact.committee_ode(t, Q0=Q0, R0=R0, T=T, v0=v, v_star=vs, lr=2.2 / s,
                              train_readout=False, activation="linear")
    assert bool(sol.diverged) and int(sol.status) == DIVERGED
    assert 0 < float(sol.diverged_at) < 40
    bad = np.asarray(t) > float(sol.diverged_at)
    assert np.all(np.isinf(np.asarray(sol.eps_g)[bad])) and np.all(np.isfinite(sol.Q))
    assert np.all(np.isfinite(np.asarray(sol.eps_g)[~bad]))


def test_erf_growth_reported_as_divergence_with_a_bound():
    # Above the maximal rate the erf norms grow without bound (algebraically): a bound of 10x
    # the initial scale catches it; the same run below the rate converges.
    Q0, R0, T = 0.1 * jnp.eye(2), jnp.array([[0.02, 0.01], [0.0, 0.015]]), jnp.eye(2)
    t = jnp.linspace(0.0, 200.0, 11)
    kw = dict(Q0=Q0, R0=R0, T=T, v0=jnp.ones(2), v_star=jnp.ones(2), train_readout=False,
              divergence_factor=10.0)
    high = exact.committee_ode(t, lr=30.0, **kw)
    low = exact.committee_ode(t, lr=1.0, **kw)
    assert bool(high.diverged) and not bool(low.diverged)
    assert float(low.eps_g[-1]) < 1e-5


@pytest.mark.parametrize("train_readout", [True, False])
def test_student_equal_to_teacher_stays_perfect(train_readout):
    T = jnp.array([[1.0, 0.3], [0.3, 0.7]])
    vs = jnp.array([1.0, 0.8])
    sol = exact.committee_ode(jnp.linspace(0.0, 50.0, 11), Q0=T, R0=T, T=T, v0=vs, v_star=vs, lr=1.0,
                              train_readout=train_readout)
    assert float(jnp.max(sol.eps_g)) < 1e-13
    np.testing.assert_allclose(sol.Q[-1], T, atol=1e-12)
    np.testing.assert_allclose(sol.R[-1], T, atol=1e-12)


def test_permuting_student_units_permutes_the_solution():
    W, Ws, v, vs = _weights(jr.PRNGKey(5), K=2, M=2)
    W = 0.3 * W
    N = W.shape[1]
    Q0, R0, T = W @ W.T / N, W @ Ws.T / N, Ws @ Ws.T / N
    t = jnp.linspace(0.0, 10.0, 11)
    kw = dict(T=T, v_star=vs, lr=0.5, noise=0.2)
    a = exact.committee_ode(t, Q0=Q0, R0=R0, v0=v, **kw)
    p = jnp.array([1, 0])
    b = exact.committee_ode(t, Q0=Q0[p][:, p], R0=R0[p], v0=v[p], **kw)
    np.testing.assert_allclose(b.Q, a.Q[:, p][:, :, p], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(b.R, a.R[:, p], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(b.v, a.v[:, p], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(b.eps_g, a.eps_g, rtol=1e-7)


def test_vmap_over_learning_rate_matches_single_calls():
    Q0, R0, T = 0.1 * jnp.eye(2), jnp.array([[0.05, 0.01], [0.0, 0.04]]), jnp.eye(2)
    t = jnp.linspace(0.0, 5.0, 11)
    kw = dict(Q0=Q0, R0=R0, T=T, v0=jnp.ones(2), v_star=jnp.ones(2))
    lrs = jnp.array([0.5, 1.5])
    batched = jax.vmap(lambda lr: exact.committee_ode(t, lr=lr, **kw).eps_g)(lrs)
    for lr, row in zip(lrs, batched):
        np.testing.assert_allclose(row, exact.committee_ode(t, lr=lr, **kw).eps_g, rtol=1e-8)


def test_bad_input_names_the_argument():
    Q, R, T, v, vs = 0.1 * jnp.eye(2), jnp.zeros((2, 3)), jnp.eye(3), jnp.ones(2), jnp.ones(3)
    with pytest.raises(ValueError, match="`Q`.*symmetric"):
        exact.committee_error(jnp.array([[1.0, 0.5], [0.0, 1.0]]), R, T, v, vs)
    with pytest.raises(ValueError, match="`R`"):
        exact.committee_error(Q, jnp.zeros((3, 2)), T, v, vs)
    with pytest.raises(ValueError, match="`v_star`"):
        exact.committee_error(Q, R, T, v, jnp.ones(2))
    with pytest.raises(ValueError, match="`activation`"):
        exact.committee_error(Q, R, T, v, vs, activation="tanh")
    t = jnp.linspace(0, 1, 3)
    kw = dict(Q0=Q, R0=R, T=T, v0=v, v_star=vs)
    with pytest.raises(ValueError, match="`lr`"):
        exact.committee_ode(t, lr=0.0, **kw)
    with pytest.raises(ValueError, match="`lr`"):
        exact.committee_ode(t, lr=-1.0, **kw)
    with pytest.raises(ValueError, match="`noise`"):
        exact.committee_ode(t, lr=1.0, noise=-0.1, **kw)
    with pytest.raises(ValueError, match="`t`"):
        exact.committee_ode(jnp.array([0.0, 2.0, 1.0]), lr=1.0, **kw)
    with pytest.raises(ValueError, match="`t`"):
        exact.committee_ode(jnp.array([0.0, jnp.inf]), lr=1.0, **kw)
    with pytest.raises(ValueError, match="`activation`.*I4"):
        exact.committee_ode(t, lr=1.0, activation="relu", **kw)
    with pytest.raises(ValueError, match="`Q0`"):
        exact.committee_ode(t, lr=1.0, **{**kw, "Q0": jnp.array([[1.0, 0.2], [0.0, 1.0]])})
    with pytest.raises(ValueError, match="`v0`"):
        exact.committee_ode(t, lr=1.0, **{**kw, "v0": jnp.ones(3)})
