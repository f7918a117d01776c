"""Kernel-regime solution against the gradient flow of a depth-1 linear network (linear in its
parameters, so its dynamics ARE the linearised dynamics), the matrix exponential and its limits."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.scipy.linalg import expm

from linsolve import models
from linsolve.exact._linearized import linearized
from linsolve.verify._linearized import (
    D_OUT,
    TS,
    cases,
    check,
    least_squares_limit,
    simulate_cases,
)

DRAWS = 24
TS_EXT = jnp.asarray(np.append(TS, np.inf))


def rel_error(approx, reference):
    """``max |approx - reference| / max |reference|`` (verify._core.rel_error, in numpy)."""
    approx, reference = np.asarray(approx), np.asarray(reference)
    return float(np.max(np.abs(approx - reference)) / np.max(np.abs(reference)))


@pytest.fixture(scope="module")
def runs():
    cs = cases(jr.PRNGKey(0), DRAWS)
    return cs, simulate_cases(cs)


def test_matches_gradient_flow_both_layouts(runs):
    cs, Ws = runs
    ns = {X.shape[0] for X, _, _ in cs}
    assert min(ns) < cs[0][0].shape[1] < max(ns)  # n < d_in and n > d_in (singular NTK)
    for i, (X, Y, W0) in enumerate(cs):
        f_sim = np.einsum("ni,toi->tno", X, Ws[i])
        loss_sim = 0.5 * np.mean(np.sum((f_sim - np.asarray(Y)) ** 2, axis=-1), axis=-1)
        f0 = X @ W0.T
        K4 = models.ntk_data((W0,), X)  # (n, n, d_out, d_out)
        assert K4.shape == (X.shape[0], X.shape[0], D_OUT, D_OUT)
        for ntk in (K4, X @ X.T):  # full layout and a kernel shared by the outputs
            sol = linearized(TS_EXT, f0, Y, ntk)
            assert sol.f.shape == (TS_EXT.shape[0],) + f0.shape and sol.loss.shape == TS_EXT.shape
            assert rel_error(sol.f[:-1], f_sim) < 1e-8
            assert rel_error(sol.loss[:-1], loss_sim) < 1e-8


def test_limits(runs):
    cs, _ = runs
    for X, Y, W0 in cs[:6]:
        f0 = X @ W0.T
        sol = linearized(TS_EXT, f0, Y, X @ X.T)
        assert jnp.array_equal(sol.f[0], f0)  # t = 0 exactly
        f_ls = X @ least_squares_limit(X, Y, W0).T  # t = inf: the projection from W0
        assert rel_error(sol.f[-1], f_ls) < 1e-12
        if X.shape[0] <= X.shape[1]:  # full-rank kernel: the targets are interpolated
            assert rel_error(sol.f[-1], Y) < 1e-12
        else:  # singular kernel: the null-space part of f0 - y stays
            assert float(jnp.max(jnp.abs(sol.f[-1] - Y))) > 1e-3
    X, Y, W0 = cs[1]
    late = linearized(TS_EXT * 1e5, X @ W0.T, Y, X @ X.T)  # t up to 3e6: stable, at the limit
    assert rel_error(late.f[-2], late.f[-1]) < 1e-12


def test_matches_jax_expm(runs):
    cs, _ = runs
    for X, Y, W0 in cs[:2]:  # n < d_in and n > d_in
        n = X.shape[0]
        f0 = X @ W0.T
        K4 = models.ntk_data((W0,), X)
        K = jnp.transpose(K4, (0, 2, 1, 3)).reshape(n * D_OUT, n * D_OUT)
        t = float(TS_EXT[10])
        ref = Y.reshape(-1) + expm(-K * t / n) @ (f0 - Y).reshape(-1)
        assert rel_error(linearized(TS_EXT, f0, Y, K4).f[10].reshape(-1), ref) < 1e-12


def test_vector_outputs_and_general_kernel(getkey):
    n = 6
    A = jr.normal(getkey(), (n, 3))
    K = A @ A.T  # rank 3: singular
    f0, y = jr.normal(getkey(), (n,)), jr.normal(getkey(), (n,))
    ts = jnp.array([[0.0, 0.3], [2.0, jnp.inf]])
    sol = linearized(ts, f0, y, K)
    assert sol.f.shape == (2, 2, n) and sol.loss.shape == (2, 2)
    ref = y + expm(-K * 2.0 / n) @ (f0 - y)
    assert rel_error(sol.f[1, 0], ref) < 1e-12
    np.testing.assert_allclose(sol.loss, 0.5 * np.mean((np.asarray(sol.f) - np.asarray(y)) ** 2, -1))
    # t = inf keeps exactly the null-space component of f0 - y.
    theta, V = np.linalg.eigh(np.asarray(K))
    null = V[:, theta < 1e-10 * theta.max()]
    expected = np.asarray(y) + null @ null.T @ np.asarray(f0 - y)
    assert rel_error(sol.f[1, 1], expected) < 1e-12
    # Per-output kernel (n, n, k, k) with decoupled outputs equals the shared kernel.
    F0, Yk = jr.normal(getkey(), (n, 2)), jr.normal(getkey(), (n, 2))
    K4 = K[:, :, None, None] * jnp.eye(2)[None, None]
    np.testing.assert_allclose(linearized(ts, F0, Yk, K4).f, linearized(ts, F0, Yk, K).f,
                               rtol=1e-12, atol=1e-12)


def test_jit_and_vmap(runs):
    cs, _ = runs
    X, Y, W0 = cs[0]
    f0, K = X @ W0.T, models.ntk_data((W0,), X)
    plain = linearized(TS_EXT, f0, Y, K)
    jitted = jax.jit(lambda t, a: linearized(t, a, Y, K))(TS_EXT, f0)
    over_t = jax.vmap(lambda t: linearized(t, f0, Y, K))(TS_EXT)
    for a, b in ((jitted, plain), (over_t, plain)):
        np.testing.assert_allclose(a.f, b.f, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12, atol=1e-13)


def test_errors(getkey):
    n = 4
    A = jr.normal(getkey(), (n, n))
    K = A @ A.T
    f0, y = jnp.zeros(n), jnp.ones(n)
    with pytest.raises(ValueError, match="`y` must have the shape"):
        linearized(1.0, f0, jnp.ones(n + 1), K)
    with pytest.raises(ValueError, match="`ntk` must have shape"):
        linearized(1.0, f0, y, K[:3, :3])
    with pytest.raises(ValueError, match="`ntk` must have shape"):
        K3 = K[:, :, None, None] * jnp.ones((1, 1, 3, 3))
        linearized(1.0, jnp.zeros((n, 2)), jnp.ones((n, 2)), K3)
    with pytest.raises(ValueError, match="symmetric"):
        linearized(1.0, f0, y, K + jnp.triu(jnp.ones((n, n)), 1))
    with pytest.raises(ValueError, match="positive semi-definite"):
        linearized(1.0, f0, y, -K)
    with pytest.raises(ValueError, match="finite"):
        linearized(1.0, f0.at[0].set(jnp.nan), y, K)
    with pytest.raises(ValueError, match="non-negative"):
        linearized(-1.0, f0, y, K)
    with pytest.raises(ValueError, match="`f0` must have shape"):
        linearized(1.0, jnp.zeros((n, 2, 2)), jnp.zeros((n, 2, 2)), K)


def test_verify_check():
    result = check(jr.PRNGKey(0), draws=DRAWS)
    assert result.passed, result
