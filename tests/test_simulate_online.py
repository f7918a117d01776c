"""Online SGD simulator: its mean over seeds is the exact expected risk; divergence past the edge."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import exact, simulate

N_SEEDS = 2000
D = 8


def _power_law(d, a):
    return jnp.arange(1, d + 1, dtype=float) ** -a


def _rotated(lam, key):
    """A non-diagonal covariance ``Q diag(lam) Q^T`` with a random rotation Q."""
    q, _ = jnp.linalg.qr(jr.normal(key, (lam.shape[0], lam.shape[0])))
    return (q * lam) @ q.T


def _mean_and_sem(risk):
    return risk.mean(0), risk.std(0, ddof=1) / np.sqrt(risk.shape[0])


CASES = [  # (spectrum exponent, batch size, noise, rotated)
    (0.0, 1, 0.0, False),  # isotropic
    (1.5, 1, 0.3, False),
    (1.0, 4, 0.0, True),  # non-diagonal covariance
    (1.5, 4, 0.3, False),
    (0.0, 32, 0.3, False),
    (1.5, 32, 0.0, False),
]


@pytest.mark.parametrize("a, batch_size, noise, rotated", CASES)
def test_mean_over_seeds_matches_exact_risk(a, batch_size, noise, rotated):
    lam = _power_law(D, a)
    w_star = jr.normal(jr.PRNGKey(1), (D,))
    w0 = 0.5 * jr.normal(jr.PRNGKey(2), (D,))
    covariance = _rotated(lam, jr.PRNGKey(3)) if rotated else lam
    # The exact theory works in the eigenbasis of Sigma: c0 = (Q^T (w0 - w*))^2 from `eigh` of the
    # covariance the simulator saw (independent of how the simulator samples).
    if rotated:
        eigenvalues, Q = jnp.linalg.eigh(covariance)
        c0 = (Q.T @ (w0 - w_star)) ** 2
    else:
        eigenvalues, c0 = lam, (w0 - w_star) ** 2
    lr = 0.5 * exact.sgd_max_learning_rate(eigenvalues, batch_size=batch_size)
    run = jax.jit(
        jax.vmap(
            lambda k: simulate.online_linear_sgd(
                k, covariance=covariance, w_star=w_star, w0=w0, lr=lr, batch_size=batch_size,
                steps=20, noise=noise, record_every=5,
            )
        )
    )(jr.split(jr.PRNGKey(0), N_SEEDS))
    np.testing.assert_array_equal(run.steps[0], [0, 5, 10, 15, 20])
    assert not run.diverged.any() and np.all(np.isinf(run.diverged_at))
    theory = exact.sgd_risk(run.steps[0], eigenvalues=eigenvalues, c0=c0, lr=lr,
                            batch_size=batch_size, noise=noise).risk
    # Step 0: deterministic, R(w0) = 1/2 (w0 - w*)^T Sigma (w0 - w*) + sigma^2/2 exactly.
    e = w0 - w_star
    np.testing.assert_allclose(run.risk[:, 0], 0.5 * e @ covariance @ e + 0.5 * noise**2
                               if rotated else 0.5 * lam @ e**2 + 0.5 * noise**2, rtol=1e-12)
    mean, sem = _mean_and_sem(run.risk[:, 1:])
    z = (mean - theory[1:]) / sem
    assert np.all(np.abs(z) < 3), z
    # The risk moved well beyond the statistical error (the test can tell a wrong recursion).
    assert np.all(np.abs(theory[1:] - theory[0]) > 20 * sem)


def test_batch_size_traced_below_a_maximum_is_the_same_process():
    """With `max_batch_size` the batch size is traced (vmapped); the mean still matches theory,
    and B = max_batch_size reproduces the static run draw for draw."""
    lam = _power_law(D, 1.0)
    w_star = jnp.ones(D)
    kwargs = dict(covariance=lam, w_star=w_star, w0=jnp.zeros(D), steps=20, noise=0.3,
                  record_every=20)
    keys = jr.split(jr.PRNGKey(5), N_SEEDS)

    def run(B, lr):
        return jax.vmap(lambda k: simulate.online_linear_sgd(
            k, lr=lr, batch_size=B, max_batch_size=8, **kwargs))(keys)

    for B in (2, 8):
        lr = 0.5 * exact.sgd_max_learning_rate(lam, batch_size=B)
        traced = jax.jit(run)(jnp.asarray(B), lr)
        theory = exact.sgd_risk(20, eigenvalues=lam, c0=w_star**2, lr=lr, batch_size=B, noise=0.3)
        mean, sem = _mean_and_sem(traced.risk[:, -1])
        assert abs(mean - theory.risk) < 3 * sem
    static = jax.vmap(lambda k: simulate.online_linear_sgd(k, lr=lr, batch_size=8, **kwargs))(keys)
    np.testing.assert_allclose(traced.risk, static.risk, rtol=1e-12)


@pytest.mark.parametrize(
    "a, batch_size, steps, diverged", [(0.0, 1, 600, 1.0), (1.5, 4, 1000, 0.75), (1.5, 32, 100, 1.0)]
)
def test_diverges_beyond_the_edge(a, batch_size, steps, diverged):
    """At 1.5 x the edge the mean risk grows without bound. Single runs blow up at random times
    (the mean is carried by rare large draws): within 1000 steps every run does in these
    isotropic and large-batch cases, most (86% of 64 seeds) for a power law with B = 4."""
    lam = _power_law(D, a)
    w_star = jnp.ones(D)
    edge = exact.sgd_max_learning_rate(lam, batch_size=batch_size)
    runs = jax.vmap(
        lambda k, lr: simulate.online_linear_sgd(
            k, covariance=lam, w_star=w_star, w0=jnp.zeros(D), lr=lr, batch_size=batch_size,
            steps=steps, record_every=50,
        ),
        in_axes=(0, None),
    )
    keys = jr.split(jr.PRNGKey(7), 64)
    beyond = runs(keys, 1.5 * edge)
    assert beyond.diverged.mean() >= diverged
    np.testing.assert_array_equal(beyond.status, np.where(beyond.diverged, simulate.DIVERGED, 0))
    assert np.all(np.isfinite(beyond.w))
    np.testing.assert_array_equal(np.isfinite(beyond.diverged_at), beyond.diverged)
    # The recorded risk is inf from the record after the blow-up on, finite before.
    for risk, at in zip(beyond.risk, beyond.diverged_at):
        np.testing.assert_array_equal(np.isinf(risk), np.arange(steps // 50 + 1) * 50 >= at)
    below = runs(keys[:16], 0.5 * edge)
    assert not below.diverged.any() and np.all(below.status == simulate.CONVERGED)


def test_float32_runs_in_float32():
    lam = _power_law(4, 1.0).astype(jnp.float32)
    run = simulate.online_linear_sgd(jr.PRNGKey(0), covariance=lam, w_star=jnp.ones(4, jnp.float32),
                                     w0=jnp.zeros(4, jnp.float32), lr=0.1, batch_size=2, steps=10)
    assert run.risk.dtype == jnp.float32 and run.w.dtype == jnp.float32 and run.risk.shape == (11,)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(batch_size=0), "`batch_size` must be an integer >= 1"),
        (dict(batch_size=2.5), "`batch_size` must be an integer >= 1"),
        (dict(batch_size=9, max_batch_size=8), r"`batch_size` must be an integer in \[1, max_batch"),
        (dict(max_batch_size=0), "`max_batch_size` must be an integer >= 1"),
        (dict(lr=0.0), "`lr` must be positive"),
        (dict(lr=-1.0), "`lr` must be positive"),
        (dict(noise=-0.1), "`noise` must be non-negative"),
        (dict(steps=-1), "`steps` must be an integer >= 0"),
        (dict(steps=10, record_every=3), "`steps` must be a multiple of `record_every`"),
        (dict(w0=jnp.zeros(3)), r"`w0` must have shape \(4,\)"),
        (dict(w_star=jnp.zeros((4, 1))), "`w_star` must be a 1-D array"),
        (dict(covariance=-jnp.ones(4)), "`covariance` .* must be non-negative"),
        (dict(covariance=jnp.ones((4, 3))), r"`covariance` must be a \(d,\) diagonal or a \(d, d\)"),
        (dict(covariance=jnp.triu(jnp.ones((4, 4)))), "`covariance` must be symmetric"),
        (dict(covariance=-jnp.eye(4)), "`covariance` must be positive definite"),
        (dict(covariance=jnp.array([1.0, jnp.nan, 1.0, 1.0])), "`covariance` must be finite"),
        (dict(key=0), "`key` must be a JAX PRNG key"),
    ],
)
def test_bad_input_names_the_argument(change, match):
    args = dict(key=jr.PRNGKey(0), covariance=jnp.ones(4), w_star=jnp.ones(4), w0=jnp.zeros(4),
                lr=0.1, batch_size=2, steps=10)
    args.update(change)
    key = args.pop("key")
    with pytest.raises(ValueError, match=match):
        simulate.online_linear_sgd(key, **args)
