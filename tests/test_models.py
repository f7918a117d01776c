"""Models: covariance form vs data form, gradients and NTK vs autodiff, presets."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linsolve as lns
from linsolve import init, models, tasks


@pytest.mark.parametrize("sizes,kappa", [((4, 5, 3), 1.0), ((3, 6, 4, 2), 0.3), ((5, 2), 2.0)])
def test_covariance_form_equals_data_form(getkey, sizes, kappa):
    task = tasks.teacher(
        getkey(), sizes[0], sizes[-1], jnp.array([2.0, 1.0]), n=40, noise=0.3, whiten=False
    )
    params = init.random(getkey(), sizes, 0.8)
    cov = models.loss(params, task, kappa)
    data = models.data_loss(params, task.X, task.Y, kappa)
    np.testing.assert_allclose(cov, data, rtol=1e-12)
    g_cov = models.gradients(params, task, kappa)
    g_data = jax.grad(models.data_loss)(params, task.X, task.Y, kappa)
    for a, b in zip(g_cov, g_data):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _flat_jacobian(params, X, kappa):
    """d f(X) / d W_l as (n d_out, n_params_l) for every layer, by autodiff."""
    jac = jax.jacrev(lambda p: models.apply(p, X, kappa))(params)
    n, d_out = X.shape[0], params[-1].shape[0]
    return [j.reshape(n * d_out, -1) for j in jac]


def test_ntk_data_matches_autodiff(getkey):
    params = init.random(getkey(), (3, 4, 5, 2), 0.7)
    X = jr.normal(getkey(), (6, 3))
    lrs = jnp.array([0.5, 2.0, 1.5])
    J = _flat_jacobian(params, X, 0.7)
    expected = sum(lr * j @ j.T for lr, j in zip(lrs, J)).reshape(6, 2, 6, 2)
    got = models.ntk_data(params, X, output_scale=0.7, lrs=lrs)
    np.testing.assert_allclose(got.transpose(0, 2, 1, 3), expected, rtol=1e-12, atol=1e-12)


def test_ntk_operator_drives_the_end_to_end_map(getkey):
    task = tasks.teacher(getkey(), 4, 3, jnp.array([2.0, 1.0, 0.5]))
    params = init.random(getkey(), (4, 5, 3), 0.6)
    lrs = jnp.array([0.7, 1.3])
    kappa = 1.7
    # dP/dt along gradient flow, by a JVP of the end-to-end map along the flow field.
    flow = tuple(-lr * g for lr, g in zip(lrs, models.gradients(params, task, kappa)))
    _, dP = jax.jvp(lambda p: models.end_to_end(p, kappa), (params,), (flow,))
    G = models.end_to_end(params, kappa) @ task.Sxx - task.Syx
    Theta = models.ntk(params, output_scale=kappa, lrs=lrs)
    np.testing.assert_allclose(dP.reshape(-1), -Theta @ G.reshape(-1), rtol=1e-12, atol=1e-14)


def test_ntk_one_dimensional_model(getkey):
    d = 7
    u, w = jr.normal(getkey(), (d,)), jr.normal(getkey(), (d,))
    kappa, eta_u, eta_w = 0.4, 1.5, 0.3
    Theta = models.ntk((w[:, None], u[None, :]), output_scale=kappa, lrs=(eta_w, eta_u))
    expected = kappa**2 * (eta_u * w @ w + eta_w * u @ u)
    np.testing.assert_allclose(Theta, [[expected]], rtol=1e-13)


def test_shallow_net_forward_and_ntk(getkey):
    net = models.shallow_init(getkey(), 3, 16, 2, scales=(1.0, 0.25), activation="tanh")
    X = jr.normal(getkey(), (5, 3))
    expected = jnp.tanh(X @ net.W1.T + net.b1) @ net.W2.T + net.b2
    np.testing.assert_allclose(models.apply(net, X, 2.0), 2.0 * expected, rtol=1e-13)
    K = models.ntk_data(net, X, lrs=jnp.array([1.0, 0.5]))
    assert K.shape == (5, 5, 2, 2)
    flat = K.transpose(0, 2, 1, 3).reshape(10, 10)
    np.testing.assert_allclose(flat, flat.T, atol=1e-12)
    assert float(jnp.min(jnp.linalg.eigvalsh(flat))) > -1e-10
    no_bias = models.shallow_init(getkey(), 3, 4, 1, bias=False, activation="relu")
    assert models.apply(no_bias, X).shape == (5, 1)


@pytest.mark.parametrize("name", sorted(models.PARAMETRIZATIONS))
def test_parametrization_presets(name):
    small, large = models.parametrization(name, 16), models.parametrization(name, 64)
    a_w, a_u, b_w, b_u, c = models.PARAMETRIZATIONS[name]
    ratio = lambda x, y: np.log(y / x) / np.log(4.0)
    np.testing.assert_allclose(ratio(small.output_scale, large.output_scale), -c)
    np.testing.assert_allclose(ratio(small.init_scales[0] ** 2, large.init_scales[0] ** 2), -a_w)
    np.testing.assert_allclose(ratio(small.init_scales[1] ** 2, large.init_scales[1] ** 2), -a_u)
    np.testing.assert_allclose(ratio(small.lrs[0], large.lrs[0]), b_w)
    np.testing.assert_allclose(ratio(small.lrs[1], large.lrs[1]), b_u)


def test_conserved_quantities_formula(getkey):
    params = init.random(getkey(), (2, 3, 4), 1.0)
    (C,) = models.conserved_quantities(params, lrs=(2.0, 3.0))
    W1, W2 = params
    np.testing.assert_allclose(C, 2.0 * W2.T @ W2 - 3.0 * W1 @ W1.T)
    assert isinstance(lns.Task, type)


@pytest.mark.parametrize("sizes", [(4, 3), (4, 6, 3), (5, 3, 7, 4, 2)])
def test_thin_product_gradients_match_autodiff(sizes, getkey):
    """The O(L) loss-and-gradient of the GD fast path against autodiff of the covariance loss."""
    from linsolve.models import loss_and_gradients

    task = lns.tasks.teacher(getkey(), sizes[0], sizes[-1], jnp.array([2.0, 0.5]), n=40, whiten=False)
    params = lns.init.random(getkey(), sizes, 0.7)
    value, grads = loss_and_gradients(params, task, 1.3)
    ref_value, ref_grads = jax.value_and_grad(lambda p: task.loss(lns.models.end_to_end(p, 1.3)))(params)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-13)


def test_unroll_and_final_params_only_do_not_change_the_run(getkey):
    task = lns.tasks.teacher(getkey(), 4, 3, jnp.array([2.0, 1.0]))
    params0 = lns.init.random(getkey(), (4, 5, 3), 0.3)
    ref = lns.simulate.gradient_descent(params0, task, lrs=0.1, steps=40, record_every=10)
    fast = lns.simulate.gradient_descent(
        params0, task, lrs=0.1, steps=40, record_every=10, unroll=4, record_params=False
    )
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-13)
    for W, Wref in zip(fast.params, ref.params):
        assert W.shape == Wref.shape[1:]
        np.testing.assert_allclose(W, Wref[-1], rtol=1e-13)
