"""lambda-balanced matrix Riccati solution against gradient flow on (W1, W2), autodiff and limits."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import init, models, tasks
from linsolve.exact._lambda_balanced import lambda_balanced, lambda_balanced_mode
from linsolve.exact._mode import mode
from linsolve.verify._lambda_balanced import (
    TS,
    balance_residual,
    cases,
    check,
    exponential_convergence,
    fixed_point_residual,
    observables,
    realise,
    simulate_cases,
)

DRAWS = 24
TS_EXT = jnp.asarray(np.concatenate([TS, [np.inf]]))  # the curve, then t = inf (one compile)


def rel_error(approx, reference):
    """``max |approx - reference| / max |reference|`` (verify._core.rel_error, in numpy)."""
    approx, reference = np.asarray(approx), np.asarray(reference)
    return float(np.max(np.abs(approx - reference)) / np.max(np.abs(reference)))


def _take(sol, idx):
    return jax.tree_util.tree_map(lambda x: x[idx], sol)


@pytest.fixture(scope="module")
def runs():
    cs = cases(jr.PRNGKey(0), DRAWS)
    realised = [realise(c) for c in cs]
    sims = simulate_cases(realised)
    sols = [lambda_balanced(TS_EXT, W1, W2, task, tau=tau) for W1, W2, task, tau in realised]
    return cs, realised, sims, sols


def test_draws_cover_hard_cases(runs):
    cs, realised, _, _ = runs
    lams = np.array([c["lam"] for c in cs])
    assert (lams < 0).any() and (lams == 0).any() and (lams > 0).any()
    assert any(c["sizes"][0] != c["sizes"][2] for c in cs)
    assert any(c["sizes"][1] > c["sizes"][0] + c["sizes"][2] for c in cs)  # h > d_in + d_out
    assert any(c["lam"] == 0 and np.min(c["svals"]) == 0 for c in cs)  # singular F
    assert any(c["scale"] <= 1e-3 for c in cs)  # small init
    assert any(c["tau"] != 1.0 for c in cs)
    for W1, W2, task, tau in realised:
        assert float(task.whitening_error()) < 1e-12


def test_matches_gradient_flow(runs):
    """Max relative error <= 1e-8 on product, grams, NTK and loss over the whole curve."""
    _, realised, sims, sols = runs
    worst = 0.0
    for (W1, W2, task, tau), (W1s, W2s), full in zip(realised, sims, sols):
        sol = _take(full, slice(0, -1))
        P, A, B, ntk = observables(W1s, W2s, tau)
        errs = [rel_error(sol.product, P), rel_error(sol.input_gram, A),
                rel_error(sol.output_gram, B), rel_error(sol.ntk, ntk),
                rel_error(sol.loss, np.asarray(task.Syy).trace() / 2
                          - np.einsum("toi,oi->t", P, task.Syx) + 0.5 * np.sum(P * P, (1, 2)))]
        worst = max(worst, *errs)
        assert max(errs) <= 1e-8, errs
    assert worst > 0


def test_window_covers_plateau_and_convergence(runs):
    cs, realised, _, sols = runs
    for c, full in zip(cs, sols):
        if c["scale"] <= 1e-3:
            loss = np.asarray(full.loss)
            assert loss[2] > 0.95 * loss[0]  # still on the plateau at t = 1
            assert loss[80] - loss[-1] < 1e-10 * loss[0]  # converged by t = 40


@jax.jit
def _ntks(a, b, tau):
    """``models.ntk`` and the autodiff NTK ``(J1 J1^T + J2 J2^T)/tau`` of ``vec(W2 W1)``."""
    J1 = jax.jacobian(lambda w: b @ w)(a).reshape(b.shape[0] * a.shape[1], -1)
    J2 = jax.jacobian(lambda w: w @ a)(b).reshape(b.shape[0] * a.shape[1], -1)
    return models.ntk((a, b), lrs=1.0 / tau), (J1 @ J1.T + J2 @ J2.T) / tau


def test_ntk_equals_models_ntk_and_autodiff(runs):
    _, realised, sims, sols = runs
    for i in (1, 6):
        tau, (W1s, W2s), full = realised[i][3], sims[i], sols[i]
        for j in (0, 7, 40):
            theta, theta_ad = _ntks(W1s[j], W2s[j], tau)
            assert rel_error(full.ntk[j], theta) < 1e-8
            assert rel_error(full.ntk[j], theta_ad) < 1e-8


def test_balance_conserved_along_closed_form(runs):
    cs, _, _, sols = runs
    for c, full in zip(cs, sols):
        assert balance_residual(_take(full, slice(0, -1))) < 1e-12
        assert np.allclose(full.lam, c["lam"], atol=1e-12 * max(1.0, abs(c["lam"])))


def test_t0_exact_and_fixed_point(runs):
    _, realised, _, sols = runs
    n_exp = 0
    for (W1, W2, task, tau), full in zip(realised, sols):
        assert jnp.array_equal(full.product[0], W2 @ W1)
        assert jnp.array_equal(full.input_gram[0], W1.T @ W1)
        assert jnp.array_equal(full.output_gram[0], W2 @ W2.T)
        inf, late = _take(full, -1), _take(full, -2)  # t = inf and t = 1e3
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in late)
        assert fixed_point_residual(inf, task) < 1e-12
        dist = max(rel_error(late.product, inf.product), rel_error(late.input_gram, inf.input_gram),
                   rel_error(late.output_gram, inf.output_gram))
        if exponential_convergence(W1, task, float(full.lam[0])):
            n_exp += 1
            assert dist < 1e-10
            assert abs(float(late.loss - inf.loss)) < 1e-10
        else:  # a mu = 0 direction left over decays like 1/t (Saxe's mode with s = 0)
            assert dist < 1e-2
    assert n_exp >= DRAWS // 2


def test_fixed_point_known_cases(getkey):
    # Square, full-rank task, lam = 0, h = d: the limit is the task itself and the grams are
    # its balanced square roots (Saxe). Exact ties and zero init are handled.
    task = tasks.teacher(getkey(), 3, 3, jnp.array([2.0, 1.0, 0.5]))
    W1, W2 = init.lambda_balanced(getkey(), (3, 3, 3), 0.0, 0.3)
    sol = lambda_balanced(TS_EXT, W1, W2, task)
    U, s, Vt = jnp.linalg.svd(task.Syx)
    assert rel_error(sol.product[-1], task.Syx) < 1e-13
    assert rel_error(sol.input_gram[-1], Vt.T @ jnp.diag(s) @ Vt) < 1e-13
    assert rel_error(sol.output_gram[-1], U @ jnp.diag(s) @ U.T) < 1e-13
    zero = lambda_balanced(TS_EXT, jnp.zeros((3, 3)), jnp.zeros((3, 3)), task)
    assert float(jnp.max(jnp.abs(zero.product))) == 0.0  # the saddle at 0 never moves


def _aligned(task, a0, lam, key):
    """Aligned lambda-balanced init: W1 = R diag(w1) V^T, W2 = U diag(w2) R^T, w2^2 - w1^2 = lam."""
    U, _, Vt = jnp.linalg.svd(task.Syx)
    R = jnp.linalg.qr(jr.normal(key, (3, 3)))[0]
    w2 = jnp.sqrt((lam + jnp.sqrt(lam**2 + 4 * a0**2)) / 2)
    w1 = jnp.where(w2 > 0, a0 / jnp.where(w2 > 0, w2, 1.0), jnp.sqrt(jnp.maximum(-lam, 0.0)))
    return R @ jnp.diag(w1) @ Vt, U @ jnp.diag(w2) @ R.T, U, Vt.T


def test_aligned_modes_saxe_and_master_ode(getkey):
    s = jnp.array([2.5, 1.0, 0.4])
    task = tasks.teacher(getkey(), 3, 3, s)
    finite = TS_EXT[:-1]
    for lam, a0 in [(0.0, jnp.array([1e-3, 0.05, 0.3])), (0.0, jnp.array([0.2, -0.3, 0.0])),
                    (0.7, jnp.array([-0.5, 1e-3, 3.0])),
                    (-0.7, jnp.array([-0.5, 0.2, 1.5])), (3.0, jnp.array([0.1, -2.0, 0.0]))]:
        W1, W2, U, V = _aligned(task, a0, lam, getkey())
        for tau in (1.0, 0.8):
            sol = lambda_balanced(TS_EXT, W1, W2, task, tau=tau)
            M = jnp.einsum("oa,top,pb->tab", U, sol.product, V)
            a = jnp.diagonal(M, axis1=1, axis2=2)
            assert float(jnp.max(jnp.abs(M - jax.vmap(jnp.diag)(a)))) < 1e-12  # stays decoupled
            a_mode = lambda_balanced_mode(TS_EXT[:, None], a0=a0, s=s, lam=lam, tau=tau)
            assert rel_error(a, a_mode) < 1e-11
            master = mode(TS_EXT[:, None], F0=a0, s=s, k=1 / tau, A=2.0, B=abs(lam))
            assert rel_error(a, master) < 1e-11
            if lam == 0:  # Saxe's sigmoid, written out (a0 > 0); a0 <= 0 never crosses zero
                pos = np.asarray(a0) > 0
                saxe = s / (1 + (s / a0 - 1) * jnp.exp(-2 * s * finite[:, None] / tau))
                assert rel_error(a[:-1, pos], saxe[:, pos]) < 1e-11
                assert np.all(np.asarray(a)[:, ~pos] <= 1e-15)  # saddle: exact, not left


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_large_lambda_shallow_limit(getkey, sign):
    """|lam| -> inf: W2 W1(t) ~ Syx + (W0 - Syx) e^{-|lam| t}, relative error ~ 1/|lam|."""
    task = tasks.teacher(getkey(), 3, 3, jnp.array([2.0, 1.0, 0.5]))
    key = getkey()
    ts = jnp.concatenate([jnp.linspace(0.0, 1.0, TS.shape[0]), jnp.array([jnp.inf])])
    errs = []
    for lam in (20.0, 40.0, 80.0):
        W1, W2 = init.lambda_balanced(key, (3, 3, 3), sign * lam, 0.5)
        sol = lambda_balanced(ts, W1, W2, task)
        P0 = W2 @ W1
        shallow = task.Syx + (P0 - task.Syx) * jnp.exp(-lam * ts[:-1, None, None])
        err = jnp.max(jnp.abs(sol.product[:-1] - shallow)) / jnp.max(jnp.abs(P0 - task.Syx))
        errs.append(float(err))
    errs = np.array(errs)
    assert np.all(errs[1:] < 0.6 * errs[:-1])  # roughly halves as |lam| doubles
    assert errs[-1] * 80.0 < 1.0


def test_jit_and_vmap_equal_plain_calls(runs):
    _, realised, _, _ = runs
    idx = [i for i, (W1, W2, *_) in enumerate(realised) if W1.shape == (2, 3)][:3]
    task = realised[idx[0]][2]
    W1s = jnp.stack([realised[i][0] for i in idx])
    W2s = jnp.stack([realised[i][1] for i in idx])
    plain = [lambda_balanced(TS_EXT, W1s[j], W2s[j], task) for j in range(len(idx))]
    # One compiled program, vmapped over the weights and (inner) over scalar times.
    over_t = jax.vmap(lambda t, a, b: lambda_balanced(t, a, b, task), in_axes=(0, None, None))
    batched = jax.jit(jax.vmap(over_t, in_axes=(None, 0, 0)))(TS_EXT, W1s, W2s)
    assert batched.product.shape == (len(idx), 83, 4, 3) and batched.loss.shape == (len(idx), 83)
    for f in plain[0]._fields:
        for j in range(len(idx)):
            np.testing.assert_allclose(getattr(batched, f)[j], getattr(plain[j], f),
                                       rtol=1e-12, atol=1e-13)
    # Unsorted, repeated times (and several infs) come back in the order given.
    perm = np.random.default_rng(0).integers(0, TS_EXT.shape[0], TS_EXT.shape[0])
    shuffled = lambda_balanced(TS_EXT[perm], W1s[0], W2s[0], task)
    np.testing.assert_allclose(shuffled.product, plain[0].product[perm], rtol=1e-12, atol=1e-13)
    # Any shape of t: results gain its axes.
    grid = lambda_balanced(TS_EXT.reshape(1, -1), W1s[0], W2s[0], task)
    assert grid.product.shape == (1, 83, 4, 3) and grid.ntk.shape == (1, 83, 12, 12)


def test_derivatives(runs):
    _, realised, _, _ = runs
    W1, W2, task, _ = realised[0]

    def loss(c, ts=TS_EXT, chunks=None):
        scaled = tasks.Task(task.Sxx, c * task.Syx, c * c * task.Syy)
        return lambda_balanced(ts, W1, W2, scaled, chunks=chunks).loss[4]  # t = 2

    fd = (loss(1.0 + 1e-5) - loss(1.0 - 1e-5)) / 2e-5
    fwd = jax.jacfwd(lambda c: loss(c, TS_EXT[:5]))(1.0)  # dynamic chunking: forward mode
    static = jax.value_and_grad(lambda c, ts: loss(c, ts, chunks=12))  # static: reverse mode
    _, rev = static(1.0, TS_EXT[:5])
    assert abs(fwd - fd) < 1e-7 * abs(fd) and abs(rev - fwd) < 1e-12 * abs(fwd)
    value, _ = static(1.0, 100 * TS_EXT[:5])  # intervals of 50: too long for 12 static chunks
    assert np.isnan(float(value))  # flagged, not silently wrong


def test_float32_smoke(runs):
    _, realised, _, sols = runs
    W1, W2, task, tau = realised[1]
    f32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), (W1, W2, task))
    sol = lambda_balanced(TS_EXT.astype(jnp.float32), *f32, tau=tau)
    assert sol.product.dtype == jnp.float32 and sol.ntk.dtype == jnp.float32
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in sol)  # incl. t = 1e3 and t = inf
    for f in ("product", "input_gram", "output_gram", "ntk", "loss"):
        assert rel_error(getattr(sol, f), getattr(sols[1], f)) < 1e-5


def test_errors(getkey):
    task = tasks.teacher(getkey(), 3, 4, jnp.array([2.0, 1.0]))
    W1, W2 = init.lambda_balanced(getkey(), (3, 2, 4), 0.5, 0.5)
    with pytest.raises(ValueError, match="isotropic.*aligned"):  # anisotropic, not aligned
        O = jnp.linalg.qr(jr.normal(getkey(), (3, 3)))[0]
        bad = tasks.Task(O @ jnp.diag(jnp.array([1.0, 2.0, 3.0])) @ O.T, task.Syx, task.Syy)
        lambda_balanced(1.0, W1, W2, bad)
    with pytest.raises(ValueError, match="weight_decay.*lam = 0"):
        lambda_balanced(1.0, W1, W2, task, weight_decay=0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        lambda_balanced(1.0, W1, W2, task, weight_decay=-0.1)
    with pytest.raises(ValueError, match=r"lambda-balanced.*closest lam"):
        lambda_balanced(1.0, W1 * 1.1, W2, task)
    with pytest.raises(ValueError, match="columns"):
        lambda_balanced(1.0, W1, W2[:, :1], task)
    with pytest.raises(ValueError, match="d_in=3"):
        lambda_balanced(1.0, W1[:, :2], W2, task)
    with pytest.raises(ValueError, match="tau"):
        lambda_balanced(1.0, W1, W2, task, tau=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        lambda_balanced(jnp.array([1.0, -1.0]), W1, W2, task)
    with pytest.raises(ValueError, match="chunks"):
        lambda_balanced(1.0, W1, W2, task, chunks=0)
    with pytest.raises(ValueError, match="finite"):
        lambda_balanced(1.0, W1.at[0, 0].set(jnp.nan), W2, task)
    with pytest.raises(ValueError, match="t = inf"):
        lambda_balanced(1e12, W1, W2, task)


def test_verify_check():
    # 10 draws: every kind of the anisotropic / decay panel once (the whitened draws of the
    # fixture above cover the rest); `linsolve verify` runs the full panel.
    result = check(jr.PRNGKey(0), draws=10)
    assert result.passed, result
    assert result.cases == 2 * 10  # the whitened draws, then the anisotropic/decay ones
