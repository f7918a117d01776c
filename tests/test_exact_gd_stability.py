"""max_learning_rate / minimum_sharpness vs the dense Hessian of explicit nets and vs GD itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from linsolve import Task, simulate
from linsolve.exact._gd_stability import max_learning_rate, minimum_sharpness
from linsolve.models import loss


def _orthogonal(rng, n, k=None):
    q, r = np.linalg.qr(rng.normal(size=(n, k or n)))
    return q * np.sign(np.diag(r))


def _task(rng, d_in, d_out, s, kind):
    """Teacher ``Syx = U diag(s) V^T`` with inputs 'white', 'aligned' (``Sxx = V diag(v) V^T``) or
    'generic' (a random SPD ``Sxx`` unrelated to V)."""
    U, V = _orthogonal(rng, d_out), _orthogonal(rng, d_in)
    r = len(s)
    Syx = (U[:, :r] * np.asarray(s)) @ V[:, :r].T
    if kind == "white":
        Sxx = np.eye(d_in)
    elif kind == "aligned":
        Sxx = (V * rng.uniform(0.3, 2.0, d_in)) @ V.T
    else:
        A = rng.normal(size=(d_in, d_in))
        Sxx = A @ A.T / d_in + 0.3 * np.eye(d_in)
        Sxx = (Sxx + Sxx.T) / 2
    Pstar = np.linalg.solve(Sxx, Syx.T).T
    Syy = Pstar @ Sxx @ Pstar.T + 0.1 * np.eye(d_out)
    return Task(Sxx, Syx, (Syy + Syy.T) / 2)


def _balanced_minimum(task, depth, width, rng):
    """Balanced factors ``W_l = R_l diag(sig^{1/L}) R_{l-1}^T`` of ``P* = Syx Sxx^{-1}`` (hidden
    frames ``R_l`` random orthonormal (width, r), ``R_0 = V``, ``R_L = U``; width >= r)."""
    P = np.linalg.solve(np.asarray(task.Sxx), np.asarray(task.Syx).T).T
    U, sig, Vt = np.linalg.svd(P, full_matrices=False)
    frames = [Vt.T] + [_orthogonal(rng, width, len(sig)) for _ in range(depth - 1)] + [U]
    root = sig ** (1 / depth)
    return tuple(jnp.asarray((frames[l + 1] * root) @ frames[l].T) for l in range(depth))


def _dense_hessian(params, task):
    """The dense ``jax.hessian`` of the loss in the flattened parameters, and the gradient."""
    flat, unravel = ravel_pytree(params)
    f = lambda x, task: loss(unravel(x), task)
    both = jax.jit(lambda x, task: (jax.hessian(f)(x, task), jax.grad(f)(x, task)))
    return tuple(np.asarray(a) for a in both(flat, task))


def _top_eigenvalue(H, params, mult):
    """Top eigenvalue of ``D^{1/2} H D^{1/2}``, ``D`` the layer multipliers per parameter."""
    root = np.concatenate([np.full(W.size, np.sqrt(m)) for W, m in zip(params, mult)])
    return float(np.linalg.eigvalsh(root[:, None] * H * root[None, :])[-1])


CASES = [  # (d_in, d_out, singular values, inputs)
    (3, 3, (2.0, 1.0, 0.5), "white"),
    (4, 2, (1.5, 0.4), "aligned"),
    (2, 4, (3.0, 0.7), "generic"),
    (4, 3, (1.0, 0.9, 0.2), "generic"),
]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_sharpness_matches_dense_hessian(depth):
    rng = np.random.default_rng(depth)
    for d_in, d_out, s, kind in CASES:
        task = _task(rng, d_in, d_out, s, kind)
        params = _balanced_minimum(task, depth, max(d_in, d_out) + 1, rng)
        H, grad = _dense_hessian(params, task)
        assert np.max(np.abs(grad)) < 1e-12  # really a minimum
        for mult in (np.ones(depth), rng.uniform(0.2, 3.0, depth)):
            dense = _top_eigenvalue(H, params, mult)
            ours = float(minimum_sharpness(task, depth=depth, lrs=tuple(mult)))
            assert abs(ours - dense) <= 1e-10 * dense, (kind, depth, mult, ours, dense)
            lr = float(max_learning_rate(task, depth=depth, lrs=tuple(mult)))
            assert abs(lr * dense - 2) <= 2e-10


def test_closed_forms():
    rng = np.random.default_rng(0)
    """Whitened, equal rates: ``L s_1^{2-2/L}``; aligned: ``max_{a,b} v_b k_ab``."""
    s = jnp.array([2.5, 1.0])
    for depth in (1, 2, 3, 6):
        task = _task(rng, 3, 2, s, "white")
        want = depth * 2.5 ** (2 - 2 / depth)
        assert abs(float(minimum_sharpness(task, depth=depth)) - want) <= 1e-12 * want
    # aligned, hand-computed: d_out = 1, d_in = 2, Sxx = diag(v), Syx = (s, 0)
    v = np.array([0.5, 3.0])
    task = Task(jnp.diag(v), jnp.array([[1.2, 0.0]]), jnp.eye(1) * 5)
    sig = 1.2 / 0.5
    d = np.array([0.7, 1.9, 1.3])
    L = 3
    k1 = sum(d[l - 1] * sig ** (2 * (L - l) / L) * sig ** (2 * (l - 1) / L) for l in (1, 2, 3))
    k2 = d[0] * sig ** (2 * (L - 1) / L)  # sig_b = 0: only l = 1 (sig_b^0 = 1) survives
    want = max(v[0] * k1, v[1] * k2)
    got = float(minimum_sharpness(task, depth=L, lrs=tuple(d)))
    assert abs(got - want) <= 1e-12 * want


def test_zero_task_is_flat():
    task = Task(jnp.eye(2), jnp.zeros((1, 2)), jnp.eye(1))
    assert float(minimum_sharpness(task, depth=2)) == 0.0
    assert float(max_learning_rate(task, depth=2)) == np.inf
    assert float(max_learning_rate(task, depth=1)) == 2.0


def _gd_near_minimum(task, depth, mult, factor, steps, seed):
    """GD from the balanced minimum plus a random perturbation of norm 1e-3, at `factor` times
    the threshold. Returns the loss above the minimum at every step and the final distance
    ``|P - P*|``."""
    rng = np.random.default_rng(seed)
    params = _balanced_minimum(task, depth, max(task.d_in, task.d_out), rng)
    flat, unravel = ravel_pytree(params)
    noise = rng.normal(size=flat.shape)
    params0 = unravel(flat + 1e-3 * noise / np.linalg.norm(noise))
    lr = factor * float(max_learning_rate(task, depth=depth, lrs=mult))
    run = simulate.gradient_descent(params0, task, lrs=lr * np.asarray(mult), steps=steps)
    Pstar = np.linalg.solve(np.asarray(task.Sxx), np.asarray(task.Syx).T).T
    excess = np.asarray(run.loss) - float(task.loss(Pstar))
    return excess, float(np.linalg.norm(np.asarray(run.product()[-1]) - Pstar))


@pytest.mark.parametrize("depth, kind, mult", [(3, "white", (1.0, 1.0, 1.0)),
                                               (2, "generic", (0.6, 1.5))])
def test_gd_converges_below_and_leaves_above(depth, kind, mult):
    """0.95x the threshold: back to the minimum; 1.05x: the loss grows by orders of magnitude
    (GD then diverges or catapults to a flatter minimum)."""
    task = _task(np.random.default_rng(depth), 3, 2, (1.5, 0.8), kind)
    below, dist_below = _gd_near_minimum(task, depth, mult, 0.95, 1000, seed=depth)
    above, dist_above = _gd_near_minimum(task, depth, mult, 1.05, 1000, seed=depth)
    assert 0 < below[0] < 1e-5 and abs(above[0] - below[0]) < 1e-15
    assert below[-1] < 1e-4 * below[0] and dist_below < 1e-5  # converges back to the minimum
    assert np.max(above) > 1e3 * above[0] and dist_above > 1e-2  # leaves it


def test_bad_input():
    task = Task(jnp.eye(2), jnp.ones((1, 2)), jnp.eye(1))
    with pytest.raises(ValueError, match="`task`"):
        max_learning_rate("task", depth=2)
    with pytest.raises(ValueError, match="`depth`"):
        max_learning_rate(task, depth=0)
    with pytest.raises(ValueError, match="`depth`"):
        minimum_sharpness(task, depth=2.5)
    with pytest.raises(ValueError, match="`lrs`"):
        max_learning_rate(task, depth=2, lrs=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="`lrs`"):
        max_learning_rate(task, depth=2, lrs=(1.0, -1.0))
    singular = Task(jnp.diag(jnp.array([1.0, 0.0])), jnp.ones((1, 2)), jnp.eye(1))
    with pytest.raises(ValueError, match="`task.Sxx`"):
        max_learning_rate(singular, depth=2)


def test_jit():
    task = Task(jnp.eye(2), jnp.array([[2.0, 0.0]]), jnp.eye(1))
    f = jax.jit(lambda t: max_learning_rate(t, depth=3))
    assert abs(float(f(task)) - 2 / (3 * 2 ** (4 / 3))) <= 1e-14
