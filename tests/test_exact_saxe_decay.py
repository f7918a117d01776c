"""Saxe modes with input variance and weight decay: full-matrix flows, the scalar ODE, quadrature,
limits of the bistable case and argument checks.

Conventions: ``L = ... + 1/2 tr(P Sxx P^T) + (gamma/2) sum_l ||W_l||^2``, ``tau dW_l/dt =
-dL/dW_l``; a balanced aligned mode obeys ``tau du/dt = L [|u|^{2-2/L} (s - lam u) - gamma u]``.
"""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.integrate

from linsolve import Task, init, tasks
from linsolve.exact._saxe import saxe_mode, saxe_time
from linsolve.exact._saxe_matrix import saxe_product
from linsolve.verify._saxe import decay_cases, fixed_points

N_DRAWS = 12  # per depth; one (N_DRAWS, T) call per depth


def _rate(u, s, lam, gamma, d):
    return d * (abs(u) ** (2 - 2 / d) * (s - lam * u) - gamma * u)


def _ode(ts, s, u0, tau, d, lam, gamma):
    f = lambda _, y: [_rate(y[0], s, lam, gamma, d) / tau]
    out = scipy.integrate.solve_ivp(f, (0, ts[-1]), [u0], t_eval=ts, method="DOP853",
                                    rtol=1e-13, atol=1e-16)
    return out.y[0]


def _draws(rng, d, n=N_DRAWS, decay=True):
    """Random (s, u0, tau, lam, gamma); for d >= 3 both basins of the bistable case (and modes
    above x_+, and modes with no positive fixed point); every 4th draw has flipped signs."""
    s = np.exp(rng.uniform(math.log(0.5), math.log(3.0), n))
    lam = rng.uniform(0.3, 3.0, n)
    gamma = rng.uniform(0.01, 0.5, n) if decay else np.zeros(n)
    tau = np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    u0 = s / lam * np.exp(rng.uniform(math.log(0.02), math.log(2.0), n))
    for i in range(n):
        lo, hi = fixed_points(s[i], lam[i], gamma[i], d)
        if np.isfinite(lo):
            u0[i] = (0.5 * lo**d, 0.5 * (lo**d + hi**d), 1.5 * hi**d)[i % 3]
    flip = np.arange(n) % 4 == 3
    return np.where(flip, -s, s), np.where(flip, -u0, u0), tau, lam, gamma


def test_matrices_vs_gradient_flow():
    """Full weight matrices (random orthogonal U, V; Sxx = V diag(lam) V^T; init.aligned),
    depths 2-5, both basins, vs gradient_flow(weight_decay=gamma) at rtol 1e-12 (`linsolve
    verify --family saxe` runs two draws per depth)."""
    rel, limits, n = decay_cases(jr.PRNGKey(11), per_depth=1)  # 3, 5: converging; 4: decaying
    assert n == 4
    assert rel <= 1e-8, rel
    assert limits <= 1e-12, limits


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_modes_vs_scalar_ode(depth):
    rng = np.random.default_rng(depth)
    s, u0, tau, lam, gamma = _draws(rng, depth)
    T = 30.0
    ts = np.linspace(0.0, T, 31)
    col = lambda x: x[:, None]
    got = np.asarray(saxe_mode(ts[None, :] * col(tau), s=col(s), u0=col(u0), tau=col(tau),
                               depth=depth, variance=col(lam), weight_decay=col(gamma)))
    worst = 0.0
    for i in range(N_DRAWS):
        ref = _ode(ts * tau[i], s[i], u0[i], tau[i], depth, lam[i], gamma[i])
        worst = max(worst, np.max(np.abs(got[i] - ref)) / np.max(np.abs(ref)))
        assert got[i, 0] == u0[i]  # t = 0 exactly
    assert worst <= 1e-9, worst


def test_variance_only_deep_is_rescaled_whitened_law():
    """gamma = 0, depth 3: w = lam u obeys the whitened law with tau -> tau lam^{p-1}."""
    rng = np.random.default_rng(7)
    s, u0, tau, lam, _ = _draws(rng, 3, n=6, decay=False)
    ts = np.linspace(0.0, 20.0, 21)
    got = np.asarray(saxe_mode(ts, s=s[:, None], u0=u0[:, None], tau=tau[:, None], depth=3,
                               variance=lam[:, None]))
    for i in range(6):
        ref = _ode(ts, s[i], u0[i], tau[i], 3, lam[i], 0.0)
        assert np.max(np.abs(got[i] - ref)) <= 1e-9 * np.max(np.abs(ref))


def test_depth_two_logistic_with_shifted_target():
    s, u0, tau, lam, gamma = 1.3, 0.02, 0.7, 1.8, 0.3
    t = np.linspace(0.0, 10.0, 11)
    sp = s - gamma  # tau dw/dt = 2 w (s' - w), w = lam u
    e = np.exp(2 * sp * t / tau)
    expected = sp * e / (e - 1 + sp / (lam * u0)) / lam
    got = saxe_mode(t, s=s, u0=u0, tau=tau, variance=lam, weight_decay=gamma)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    k = lam + gamma
    got1 = saxe_mode(t, s=s, u0=u0, tau=tau, depth=1, variance=lam, weight_decay=gamma)
    np.testing.assert_allclose(got1, s / k + (u0 - s / k) * np.exp(-k * t / tau), rtol=1e-13)


def _quad_time(u0, u1, s, tau, d, lam, gamma):
    f = lambda u: tau / _rate(u, s, lam, gamma, d)
    return scipy.integrate.quad(f, u0, u1, epsabs=0, epsrel=1e-13, limit=500)[0]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_time_vs_quadrature_and_round_trip(depth):
    rng = np.random.default_rng(10 + depth)
    s, u0, tau, lam, gamma = _draws(rng, depth)
    u_inf = np.asarray(saxe_mode(jnp.inf, s=s, u0=u0, tau=tau, depth=depth, variance=lam,
                                 weight_decay=gamma))
    u1 = u0 + (u_inf - u0) * rng.uniform(0.01, 0.99, N_DRAWS)
    got = np.asarray(saxe_time(u0, u1, s=s, tau=tau, depth=depth, variance=lam, weight_decay=gamma))
    exact = np.array([_quad_time(*a, depth, b, c) for a, b, c in
                      zip(zip(u0, u1, s, tau), lam, gamma)])
    np.testing.assert_allclose(got, exact, rtol=1e-11)
    back = saxe_mode(got, s=s, u0=u0, tau=tau, depth=depth, variance=lam, weight_decay=gamma)
    np.testing.assert_allclose(back, u1, rtol=1e-11)


@pytest.mark.parametrize("depth", [3, 5])
def test_bistable_limits_and_separatrix(depth):
    s, lam, gamma = 1.5, 0.8, 0.05
    lo, hi = fixed_points(s, lam, gamma, depth)
    assert 0 < lo < hi
    u0 = np.array([0.9 * lo**depth, 1.1 * lo**depth, 2 * hi**depth, -1.1 * lo**depth])
    kw = dict(s=s, depth=depth, variance=lam, weight_decay=gamma)
    end = np.asarray(saxe_mode(jnp.inf, u0=u0, **kw))
    # The last one starts against the task (u0 s < 0): it decays, whatever its size.
    np.testing.assert_allclose(end, [0.0, hi**depth, hi**depth, 0.0], rtol=1e-14)
    mirror = saxe_mode(jnp.inf, u0=-u0[1], s=-s, depth=depth, variance=lam, weight_decay=gamma)
    assert float(mirror) == -end[1]
    late = np.asarray(saxe_mode(1e4, u0=u0, **kw))
    np.testing.assert_allclose(late, end, rtol=1e-12, atol=1e-300)
    assert np.all(np.asarray(saxe_mode(0.0, u0=u0, **kw)) == u0)
    # Exactly at a fixed point: stays; strong decay (above the critical gamma): everything decays.
    at = np.array([lo**depth, hi**depth])
    np.testing.assert_allclose(saxe_mode(np.array([1.0, 1e3, np.inf])[:, None], u0=at, **kw),
                               np.broadcast_to(at, (3, 2)), rtol=1e-14)
    strong = np.asarray(saxe_mode(jnp.inf, s=s, u0=2.0, depth=depth, variance=lam, weight_decay=5.0))
    assert strong == 0.0
    # Unreachable targets: across the separatrix, beyond x_+, the other sign.
    t = saxe_time(u0[0], np.array([1.05 * lo**depth, 0.0, -u0[0], 0.5 * u0[0], u0[0]]), **kw)
    assert np.isinf(t[:3]).all() and 0 < float(t[3]) < np.inf and float(t[4]) == 0.0
    assert np.isinf(float(saxe_time(u0[1], 1.01 * hi**depth, **kw)))


def test_product_rejects_unaligned_and_bad_decay():
    task = tasks.teacher(jr.PRNGKey(0), 4, 3, jnp.array([1.0, 0.5, 0.2]))
    params0 = init.aligned(task, (4, 5, 3), 0.1, key=jr.PRNGKey(1))
    rot = jnp.linalg.qr(jr.normal(jr.PRNGKey(2), (4, 4)))[0]
    skew = Task(rot @ jnp.diag(jnp.array([0.5, 1.0, 2.0, 3.0])) @ rot.T, task.Syx, task.Syy)
    with pytest.raises(ValueError, match=r"aligned.*gradient_flow"):
        saxe_product(1.0, params0, skew)
    with pytest.raises(ValueError, match=r"`weight_decay` must be a scalar"):
        saxe_product(1.0, params0, task, weight_decay=jnp.ones(2))
    with pytest.raises(ValueError, match=r"`weight_decay` must be non-negative"):
        saxe_product(1.0, params0, task, weight_decay=-0.1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"weight_decay": -0.1}, r"`weight_decay` must be non-negative"),
        ({"weight_decay": np.nan}, r"`weight_decay` must be finite"),
        ({"weight_decay": np.inf}, r"`weight_decay` must be finite"),
        ({"variance": 0.0}, r"`variance` must be positive"),
        ({"variance": -1.0}, r"`variance` must be positive"),
        ({"variance": np.inf}, r"`variance` must be finite"),
        ({"variance": np.nan}, r"`variance` must be finite"),
    ],
)
def test_bad_inputs_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        saxe_mode(1.0, s=1.0, u0=0.1, depth=3, **kwargs)
    with pytest.raises(ValueError, match=match):
        saxe_time(0.1, 0.2, s=1.0, depth=2, **kwargs)


def test_traced_decay_at_depth_three_raises_and_defaults_unchanged():
    f = jax.jit(lambda g: saxe_mode(1.0, s=1.0, u0=0.1, depth=3, weight_decay=g))
    with pytest.raises(ValueError, match=r"`weight_decay` > 0 with depth >= 3 needs concrete"):
        f(0.1)
    # t and tau may be traced; depth 2 takes a traced decay.
    g = jax.jit(lambda t: saxe_mode(t, s=1.0, u0=0.1, depth=3, weight_decay=0.1))
    np.testing.assert_allclose(g(2.0), saxe_mode(2.0, s=1.0, u0=0.1, depth=3, weight_decay=0.1),
                               rtol=1e-14)
    h = jax.jit(lambda gam: saxe_mode(2.0, s=1.0, u0=0.1, depth=2, weight_decay=gam))
    np.testing.assert_allclose(h(0.1), saxe_mode(2.0, s=1.0, u0=0.1, depth=2, weight_decay=0.1),
                               rtol=1e-14)
    ts = jnp.linspace(0.0, 5.0, 7)
    plain = saxe_mode(ts, s=1.3, u0=0.05, depth=3)
    assert jnp.array_equal(plain, saxe_mode(ts, s=1.3, u0=0.05, depth=3, variance=1.0,
                                            weight_decay=0.0))
