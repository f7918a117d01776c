"""The master mode: against the parameter-space flow, its limits, its time inversion."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve.exact import mode, mode_rapidity, mode_time
from linsolve.verify._mode import check


def test_against_parameter_space_gradient_flow():
    result = check(jr.PRNGKey(1), draws=24)
    assert result.cases >= 24 and result.passed, result


@pytest.mark.parametrize("F0,s", [(1e-3, 2.0), (0.5, -1.0), (-0.2, -3.0), (4.0, 1.0)])
def test_B_zero_is_the_logistic_law(F0, s):
    ts = jnp.linspace(0, 5, 11)
    k, A = 0.7, 2.0
    got = mode(ts, F0=F0, s=s, k=k, A=A, B=0.0)
    if F0 * s > 0:
        # F(t) = s e^{kAst} / (e^{kAst} - 1 + s/F0) (Saxe et al. 2014), written for either sign.
        e = jnp.exp(k * A * jnp.abs(s) * ts)
        expected = s * e / (e - 1 + s / F0)
    else:
        # |F| decays: d|F|/dt = -kA|F|(|F| + |s|).
        x = k * A * abs(s) * ts
        expected = F0 * jnp.exp(-x) / (1 + abs(F0) * (1 - jnp.exp(-x)) / abs(s))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # B -> 0 is continuous.
    np.testing.assert_allclose(mode(ts, F0=F0, s=s, k=k, A=A, B=1e-9), got, rtol=1e-7)


def test_lazy_limit():
    ts = jnp.linspace(0, 3, 7)
    B, F0, s, k = 1e6, 0.3, 1.2, 1e-6
    got = mode(ts, F0=F0, s=s, k=k, A=1.0, B=B)
    np.testing.assert_allclose(got, s + (F0 - s) * jnp.exp(-k * B * ts), rtol=1e-6)


def test_limits_and_time_inversion():
    kw = dict(s=1.5, k=1.3, A=2.0, B=0.4)
    assert float(mode(0.0, F0=-0.7, **kw)) == -0.7
    assert float(mode(jnp.inf, F0=-0.7, **kw)) == 1.5
    assert float(mode(jnp.inf, F0=-0.7, s=1.5, k=1.0, A=2.0, B=0.0)) == 0.0
    assert float(mode(1e6, F0=-0.7, **kw)) == pytest.approx(1.5, rel=1e-14)
    ts = jnp.array([0.3, 1.0, 2.0])
    F = mode(ts, F0=-0.7, **kw)
    np.testing.assert_allclose(mode_time(-0.7, F, **kw), ts, rtol=1e-11)
    assert float(mode_time(-0.7, 1.5, **kw)) == jnp.inf  # the fixed point is never reached
    assert float(mode_time(-0.7, 2.0, **kw)) == jnp.inf  # beyond it
    assert float(mode_time(0.1, 0.05, s=1.0, k=1.0, A=2.0, B=0.0)) == jnp.inf  # behind F0


def test_rapidity_matches_definition():
    kw = dict(F0=-0.7, s=1.5, k=1.3, A=2.0, B=0.4)
    ts = jnp.array([0.0, 0.5, 3.0, jnp.inf])
    F = mode(ts, **kw)
    expected = jnp.arcsinh(2.0 * F / 0.4) - jnp.arcsinh(2.0 * -0.7 / 0.4)
    np.testing.assert_allclose(mode_rapidity(ts, **kw), expected, rtol=1e-12, atol=1e-14)


def test_broadcasting_vmap_jit_grad_float32():
    ts = jnp.linspace(0, 4, 5)
    s = jnp.array([0.5, 1.0, 2.0])
    table = mode(ts[:, None], F0=0.01, s=s, k=1.0, A=2.0, B=0.1)
    assert table.shape == (5, 3)
    vm = jax.vmap(lambda si: mode(ts, F0=0.01, s=si, k=1.0, A=2.0, B=0.1), out_axes=1)(s)
    np.testing.assert_allclose(vm, table, rtol=1e-14)
    jt = jax.jit(lambda t: mode(t, F0=0.01, s=s, k=1.0, A=2.0, B=0.1))(ts[:, None])
    np.testing.assert_allclose(jt, table, rtol=1e-14)
    f = lambda B: mode(2.0, F0=0.1, s=1.0, k=1.0, A=2.0, B=B)
    fd = (f(0.3 + 1e-6) - f(0.3 - 1e-6)) / 2e-6
    np.testing.assert_allclose(jax.grad(f)(0.3), fd, rtol=1e-6)
    f32 = mode(
        jnp.linspace(0, 4, 5, dtype=jnp.float32),
        F0=jnp.float32(0.01),
        s=jnp.float32(1.0),
        k=jnp.float32(1.0),
        A=jnp.float32(2.0),
        B=jnp.float32(0.1),
    )
    assert f32.dtype == jnp.float32
    np.testing.assert_allclose(f32, mode(ts, F0=0.01, s=1.0, k=1.0, A=2.0, B=0.1), rtol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match=r"`k` must be positive"):
        mode(1.0, F0=0.1, s=1.0, k=-1.0, A=2.0, B=0.0)
    with pytest.raises(ValueError, match=r"`B` must be non-negative"):
        mode(1.0, F0=0.1, s=1.0, k=1.0, A=2.0, B=-0.1)
    with pytest.raises(ValueError, match=r"`t` must be non-negative"):
        mode(-1.0, F0=0.1, s=1.0, k=1.0, A=2.0, B=0.0)
    with pytest.raises(ValueError, match=r"`F0` must be finite"):
        mode(1.0, F0=jnp.nan, s=1.0, k=1.0, A=2.0, B=0.0)


def test_extreme_times_keep_values_and_gradients_finite():
    for B in (0.0, 0.3):
        f = lambda t: mode(t, F0=0.1, s=2.0, k=1.0, A=2.0, B=B)
        for t in (1e3, 1e308):
            assert float(f(t)) == pytest.approx(2.0, rel=1e-14)
        assert bool(jnp.isfinite(jax.grad(f)(1e3)))
        g = jax.grad(lambda s: mode(1e3, F0=0.1, s=s, k=1.0, A=2.0, B=B))(2.0)
        assert bool(jnp.isfinite(g))
    # Decay toward 0 (B = 0, F0 s < 0) at huge times.
    assert float(mode(1e308, F0=0.5, s=-1.0, k=1.0, A=2.0, B=0.0)) == 0.0
    # A concrete time array closed over inside jit.
    ts = jnp.linspace(0, 1, 3)
    assert jax.jit(lambda F0: mode(ts, F0=F0, s=1.0, k=1.0, A=2.0, B=0.1))(0.2).shape == (3,)


def test_derivatives_at_the_edges():
    # d/dt at t = 0 is the vector field; d/ds at s = 0 (B = 0) matches finite differences.
    kw = dict(F0=0.3, s=1.5, k=1.2, A=2.0, B=0.4)
    dF = jax.grad(lambda t: mode(t, **kw))(0.0)
    field = -1.2 * (0.3 - 1.5) * jnp.sqrt(0.4**2 + 4.0 * 0.3**2)
    np.testing.assert_allclose(dF, field, rtol=1e-10)
    f = lambda s: mode(0.7, F0=0.3, s=s, k=1.0, A=2.0, B=0.0)
    fd = (f(1e-5) - f(-1e-5)) / 2e-5
    np.testing.assert_allclose(jax.grad(f)(0.0), fd, rtol=1e-6)
    # float32 in, float32 out (also for the time), and no underflow in the t = inf limit.
    t32 = mode_time(jnp.float32(0.1), jnp.float32(0.5), s=jnp.float32(1.0), k=jnp.float32(1.0),
                    A=jnp.float32(2.0), B=jnp.float32(0.0))
    assert t32.dtype == jnp.float32
    tiny = mode(jnp.inf, F0=jnp.float32(1e-30), s=jnp.float32(1e-30), k=jnp.float32(1.0),
                A=jnp.float32(2.0), B=jnp.float32(0.0))
    assert float(tiny) == pytest.approx(1e-30, rel=1e-6)
