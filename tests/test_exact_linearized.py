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


def _known_kernel(n, lam, seed=0):
    """A kernel with KNOWN eigenvectors (columns of Q) and eigenvalues ``lam``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    K = (Q * lam) @ Q.T
    return 0.5 * (K + K.T), Q, rng


@pytest.mark.parametrize("n_zero", [0, 3])
def test_ill_conditioned_kernel_long_times(n_zero):
    """Eigenvalues 1 .. 1e-12 (and exact zeros) are followed out to t = 1e12 (slow modes are not
    frozen), against ``y + Q exp(-t lam / n) Q^T (f0 - y)`` from the known spectrum. The achievable
    accuracy is set by the rounding of K itself: an absolute eigenvalue error ~ eps gives a relative
    error of order ``eps t``, and with exact zeros the null space is only determined to
    ``eps / lam_min`` (first-order perturbation theory). A threshold of ``sqrt(eps) max|K|`` misses
    by 3e-9 already at t = 100 and by 0.2 at t = 1e10."""
    n = 20
    lam = np.concatenate([np.logspace(0, -12, n - n_zero), np.zeros(n_zero)])
    K, Q, rng = _known_kernel(n, lam)
    f0, y = rng.normal(size=n), rng.normal(size=n)
    ts = np.array([1e2, 1e4, 1e6, 1e8, 1e10, 1e12, np.inf])
    sol = linearized(ts, f0, y, K)
    eps = np.finfo(np.float64).eps
    for i, t in enumerate(ts):
        decay = np.where(lam > 0, np.exp(-np.where(np.isinf(t), 0.0, t) * lam / n) * (not np.isinf(t)), 1.0)
        ref = y + Q @ (decay * (Q.T @ (f0 - y)))
        # t = inf without a null space: every mode has decayed, f = y exactly.
        horizon = min(t, 1 / lam[n - n_zero - 1]) if n_zero else (t if np.isfinite(t) else 0.0)
        bound = 1e-13 + eps * horizon
        assert rel_error(sol.f[i], ref) < bound, (t, rel_error(sol.f[i], ref))
    # The slowest genuine mode (1e-12) has visibly moved by t = 1e12 but not by t = 1e10.
    assert rel_error(sol.f[5], sol.f[4]) > 1e-3


def test_output_normalization_matches_neural_tangents_convention(getkey):
    """``normalization="outputs"``: ``f = y + expm(-Theta t / (n k)) (f0 - y)`` (the mean-over-all-
    entries loss of neural_tangents.predict.gradient_descent_mse), written out with expm; time is k
    times the default's."""
    n, k = 5, 3
    A = jr.normal(getkey(), (n * k, n * k))
    K = A @ A.T
    K4 = jnp.transpose(K.reshape(n, k, n, k), (0, 2, 1, 3))  # (n, n, k, k) layout
    f0, y = jr.normal(getkey(), (n, k)), jr.normal(getkey(), (n, k))
    t = 0.7
    ref = y.reshape(-1) + expm(-K * t / (n * k)) @ (f0 - y).reshape(-1)
    nt = linearized(t, f0, y, K4, normalization="outputs")
    assert rel_error(nt.f.reshape(-1), ref) < 1e-12
    ours = linearized(t / k, f0, y, K4)  # samples: the same state at t / k
    assert rel_error(ours.f, nt.f) < 1e-12
    # Shared (n, n) kernel: the same factor k (the kernel is not block-expanded).
    Ks = A[:n] @ A[:n].T
    ref_s = y + expm(-Ks * t / (n * k)) @ (f0 - y)
    assert rel_error(linearized(t, f0, y, Ks, normalization="outputs").f, ref_s) < 1e-12
    # k = 1: the two conventions agree.
    one = linearized(t, f0[:, 0], y[:, 0], Ks)
    assert rel_error(one.f, linearized(t, f0[:, 0], y[:, 0], Ks, normalization="outputs").f) < 1e-15


def test_bad_inputs_named(getkey):
    K = jnp.eye(3)
    with pytest.raises(ValueError, match="`f0` must hold at least one"):
        linearized(1.0, jnp.zeros((0,)), jnp.zeros((0,)), jnp.zeros((0, 0)))
    with pytest.raises(ValueError, match="`f0` must hold at least one"):
        linearized(1.0, jnp.zeros((3, 0)), jnp.zeros((3, 0)), K)
    with pytest.raises(ValueError, match="`normalization`"):
        linearized(1.0, jnp.zeros(3), jnp.ones(3), K, normalization="mean")
    with pytest.raises(ValueError, match="`null_rtol`"):
        linearized(1.0, jnp.zeros(3), jnp.ones(3), K, null_rtol=-1.0)
    with pytest.raises(ValueError, match="`tol`"):
        linearized(1.0, jnp.zeros(3), jnp.ones(3), K, tol=float("nan"))
    with pytest.raises(ValueError, match="`t` must be non-negative"):
        linearized(jnp.array([1.0, jnp.nan]), jnp.zeros(3), jnp.ones(3), K)
    with pytest.raises(ValueError, match="`ntk` must be finite"):
        linearized(1.0, jnp.zeros(3), jnp.ones(3), K.at[0, 0].set(jnp.inf))
