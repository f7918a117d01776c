"""Hessian spectra: dense and Lanczos eigenvalues against matrices with a known spectrum (NumPy),
finite differences of loss values, and the classification of textbook critical points."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from linsolve.analysis._hessian import (
    classify,
    flat_hessian,
    gradient_norm,
    hessian_spectrum,
    hvp,
    is_critical,
)
from linsolve.mlp import MLP


def _quadratic(evals, seed=0):
    """Loss 1/2 theta^T A theta on a two-leaf PyTree with A = Q diag(evals) Q^T (NumPy)."""
    P = len(evals)
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(P, P)))
    A = Q @ np.diag(evals) @ Q.T
    A = 0.5 * (A + A.T)
    split = P // 3

    def loss(p):
        th = jnp.concatenate([p["a"].reshape(-1), p["b"]])
        return 0.5 * th @ jnp.asarray(A) @ th

    params = {"a": jnp.ones((split,)), "b": jnp.ones((P - split,))}
    return loss, params, A, Q


def _fd_hessian(f, x, h):
    """Central second differences of loss values only: (f(x+a+b) - f(x+a-b) - f(x-a+b) + f(x-a-b)) / 4h^2."""
    P = x.shape[0]
    E = jnp.eye(P, dtype=x.dtype) * h
    sa = jnp.asarray([1, 1, -1, -1], x.dtype)
    sb = jnp.asarray([1, -1, 1, -1], x.dtype)
    pts = x + sa[:, None, None, None] * E[None, :, None] + sb[:, None, None, None] * E[None, None, :]
    vals = jax.jit(jax.vmap(jax.vmap(jax.vmap(f))))(pts)  # (4, P, P)
    fd = np.asarray(vals[0] - vals[1] - vals[2] + vals[3]) / (4 * h * h)
    return 0.5 * (fd + fd.T)


def test_full_spectrum_matches_numpy_eigvalsh():
    evals = np.array([-2.0, -0.5, 0.0, 0.0, 0.3, 1.0, 4.0, 9.0])
    loss, params, A, Q = _quadratic(evals)
    spec = hessian_spectrum(loss, params)
    np.testing.assert_allclose(spec.eigenvalues, np.linalg.eigvalsh(A), atol=1e-12)
    assert (spec.n_negative, spec.n_zero, spec.n_positive) == (2, 2, 4)
    assert spec.classification == "strict saddle" and spec.complete
    v = ravel_pytree(spec.min_direction)[0]
    assert abs(abs(float(v @ Q[:, 0])) - 1.0) < 1e-10  # eigenvector of -2


def test_lanczos_extremes():
    rng = np.random.default_rng(1)
    evals = np.concatenate([[-5.0, -3.0], rng.uniform(0.0, 1.0, 116), [7.0, 10.0]])
    loss, params, A, _ = _quadratic(evals, seed=2)
    spec = hessian_spectrum(loss, params, method="lanczos", k=30)
    ev = np.asarray(spec.eigenvalues)
    np.testing.assert_allclose(ev[:2], [-5.0, -3.0], atol=1e-8)
    np.testing.assert_allclose(ev[-2:], [7.0, 10.0], atol=1e-8)
    assert spec.classification == "strict saddle" and not spec.complete and spec.hessian is None


def test_lanczos_full_spectrum_through_breakdown_restarts():
    # three distinct eigenvalues: the Krylov space is exhausted after 3 steps and must restart
    evals = np.array([-1.0] * 4 + [2.0] * 4 + [5.0] * 4)
    loss, params, _, _ = _quadratic(evals, seed=3)
    spec = hessian_spectrum(loss, params, method="lanczos", k=12)
    np.testing.assert_allclose(spec.eigenvalues, np.sort(evals), atol=1e-9)
    assert (spec.n_negative, spec.n_zero, spec.n_positive) == (4, 0, 8) and spec.complete


def test_hessian_matches_finite_differences_of_loss_values():
    rng = np.random.default_rng(5)
    weights = (jnp.asarray(rng.normal(size=(3, 2))), jnp.asarray(rng.normal(size=(1, 3))))
    biases = (jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal(size=1)))
    net = MLP(weights, biases, None, None, "tanh")
    X = jnp.asarray(rng.normal(size=(7, 2)))
    Y = jnp.sin(X[:, :1])

    def loss(p):
        r = p(X) - Y
        return 0.5 * jnp.mean(r * r)

    spec = hessian_spectrum(loss, net)
    H, unravel = flat_hessian(loss, net)
    flat = ravel_pytree(net)[0]
    fd = _fd_hessian(lambda th: loss(unravel(th)), flat, 1e-4)
    np.testing.assert_allclose(spec.hessian, fd, atol=1e-6 * np.abs(fd).max())
    np.testing.assert_allclose(H, spec.hessian, atol=1e-14)
    np.testing.assert_allclose(spec.eigenvalues, np.linalg.eigvalsh(fd), atol=1e-6 * np.abs(fd).max())
    # HVP agrees with the dense Hessian
    v = jnp.asarray(rng.normal(size=flat.shape))
    np.testing.assert_allclose(ravel_pytree(hvp(loss, net, unravel(v)))[0], H @ v, atol=1e-12)


@pytest.mark.parametrize(
    "fn, label, counts",
    [
        (lambda p: p[0] ** 2 + 3 * p[1] ** 2, "strict minimum", (0, 0, 2)),
        (lambda p: p[0] ** 2 - p[1] ** 2, "strict saddle", (1, 0, 1)),
        (lambda p: p[0] ** 2 + p[1] ** 4, "degenerate minimum", (0, 1, 1)),
        (lambda p: -(p[0] ** 2) - 2 * p[1] ** 2, "strict maximum", (2, 0, 0)),
        (lambda p: -(p[0] ** 2) - p[1] ** 4, "degenerate maximum", (1, 1, 0)),
        (lambda p: p[0] ** 4 + p[1] ** 3, "flat", (0, 2, 0)),
    ],
)
def test_classification_of_textbook_critical_points(fn, label, counts):
    spec = hessian_spectrum(fn, jnp.zeros(2))
    assert spec.classification == label
    assert (spec.n_negative, spec.n_zero, spec.n_positive) == counts


def test_zero_tolerance_is_relative_to_the_spectrum_scale():
    loss = lambda p: 0.5 * (1e6 * p[0] ** 2 + p[1] ** 2 + 1e-4 * p[2] ** 2)
    spec = hessian_spectrum(loss, jnp.zeros(3))
    assert float(spec.tol) == pytest.approx(1e6 * np.sqrt(np.finfo(np.float64).eps))
    assert (spec.n_zero, spec.n_positive) == (1, 2)  # 1e-4 < 1.5e-8 * 1e6
    strict = hessian_spectrum(loss, jnp.zeros(3), tol=0.0)
    assert (strict.n_zero, strict.n_positive) == (0, 3)
    assert hessian_spectrum(loss, jnp.zeros(3), rtol=1e-12).n_zero == 0


def test_partial_spectrum_classification_uses_extremes_only():
    # with k < P Lanczos steps zero counts are not trusted (interior Ritz values are approximate)
    assert classify(0, 3, 5, complete=False) == "minimum (second order)"
    assert classify(2, 0, 0, complete=False) == "maximum (second order)"
    assert classify(1, 0, 1, complete=False) == "strict saddle"
    assert classify(0, 3, 5) == "degenerate minimum"


def test_is_critical_at_least_squares_optimum():
    Xn = np.random.default_rng(6).normal(size=(15, 3))
    Yn = np.cos(Xn) @ np.ones((3, 1))
    X, Y = jnp.asarray(Xn), jnp.asarray(Yn)
    W = jnp.asarray(np.linalg.lstsq(Xn, Yn, rcond=None)[0].T)
    loss = lambda p: 0.5 * jnp.mean(jnp.sum((X @ p["W"].T - Y) ** 2, -1))
    assert bool(is_critical(loss, {"W": W}, 1e-10))
    moved = {"W": W + 1e-3}
    assert not bool(is_critical(loss, moved, 1e-10))
    # gradient norm = |(W - W*) Sxx| for the quadratic (independent closed form)
    expect = np.linalg.norm(1e-3 * np.ones((1, 3)) @ (X.T @ X / 15))
    assert float(gradient_norm(loss, moved)) == pytest.approx(expect, rel=1e-10)


def test_unhashable_loss_callable():
    class Quadratic(eqx.Module):  # an equinox Module holding an array is not hashable
        A: jax.Array

        def __call__(self, p):
            return 0.5 * p @ self.A @ p

    spec = hessian_spectrum(Quadratic(jnp.diag(jnp.asarray([2.0, -1.0]))), jnp.zeros(2))
    np.testing.assert_allclose(spec.eigenvalues, [-1.0, 2.0], atol=1e-14)


def test_bad_input():
    loss = lambda p: jnp.sum(p**2)
    with pytest.raises(ValueError, match="method"):
        hessian_spectrum(loss, jnp.ones(3), method="arnoldi")
    with pytest.raises(ValueError, match="`k`"):
        hessian_spectrum(loss, jnp.ones(3), method="lanczos", k=4)
    with pytest.raises(ValueError, match="`k`"):
        hessian_spectrum(loss, jnp.ones(3), k=2)
    with pytest.raises(ValueError, match="`tol`"):
        hessian_spectrum(loss, jnp.ones(3), tol=-1.0)
    with pytest.raises(ValueError, match="not both"):
        hessian_spectrum(loss, jnp.ones(3), tol=1.0, rtol=1.0)
    with pytest.raises(ValueError, match="empty"):
        hessian_spectrum(loss, {})
    with pytest.raises(ValueError, match="`tol`"):
        is_critical(loss, jnp.ones(3), -1.0)
