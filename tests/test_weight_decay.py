"""Weight decay in the simulators: ``dW_l/dt = -eta_l (dL/dW_l + gamma W_l)`` and its GD steps.

Independent references: autodiff of the penalised loss ``L + (gamma/2) sum ||W_l||^2`` integrated
with diffrax, ridge regression's closed form, and the exact decay of the layer imbalance.
"""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from linsolve import init, models, simulate, tasks

F64 = jnp.float64


@pytest.fixture(scope="module")
def aniso():
    """A 4 -> 3 task with anisotropic inputs (Sxx eigenvalues 0.4..2.5), float64."""
    key1, key2 = jr.split(jr.PRNGKey(3))
    Q, _ = jnp.linalg.qr(jr.normal(key1, (4, 4), F64))
    Sxx = (Q * jnp.array([2.5, 1.3, 0.7, 0.4])) @ Q.T
    B = jr.normal(key2, (3, 4), F64)
    return tasks.Task(Sxx, B @ Sxx, B @ Sxx @ B.T + 0.1 * jnp.eye(3, dtype=F64))


def _penalised_flow(params0, task, ts, lrs, gamma):
    """Reference: diffrax on autodiff of the penalised loss (no code shared with the simulator)."""

    def objective(p):
        return models.loss(p, task) + 0.5 * gamma * sum(jnp.sum(W * W) for W in p)

    def field(t, p, args):
        g = jax.grad(objective)(p)
        return tuple(-lr * gi for lr, gi in zip(lrs, g))

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Dopri8(), 0.0, float(ts[-1]), None, params0,
        saveat=diffrax.SaveAt(ts=ts), max_steps=100_000,
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-14),
    )
    return sol.ys


def test_flow_with_decay_matches_autodiff_of_the_penalised_loss(aniso):
    params0 = init.random(jr.PRNGKey(0), (4, 6, 3), 0.8)
    ts = jnp.linspace(0.0, 6.0, 13)
    lrs, gamma = (1.0, 0.5), 0.3
    traj = simulate.gradient_flow(params0, aniso, ts, lrs=lrs, weight_decay=gamma)
    assert int(traj.status) == simulate.CONVERGED
    ref = _penalised_flow(params0, aniso, ts, lrs, gamma)
    for W, R in zip(traj.params, ref):
        assert float(jnp.max(jnp.abs(W - R))) < 1e-9
    # The recorded loss is the task loss, without the penalty.
    final = tuple(W[-1] for W in traj.params)
    assert float(traj.loss[-1]) == pytest.approx(float(models.loss(final, aniso)), rel=1e-12)


@pytest.mark.parametrize("gamma,eta", [(0.2, 1.0), (0.05, 0.5)])
def test_layer_imbalance_decays_as_exp_minus_2_gamma_eta_t(aniso, gamma, eta):
    # Equal rates eta: d/dt (W2^T W2 - W1 W1^T) = -2 gamma eta (W2^T W2 - W1 W1^T), from any init.
    params0 = init.random(jr.PRNGKey(1), (4, 5, 3), 1.0)
    ts = jnp.linspace(0.0, 8.0, 9)
    traj = simulate.gradient_flow(params0, aniso, ts, lrs=eta, weight_decay=gamma)
    W1, W2 = traj.params
    D = jnp.einsum("tji,tjk->tik", W2, W2) - jnp.einsum("tij,tkj->tik", W1, W1)
    expected = D[0][None] * jnp.exp(-2 * gamma * eta * ts)[:, None, None]
    assert float(jnp.max(jnp.abs(D - expected))) < 1e-9 * float(jnp.max(jnp.abs(D[0])))
    assert float(jnp.max(jnp.abs(D[-1]))) < 0.7 * float(jnp.max(jnp.abs(D[0])))  # it did decay


def test_one_layer_flow_with_decay_converges_to_ridge_regression(aniso):
    # L = 1: the minimiser of L + gamma/2 |W|^2 is W* = Syx (Sxx + gamma I)^{-1} (ridge regression).
    gamma = 0.25
    W0 = (jr.normal(jr.PRNGKey(2), (3, 4), F64),)
    traj = simulate.gradient_flow(W0, aniso, jnp.array([0.0, 200.0]), weight_decay=gamma)
    ridge = aniso.Syx @ jnp.linalg.inv(aniso.Sxx + gamma * jnp.eye(4, dtype=F64))
    assert float(jnp.max(jnp.abs(traj.params[0][-1] - ridge))) < 1e-9
    assert float(traj.stats["t_final"]) == 200.0  # no steady-state stop with decay


def test_zero_decay_is_the_plain_flow(aniso):
    params0 = init.random(jr.PRNGKey(4), (4, 6, 3), 0.5)
    ts = jnp.linspace(0.0, 3.0, 4)
    a = simulate.gradient_flow(params0, aniso, ts)
    b = simulate.gradient_flow(params0, aniso, ts, weight_decay=0.0)
    for x, y in zip(a.params, b.params):
        assert bool(jnp.all(x == y))


def test_descent_step_with_decay_and_vmap_over_decay(aniso):
    params0 = init.random(jr.PRNGKey(5), (4, 6, 3), 0.7)
    lr, gamma = 0.05, 0.4
    traj = simulate.gradient_descent(params0, aniso, lrs=lr, steps=1, weight_decay=gamma)
    g = jax.grad(lambda p: models.loss(p, aniso))(params0)
    for W, W0, gW in zip(traj.params, params0, g):
        assert float(jnp.max(jnp.abs(W[-1] - (W0 - lr * (gW + gamma * W0))))) < 1e-13
    # Decay is traced: a vmap over it compiles once and matches the separate runs.
    gammas = jnp.array([0.0, 0.1, 0.4])
    run = jax.vmap(lambda gm: simulate.gradient_descent(params0, aniso, lrs=lr, steps=20, weight_decay=gm))
    batch = run(gammas)
    single = simulate.gradient_descent(params0, aniso, lrs=lr, steps=20, weight_decay=0.1)
    for Wb, Ws in zip(batch.params, single.params):
        assert float(jnp.max(jnp.abs(Wb[1] - Ws))) < 1e-13
    norms = [float(sum(jnp.sum(W[i, -1] ** 2) for W in batch.params)) for i in range(3)]
    assert norms[0] > norms[1] > norms[2]  # more decay, smaller weights


def test_optax_optimiser_sees_the_penalty_gradient(aniso):
    params0 = init.random(jr.PRNGKey(6), (4, 6, 3), 0.7)
    gamma = 0.3
    opt = optax.sgd(1.0, momentum=0.9)
    traj = simulate.gradient_descent(params0, aniso, lrs=0.02, steps=3, optimizer=opt, weight_decay=gamma)
    p, state = params0, opt.init(params0)
    for _ in range(3):
        g = jax.grad(lambda q: models.loss(q, aniso) + 0.5 * gamma * sum(jnp.sum(W * W) for W in q))(p)
        updates, state = opt.update(g, state, p)
        p = optax.apply_updates(p, jax.tree_util.tree_map(lambda u: 0.02 * u, updates))
    for W, R in zip(traj.params, p):
        assert float(jnp.max(jnp.abs(W[-1] - R))) < 1e-13


def test_network_flow_with_decay_matches_autodiff():
    key_x, key_y, key_net = jr.split(jr.PRNGKey(7), 3)
    X = jr.normal(key_x, (12, 3), F64)
    Y = jnp.tanh(X @ jr.normal(key_y, (3, 2), F64))
    task = tasks.Task.from_data(X, Y)
    net = models.shallow_init(key_net, 3, 8, 2, scales=0.5, activation="tanh", dtype=F64)
    gamma, lr = 0.2, 0.1
    traj = simulate.gradient_descent(net, task, lrs=lr, steps=1, weight_decay=gamma)

    def objective(n):
        leaves = jax.tree_util.tree_leaves(n)
        return models.loss(n, task) + 0.5 * gamma * sum(jnp.sum(x * x) for x in leaves)

    g = jax.grad(objective)(net)
    expected = jax.tree_util.tree_map(lambda w, gw: w - lr * gw, net, g)
    got = jax.tree_util.tree_map(lambda x: x[-1], traj.params)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
        assert float(jnp.max(jnp.abs(a - b))) < 1e-13


@pytest.mark.parametrize("value", [-0.1, np.nan, np.inf, [0.1, 0.2], "0.1"])
def test_bad_weight_decay_is_a_value_error_naming_it(aniso, value):
    params0 = init.random(jr.PRNGKey(8), (4, 3), 0.5)
    with pytest.raises(ValueError, match="weight_decay"):
        simulate.gradient_flow(params0, aniso, jnp.array([0.0, 1.0]), weight_decay=value)
    with pytest.raises(ValueError, match="weight_decay"):
        simulate.gradient_descent(params0, aniso, lrs=0.1, steps=1, weight_decay=value)
