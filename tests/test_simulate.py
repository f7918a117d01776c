"""Simulators: invariants, GD -> GF at first order, convergence, divergence, no recompilation."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from linsolve import init, models, simulate, tasks

S = jnp.array([3.0, 2.0, 1.0])


@pytest.fixture(scope="module")
def task():
    return tasks.teacher(jr.PRNGKey(11), 4, 3, S)


@pytest.mark.parametrize("sizes,lrs", [((4, 5, 3), (1.0, 0.4)), ((4, 5, 6, 3), (0.5, 1.2, 0.8))])
def test_gradient_flow_conserves_layer_pair_law(task, sizes, lrs):
    params0 = init.random(jr.PRNGKey(1), sizes, 0.05)
    ts = jnp.linspace(0.0, 40.0, 81)
    traj = simulate.gradient_flow(params0, task, ts, lrs=lrs)
    assert not bool(traj.diverged)
    # The whole sigmoidal learning curve: from the plateau to convergence.
    assert float(traj.loss[0]) > 0.9 * float(jnp.sum(S**2)) / 2
    assert float(traj.loss[-1]) < 1e-12
    C0 = models.conserved_quantities(params0, lrs)
    Ct = jax.vmap(lambda p: models.conserved_quantities(p, lrs))(traj.params)
    for c0, ct in zip(C0, Ct):
        assert float(jnp.max(jnp.abs(ct - c0))) < 1e-9


def test_gradient_descent_converges_to_flow_at_first_order(task):
    params0 = init.random(jr.PRNGKey(2), (4, 5, 3), 0.3)
    eta, T = jnp.array([1.0, 0.5]), 3.0
    reference = simulate.gradient_flow(
        params0, task, jnp.array([T]), lrs=eta, rtol=1e-12, atol=1e-14
    ).product()[-1]
    hs = np.array([0.1, 0.05, 0.025, 0.0125])
    errors = []
    for h in hs:
        steps = int(round(T / h))
        traj = simulate.gradient_descent(
            params0, task, lrs=eta * h, steps=steps, record_every=steps
        )
        errors.append(float(jnp.max(jnp.abs(traj.product()[-1] - reference))))
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert 0.9 < slope < 1.1, (slope, errors)


def test_learns_least_squares_with_stage_like_order(task):
    U, _, Vt = task.svd()
    params0 = init.random(jr.PRNGKey(3), (4, 8, 3), 1e-3)
    traj = simulate.gradient_descent(params0, task, lrs=0.05, steps=4000, record_every=20)
    P = traj.product()
    np.testing.assert_allclose(P[-1], task.optimum(), atol=1e-9)
    modes = jnp.einsum("oa,toi,ai->ta", U, P, Vt)  # strength of each teacher mode
    half_times = [float(traj.ts[jnp.argmax(modes[:, a] > S[a] / 2)]) for a in range(3)]
    assert half_times[0] < half_times[1] < half_times[2], half_times


def test_divergence_is_reported_not_crashed(task):
    params0 = init.random(jr.PRNGKey(4), (4, 5, 3), 0.5)
    traj = simulate.gradient_descent(params0, task, lrs=3.0, steps=200, record_every=10)
    assert bool(traj.diverged) and int(traj.status) == simulate.DIVERGED
    assert 0 < float(traj.diverged_at) < 200
    assert all(bool(jnp.all(jnp.isfinite(W))) for W in traj.params)
    bad = traj.ts > traj.diverged_at
    assert bool(jnp.all(jnp.isinf(traj.loss[bad]))) and bool(jnp.all(jnp.isfinite(traj.loss[~bad])))
    ok = simulate.gradient_descent(params0, task, lrs=0.05, steps=200, record_every=10)
    assert not bool(ok.diverged) and float(ok.diverged_at) == float("inf")
    assert int(ok.status) == simulate.CONVERGED


def test_gradient_flow_step_limit_is_reported(task):
    # A step budget far too small: the solver stops early; the trajectory says so (STEP_LIMIT, not
    # diverged), keeps the saves it reached and holds the last state reached after that.
    params0 = init.random(jr.PRNGKey(4), (4, 5, 3), 0.1)
    ts = jnp.linspace(0, 20, 6)
    traj = simulate.gradient_flow(params0, task, ts, max_steps=8)
    assert int(traj.status) == simulate.STEP_LIMIT and not bool(traj.diverged)
    assert float(traj.diverged_at) == float("inf")
    assert 0 < float(traj.stats["t_final"]) < 20
    assert all(bool(jnp.all(jnp.isfinite(W))) for W in traj.params)
    assert bool(jnp.all(jnp.isfinite(traj.loss)))


def test_no_recompilation_for_new_rates_and_scales(task, compilations):
    p_a = init.random(jr.PRNGKey(5), (4, 5, 3), 0.1)
    p_b = init.random(jr.PRNGKey(6), (4, 5, 3), 0.7)
    ts = jnp.linspace(0, 1, 5)
    simulate.gradient_descent(p_a, task, lrs=(0.1, 0.2), steps=10, output_scale=1.0)
    simulate.gradient_flow(p_a, task, ts, lrs=(0.1, 0.2))
    with compilations() as events:
        simulate.gradient_descent(p_b, task, lrs=(0.3, 0.05), steps=10, output_scale=2.0)
        simulate.gradient_flow(p_b, task, ts, lrs=(0.7, 0.3), output_scale=0.5)
    assert len(events) == 0, events


def test_vmap_over_configurations_compiles_once(task, compilations):
    params0 = init.random(jr.PRNGKey(7), (4, 5, 3), 0.2)
    lrs = jnp.array([0.01, 0.02, 0.05, 0.1])
    run = jax.jit(
        jax.vmap(
            lambda lr: simulate.gradient_descent(
                params0, task, lrs=lr, steps=50, record_every=50
            ).loss[-1]
        )
    )
    with compilations() as events:
        batched = run(lrs)
    assert len(events) == 1
    single = [
        simulate.gradient_descent(params0, task, lrs=lr, steps=50, record_every=50).loss[-1]
        for lr in lrs
    ]
    np.testing.assert_allclose(batched, single, rtol=1e-9)
    flows = jax.vmap(
        lambda lr: simulate.gradient_flow(params0, task, jnp.array([0.0, 2.0]), lrs=lr).loss[-1]
    )(lrs)
    assert flows.shape == (4,) and bool(jnp.all(jnp.diff(flows) < 0))


def test_minibatch_sgd_with_full_batch_equals_gd():
    task = tasks.teacher(jr.PRNGKey(8), 3, 2, jnp.array([1.0, 0.5]), n=30, noise=0.1)
    params0 = init.random(jr.PRNGKey(9), (3, 4, 2), 0.3)
    full = simulate.gradient_descent(params0, task, lrs=0.1, steps=100, record_every=10)
    sgd_all = simulate.gradient_descent(
        params0, task, lrs=0.1, steps=100, record_every=10, batch_size=30, key=jr.PRNGKey(0)
    )
    np.testing.assert_allclose(sgd_all.loss, full.loss, rtol=1e-10)
    sgd = simulate.gradient_descent(
        params0, task, lrs=0.1, steps=300, record_every=100, batch_size=5, key=jr.PRNGKey(1)
    )
    assert float(sgd.loss[-1]) < 0.5 * float(sgd.loss[0])


@pytest.mark.parametrize("optimizer", ["momentum", "adam", optax.sgd(1.0, momentum=0.5)])
def test_optax_optimizers_train(task, optimizer):
    params0 = init.random(jr.PRNGKey(10), (4, 5, 3), 0.3)
    traj = simulate.gradient_descent(
        params0, task, lrs=(0.02, 0.01), steps=600, record_every=100, optimizer=optimizer
    )
    assert float(traj.loss[-1]) < 1e-3 * float(traj.loss[0])


def test_layer_rates_scale_optimizer_updates(task):
    params0 = init.random(jr.PRNGKey(12), (4, 5, 3), 0.3)
    traj = simulate.gradient_descent(params0, task, lrs=(1e-3, 1e-9), steps=1, optimizer="adam")
    moved = [float(jnp.max(jnp.abs(W[1] - W[0]))) for W in traj.params]
    np.testing.assert_allclose(moved, [1e-3, 1e-9], rtol=1e-6)  # Adam's first step is lr*sign


def test_shallow_relu_flow_conserves_per_neuron_balance():
    task = tasks.teacher(jr.PRNGKey(13), 3, 1, jnp.array([1.0]), n=20)
    net = models.shallow_init(jr.PRNGKey(14), 3, 6, 1, scales=(0.5, 0.5), bias=False)
    lrs = jnp.array([1.0, 0.5])
    traj = simulate.gradient_flow(net, task, jnp.linspace(0, 5, 11), lrs=lrs)
    # ReLU is positively homogeneous: eta_2 |w_i|^2 - eta_1 a_i^2 is conserved per hidden unit.
    balance = lrs[1] * jnp.sum(traj.params.W1**2, -1) - lrs[0] * traj.params.W2[:, 0, :] ** 2
    assert float(jnp.max(jnp.abs(balance - balance[0]))) < 1e-8
    assert float(traj.loss[-1]) < float(traj.loss[0])


def test_shallow_tanh_gradient_descent_trains():
    task = tasks.gaussian_mixture(jr.PRNGKey(15), 60, 4, 3, separation=3.0, noise=0.5)
    net = models.shallow_init(jr.PRNGKey(16), 4, 32, 3, scales=(0.5, 0.2), activation="tanh")
    traj = simulate.gradient_descent(
        net,
        task,
        lrs=0.2,
        steps=500,
        record_every=100,
        observe=lambda p: {"norm": jnp.linalg.norm(p.W2)},
    )
    assert float(traj.loss[-1]) < 0.5 * float(traj.loss[0])
    assert traj.observables["norm"].shape == (6,)
