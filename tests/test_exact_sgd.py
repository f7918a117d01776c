"""Expected risk of online minibatch SGD: the closed form against direct iteration of the moment
recursion, gradient descent, and Monte Carlo of SGD itself (fresh Gaussian samples)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve.exact import sgd_max_learning_rate, sgd_optimal_learning_rate, sgd_risk

D = 16
POWER = np.arange(1, D + 1) ** -1.5  # lam_k = k^-1.5
ISOTROPIC = np.full(D, 0.5)
C0 = np.arange(1, D + 1) ** -0.5


def _iterate(n, lam, c0, lr, B, noise):
    """The recursion of the issue, step by step in NumPy (float64)."""
    c, out = np.array(c0, float), []
    inv_b = 0.0 if B is None else 1.0 / B
    for _ in range(n + 1):
        out.append(0.5 * c @ lam + 0.5 * noise**2)
        c = (1 - lr * lam) ** 2 * c + lr**2 * inv_b * (lam**2 * c + lam * (lam @ c) + noise**2 * lam)
    return np.array(out)


@pytest.mark.parametrize("lam", [POWER, ISOTROPIC], ids=["power", "isotropic"])
@pytest.mark.parametrize("B", [1, 4, 32, None])
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_closed_form_is_the_recursion(lam, B, noise):
    for frac in (0.3, 0.9, 1.1):
        lr = frac * float(sgd_max_learning_rate(lam, batch_size=B))
        out = sgd_risk(jnp.arange(301), eigenvalues=lam, c0=C0, lr=lr, batch_size=B, noise=noise)
        ref = _iterate(300, lam, C0, lr, B, noise)
        np.testing.assert_allclose(out.risk, ref, rtol=1e-11)
        assert (float(out.spectral_radius) <= 1) == (frac < 1)


def test_full_batch_is_gradient_descent_exactly():
    """batch_size=None: c_k(t) = (1 - lr lam_k)^(2t) c0_k, the square of deterministic GD."""
    lr = 1.3
    steps = jnp.array([0, 1, 7, 100, 2000])
    out = sgd_risk(steps, eigenvalues=POWER, c0=C0, lr=lr, batch_size=None)
    e = np.sqrt(C0)[None, :] * (1 - lr * POWER)[None, :] ** np.asarray(steps)[:, None]
    np.testing.assert_allclose(out.c, e**2, rtol=1e-12, atol=1e-300)  # subnormals flush to 0
    same = sgd_risk(steps, eigenvalues=POWER, c0=C0, lr=lr, batch_size=np.inf)
    np.testing.assert_array_equal(same.risk, out.risk)


def _monte_carlo(key, lam, c0, lr, B, noise, steps, runs):
    """Online SGD with fresh samples, vmapped over seeds; w* = 0, w0 = sqrt(c0) per coordinate."""
    lam, w0 = jnp.asarray(lam), jnp.sqrt(jnp.asarray(c0))

    def run(k):
        def step(w, k):
            kx, kz = jr.split(k)
            x = jr.normal(kx, (B, lam.shape[0])) * jnp.sqrt(lam)
            y = noise * jr.normal(kz, (B,))
            w = w - lr / B * ((x @ w - y) @ x)
            return w, 0.5 * jnp.sum(lam * w * w) + 0.5 * noise**2

        return jax.lax.scan(step, w0, jr.split(k, steps))[1]

    return jax.jit(jax.vmap(run))(jr.split(key, runs))


# Every spectrum x batch size x noise; two of them in the default run (tests/test_simulate_online.py
# checks six more against simulate.online_linear_sgd), the rest with the slow tests.
_DEFAULT_MC = {("power", 1, 0.3), ("isotropic", 4, 0.0)}
_MC_CASES = [
    pytest.param(lam, B, noise, id=f"{name}-{B}-{noise}",
                 marks=() if (name, B, noise) in _DEFAULT_MC else pytest.mark.slow)
    for name, lam in (("power", POWER), ("isotropic", ISOTROPIC))
    for B in (1, 4, 32)
    for noise in (0.0, 0.3)
]


@pytest.mark.parametrize("lam, B, noise", _MC_CASES)
def test_monte_carlo_within_three_standard_errors(lam, B, noise):
    lr = 0.5 * float(sgd_max_learning_rate(lam, batch_size=B))
    risks = _monte_carlo(jr.PRNGKey(B + int(10 * noise)), lam, C0, lr, B, noise, 40, 2000)
    checked = np.array([1, 5, 15, 40])
    mean = np.asarray(risks.mean(0))[checked - 1]
    sem = np.asarray(risks.std(0))[checked - 1] / np.sqrt(risks.shape[0])
    theory = np.asarray(sgd_risk(checked, eigenvalues=lam, c0=C0, lr=lr, batch_size=B,
                                 noise=noise).risk)
    z = (mean - theory) / sem
    assert np.all(np.abs(z) < 3), z


def test_edge_bounds_and_divergence():
    for lam in (POWER, ISOTROPIC):
        trace, top = lam.sum(), lam.max()
        for B in (1, 2, 8, 64):
            edge = float(sgd_max_learning_rate(lam, batch_size=B))
            assert 2 * B / (trace + (B + 1) * top) <= edge * (1 + 1e-12)
            assert edge <= min(2 * B / trace, 2 * B / ((B + 1) * top)) * (1 + 1e-12)
            below = sgd_risk(jnp.array([0, 10**5]), eigenvalues=lam, c0=C0, lr=0.97 * edge,
                             batch_size=B)
            above = sgd_risk(jnp.array([0, 10**4]), eigenvalues=lam, c0=C0, lr=1.03 * edge,
                             batch_size=B)
            at = sgd_risk(1, eigenvalues=lam, c0=C0, lr=edge, batch_size=B).spectral_radius
            assert abs(float(at) - 1) < 1e-10
            assert float(below.risk[1]) < float(below.risk[0])  # bounded (and decaying)
            assert float(above.risk[1]) > 1e6 * float(above.risk[0])  # unbounded
        assert float(sgd_max_learning_rate(lam, batch_size=None)) == 2 / top
    # Large d, B = 1: the edge approaches 2 / tr Sigma (the noise of one sample).
    flat = np.full(4000, 1e-3)
    assert abs(float(sgd_max_learning_rate(flat, batch_size=1)) * flat.sum() / 2 - 1) < 1e-3
    # Simulated SGD leaves above the edge and stays below it.
    edge = float(sgd_max_learning_rate(POWER, batch_size=1))
    for frac, grows in ((0.9, False), (1.5, True)):
        risks = _monte_carlo(jr.PRNGKey(3), POWER, C0, frac * edge, 1, 0.0, 400, 200)
        final = float(jnp.median(risks[:, -1]))
        assert (final > 1e3 * float(0.5 * C0 @ POWER)) == grows


def test_optimal_learning_rate_against_a_grid():
    kw = dict(eigenvalues=POWER, c0=C0, batch_size=4, noise=0.2)
    lr, risk = sgd_optimal_learning_rate(50, **kw)
    edge = float(sgd_max_learning_rate(POWER, batch_size=4))
    grid = np.linspace(0.01, 0.999, 2000) * edge
    values = jax.vmap(lambda r: sgd_risk(50, lr=r, **kw).risk)(jnp.asarray(grid))
    assert float(risk) <= float(values.min()) * (1 + 1e-9)
    assert abs(float(lr) - grid[int(np.argmin(values))]) < 2 * (grid[1] - grid[0])


def test_vmap_over_learning_rate_and_batch_size():
    lrs = jnp.array([0.1, 0.2, 0.3])
    Bs = jnp.array([1.0, 4.0, jnp.inf])
    f = jax.vmap(lambda lr, B: sgd_risk(20, eigenvalues=POWER, c0=C0, lr=lr, batch_size=B).risk)
    out = f(lrs, Bs)
    for lr, B, r in zip(lrs, Bs, out):
        single = sgd_risk(20, eigenvalues=POWER, c0=C0, lr=float(lr),
                          batch_size=None if np.isinf(B) else int(B)).risk
        np.testing.assert_allclose(r, single, rtol=1e-13)
    edges = jax.vmap(lambda B: sgd_max_learning_rate(POWER, batch_size=B))(Bs)
    assert edges[0] < edges[1] < edges[2] == 2 / POWER.max()


def test_bad_input():
    kw = dict(eigenvalues=POWER, c0=C0, lr=0.1, batch_size=4)
    for bad, name in ((dict(eigenvalues=-POWER), "eigenvalues"), (dict(batch_size=0), "batch_size"),
                      (dict(batch_size=2.5), "batch_size"), (dict(lr=0.0), "lr"),
                      (dict(lr=-1.0), "lr"), (dict(c0=C0[:3]), "c0"), (dict(noise=-0.1), "noise"),
                      (dict(c0=-C0), "c0")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            sgd_risk(3, **{**kw, **bad})
    with pytest.raises(ValueError, match="`steps`"):
        sgd_risk(-1, **kw)
    with pytest.raises(ValueError, match="`batch_size`"):
        sgd_max_learning_rate(POWER, batch_size=0.5)
    with pytest.raises(ValueError, match="`eigenvalues`"):
        sgd_max_learning_rate(np.zeros(3), batch_size=1)
