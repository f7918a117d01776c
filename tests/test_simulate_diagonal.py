"""Diagonal linear networks on (u, v): conservation laws, GD against GF, divergence, vmap, input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsolve.simulate import (
    CONVERGED,
    DIVERGED,
    STEP_LIMIT,
    diagonal_gradient_descent,
    diagonal_gradient_flow,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 15))
    return X, rng.standard_normal(6)


def test_flow_conserves_uv_and_follows_the_mirror_relation(data):
    X, y = data
    alpha = np.linspace(0.05, 0.5, 15)
    run = diagonal_gradient_flow(X, y, jnp.linspace(0, 20, 41), alpha=alpha)
    assert int(run.status) == CONVERGED and not bool(run.diverged)
    u, v, beta = np.asarray(run.u), np.asarray(run.v), np.asarray(run.beta)
    np.testing.assert_allclose(u * v, np.broadcast_to(alpha**2, u.shape), rtol=1e-9)
    np.testing.assert_allclose(u * u + v * v, np.sqrt(beta**2 + 4 * alpha**4), rtol=1e-9)
    res = X @ beta.T - y[:, None]
    np.testing.assert_allclose(run.loss, 0.5 * np.sum(res * res, axis=0) / 6, rtol=1e-12)
    assert run.loss[-1] < 1e-6 * run.loss[0]  # it learns


def test_descent_one_step_by_hand_and_small_steps_approach_the_flow(data):
    X, y = data
    alpha, lr = 0.3, 1e-3
    gd = diagonal_gradient_descent(X, y, alpha=alpha, lr=lr, steps=2000, record_every=500)
    r = X.T @ (X @ np.zeros(15) - y) / 6
    one = diagonal_gradient_descent(X, y, alpha=alpha, lr=lr, steps=1)
    np.testing.assert_allclose(one.u[1], alpha - 2 * lr * alpha * r, rtol=1e-14)
    np.testing.assert_allclose(one.v[1], alpha + 2 * lr * alpha * r, rtol=1e-14)
    gf = diagonal_gradient_flow(X, y, gd.ts * lr, alpha=alpha)
    gap = float(jnp.max(jnp.abs(gd.beta - gf.beta)))
    assert 1e-6 < gap < 5e-3, gap  # first order in lr, and nonzero
    gd2 = diagonal_gradient_descent(X, y, alpha=alpha, lr=lr / 2, steps=4000, record_every=1000)
    gap2 = float(jnp.max(jnp.abs(gd2.beta - gf.beta)))
    assert 0.4 < gap2 / gap < 0.6, (gap, gap2)


def test_descent_divergence_is_reported(data):
    X, y = data
    run = diagonal_gradient_descent(X, y, alpha=1.0, lr=5.0, steps=200, record_every=10)
    assert bool(run.diverged) and int(run.status) == DIVERGED
    assert np.isfinite(float(run.diverged_at)) and np.all(np.isfinite(run.u))
    assert np.isinf(run.loss[-1]) and np.isfinite(run.loss[0])
    ok = diagonal_gradient_descent(X, y, alpha=1.0, lr=1e-3, steps=20, record_every=10)
    assert not bool(ok.diverged) and float(ok.diverged_at) == np.inf


def test_flow_step_limit_is_not_divergence(data):
    X, y = data
    run = diagonal_gradient_flow(X, y, jnp.array([0.0, 1.0, 1e4]), alpha=0.5, max_steps=50)
    assert int(run.status) == STEP_LIMIT and not bool(run.diverged)
    assert np.isinf(run.loss[-1]) and np.isfinite(run.loss[0])


def test_vmap_over_alpha_and_lr_compiles_once(data, compilations):
    X, y = data
    alphas = jnp.array([0.1, 0.5, 2.0])
    ts = jnp.linspace(0, 5, 6)
    flow = jax.vmap(lambda a: diagonal_gradient_flow(X, y, ts, alpha=a).beta)(alphas)
    for i, a in enumerate(alphas):
        np.testing.assert_allclose(flow[i], diagonal_gradient_flow(X, y, ts, alpha=a).beta,
                                   rtol=1e-8, atol=1e-9)  # shared adaptive steps
    descend = jax.jit(jax.vmap(
        lambda a, lr: diagonal_gradient_descent(X, y, alpha=a, lr=lr, steps=30, record_every=10)
    ))
    lrs = jnp.array([1e-2, 2e-2, 3e-2])
    alphas2, lrs2 = alphas * 2, lrs / 2
    with compilations() as events:
        out = descend(alphas, lrs).beta
        descend(alphas2, lrs2)
    assert len(events) == 1
    np.testing.assert_allclose(
        out[1], diagonal_gradient_descent(X, y, alpha=0.5, lr=2e-2, steps=30, record_every=10).beta,
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": np.ones(3)}, "alpha"),
        ({"alpha": 1.0, "X": np.ones(4)}, "X"),
        ({"alpha": 1.0, "y": np.ones(5)}, "y"),
    ],
)
def test_bad_input(data, kwargs, name):
    X, y = data
    args = {"X": X, "y": y, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        diagonal_gradient_flow(args["X"], args["y"], [0.0, 1.0], alpha=args["alpha"])
    with pytest.raises(ValueError, match=f"`{name}`"):
        diagonal_gradient_descent(args["X"], args["y"], alpha=args["alpha"], lr=0.1, steps=2)


def test_bad_schedule(data):
    X, y = data
    with pytest.raises(ValueError, match="`ts`"):
        diagonal_gradient_flow(X, y, [1.0, 0.5], alpha=1.0)
    with pytest.raises(ValueError, match="`lr`"):
        diagonal_gradient_descent(X, y, alpha=1.0, lr=-0.1, steps=2)
    with pytest.raises(ValueError, match="`steps`"):
        diagonal_gradient_descent(X, y, alpha=1.0, lr=0.1, steps=5, record_every=2)
