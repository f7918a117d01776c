"""Exact GD map of the width-d network and the lazy / catapult / divergent phases, against explicit
gradient descent of the full vectors (``simulate.gradient_descent``, float64)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import exact, simulate, tasks
from linsolve.exact import GD_PHASES, gd_phase, gd_phase_boundaries, one_hidden_layer_gd


def _start(key, d, scale=1.0):
    ku, kw = jr.split(key)
    return scale * jr.normal(ku, (d,)), scale * jr.normal(kw, (d,))


def _simulate(u0, w0, *, s, m2, kappa, lr_u, lr_w, steps, gamma=0.0):
    traj = simulate.gradient_descent(
        (w0[:, None], u0[None, :]), tasks.scalar(s=s, m2=m2), lrs=(lr_w, lr_u), steps=steps,
        output_scale=kappa, weight_decay=gamma,
    )
    w, u = traj.params[0][:, :, 0], traj.params[1][:, 0, :]
    return u, w, traj


# (width, lr lambda_0, lr_w / lr_u, target, weight decay): lazy, catapult and divergent runs.
CASES = [
    (1, 0.7, 1.0, 0.8, 0.0),
    (3, 1.9, 0.3, -0.5, 0.0),
    (16, 3.0, 1.0, 0.0, 0.0),
    (64, 3.3, 2.5, 1.0, 0.0),
    (256, 1.2, 1.0, 0.5, 0.02),
    (1024, 2.8, 0.5, 0.3, 0.0),
    (4096, 3.6, 1.0, 0.0, 0.0),
    (4096, 4.5, 1.0, 0.0, 0.0),
    (32, 6.0, 3.0, 1.0, 0.0),
]


@pytest.mark.parametrize("d, x, ratio, s, gamma", CASES)
def test_map_matches_full_vector_gd(getkey, d, x, ratio, s, gamma):
    u0, w0 = _start(getkey(), d)
    kappa, m2 = 1 / np.sqrt(d), 1.3
    lam0 = m2 * kappa**2 * (w0 @ w0 / np.sqrt(ratio) + u0 @ u0 * np.sqrt(ratio))
    lr_u, lr_w = x / lam0 / np.sqrt(ratio), x / lam0 * np.sqrt(ratio)
    kw = dict(s=s, m2=m2, kappa=kappa, lr_u=lr_u, lr_w=lr_w)
    steps = 150
    ex = one_hidden_layer_gd(jnp.arange(steps + 1), u0, w0, weight_decay=gamma, **kw)
    u, w, traj = _simulate(u0, w0, steps=steps, gamma=gamma, **kw)
    assert np.array_equal(ex.diverged[-1], traj.diverged)
    assert float(ex.diverged_at) == float(traj.diverged_at)
    live = ~np.asarray(ex.diverged)
    F = kappa * jnp.sum(u * w, -1)
    rel = lambda a, b: float(jnp.max(jnp.abs(a - b)[live]) / jnp.max(jnp.abs(b)[live]))
    assert rel(ex.F, F) < 1e-10
    assert rel(ex.u, u) < 1e-10 and rel(ex.w, w) < 1e-10
    ntk = kappa**2 * (lr_u * jnp.sum(w * w, -1) + lr_w * jnp.sum(u * u, -1))
    assert rel(ex.ntk, ntk) < 1e-10
    np.testing.assert_allclose(ex.loss[live], traj.loss[live], rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(np.isinf(ex.loss), np.isinf(traj.loss))  # same step
    np.testing.assert_array_equal(ex.u[0], u0)  # step 0 exact


def test_steps_any_shape_and_traced(getkey):
    u0, w0 = _start(getkey(), 8)
    kw = dict(s=1.0, kappa=0.5, lr_u=0.3, lr_w=0.2)
    grid = jnp.array([[7, 0, 3], [3, 12, 1]])
    ex = one_hidden_layer_gd(grid, u0, w0, **kw)
    ref = one_hidden_layer_gd(jnp.arange(13), u0, w0, **kw)
    assert ex.F.shape == (2, 3) and ex.u.shape == (2, 3, 8)
    np.testing.assert_array_equal(ex.F, ref.F[grid])
    light = one_hidden_layer_gd(grid, u0, w0, weights=False, **kw)
    assert light.u is None and light.w is None
    np.testing.assert_array_equal(light.F, ex.F)
    np.testing.assert_array_equal(light.ntk, ex.ntk)
    jitted = jax.jit(lambda n: one_hidden_layer_gd(n, u0, w0, **kw).F)(grid)
    np.testing.assert_array_equal(jitted, ex.F)
    lrs = jnp.array([0.1, 0.2, 0.3])
    batch = jax.vmap(lambda lr: one_hidden_layer_gd(5, u0, w0, s=1.0, kappa=0.5, lr_u=lr,
                                                    lr_w=lr).F)(lrs)
    for lr, F in zip(lrs, batch):
        assert float(F) == float(one_hidden_layer_gd(5, u0, w0, s=1.0, kappa=0.5, lr_u=lr,
                                                     lr_w=lr).F)


def test_small_learning_rate_is_gradient_flow(getkey):
    """GD with rate lr for n steps -> the flow at t = n lr (eta = 1): error O(lr)."""
    u0, w0 = _start(getkey(), 5, 0.5)
    T, errs = 4.0, []
    for lr in (1e-2, 5e-3):
        n = int(round(T / lr))
        gd = one_hidden_layer_gd(n, u0, w0, s=1.0, lr_u=lr, lr_w=lr)
        flow = exact.one_hidden_layer(T, u0, w0, s=1.0)
        errs.append(abs(float(gd.F - flow.F)))
        assert abs(float(gd.ntk / lr - flow.ntk)) < 20 * lr
    assert 1.8 < errs[0] / errs[1] < 2.2  # first order in lr


@pytest.mark.parametrize("d, x, s", [(2048, 1.5, 0.0), (2048, 3.0, 0.0), (512, 3.5, 0.7),
                                     (2048, 4.4, 0.0)])
def test_phases_agree_with_simulation(getkey, d, x, s):
    """The phase from the exact map and from GD of the full vectors; in the catapult phase the
    final lr lambda < 2 and the loss spikes, in theory and simulation alike."""
    u0, w0 = _start(getkey(), d)
    kappa = 1 / np.sqrt(d)
    lr = x / (kappa**2 * (u0 @ u0 + w0 @ w0))
    ph = gd_phase(u0, w0, s=s, kappa=kappa, lr_u=lr, lr_w=lr)
    assert abs(float(ph.lr_lambda0) - x) < 1e-12
    expected = "lazy" if x < 2 else "catapult" if x < 4 else "diverged"
    assert GD_PHASES[int(ph.code)] == expected
    u, w, traj = _simulate(u0, w0, s=s, m2=1.0, kappa=kappa, lr_u=lr, lr_w=lr, steps=400)
    final = lr * kappa**2 * float(jnp.sum(u[-1] ** 2) + jnp.sum(w[-1] ** 2))
    if expected == "diverged":
        assert bool(traj.diverged)
        return
    assert not bool(traj.diverged) and float(traj.loss[-1]) < 1e-12
    spiked = float(jnp.max(traj.loss)) > float(traj.loss[0])
    assert spiked == (expected == "catapult") == bool(ph.peak_loss > ph.loss0)
    assert final < 2 and float(ph.lr_lambda) < 2
    assert abs(final - float(ph.lr_lambda)) < 1e-6
    if expected == "catapult":
        assert final < x - 1  # the curvature fell


def test_wide_net_boundaries_are_2_and_4(getkey):
    """Lewkowycz et al. (2020): lr lambda_0 = 2 and 4 for wide nets (s = 0); the catapult
    boundary approaches 2 as the width grows."""
    gaps = []
    for d in (16, 256, 4096):
        u0, w0 = _start(getkey(), d)
        b = gd_phase_boundaries(u0, w0, s=0.0, kappa=1 / np.sqrt(d))
        x_cat, x_div = float(b.lr_catapult * b.lambda0), float(b.lr_diverge * b.lambda0)
        assert abs(x_div - 4.0) < 1e-6
        gaps.append(x_cat - 2.0)
        # Just inside and outside each boundary, the phases from the map.
        for x, name in ((0.99 * x_cat, "lazy"), (1.01 * x_cat, "catapult"),
                        (0.99 * x_div, "catapult"), (1.01 * x_div, "diverged")):
            lr = x / b.lambda0
            assert GD_PHASES[int(gd_phase(u0, w0, s=0.0, kappa=1 / np.sqrt(d), lr_u=lr,
                                          lr_w=lr).code)] == name, (d, x, name)
    assert all(g >= 0 for g in gaps)  # the spike needs lr lambda_0 a little above 2
    assert gaps[0] < 0.3 and gaps[1] < 0.03 and gaps[2] < 3e-3  # O(1/d)


def test_boundaries_move_with_ratio_and_target(getkey):
    u0, w0 = _start(getkey(), 64)
    kappa = 1 / 8.0
    base = gd_phase_boundaries(u0, w0, s=0.0, kappa=kappa)
    tilted = gd_phase_boundaries(u0, w0, s=0.0, kappa=kappa, lr_ratio=4.0)
    target = gd_phase_boundaries(u0, w0, s=1.5, kappa=kappa)
    assert float(tilted.lambda0) != float(base.lambda0)
    # In units of lr lambda_0 the catapult boundary stays near 2 for any ratio.
    assert abs(float(tilted.lr_catapult * tilted.lambda0) - 2) < 0.1
    assert float(target.lr_diverge) != float(base.lr_diverge)


def test_vmap_over_learning_rates(getkey):
    u0, w0 = _start(getkey(), 256)
    kappa = 1 / 16.0
    lam0 = kappa**2 * (u0 @ u0 + w0 @ w0)
    xs = jnp.array([0.5, 1.5, 2.5, 3.5, 4.5])
    codes = jax.vmap(lambda lr: gd_phase(u0, w0, s=0.0, kappa=kappa, lr_u=lr, lr_w=lr).code)(
        xs / lam0)
    assert [GD_PHASES[int(c)] for c in codes] == ["lazy", "lazy", "catapult", "catapult",
                                                  "diverged"]


def test_undecided_and_bad_input(getkey):
    u0, w0 = _start(getkey(), 4)
    ph = gd_phase(u0, w0, s=1.0, lr_u=1e-6, lr_w=1e-6, max_steps=10)
    assert GD_PHASES[int(ph.code)] == "undecided" and int(ph.steps) == 10
    kw = dict(s=1.0, lr_u=0.1, lr_w=0.1)
    for bad, name in ((dict(lr_u=-0.1), "lr_u"), (dict(lr_w=0.0), "lr_w"),
                      (dict(kappa=np.nan), "kappa"), (dict(s="a"), "s"),
                      (dict(weight_decay=-1.0), "weight_decay")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            one_hidden_layer_gd(3, u0, w0, **{**kw, **bad})
    with pytest.raises(ValueError, match="`steps`"):
        one_hidden_layer_gd(-1, u0, w0, **kw)
    with pytest.raises(ValueError, match="`steps`"):
        one_hidden_layer_gd(1.5, u0, w0, **kw)
    with pytest.raises(ValueError, match="`u0`"):
        one_hidden_layer_gd(1, u0, w0[:2], **kw)
    with pytest.raises(ValueError, match="`max_steps`"):
        gd_phase(u0, w0, max_steps=0, **kw)
    with pytest.raises(ValueError, match="`lr_ratio`"):
        gd_phase_boundaries(u0, w0, s=0.0, lr_ratio=-1.0)
