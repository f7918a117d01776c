"""Critical lifting (embedding principle in depth): outputs, gradients and Hessian inertia of lifted
points against the shallow net, hand-derived gradient formulas, analytic Hessians of a deep linear
saddle, finite-difference Hessians and the escape rate of the boundary lift."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from linsolve.analysis._hessian import gradient_norm, hessian_spectrum
from linsolve.analysis._lifting import (
    boundary_lift,
    lift,
    linearisation_index,
    output_manifold_dimension,
    sign_constant,
)
from linsolve.mlp import MLP
from linsolve.models import ShallowNet, end_to_end
from linsolve.tasks import Task

# Reference example: a linear model on 20 points in R^2 with a nonlinear target (least squares).
_rng = np.random.default_rng(0)
_Xn = _rng.normal(size=(20, 2))
_Yn = np.sin(2 * _Xn[:, :1]) + _Xn[:, 1:] ** 2
X, Y = jnp.asarray(_Xn), jnp.asarray(_Yn)
_sol = np.linalg.lstsq(np.c_[_Xn, np.ones(20)], _Yn, rcond=None)[0]
SHALLOW = MLP((jnp.asarray(_sol[:2].T),), (jnp.asarray(_sol[2]),), None, None, "relu")


def risk(p):
    """Mean over the 20 samples of 1/2 |f(x) - y|^2 (one function object: jit caches reuse it)."""
    r = p(X) - Y
    return 0.5 * jnp.mean(jnp.sum(r * r, axis=-1))


jrisk = jax.jit(risk)


def forward(net, Xn=_Xn):
    """NumPy forward pass of a ReLU MLP without batch normalisation (independent of MLP.__call__)."""
    h = Xn
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        z = h @ np.asarray(W).T + np.asarray(b)
        h = np.maximum(z, 0) if l < len(net.weights) - 1 else z
    return h


def linear_grads(params, task):
    """Closed-form dL/dW_l = (W_L..W_{l+1})^T (P Sxx - Syx) (W_{l-1}..W_1)^T in NumPy."""
    Ws = [np.asarray(W) for W in params]
    prod = lambda ms, n: np.linalg.multi_dot(ms[::-1] + [np.eye(n)]) if ms else np.eye(n)
    P = prod(Ws, Ws[0].shape[1])
    G = P @ np.asarray(task.Sxx) - np.asarray(task.Syx)
    return [prod(Ws[l + 1 :], W.shape[0]).T @ G @ prod(Ws[:l], Ws[0].shape[1]).T for l, W in enumerate(Ws)]


def _mlp(rng, sizes, activation="relu"):
    ws = tuple(jnp.asarray(rng.normal(size=(o, i)) / np.sqrt(i)) for i, o in zip(sizes[:-1], sizes[1:]))
    bs = tuple(jnp.asarray(0.3 * rng.normal(size=o)) for o in sizes[1:])
    return MLP(ws, bs, None, None, activation)


def test_linear_net_lift_with_any_left_invertible_insertion():
    # deep linear saddle (exact mode structure): learn singular directions 1 and 3, not 2
    rng = np.random.default_rng(1)
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    V, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    s = np.array([3.0, 2.0, 1.0])
    task = Task(jnp.eye(3), jnp.asarray(U @ np.diag(s) @ V.T), jnp.asarray(U @ np.diag(s**2) @ U.T))
    learned = np.array([1.0, 0.0, 1.0]) * np.sqrt(s)
    params = (jnp.asarray(np.diag(learned) @ V.T), jnp.asarray(U @ np.diag(learned)))
    P0 = np.asarray(params[1]) @ np.asarray(params[0])
    assert max(np.abs(g).max() for g in linear_grads(params, task)) < 1e-12  # critical
    assert np.abs(np.asarray(task.Syx) - P0).max() > 1  # but not a minimum
    for q in (0, 1):
        for m in (3, 5):
            inserted = rng.normal(size=(m, 3))  # left-invertible (full column rank) a.s.
            deep = lift(params, after_layer=q, kind="general", inserted=inserted)
            assert len(deep) == 3 and deep[q].shape == (m, 3)
            np.testing.assert_allclose(
                np.linalg.multi_dot([np.asarray(W) for W in deep[::-1]]), P0, atol=1e-12
            )
            assert max(np.abs(g).max() for g in linear_grads(deep, task)) < 1e-10
    # a rank-deficient W~ still factors through a narrower insertion (row space contained)
    narrow = lift(params, after_layer=1, kind="general", inserted=np.diag(learned)[[0, 2]])
    np.testing.assert_allclose(np.linalg.multi_dot([np.asarray(W) for W in narrow[::-1]]), P0, atol=1e-12)


def test_relu_lifts_preserve_outputs_and_criticality():
    assert float(gradient_norm(risk, SHALLOW)) < 1e-12
    A = lift(SHALLOW, after_layer=0, X=X)  # identity, all active
    deeper = lift(A, after_layer=1, X=X, kind="random", width=3, key=jax.random.PRNGKey(0))
    # general form: two active neurons (a rotation) and one dead neuron with arbitrary outgoing weight
    R = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)], [1.0, 1.0]])
    b = np.array([10.0, 10.0, -100.0])
    dead = np.full((1, 3), 7.0)
    general = lift(A, after_layer=1, X=X, kind="general", inserted=(R, b), dead_weights=dead)
    assert np.all(np.asarray(general.weights[2][:, 2]) == 7.0)
    for net, depth in ((A, 2), (deeper, 3), (general, 3)):
        assert net.depth == depth
        np.testing.assert_allclose(forward(net), forward(SHALLOW), atol=1e-12, rtol=0)
        assert float(gradient_norm(risk, net)) < 1e-10
    # a ShallowNet input gives an MLP one layer deeper
    sn = ShallowNet(A.weights[0], A.biases[0], A.weights[1], A.biases[1], "relu")
    np.testing.assert_allclose(forward(lift(sn, after_layer=1, X=X)), forward(SHALLOW), atol=1e-12, rtol=0)


def test_lifted_gradient_follows_the_chain_rule_formulas_off_criticality():
    rng = np.random.default_rng(2)
    net = _mlp(rng, (2, 3, 1))
    Wn = rng.normal(size=(4, 3))
    Wn[3] = 0.0
    h = np.maximum(_Xn @ np.asarray(net.weights[0]).T + np.asarray(net.biases[0]), 0)
    bn = 1.0 - np.min(h @ Wn.T, axis=0)
    bn[3] = -1.0  # the fourth neuron is dead (z = -1 on every sample)
    deep = lift(net, after_layer=1, X=X, kind="general", inserted=(Wn, bn))
    grad = jax.jit(jax.grad(risk))
    g, gd = grad(net), grad(deep)
    D = np.array([1.0, 1.0, 1.0, 0.0])
    gW2, gb2 = np.asarray(g.weights[1]), np.asarray(g.biases[1])
    Wt = np.asarray(deep.weights[2])
    # grad W~ = grad W2 W'^T D + grad b2 b'^T D;  grad b~ = grad b2
    np.testing.assert_allclose(gd.weights[2], (gW2 @ Wn.T + np.outer(gb2, bn)) * D, atol=1e-13)
    np.testing.assert_allclose(gd.biases[2], gb2, atol=1e-13)
    # grad W' = D W~^T grad W2;  grad b' = D W~^T grad b2;  earlier layers unchanged
    np.testing.assert_allclose(gd.weights[1], D[:, None] * (Wt.T @ gW2), atol=1e-13)
    np.testing.assert_allclose(gd.biases[1], D * (Wt.T @ gb2), atol=1e-13)
    np.testing.assert_allclose(gd.weights[0], g.weights[0], atol=1e-13)
    np.testing.assert_allclose(gd.biases[0], g.biases[0], atol=1e-13)


@pytest.mark.parametrize("m", [2, 3])
def test_all_active_lift_of_a_strict_minimum_adds_exactly_the_predicted_zeros(m):
    before = hessian_spectrum(risk, SHALLOW)
    assert (before.n_negative, before.n_zero, before.n_positive) == (0, 0, 3)
    assert before.classification == "strict minimum"
    after = hessian_spectrum(risk, lift(SHALLOW, after_layer=0, X=X, width=m))
    n_q, d_out = 2, 1
    # J_Phi of (W', b', W~, b~) -> (W~ W', W~ b' + b~) is onto, so zeros = new parameters
    new = m * n_q + m + d_out * (m - n_q)
    assert new == (m * m + m if m == n_q else 10)
    assert (after.n_negative, after.n_zero, after.n_positive) == (0, new, 3)
    assert after.classification == "degenerate minimum"


def _escape(B, ts):
    L0 = float(jrisk(B.params))
    out = []
    for t in ts:
        p = jax.tree_util.tree_map(lambda a, d: a + t * d, B.params, B.direction)
        out.append(float(jrisk(p)) - L0)
    return np.array(out)


def test_boundary_lift_turns_the_minimum_into_a_strict_saddle():
    B = boundary_lift(SHALLOW, X, Y, after_layer=0)
    np.testing.assert_allclose(forward(B.params), forward(SHALLOW), atol=1e-12, rtol=0)
    assert float(gradient_norm(risk, B.params)) < 1e-10
    z = _Xn @ np.asarray(B.params.weights[0][B.neuron]) + float(B.params.biases[0][B.neuron])
    assert abs(z[B.sample]) < 1e-15 and np.delete(z, B.sample).min() > 0  # exactly at its kink on one sample
    assert not np.any(np.asarray(B.params.weights[1])[:, B.neuron])  # zero outgoing weight
    spec = hessian_spectrum(risk, B.params)
    assert spec.n_negative >= 1 and spec.classification == "strict saddle"
    # the loss falls like -t^2 along the escape curve: fitted exponent 2, coefficient = d^T H d / 2
    ts = np.logspace(-4, -2, 5)
    dL = _escape(B, ts)
    assert np.all(dL < 0)
    slope = np.polyfit(np.log(ts), np.log(-dL), 1)[0]
    assert abs(slope - 2.0) < 0.01
    d = ravel_pytree(B.direction)[0]
    quad = float(d @ spec.hessian @ d)
    assert quad < 0
    assert float(B.curvature) == pytest.approx(quad, rel=1e-10)
    assert dL[0] / ts[0] ** 2 == pytest.approx(quad / 2, rel=1e-3)


def _fd_hessians(f, xs, h):
    """Central second differences of loss values only, at each point of `xs` (one compilation)."""
    x = np.stack(xs)
    P = x.shape[1]
    E = np.eye(P) * h
    sa, sb = np.array([1.0, 1.0, -1.0, -1.0]), np.array([1.0, -1.0, 1.0, -1.0])
    steps = sa[:, None, None, None] * E[None, :, None] + sb[:, None, None, None] * E[None, None, :]
    pts = x[:, None, None, None] + steps[None]  # (points, 4, P, P, P)
    vals = np.asarray(jax.jit(jax.vmap(f))(jnp.asarray(pts.reshape(-1, P)))).reshape(len(xs), 4, P, P)
    fd = (vals[:, 0] - vals[:, 1] - vals[:, 2] + vals[:, 3]) / (4 * h * h)
    return 0.5 * (fd + np.swapaxes(fd, 1, 2))


def test_boundary_lift_hessian_matches_finite_differences():
    B = boundary_lift(SHALLOW, X, Y, after_layer=0)
    flat, unravel = ravel_pytree(B.params)
    f = lambda th: risk(unravel(th))
    spec = hessian_spectrum(risk, B.params)
    # on the piece where sample i0 is off (bias of the kink neuron lowered by delta) the loss is smooth
    # in a ball larger than the difference steps: the autodiff Hessian must match loss differences
    delta, h = 1e-2, 1e-4
    z = _Xn @ np.asarray(B.params.weights[0][B.neuron]) + float(B.params.biases[0][B.neuron])
    assert np.delete(z, B.sample).min() > 5 * delta
    zero = jax.tree_util.tree_map(jnp.zeros_like, B.params)
    lower = (zero.biases[0].at[B.neuron].set(-delta), zero.biases[1])
    off = flat + ravel_pytree(MLP(zero.weights, lower, None, None, "relu"))[0]
    fd_off, fd_kink = _fd_hessians(f, [np.asarray(off), np.asarray(flat)], h)
    spec_off = hessian_spectrum(risk, unravel(off))
    scale = np.abs(fd_off).max()
    np.testing.assert_allclose(spec_off.hessian, fd_off, atol=1e-6 * scale)
    np.testing.assert_allclose(spec_off.eigenvalues, np.linalg.eigvalsh(fd_off), atol=1e-6 * scale)
    # ... and the kink Hessian (JAX takes relu'(0) = 0, i.e. the off piece) is its delta -> 0 limit
    np.testing.assert_allclose(spec.hessian, fd_off, atol=20 * delta * scale)
    assert np.linalg.eigvalsh(fd_off)[0] < 0
    # central differences straddling the kink mix the two pieces and still see negative curvature
    assert np.linalg.eigvalsh(fd_kink)[0] < -1e-3


def test_output_preserving_manifold_dimension_vs_number_of_points():
    A = lift(SHALLOW, after_layer=0, X=X)  # 9 parameters, dim h + 1 = 3
    ns = [1, 2, 3, 4, 6]
    for n, res in zip(ns, output_manifold_dimension(A, X, n=ns)):
        assert res.n_params == 9 and res.rank == min(n, 3)
        assert res.dimension == 9 - min(n, 3)
    assert output_manifold_dimension(A, X[:2]).dimension == 7
    # two outputs: each output adds its own min(n, dim h + 1) constraints
    two = MLP((jnp.ones((2, 2)),), (jnp.zeros(2),), None, None, "relu")
    A2 = lift(two, after_layer=0, X=X)
    assert output_manifold_dimension(A2, X[:5]).dimension == A2.weights[1].size + 8 - 2 * 3


def test_deep_linear_saddle_lifted_to_three_layers_keeps_its_negative_eigenvalue():
    S = jnp.diag(jnp.asarray([3.0, 1.0]))  # whitened task (Sxx = I): loss = 1/2 |P - S|^2 + const
    loss = lambda p: 0.5 * jnp.sum((end_to_end(p) - S) ** 2)
    task = Task(jnp.eye(2), S, S @ S)
    saddle = (jnp.asarray([[0.0, 1.0]]), jnp.asarray([[0.0], [1.0]]))  # learns mode 2 (s=1), not mode 1
    assert max(np.abs(g).max() for g in linear_grads(saddle, task)) == 0.0
    before = hessian_spectrum(loss, saddle)
    # analytic: (a1, b1) block [[1, -3], [-3, 1]] -> -2, 4;  (a2, b2) block [[1, 1], [1, 1]] -> 0, 2
    np.testing.assert_allclose(before.eigenvalues, [-2.0, 0.0, 2.0, 4.0], atol=1e-12)
    for kind, kw, zeros in (
        ("identity", {}, 2),
        ("general", {"inserted": np.array([[2.0]])}, 2),
        ("random", {"width": 2, "key": jax.random.PRNGKey(3)}, 1 + 4),
    ):
        deep = lift(saddle, after_layer=1, kind=kind, **kw)
        after = hessian_spectrum(loss, deep)
        assert (after.n_negative, after.n_zero, after.n_positive) == (1, zeros, 2), kind
        assert after.classification == "strict saddle"


def test_linearisation_index_against_a_brute_force_count():
    rng = np.random.default_rng(4)
    net = _mlp(rng, (2, 6, 5, 1))
    biases = list(net.biases)
    biases[0] = biases[0].at[0].set(50.0).at[1].set(-50.0)  # one always-active, one dead neuron
    net = MLP(net.weights, tuple(biases), None, None, "relu")
    expect = []
    h = _Xn
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        z = h @ np.asarray(W).T + np.asarray(b)
        count = sum(
            all(z[i, k] > 0 for i in range(20)) or all(z[i, k] < 0 for i in range(20))
            for k in range(z.shape[1])
        )
        expect.append(count / z.shape[1])
        h = np.maximum(z, 0)
    np.testing.assert_allclose(linearisation_index(net, X), expect, atol=0)
    assert expect[0] >= 2 / 6
    active, dead = sign_constant(net, X)[0]
    assert bool(active[0]) and bool(dead[1])
    # the inserted identity layer of a lift is fully linearised
    assert float(linearisation_index(lift(net, after_layer=1, X=X), X)[1]) == 1.0
    # batch normalisation (scale 1, shift 0): zero batch mean, so no neuron keeps one sign
    bn = MLP(net.weights, net.biases, (jnp.ones(6), jnp.ones(5)), (jnp.zeros(6), jnp.zeros(5)), "relu")
    np.testing.assert_allclose(linearisation_index(bn, X), [0.0, 0.0])


def test_bad_input():
    A = lift(SHALLOW, after_layer=0, X=X)
    with pytest.raises(ValueError, match=r"`after_layer` must be an integer in \[0, 1\]"):
        lift(A, after_layer=2, X=X)
    with pytest.raises(ValueError, match="after_layer"):
        lift(A, after_layer=-1, X=X)
    with pytest.raises(ValueError, match="width too small"):
        lift(A, after_layer=1, X=X, width=1)
    with pytest.raises(ValueError, match="width too small for the required rank"):
        lift(
            A,
            after_layer=1,
            X=X,
            kind="general",
            inserted=(np.array([[1.0, 1.0], [2.0, 2.0]]), np.full(2, 9.0)),
        )
    with pytest.raises(ValueError, match=r"2 of 3 inserted ReLU neurons are not sign-constant.*\[0, 2\]"):
        lift(A, after_layer=0, X=X, kind="general", inserted=(np.eye(3, 2), np.array([0.0, 10.0, 0.0])))
    with pytest.raises(ValueError, match="not sign-constant"):
        lift(SHALLOW, after_layer=0, X=X, shift=0.0)
    with pytest.raises(ValueError, match="`X`"):
        lift(SHALLOW, after_layer=0)
    with pytest.raises(ValueError, match="`Y`"):
        lift(SHALLOW, after_layer=0, X=X, kind="boundary")
    with pytest.raises(ValueError, match="n_q \\+ 1"):
        boundary_lift(SHALLOW, X, Y, after_layer=0, width=2)
    with pytest.raises(ValueError, match="`kind`"):
        lift(SHALLOW, after_layer=0, X=X, kind="svd")
    with pytest.raises(ValueError, match="affine"):
        lift(MLP(A.weights, A.biases, None, None, "tanh"), after_layer=0, X=X)
    bn = MLP(A.weights, A.biases, (jnp.ones(2),), (jnp.zeros(2),), "relu")
    with pytest.raises(ValueError, match="batch normalisation"):
        lift(bn, after_layer=0, X=X)
    with pytest.raises(ValueError, match="non-zero residual|residual"):
        boundary_lift(SHALLOW, X, SHALLOW(X), after_layer=0)  # exact fit: nothing to escape to
    with pytest.raises(ValueError, match="`sample`"):
        boundary_lift(SHALLOW, X, Y, after_layer=0, sample=20)
