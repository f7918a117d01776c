"""saxe_mode_gd vs gradient descent of full weight matrices, the flow limit and known closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsolve import Task, simulate
from linsolve.exact._saxe import saxe_mode
from linsolve.exact._saxe_gd import saxe_mode_gd

S = np.array([2.0, 1.0, 0.5])  # task singular values of the three modes
V_MODE = np.array([1.5, 0.7, 1.0])  # input variances along them
U0 = np.array([0.05, 0.3, -0.2])  # initial strengths (the third against its target)
D_IN, D_OUT, WIDTH, STEPS = 4, 3, 4, 60


def _orthogonal(rng, n, k=None):
    q, r = np.linalg.qr(rng.normal(size=(n, k or n)))
    return q * np.sign(np.diag(r))


def _aligned_setup(depth, rng):
    """Teacher task with ``Sxx = V diag(v) V^T`` aligned with ``Syx = U diag(s) V^T``, and a
    balanced aligned net ``W_l = R_l diag(sigma_l |u0|^{1/L}) R_{l-1}^T`` with random layer signs
    whose product is ``sgn(u0)``."""
    U, V = _orthogonal(rng, D_OUT), _orthogonal(rng, D_IN)
    v_full = np.concatenate([V_MODE, [1.2]])
    Sxx = (V * v_full) @ V.T
    Syx = (U * S) @ V[:, :3].T
    Syy = (U * S**2 / V_MODE) @ U.T + 0.1 * np.eye(D_OUT)
    task = Task((Sxx + Sxx.T) / 2, Syx, (Syy + Syy.T) / 2)
    signs = rng.choice([-1.0, 1.0], size=(depth, 3))
    signs[-1] *= np.prod(signs, axis=0) * np.sign(U0)
    frames = [V[:, :3]] + [_orthogonal(rng, WIDTH, 3) for _ in range(depth - 1)] + [U]
    root = np.abs(U0) ** (1 / depth)
    params = tuple(jnp.asarray((frames[l + 1] * (signs[l] * root)) @ frames[l].T)
                   for l in range(depth))
    return task, params, U, V[:, :3]


def _threshold(depth):
    """Stability limit of the most curved mode at its minimum ``u* = s/v`` (no decay)."""
    return 2 / np.max(V_MODE * depth * (S / V_MODE) ** (2 - 2 / depth))


def _turns(u):
    """Number of sign changes of the steps ``u_{k+1} - u_k`` (those above rounding)."""
    du = np.diff(u)
    du = du[np.abs(du) > 1e-10]
    return int(np.sum(np.diff(np.sign(du)) != 0))


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_matches_full_matrix_gradient_descent(depth):
    """Every mode's ``U_a^T P V_a`` under GD of the full matrices, at a converging (0.3x the
    threshold: monotone), two oscillating (0.9x: damped; 1.2x: a 2-cycle) and a diverging (8x)
    rate, without and with weight decay."""
    task, params, U, V = _aligned_setup(depth, np.random.default_rng(depth))
    steps = np.arange(STEPS + 1)
    for gamma in (0.0, 0.1):
        for factor in (0.3, 0.9, 1.2, 8.0):
            lr = factor * _threshold(depth)
            run = simulate.gradient_descent(params, task, lrs=lr, steps=STEPS,
                                            weight_decay=gamma)
            sim = np.einsum("oa,toi,ia->ta", U, np.asarray(run.product()), V)  # (T, 3)
            gd = saxe_mode_gd(steps[:, None], s=S, u0=U0, lr=lr, depth=depth, variance=V_MODE,
                              weight_decay=gamma)
            ok = np.isfinite(np.asarray(run.loss)) & ~np.any(np.asarray(gd.diverged), axis=1)
            assert ok.sum() >= 3
            u, want = np.asarray(gd.u)[ok], sim[ok]
            err = np.max(np.abs(u - want) / np.maximum(np.abs(want), 1e-2 * S))
            assert err <= 1e-10, (gamma, factor, err)
            if factor == 8.0:  # both blow up within a few steps, after |u| has grown
                assert bool(run.diverged) and bool(gd.diverged[-1, 0])
                assert np.max(np.abs(want[:, 0])) > 3 * S[0] / V_MODE[0]
                assert np.all(np.isnan(gd.u[-1, 0])) and np.isinf(gd.loss[-1, 0])
                continue
            assert not bool(run.diverged) and not bool(np.any(gd.diverged))
            turns = _turns(np.asarray(gd.u)[:, 0])  # the most curved mode
            assert turns == 0 if factor == 0.3 else turns >= 10, (factor, turns)


@pytest.mark.parametrize("depth, gamma", [(2, 0.0), (3, 0.1), (4, 0.05)])
def test_small_rate_approaches_flow(depth, gamma):
    """``lr -> 0`` at ``t = lr * steps``: O(lr) error, halving with ``lr``."""
    t, s, u0, v = 1.5, 1.3, 0.1, 1.4
    flow = float(saxe_mode(t, s=s, u0=u0, depth=depth, variance=v, weight_decay=gamma))
    errors = []
    for lr in (1e-2, 5e-3, 2.5e-3):
        gd = saxe_mode_gd(int(round(t / lr)), s=s, u0=u0, lr=lr, depth=depth, variance=v,
                          weight_decay=gamma)
        errors.append(abs(float(gd.u) - flow))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[0] < 0.05 * abs(flow)
    assert np.all((ratios > 1.85) & (ratios < 2.15)), ratios


def test_depth_one_is_linear():
    """``L = 1``: ``u_n = u* + (u0 - u*) (1 - lr k)^n``, ``k = v + gamma``, ``u* = s/k``."""
    n = np.arange(12)
    s, u0, v, gamma, lr = 0.8, -0.4, 1.3, 0.2, np.array([0.3, 1.2])
    gd = saxe_mode_gd(n[:, None], s=s, u0=u0, lr=lr, depth=1, variance=v, weight_decay=gamma)
    k = v + gamma
    want = s / k + (u0 - s / k) * (1 - lr * k) ** n[:, None]
    np.testing.assert_allclose(np.asarray(gd.u), want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(gd.loss), (v * want - s) ** 2 / (2 * v), rtol=1e-12,
                               atol=1e-15)


def test_saddle_signs_and_exact_start():
    gd = saxe_mode_gd(np.arange(5), s=1.0, u0=0.0, lr=0.1, depth=3)
    assert np.all(np.asarray(gd.u) == 0.0)
    assert float(saxe_mode_gd(1, s=1.0, u0=0.0, lr=0.1, depth=1).u) == pytest.approx(0.1)
    assert float(saxe_mode_gd(0, s=1.0, u0=0.123, lr=0.1, depth=4).u) == 0.123
    # Overshooting the layers through zero: flips u for odd L only (here one step, q < 0).
    for depth in (2, 3):
        r0 = 2.0
        u0 = r0**depth
        lr = 1.0
        q = r0 - lr * (u0 - 1.0) * r0 ** (depth - 1)
        assert q < 0
        got = float(saxe_mode_gd(1, s=1.0, u0=u0, lr=lr, depth=depth).u)
        assert got == pytest.approx((-1.0) ** depth * abs(q) ** depth, rel=1e-14)


def test_divergence_is_reported():
    gd = saxe_mode_gd(np.arange(30), s=1.0, u0=0.5, lr=3.0, depth=2)
    at = float(gd.diverged_at[-1])
    assert np.isfinite(at) and 0 < at < 30
    before = np.arange(30) < at
    assert np.all(np.isfinite(gd.u[before])) and not np.any(gd.diverged[before])
    assert np.all(np.isnan(gd.u[~before])) and np.all(np.isinf(gd.loss[~before]))
    assert np.all(gd.diverged[~before]) and np.all(gd.diverged_at[~before] == at)
    assert np.all(np.isinf(gd.diverged_at[before]))


def test_jit_vmap_and_broadcasting():
    lrs = jnp.array([0.05, 0.1, 0.2])
    direct = saxe_mode_gd(np.array([3, 7]), s=1.5, u0=0.2, lr=lrs[:, None], depth=3).u  # (3, 2)
    mapped = jax.vmap(lambda lr: saxe_mode_gd(np.array([3, 7]), s=1.5, u0=0.2, lr=lr,
                                              depth=3).u)(lrs)
    jitted = jax.jit(lambda lr, s, u0: saxe_mode_gd(np.array([3, 7]), s=s, u0=u0, lr=lr,
                                                    depth=3).u)(lrs[:, None], 1.5, 0.2)
    assert direct.shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(direct), np.asarray(mapped))
    np.testing.assert_array_equal(np.asarray(direct), np.asarray(jitted))
    assert saxe_mode_gd(np.zeros((0,), int), s=1.0, u0=0.1, lr=0.1).u.shape == (0,)
    # steps (4, 1, 1) against s (2, 1) and u0 (3,): every entry is its own scalar run
    s, u0 = np.array([1.0, 2.0]), np.array([0.1, 0.2, 0.3])
    grid = saxe_mode_gd(np.arange(4)[:, None, None], s=s[:, None], u0=u0, lr=0.1).u
    one = [[[float(saxe_mode_gd(k, s=a, u0=b, lr=0.1).u) for b in u0] for a in s] for k in range(4)]
    np.testing.assert_array_equal(np.asarray(grid), np.array(one))


def test_bad_input():
    ok = dict(s=1.0, u0=0.1, lr=0.1)
    for steps in (-1, 1.5, np.array([1, -2]), True, "3"):
        with pytest.raises(ValueError, match="`steps`"):
            saxe_mode_gd(steps, **ok)
    with pytest.raises(ValueError, match="`steps`"):
        jax.jit(lambda n: saxe_mode_gd(n, **ok))(3)
    for name, value in (("lr", 0.0), ("lr", -1.0), ("variance", 0.0), ("weight_decay", -0.1),
                        ("s", np.nan), ("u0", "a"), ("divergence_factor", 0.0)):
        with pytest.raises(ValueError, match=f"`{name}`"):
            saxe_mode_gd(3, **{**ok, "variance": 1.0, name: value})
    with pytest.raises(ValueError, match="`depth`"):
        saxe_mode_gd(3, depth=0, **ok)
    with pytest.raises(ValueError, match="broadcast"):
        saxe_mode_gd(np.arange(3), s=np.ones(2), u0=0.1, lr=0.1)
