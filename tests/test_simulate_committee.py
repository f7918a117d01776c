"""Online SGD of committee machines (linsolve.simulate) against the teacher-student ODEs."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.scipy.special import erf

from linsolve import exact, simulate

K = M = 2


def _setup(N, seed=0):
    """Teacher with ``T = I`` exactly and a student with small, slightly asymmetric overlaps
    ``R0 = A``, ``Q0 = A A^T + 0.01 I`` exactly (a plateau), the same at every N: built on
    orthonormal directions, so different N differ only by the dynamics' fluctuations."""
    E = jnp.linalg.qr(jr.normal(jr.PRNGKey(seed), (K + M, N)).T)[0].T  # orthonormal rows
    W_star = jnp.sqrt(N) * E[:M]
    A = 0.05 * jnp.array([[1.0, 0.6], [0.5, 1.0]])
    W0 = A @ W_star + 0.1 * jnp.sqrt(N) * E[M:]
    return (W_star, jnp.ones(M)), (W0, jnp.ones(K))


def _ode_vs_sim(N, seeds, alpha=60.0, n_records=40, lr=1.0):
    teacher, student = _setup(N)
    every = int(round(alpha * N / n_records))
    runs = jax.vmap(
        lambda key: simulate.online_sgd_committee(
            key, N=N, K=K, M=M, lr=lr, steps=every * n_records, record_every=every,
            train_readout=False, teacher=teacher, student=student,
        )
    )(jr.split(jr.PRNGKey(1), seeds))
    Q0, R0, T, v0, vs = simulate.committee_order_parameters(*student, *teacher)
    sol = exact.committee_ode(runs.alpha[0], Q0=Q0, R0=R0, T=T, v0=v0, v_star=vs, lr=lr,
                              train_readout=False)
    ode = np.asarray(sol.eps_g)
    per_run = (np.asarray(runs.eps_g) - ode) / ode  # (seeds, T) relative gap of each run
    mean = np.mean(np.asarray(runs.eps_g), axis=0)
    return ode, mean, (mean - ode) / ode, per_run


def test_ode_follows_the_mean_simulation_onto_the_plateau():
    # default run: N = 200, alpha <= 24 (the fast drop and the first half of the plateau)
    ode, mean, rel, _ = _ode_vs_sim(N=200, seeds=8, alpha=24.0, n_records=16)
    assert ode[-1] > 0.8 * ode[6] and ode[6] < 0.1 * ode[0]  # on the plateau from alpha = 9
    assert np.max(np.abs(rel)) < 0.08, np.abs(rel).max()


@pytest.mark.slow
def test_ode_follows_the_mean_simulation_through_the_plateau():
    ode, mean, rel, _ = _ode_vs_sim(N=500, seeds=8)
    plateau = (np.arange(41) >= 6) & (np.arange(41) <= 18)  # alpha in [9, 27]
    assert np.ptp(ode[plateau]) < 0.1 * ode[plateau].mean()  # it is a plateau ...
    assert ode[-1] < 0.3 * ode[plateau].mean()  # ... that the student leaves
    assert np.max(np.abs(rel)) < 0.06, np.abs(rel).max()


@pytest.mark.slow
def test_ode_gap_shrinks_with_n():
    """From the same initial order parameters at N = 500 and 2000 (16 seeds): the seed mean within
    5 % of the ODE along the whole curve, and a single run's rms gap ~ 1/sqrt(N) (measured 0.057
    and 0.032: ratio 0.57 against 0.5)."""
    gaps = {}
    for N in (500, 2000):
        _, _, rel, per_run = _ode_vs_sim(N=N, seeds=16)
        gaps[N] = float(np.sqrt(np.mean(per_run**2)))  # rms gap of a single run
        assert np.max(np.abs(rel)) < 0.05, (N, np.abs(rel).max())
    assert 0.35 < gaps[2000] / gaps[500] < 0.75, gaps


def test_records_are_the_order_parameters_of_the_weights():
    teacher, student = _setup(50)
    run = simulate.online_sgd_committee(jr.PRNGKey(3), N=50, K=K, M=M, lr=0.5, steps=20,
                                        record_every=20, teacher=teacher, student=student)
    Q0, R0, T, v0, vs = simulate.committee_order_parameters(*student, *teacher)
    np.testing.assert_allclose(run.Q[0], Q0, rtol=1e-14)
    np.testing.assert_allclose(run.R[0], R0, rtol=1e-14)
    np.testing.assert_allclose(run.T, T, rtol=1e-14)
    W, v = run.W, run.v_final
    np.testing.assert_allclose(run.Q[-1], W @ W.T / 50, rtol=1e-13)
    np.testing.assert_allclose(run.R[-1], W @ teacher[0].T / 50, rtol=1e-13)
    np.testing.assert_allclose(run.v[-1], v, rtol=1e-14)
    want = exact.committee_error(run.Q[-1], run.R[-1], T, v, vs)
    np.testing.assert_allclose(run.eps_g[-1], want, rtol=1e-13)


@pytest.mark.parametrize("train_readout", [True, False])
def test_first_step_matches_a_hand_written_update(train_readout):
    N, lr, sigma = 30, 0.7, 0.3
    teacher, student = _setup(N)
    W0, v0 = np.asarray(student[0]), np.array([1.0, -0.4])
    Ws, vs = np.asarray(teacher[0]), np.asarray(teacher[1])
    run = simulate.online_sgd_committee(jr.PRNGKey(4), N=N, K=K, M=M, lr=lr, steps=1, noise=sigma,
                                        train_readout=train_readout, teacher=teacher,
                                        student=(W0, v0))
    # the sample the simulator draws: split(key, 3)[2], split once per record interval
    _, sub = jr.split(jr.split(jr.PRNGKey(4), 3)[2])
    sample = np.asarray(jr.normal(sub, (1, N + 1)))[0]
    x, z = sample[:N], sample[N]
    g = lambda a: np.asarray(erf(a / np.sqrt(2)))  # noqa: E731
    lam, nu = W0 @ x / np.sqrt(N), Ws @ x / np.sqrt(N)
    delta = v0 @ g(lam) - vs @ g(nu) - sigma * z
    dg = np.sqrt(2 / np.pi) * np.exp(-(lam**2) / 2)
    W1 = W0 - lr / np.sqrt(N) * np.outer(v0 * dg * delta, x)
    v1 = v0 - lr / N * g(lam) * delta if train_readout else v0
    np.testing.assert_allclose(run.W, W1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(run.v_final, v1, rtol=1e-12, atol=1e-14)


def test_linear_committee_follows_its_closed_form_and_diverges_above_the_rate():
    # linear student: SGD on u = sum_k v_k w_k at rate lr |v|^2 (see the exact tests)
    N, seeds, lr, sigma = 200, 16, 0.4, 0.5
    teacher, student = _setup(N)
    v0 = jnp.array([1.0, 0.5])
    every, n = 2 * N, 5

    def run(key, lr):
        return simulate.online_sgd_committee(
            key, N=N, K=K, M=M, lr=lr, steps=every * n, record_every=every, noise=sigma,
            train_readout=False, activation="linear", teacher=teacher, student=(student[0], v0),
        )

    keys = jr.split(jr.PRNGKey(5), seeds)
    runs = jax.vmap(run, in_axes=(0, None))(keys, lr)
    Q0, R0, T, _, vs = simulate.committee_order_parameters(student[0], v0, *teacher)
    sol = exact.committee_ode(runs.alpha[0], Q0=Q0, R0=R0, T=T, v0=v0, v_star=vs, lr=lr,
                              noise=sigma, train_readout=False, activation="linear")
    eps = np.asarray(runs.eps_g)
    sem = eps.std(0, ddof=1) / np.sqrt(seeds)
    z = (eps.mean(0) - np.asarray(sol.eps_g))[1:] / sem[1:]
    assert np.max(np.abs(z)) < 4, z
    blown = run(keys[0], 3.0 / float(v0 @ v0))
    assert bool(blown.diverged) and int(blown.status) == simulate.DIVERGED
    assert np.isfinite(float(blown.diverged_at)) and np.all(np.isfinite(blown.W))


def test_vmap_over_learning_rate_and_defaults():
    lrs = jnp.array([0.5, 1.0])
    runs = jax.vmap(
        lambda lr: simulate.online_sgd_committee(jr.PRNGKey(6), N=40, K=3, M=2, lr=lr, steps=40,
                                                 record_every=20)
    )(lrs)
    assert runs.Q.shape == (2, 3, 3, 3) and runs.R.shape == (2, 3, 3, 2)
    # default teacher w* ~ N(0, I): T ~ I; default student: init_scale 1e-3, v = 1
    np.testing.assert_allclose(runs.T[0], np.eye(2), atol=0.6)
    assert float(jnp.max(jnp.abs(runs.Q[0, 0]))) < 1e-5
    np.testing.assert_allclose(runs.v[0, 0], np.ones(3))


def test_bad_input_names_the_argument():
    key = jr.PRNGKey(0)
    kw = dict(N=10, K=2, M=2, lr=1.0, steps=4)
    with pytest.raises(ValueError, match="`lr`"):
        simulate.online_sgd_committee(key, **{**kw, "lr": 0.0})
    with pytest.raises(ValueError, match="`activation`"):
        simulate.online_sgd_committee(key, activation="tanh", **kw)
    with pytest.raises(ValueError, match="`steps`"):
        simulate.online_sgd_committee(key, record_every=3, **kw)
    with pytest.raises(ValueError, match="`student\\[0\\]`"):
        simulate.online_sgd_committee(key, student=(jnp.ones((3, 10)), jnp.ones(3)), **kw)
    with pytest.raises(ValueError, match="`teacher\\[0\\]`"):
        simulate.online_sgd_committee(key, teacher=(jnp.ones((2, 11)), jnp.ones(2)), **kw)
    with pytest.raises(ValueError, match="`key`"):
        simulate.online_sgd_committee(0, **kw)
    with pytest.raises(ValueError, match="`noise`"):
        simulate.online_sgd_committee(key, noise=-1.0, **kw)
