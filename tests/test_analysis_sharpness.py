"""Sharpness by Lanczos on HVPs against the dense Hessian of losses written out here (``jax.hessian``
+ NumPy ``eigvalsh``), the closed form ``L s_1^(2 - 2/L)`` at balanced minima of deep linear nets, and
the GD stability threshold ``lr = 2 / S`` on a quadratic, under jit, vmap and gradient descent."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from linsolve import init, models, simulate, tasks
from linsolve.analysis import hessian_extremes, sharpness, sharpness_observer, training_loss


def _dense_eigvalsh(loss_fn, params):
    """All eigenvalues (ascending) and eigenvectors of the dense Hessian on the flat parameters."""
    flat, unravel = ravel_pytree(params)
    H = np.asarray(jax.hessian(lambda th: loss_fn(unravel(th)))(flat))
    return np.linalg.eigh(0.5 * (H + H.T))


def _linear_loss(X, Y, kappa=1.0, gamma=0.0):
    """1/2 mean |kappa W_L..W_1 x - y|^2 + gamma/2 sum |W|^2, from the samples."""

    def f(ws):
        out = X
        for W in ws:
            out = out @ W.T
        r = kappa * out - Y
        return 0.5 * jnp.mean(jnp.sum(r * r, axis=1)) + 0.5 * gamma * sum(jnp.sum(W * W) for W in ws)

    return f


def _shallow_loss(X, Y, act, kappa=1.0, gamma=0.0):
    """1/2 mean |kappa (W2 act(W1 x + b1) + b2) - y|^2 + gamma/2 (|W1|^2 + |b1|^2 + |W2|^2 + |b2|^2)."""

    def f(net):
        out = act(X @ net.W1.T + net.b1) @ net.W2.T + net.b2
        r = kappa * out - Y
        leaves = (net.W1, net.b1, net.W2, net.b2)
        return 0.5 * jnp.mean(jnp.sum(r * r, axis=1)) + 0.5 * gamma * sum(jnp.sum(w * w) for w in leaves)

    return f


@pytest.fixture(scope="module")
def data_task():
    return tasks.teacher(jr.PRNGKey(1), 4, 3, jnp.array([3.0, 1.5, 0.5]), n=24, noise=0.2)


def _rel(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


def test_deep_linear_depth_3_matches_dense_hessian(data_task):
    params = init.random(jr.PRNGKey(2), (4, 5, 4, 3), 0.7)
    evals, _ = _dense_eigvalsh(_linear_loss(data_task.X, data_task.Y), params)
    s = sharpness(training_loss(data_task), params)
    assert s.shape == () and s.dtype == jnp.float64
    assert _rel(s, evals[-1]) < 1e-8  # default k = 20 < P = 59: the top (55.6 vs 39.3) is separated


@pytest.mark.parametrize("activation, act", [("relu", jax.nn.relu), ("tanh", jnp.tanh)])
def test_shallow_net_matches_dense_hessian(data_task, activation, act):
    net = models.shallow_init(jr.PRNGKey(3), 4, 16, 3, scales=(1.0, 0.8), activation=activation)
    net = jax.tree_util.tree_map(lambda b: b + 0.1, net)  # nonzero biases
    evals, _ = _dense_eigvalsh(_shallow_loss(data_task.X, data_task.Y, act), net)
    # P = 131; the tanh net's top gap is small (6.25 vs 5.94): 20 steps leave 2e-6, 40 converge.
    assert _rel(sharpness(training_loss(data_task), net, k=40), evals[-1]) < 1e-8


def test_jit_and_vmap_over_a_batch_of_params(data_task):
    nets = jax.vmap(lambda k: models.shallow_init(k, 4, 12, 3, activation="tanh"))(
        jr.split(jr.PRNGKey(4), 3)
    )
    R = training_loss(data_task)
    batched = jax.jit(jax.vmap(lambda p: sharpness(R, p, k=30)))(nets)
    assert batched.shape == (3,)
    reference = _shallow_loss(data_task.X, data_task.Y, jnp.tanh)
    jitted = jax.jit(lambda p: sharpness(R, p, k=30))
    for i in range(3):
        net = jax.tree_util.tree_map(lambda x: x[i], nets)
        top = _dense_eigvalsh(reference, net)[0][-1]
        assert _rel(batched[i], top) < 1e-8
        assert _rel(jitted(net), batched[i]) < 1e-12


def test_recorded_along_gradient_descent_with_output_scale_and_weight_decay(data_task):
    kappa, gamma = 1.3, 0.05
    net = models.shallow_init(jr.PRNGKey(5), 4, 10, 3, activation="relu")
    observe = sharpness_observer(data_task, output_scale=kappa, weight_decay=gamma)
    traj = simulate.gradient_descent(
        net, data_task, lrs=0.05, steps=40, record_every=10, output_scale=kappa,
        weight_decay=gamma, observe=observe,
    )
    recorded = np.asarray(traj.observables["sharpness"])
    assert recorded.shape == (5,) and not bool(traj.diverged)
    reference = _shallow_loss(data_task.X, data_task.Y, jax.nn.relu, kappa, gamma)
    for t in (0, 2, 4):
        params = jax.tree_util.tree_map(lambda x: x[t], traj.params)
        assert _rel(recorded[t], _dense_eigvalsh(reference, params)[0][-1]) < 1e-8


def test_observer_on_deep_linear_covariance_task():
    task = tasks.teacher(jr.PRNGKey(6), 3, 3, jnp.array([2.0, 1.0]))  # population: Sxx = I
    params0 = init.random(jr.PRNGKey(7), (3, 4, 3), 0.5)
    traj = simulate.gradient_descent(
        params0, task, lrs=0.1, steps=20, record_every=10, weight_decay=0.1,
        observe=sharpness_observer(task, weight_decay=0.1),
    )

    def reference(ws):  # Sxx = I: 1/2 |W2 W1 - Syx|_F^2 + const, plus the decay
        P = ws[1] @ ws[0]
        return 0.5 * jnp.sum((P - task.Syx) ** 2) + 0.05 * sum(jnp.sum(W * W) for W in ws)

    for t in (0, 2):
        params = tuple(W[t] for W in traj.params)
        top = _dense_eigvalsh(reference, params)[0][-1]
        assert _rel(traj.observables["sharpness"][t], top) < 1e-8


def test_gradient_descent_is_stable_below_two_over_sharpness():
    """Linear regression (depth 1) is a quadratic: GD converges iff lr < 2 / S, S including kappa^2
    and the weight decay; a 1% margin on each side decides."""
    kappa, gamma = 1.5, 0.3
    task = tasks.teacher(jr.PRNGKey(8), 5, 2, jnp.array([1.0, 0.5]), n=8, whiten=False)
    params0 = (0.1 * jr.normal(jr.PRNGKey(9), (2, 5)),)
    S = float(sharpness_observer(task, output_scale=kappa, weight_decay=gamma)(params0)["sharpness"])
    assert _rel(S, kappa**2 * np.linalg.eigvalsh(np.asarray(task.Sxx))[-1] + gamma) < 1e-10

    def run(lr):
        return simulate.gradient_descent(
            params0, task, lrs=lr, steps=3000, record_every=3000, output_scale=kappa, weight_decay=gamma
        )

    assert not bool(run(0.99 * 2 / S).diverged)
    assert bool(run(1.01 * 2 / S).diverged)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_balanced_minimum_of_whitened_deep_linear_net(depth):
    """At ``W_1 = S^(1/L) V^T, W_l = S^(1/L), W_L = U S^(1/L)`` the sharpness is ``L s_1^(2 - 2/L)``."""
    task = tasks.teacher(jr.PRNGKey(10 + depth), 3, 3, jnp.array([2.5, 1.2, 0.4]))
    U, s, Vt = np.linalg.svd(np.asarray(task.Syx))
    root = np.diag(s ** (1.0 / depth))
    layers = [root @ Vt] + [root] * (depth - 2) + [U @ root]
    params = tuple(jnp.asarray(W) for W in layers)
    R = training_loss(task)
    assert float(jnp.linalg.norm(ravel_pytree(jax.grad(R)(params))[0])) < 1e-12  # a critical point
    expected = depth * s[0] ** (2 - 2 / depth)
    assert _rel(sharpness(R, params), expected) < 1e-10


def test_k_is_clipped_and_a_lower_bound(data_task):
    params = init.random(jr.PRNGKey(11), (4, 2, 3), 0.5)  # P = 14
    evals, _ = _dense_eigvalsh(_linear_loss(data_task.X, data_task.Y), params)
    R = training_loss(data_task)
    assert _rel(sharpness(R, params, k=1000), evals[-1]) < 1e-10
    one = float(sharpness(R, params, k=1))  # the Rayleigh quotient of the start vector
    assert evals[0] - 1e-12 <= one < evals[-1]
    assert float(sharpness(R, params)) == float(sharpness(R, params))  # fixed default start
    assert _rel(sharpness(R, params, key=jr.PRNGKey(3)), evals[-1]) < 1e-10


def test_hessian_extremes(data_task):
    net = models.shallow_init(jr.PRNGKey(12), 4, 6, 3, activation="tanh")
    R = training_loss(data_task)
    evals, evecs = _dense_eigvalsh(_shallow_loss(data_task.X, data_task.Y, jnp.tanh), net)
    P = evals.size
    ext = hessian_extremes(R, net, k=P)
    assert _rel(ext.largest, evals[-1]) < 1e-10 and _rel(ext.smallest, evals[0]) < 1e-8
    assert float(ext.residual) < 1e-10 * abs(evals[-1])
    v = np.asarray(ravel_pytree(ext.direction)[0])
    assert abs(abs(v @ evecs[:, -1]) - 1.0) < 1e-10
    assert float(ext.largest) == float(sharpness(R, net, k=P))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda R, p: sharpness(R, p, k=0), "`k`"),
        (lambda R, p: sharpness(R, p, k=2.5), "`k`"),
        (lambda R, p: sharpness(R, p, k=True), "`k`"),
        (lambda R, p: sharpness("loss", p), "`loss_fn`"),
        (lambda R, p: sharpness(R, p, key=3), "`key`"),
        (lambda R, p: sharpness(R, ()), "`params`"),
        (lambda R, p: hessian_extremes(R, p, k=-1), "`k`"),
        (lambda R, p: sharpness_observer(R, k=0), "`k`"),
        (lambda R, p: sharpness_observer(R, weight_decay=0.1), "`weight_decay`"),
        (lambda R, p: sharpness_observer(3.0), "`loss_fn`"),
        (lambda R, p: training_loss("task"), "`task`"),
        (lambda R, p: training_loss(tasks.scalar(s=1.0), weight_decay=-1.0), "`weight_decay`"),
        (lambda R, p: training_loss(tasks.scalar(s=1.0), output_scale=0.0), "`output_scale`"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    R = training_loss(tasks.scalar(s=1.0))
    with pytest.raises(ValueError, match=match):
        call(R, (jnp.ones((1, 1)),))
