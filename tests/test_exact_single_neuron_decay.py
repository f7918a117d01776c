"""Single neuron with weight decay (balanced, equal rates) and Sxx = c I vs full gradient flow."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve.exact import single_neuron
from linsolve.verify._single_neuron import (
    DECAY_CATEGORIES,
    FIELDS,
    DecayCase,
    compare_decay,
    draw_decay_cases,
)

TOL = 1e-8


def test_matches_gradient_flow_with_decay():
    w0 = np.array([0.6, -0.2, 0.3])
    hand = [
        # Growing mode survives: beta -> (1 - gamma/(c |beta*|)) beta*.
        DecayCase("grows", -float(np.linalg.norm(w0)), w0, np.array([1.0, 0.5, -0.2]), 1.3, 0.4,
                  0.7),
        # w0 exactly against beta* with a0 > 0: only the decaying modes (c+ = 0 with lambda < 0).
        DecayCase("dies", 0.5, np.array([-0.5, 0.0, 0.0]), np.array([0.1, 0.0, 0.0]), 2.0, 0.5,
                  1.0),
    ]
    cases = hand + draw_decay_cases(jr.PRNGKey(11), 10)
    res = compare_decay(cases)
    for i, c in enumerate(cases):
        assert not res["diverged"][i], c
        for f in FIELDS:
            assert res[f][i] <= TOL, (c, f, res[f][i])
        assert res["drift"][i] <= 1e-12, (c, res["drift"][i])
        assert res["limits"][i] <= TOL, (c, res["limits"][i])
    assert set(res["label"]) == set(DECAY_CATEGORIES)


def test_limits_zero_decay_and_long_times():
    a0, w0, bs = 0.5, jnp.array([0.3, 0.4, 0.0]), jnp.array([1.2, -0.3, 0.4])
    t = jnp.array([0.0, 1.0, 1e4, 1e300, jnp.inf])
    sol = single_neuron(t, a0, w0, bs, eta_a=0.8, eta_w=0.8, weight_decay=0.25)
    np.testing.assert_array_equal(sol.w[0], w0)
    assert sol.a[0] == a0
    target = (1 - 0.25 / jnp.linalg.norm(bs)) * bs
    np.testing.assert_allclose(sol.beta[2:], jnp.broadcast_to(target, (3, 3)), rtol=1e-13)
    assert jnp.all(jnp.abs(sol.delta) < 1e-15)
    # Decay beats the signal: everything goes to 0, without NaN at any time.
    dead = single_neuron(t, a0, w0, 0.1 * bs, eta_a=0.8, eta_w=0.8, weight_decay=0.25)
    assert jnp.all(jnp.isfinite(dead.w)) and jnp.all(dead.a[2:] == 0)
    # gamma = 0 (concrete or traced) is the decay-free solution.
    plain = single_neuron(t, a0, w0, bs, eta_a=0.8, eta_w=0.8)
    traced = jax.jit(lambda g: single_neuron(t, a0, w0, bs, eta_a=0.8, eta_w=0.8,
                                             weight_decay=g))(0.0)
    for f in ("a", "w", "loss"):  # the same solution (t = 1e300 finite in both)
        np.testing.assert_allclose(getattr(traced, f), getattr(plain, f), rtol=1e-14, atol=1e-16)
        assert jnp.all(jnp.isfinite(getattr(plain, f)))
    # Traced decay matches the plain call; the gradient in gamma is finite.
    f = jax.jit(lambda g: single_neuron(t, a0, w0, bs, eta_a=0.8, eta_w=0.8, weight_decay=g))
    np.testing.assert_allclose(f(0.25).a, sol.a, rtol=1e-15)
    def a_at(gam):
        return single_neuron(2.0, a0, w0, bs, eta_a=0.8, eta_w=0.8, weight_decay=gam).a

    for gam in (0.0, 0.25):
        g = jax.grad(a_at)(gam)
        assert jnp.isfinite(g) and g < 0
        np.testing.assert_allclose(g, (a_at(gam + 1e-6) - a_at(gam)) / 1e-6, rtol=1e-5)


def test_unsupported_and_bad_decay():
    a0, w0, bs = 0.5, jnp.array([0.3, 0.4]), jnp.array([1.0, 0.0])
    with pytest.raises(ValueError, match="weight_decay.*not exactly solvable.*eta_a"):
        single_neuron(1.0, a0, w0, bs, eta_a=1.0, eta_w=2.0, weight_decay=0.1)
    with pytest.raises(ValueError, match="weight_decay.*not exactly solvable.*a0\\^2"):
        single_neuron(1.0, 0.7, w0, bs, weight_decay=0.1)
    for bad in (-0.1, jnp.inf, jnp.nan, "x"):
        with pytest.raises(ValueError, match="weight_decay"):
            single_neuron(1.0, a0, w0, bs, weight_decay=bad)
    single_neuron(1.0, 0.7, w0, bs, eta_a=1.0, eta_w=2.0, weight_decay=0.0)
    f = jax.jit(lambda g: single_neuron(1.0, 0.7, w0, bs, weight_decay=g).a)
    with pytest.raises(Exception, match="not exactly solvable"):
        jax.block_until_ready(f(0.1))
