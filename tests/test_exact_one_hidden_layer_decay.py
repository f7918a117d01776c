"""Width-d one-dimensional network with weight decay: exact case vs full-parameter gradient flow."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve.exact import one_hidden_layer
from linsolve.verify._one_hidden_layer import (
    FIELDS,
    Case,
    compare_decay,
    draw_decay_cases,
)

TOL = 1e-8


def _hand_built() -> list[Case]:
    v = np.array([0.3, -0.2, 0.1])
    return [
        # F0 > 0, target survives the shift: F -> s - gamma/(kappa m2).
        Case("grows", v, v, 1.5, 0.8, 1.3, 0.7, 0.7, 0.3),
        # F0 < 0 (u0 = -w0), s < 0: F -> s + gamma/(kappa m2).
        Case("grows", v, -v, -1.2, 2.0, 0.9, 1.6, 1.6, 0.45),
        # Decay beats the signal: F, u, w -> 0 with s > 0.
        Case("dies", np.array([0.4]), np.array([0.4]), 0.2, 1.0, 1.0, 1.0, 1.0, 0.5),
        # Wrong sign: with decay the origin is a stable node.
        Case("dies", v, v, -0.7, 0.5, 1.1, 2.0, 2.0, 0.2),
    ]


def test_matches_gradient_flow_with_decay():
    cases = _hand_built() + draw_decay_cases(jr.PRNGKey(5), 12)
    results = compare_decay(cases)
    for c, r in zip(cases, results):
        assert not r["diverged"], c
        for field in FIELDS:
            assert r["errors"][field] <= TOL, (c, field, r["errors"][field])
        assert r["drift"] <= 1e-12, (c, r["drift"])
        assert r["limits"] <= TOL, (c, r["limits"])
    labels = {r["label"] for r in results}
    assert labels == {"grows", "dies"}
    assert any(0 < r["gamma"] for r in results) and any(r["gamma"] == 0 for r in results)


def test_limits_and_zero_decay():
    v = jnp.array([0.3, -0.2, 0.1])
    kw = dict(s=1.5, m2=0.8, kappa=1.3, eta_u=0.7, eta_w=0.7)
    t = jnp.array([0.0, 1.0, jnp.inf])
    sol = one_hidden_layer(t, v, v, weight_decay=0.3, **kw)
    np.testing.assert_array_equal(sol.u[0], v)
    np.testing.assert_array_equal(sol.w[0], v)
    np.testing.assert_allclose(sol.F[-1], 1.5 - 0.3 / (1.3 * 0.8), rtol=1e-14)
    np.testing.assert_allclose(sol.F, 1.3 * jnp.sum(sol.u * sol.w, -1), rtol=1e-13)
    assert jnp.all(jnp.isfinite(sol.u)) and sol.phi[-1] == jnp.inf
    # gamma = 0 (concrete or traced) is the decay-free solution.
    plain = one_hidden_layer(t, v, v, **kw)
    zero = one_hidden_layer(t, v, v, weight_decay=0.0, **kw)
    traced = jax.jit(lambda g: one_hidden_layer(t, v, v, weight_decay=g, **kw))(0.0)
    for f in ("u", "w", "F", "phi", "ntk"):
        np.testing.assert_array_equal(getattr(zero, f), getattr(plain, f))
        np.testing.assert_allclose(getattr(traced, f), getattr(plain, f), rtol=1e-15)


def test_grad_finite():
    v = jnp.array([0.3, -0.2])

    def F(gam):
        return one_hidden_layer(2.0, v, -v, s=-1.0, eta_u=1.2, eta_w=1.2, weight_decay=gam).F

    for gam in (0.0, 0.2):
        g = jax.grad(F)(gam)
        assert jnp.isfinite(g) and g > 0  # decay pulls F (< 0) toward 0
        np.testing.assert_allclose(g, (F(gam + 1e-6) - F(gam)) / 1e-6, rtol=1e-5)


def test_unsupported_and_bad_decay():
    u, w = jnp.array([0.3, 0.1]), jnp.array([0.2, -0.4])
    with pytest.raises(ValueError, match="weight_decay.*not exactly solvable.*eta_u"):
        one_hidden_layer(1.0, u, u, s=1.0, eta_u=1.0, eta_w=2.0, weight_decay=0.1)
    with pytest.raises(ValueError, match="weight_decay.*not exactly solvable.*B ="):
        one_hidden_layer(1.0, u, w, s=1.0, weight_decay=0.1)
    for bad in (-0.1, jnp.inf, jnp.nan, "x"):
        with pytest.raises(ValueError, match="weight_decay"):
            one_hidden_layer(1.0, u, u, s=1.0, weight_decay=bad)
    # Unequal rates are fine without decay.
    one_hidden_layer(1.0, u, w, s=1.0, eta_u=1.0, eta_w=2.0, weight_decay=0.0)
    # Traced: checked at run time.
    f = jax.jit(lambda g: one_hidden_layer(1.0, u, w, s=1.0, weight_decay=g).F)
    with pytest.raises(Exception, match="not exactly solvable"):
        jax.block_until_ready(f(0.1))
    assert eqx.is_array(f(0.0))
