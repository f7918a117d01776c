"""The deep MLP: forward against the deep linear convention, batch norm, training and bad input."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linsolve as lns
from linsolve.mlp import MLP, mlp_init


def _data(key, n=30, d=4, k=2):
    X = jr.normal(key, (n, d))
    return X, jnp.tanh(X[:, :k])


def test_linear_mlp_is_the_deep_linear_net(getkey):
    X, Y = _data(getkey())
    net = mlp_init(getkey(), (4, 7, 5, 2), activation="linear", bias=False)
    np.testing.assert_allclose(net(X), lns.models.apply(net.weights, X), rtol=1e-12)
    task = lns.Task.from_data(X, Y)
    a = lns.simulate.gradient_descent(net, task, lrs=[0.1, 0.05, 0.2], steps=40, record_every=20)
    b = lns.simulate.gradient_descent(net.weights, task, lrs=[0.1, 0.05, 0.2], steps=40, record_every=20)
    for Wa, Wb in zip(a.params.weights, b.params):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-10)


def test_layers_and_batchnorm(getkey):
    X, _ = _data(getkey(), n=64)
    net = mlp_init(getkey(), (4, 9, 6, 3), batchnorm=True)
    layers = net.layers(X)
    assert [h.shape for h in layers.inputs] == [(64, 4), (64, 9), (64, 6)]
    for z in layers.pre[:-1]:  # unit scale, zero shift: standardised features
        np.testing.assert_allclose(jnp.mean(z, 0), 0, atol=1e-10)
        np.testing.assert_allclose(jnp.var(z, 0), 1, atol=1e-3)
    np.testing.assert_allclose(layers.post[0], jnp.maximum(layers.pre[0], 0))
    manual = layers.post[1] @ net.weights[2].T + net.biases[2]
    np.testing.assert_allclose(net(X), manual, rtol=1e-12)
    assert net.sizes == (4, 9, 6, 3) and net.depth == 3


def test_record_at_matches_uniform_records(getkey):
    X, Y = _data(getkey())
    task = lns.Task.from_data(X, Y)
    net = mlp_init(getkey(), (4, 8, 2))
    at = lns.simulate.gradient_descent(net, task, lrs=0.05, steps=300, record_at=[0, 3, 30, 300],
                                       optimizer="adam")
    uni = lns.simulate.gradient_descent(net, task, lrs=0.05, steps=300, record_every=3, optimizer="adam")
    np.testing.assert_array_equal(at.ts, [0, 3, 30, 300])
    np.testing.assert_allclose(at.loss, uni.loss[jnp.array([0, 1, 10, 100])], rtol=1e-12)
    np.testing.assert_allclose(at.params.weights[0][-1], uni.params.weights[0][-1], rtol=1e-12)


@pytest.mark.parametrize(
    "record_at,match",
    [([3, 2], "increasing"), ([0, 1.5], "integers"), ([0, 500], r"\[0, steps=100\]"), ([], "non-empty")],
)
def test_record_at_errors(record_at, match, getkey):
    X, Y = _data(getkey())
    net = mlp_init(getkey(), (4, 8, 2))
    with pytest.raises(ValueError, match=match):
        lns.simulate.gradient_descent(net, lns.Task.from_data(X, Y), lrs=0.1, steps=100, record_at=record_at)


def test_bad_mlp_input(getkey):
    W = jnp.ones((3, 4))
    with pytest.raises(ValueError, match=r"`weights\[1\]` must have 3 columns"):
        MLP((W, jnp.ones((2, 5))), None, None, None)
    with pytest.raises(ValueError, match=r"`biases\[0\]` must have shape \(3,\)"):
        MLP((W,), (jnp.ones(2),), None, None)
    with pytest.raises(ValueError, match="activation"):
        mlp_init(getkey(), (2, 3), activation="swish")
    with pytest.raises(ValueError, match="sizes"):
        mlp_init(getkey(), (2,))
