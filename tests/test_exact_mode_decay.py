"""The master mode with input variance and weight decay (issue 16): against the width-one
network's gradient flow, the rescaling identities, limits, time inversion and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsolve import simulate
from linsolve.exact import lambda_balanced_mode, mode, mode_rapidity, mode_time
from linsolve.tasks import Task


def _draws(n=8, seed=3):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        B = 0.0 if i % 2 == 0 else float(rng.uniform(0.1, 2.0))
        out.append(dict(F0=float(rng.choice([-1, 1]) * rng.choice([1e-3, 0.3, 2.0])),
                        s=float(rng.choice([-1, 1]) * rng.uniform(0.5, 3.0)),
                        k=float(rng.uniform(0.5, 2.0)), A=float(rng.uniform(0.5, 3.0)), B=B,
                        variance=float(rng.uniform(0.3, 3.0)),
                        weight_decay=float(rng.uniform(0.0, 0.5)) if B == 0 else 0.0))
    return out


@jax.jit
def _simulate(u0, w0, Sxx, Syx, eta, gamma, ts):
    def one(u0, w0, Sxx, Syx, eta, gamma):
        task = Task(Sxx[None, None], Syx[None, None], (Syx * Syx / Sxx + 1.0)[None, None])
        traj = simulate.gradient_flow((w0[None, None], u0[None, None]), task, ts, lrs=eta,
                                      weight_decay=gamma, rtol=1e-12, atol=1e-14,
                                      steady_state=False)
        return traj.product()[:, 0, 0]

    return jax.vmap(one)(u0, w0, Sxx, Syx, eta, gamma)


def test_against_width_one_gradient_flow():
    """F = u w, rates kA/2, loss k(1/2 v F^2 - s F) + (k gamma/2)(u^2 + w^2): one vmapped run."""
    cs = _draws()
    u0, w0 = [], []
    for i, c in enumerate(cs):
        cc = (1 if i % 4 == 1 else -1) * c["B"] / (c["A"] / 2)  # u^2 - w^2, either sign
        u2 = (cc + np.sqrt(cc * cc + 4 * c["F0"] ** 2)) / 2
        u0.append(np.sqrt(u2))
        w0.append(c["F0"] / np.sqrt(u2))
    ts = jnp.linspace(0.0, 6.0, 41)
    col = lambda f: jnp.asarray([f(c) for c in cs])  # noqa: E731
    F_sim = _simulate(jnp.asarray(u0), jnp.asarray(w0), col(lambda c: c["k"] * c["variance"]),
                      col(lambda c: c["k"] * c["s"]), col(lambda c: c["A"] / 2),
                      col(lambda c: c["k"] * c["weight_decay"]), ts)
    for c, ref in zip(cs, np.asarray(F_sim)):
        got = np.asarray(mode(ts, **c))
        if c["B"] == 0 and np.sign(c["F0"]) * c["s"] <= c["weight_decay"]:
            keep = np.abs(ref) > 1e-4 * abs(c["F0"])  # the saddle F = 0 is unstable in the reference
            got, ref = got[keep], ref[keep]
        assert np.max(np.abs(got - ref)) <= 1e-8 * max(1.0, np.max(np.abs(ref))), c


def test_variance_is_a_rescaling_for_every_B():
    ts = jnp.linspace(0.0, 4.0, 9)
    for B in (0.0, 0.3, 5.0):
        for F0, s in ((0.2, 1.5), (-0.4, 2.0), (3.0, -1.0)):
            got = mode(ts, F0=F0, s=s, k=0.7, A=2.0, B=B, variance=2.5)
            np.testing.assert_allclose(got, mode(ts, F0=F0, s=s / 2.5, k=1.75, A=2.0, B=B),
                                       rtol=1e-14, atol=1e-15)
            assert float(mode(jnp.inf, F0=F0, s=s, k=0.7, A=2.0, B=B, variance=2.5)) == (
                pytest.approx(s / 2.5) if (B > 0 or F0 * s > 0) else 0.0)


@pytest.mark.parametrize("F0,s,gamma", [(1e-3, 2.0, 0.3), (0.5, 1.0, 0.2), (-0.2, -3.0, 0.5),
                                        (-0.2, 3.0, 0.1), (0.4, 0.3, 0.5)])
def test_decay_is_logistic_with_shifted_target(F0, s, gamma):
    """a = b, F = a b, da/dt = b (s - v a b) - gamma a: the logistic law, target (s - sgn F gamma)/v."""
    ts = jnp.linspace(0.0, 5.0, 11)
    k, A, v = 0.8, 2.0, 1.7
    got = mode(ts, F0=F0, s=s, k=k, A=A, B=0.0, variance=v, weight_decay=gamma)
    sigma = np.sign(F0)
    target = (s - sigma * gamma) / v  # sigma * target > 0: learned; <= 0: decays into 0
    r = k * A * v * target * sigma * np.asarray(ts)  # d|F|/dt = kAv |F| (sigma target - |F|)
    expected = F0 * np.exp(r) / (1 + abs(F0) * np.expm1(r) / (sigma * target))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    F_inf = float(mode(jnp.inf, F0=F0, s=s, k=k, A=A, B=0.0, variance=v, weight_decay=gamma))
    assert F_inf == (pytest.approx(target) if sigma * target > 0 else 0.0)
    assert float(mode(0.0, F0=F0, s=s, k=k, A=A, B=0.0, variance=v, weight_decay=gamma)) == F0


def test_time_rapidity_and_lambda_balanced_mode():
    kw = dict(s=2.0, k=0.9, A=2.0, B=0.0, variance=1.3, weight_decay=0.4)
    ts = jnp.linspace(0.1, 3.0, 7)
    F = mode(ts, F0=0.05, **kw)
    np.testing.assert_allclose(mode_time(0.05, F, **kw), ts, rtol=1e-10)
    np.testing.assert_allclose(mode_rapidity(ts, F0=0.05, **kw), jnp.log(F / 0.05), rtol=1e-12)
    kw_b = dict(s=2.0, k=0.9, A=2.0, B=0.7, variance=1.3)
    F = mode(ts, F0=-0.3, **kw_b)
    np.testing.assert_allclose(mode_time(-0.3, F, **kw_b), ts, rtol=1e-9)
    # lambda_balanced_mode is mode(k = 1/tau, A = 2, B = |lam|) with the same keywords.
    for lam, gamma in ((0.0, 0.3), (-0.8, 0.0)):
        a = lambda_balanced_mode(ts, a0=0.2, s=1.5, lam=lam, tau=0.7, variance=2.0, weight_decay=gamma)
        ref = mode(ts, F0=0.2, s=1.5, k=1 / 0.7, A=2.0, B=abs(lam), variance=2.0, weight_decay=gamma)
        np.testing.assert_allclose(a, ref, rtol=1e-14)


def test_jit_vmap_grad_and_defaults_unchanged():
    ts = jnp.linspace(0.0, 3.0, 5)
    f = jax.jit(lambda t, g, v: mode(t, F0=0.1, s=2.0, k=1.0, A=2.0, B=0.0, variance=v,
                                     weight_decay=g))
    np.testing.assert_allclose(f(ts, 0.2, 1.5), mode(ts, F0=0.1, s=2.0, k=1.0, A=2.0, B=0.0,
                                                     variance=1.5, weight_decay=0.2), rtol=1e-14)
    gs = jnp.array([0.0, 0.1, 0.4])
    out = jax.vmap(lambda g: f(ts, g, 1.5))(gs)
    assert out.shape == (3, 5) and np.all(np.diff(np.asarray(out)[:, -1]) < 0)  # more decay, less F
    dg = jax.grad(lambda g: f(2.0, g, 1.5))(0.2)
    fd = (f(2.0, 0.2 + 1e-6, 1.5) - f(2.0, 0.2 - 1e-6, 1.5)) / 2e-6
    np.testing.assert_allclose(dg, fd, rtol=1e-6)
    base = mode(ts, F0=0.1, s=2.0, k=1.0, A=2.0, B=0.5)
    assert np.array_equal(base, mode(ts, F0=0.1, s=2.0, k=1.0, A=2.0, B=0.5, variance=1.0,
                                     weight_decay=0.0))


def test_errors():
    kw = dict(F0=0.1, s=1.0, k=1.0, A=2.0)
    with pytest.raises(ValueError, match="weight_decay.*B"):
        mode(1.0, B=0.5, weight_decay=0.1, **kw)
    with pytest.raises(ValueError, match="weight_decay.*B"):
        mode_time(0.1, 0.5, s=1.0, k=1.0, A=2.0, B=0.5, weight_decay=0.1)
    with pytest.raises(ValueError, match="weight_decay.*concrete"):
        jax.jit(lambda B: mode(1.0, B=B, weight_decay=0.1, **kw))(0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        mode(1.0, B=0.0, weight_decay=-0.1, **kw)
    with pytest.raises(ValueError, match="weight_decay"):
        mode(1.0, B=0.0, weight_decay=jnp.inf, **kw)
    with pytest.raises(ValueError, match="variance"):
        mode(1.0, B=0.0, variance=0.0, **kw)
    with pytest.raises(ValueError, match="variance"):
        mode(1.0, B=0.3, variance=jnp.nan, **kw)
    with pytest.raises(ValueError, match="variance"):
        lambda_balanced_mode(1.0, a0=0.1, s=1.0, lam=0.0, variance=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        lambda_balanced_mode(1.0, a0=0.1, s=1.0, lam=0.5, weight_decay=0.2)
