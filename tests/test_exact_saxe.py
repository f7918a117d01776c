"""Saxe balanced modes: closed forms vs gradient flow of explicit nets, quadrature and known laws."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.integrate
import scipy.special

from linsolve import Task, init, tasks
from linsolve.exact._saxe import saxe_mode, saxe_time
from linsolve.exact._saxe_matrix import saxe_decomposition, saxe_product
from linsolve.verify._core import rel_error
from linsolve.verify._saxe import check, draw_cases, matrix_case, simulate_chains

DRAWS = 20  # per depth; shapes shared with check() so the simulations compile once
DEPTHS = (2, 3, 4, 5)


def _closed(ts, s, u0, tau, depth):
    return np.asarray(saxe_mode(ts, s=s[:, None], u0=u0[:, None], tau=tau[:, None], depth=depth))


def _against_chains(key, signs):
    """All depths in one vmapped gradient_flow call (see verify._saxe.simulate_chains: the chain
    of `depth` weights padded by weights frozen at exactly 1.0; depth 5 is the plain chain)."""
    keys = jr.split(key, len(DEPTHS))
    cases = [draw_cases(k, DRAWS, d, signs=signs) for k, d in zip(keys, DEPTHS)]
    s, u0, tau, ts = (np.concatenate(x) for x in zip(*cases))
    sim = np.asarray(simulate_chains(u0, s, tau, ts, np.repeat(DEPTHS, DRAWS)))
    errors = {}
    for j, depth in enumerate(DEPTHS):
        sl = slice(j * DRAWS, (j + 1) * DRAWS)
        closed = _closed(ts[sl], s[sl], u0[sl], tau[sl], depth)
        errors[depth] = max(rel_error(closed[i], sim[sl][i]) for i in range(DRAWS))
    return errors, (s, u0, tau, ts, sim)


def test_mode_vs_scalar_chains():
    """u0/s log-uniform in [1e-3, 3], 20 draws per depth 2..5; windows cover plateau,
    transition and convergence."""
    errors, (s, u0, tau, ts, sim) = _against_chains(jr.PRNGKey(1), signs=False)
    assert max(errors.values()) <= 1e-8, errors
    # The window really covers the whole curve: plateau at the start, converged at the end.
    small = u0 < 0.01 * s
    assert small.sum() >= 10 and np.all(sim[small, 1] < 0.05 * s[small])
    assert (u0 > s).sum() >= 10
    assert np.all(np.abs(sim[:, -1] - s) <= 1e-6 * s)


def test_signed_modes_vs_scalar_chains():
    """Every 4th draw has s < 0 < u0 (decay to 0), every 3rd both signs flipped (mirror)."""
    errors, (s, u0, *_) = _against_chains(jr.PRNGKey(2), signs=True)
    assert (s * u0 < 0).sum() >= 8 and ((s < 0) & (u0 < 0)).sum() >= 8
    assert max(errors.values()) <= 1e-8, errors


def _quad_time(u0, u1, s, tau, d):
    """tau/d int du / (|u|^p (s - u)) by adaptive quadrature in a smooth variable."""
    p = 2 - 2 / d
    sigma = math.copysign(1.0, u0)
    a0, a1, S = sigma * u0, sigma * u1, sigma * s
    if S > 0 and a0 < S:  # z = logit(u/S): dt = tau S^-p v^(1-p)/d dz
        f = lambda z: (1 / (1 + math.exp(-z))) ** (1 - p) / d
        z = lambda a: math.log(a / (S - a))
    elif S > 0:  # z = -ln(u/S - 1): dt = tau S^-p v^-p/d dz
        f = lambda z: (1 + math.exp(-z)) ** (-p) / d
        z = lambda a: -math.log(a / S - 1)
    else:  # z = -ln(u/|S|): dt = tau |S|^-p v^(1-p) / (d (1 + v)) dz
        f = lambda z: math.exp(-z) ** (1 - p) / (d * (1 + math.exp(-z)))
        z = lambda a: -math.log(a / abs(S))
    val, _ = scipy.integrate.quad(f, z(a0), z(a1), epsabs=0, epsrel=1e-13, limit=200)
    return tau * abs(S) ** (-p) * val


def test_time_vs_quadrature():
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(120):
        d = int(rng.integers(3, 8))
        s = float(np.exp(rng.uniform(-2, 2))) * rng.choice([1, -1])
        u0 = float(np.exp(rng.uniform(np.log(1e-4), np.log(30)))) * rng.choice([1, -1])
        tau = float(np.exp(rng.uniform(-1, 1)))
        end = s if u0 * s > 0 else 0.0
        u1 = u0 + (end - u0) * float(rng.uniform(0.01, 0.999))
        exact = _quad_time(u0, u1, s, tau, d)
        worst = max(worst, abs(float(saxe_time(u0, u1, s=s, tau=tau, depth=d)) - exact) / exact)
    assert worst <= 1e-11, worst


def test_time_vs_hypergeometric():
    """Reference form t = tau/L [F(u1) - F(u0)], F(u) = u^b/(s b) 2F1(1, b; b+1; u/s), u < s."""
    rng = np.random.default_rng(1)
    for _ in range(40):
        d = int(rng.integers(3, 8))
        b = 2 / d - 1
        s, tau = float(np.exp(rng.uniform(-1, 1))), float(np.exp(rng.uniform(-1, 1)))
        u0, u1 = np.sort(rng.uniform(1e-3, 0.9, 2)) * s
        F = lambda u: u**b / (s * b) * scipy.special.hyp2f1(1, b, b + 1, u / s)
        expected = tau / d * (F(u1) - F(u0))
        got = float(saxe_time(u0, u1, s=s, tau=tau, depth=d))
        assert abs(got - expected) <= 1e-11 * expected


def test_time_inverts_mode(getkey):
    for depth in (1, 2, 3, 5):
        s, u0, tau, ts = draw_cases(getkey(), DRAWS, max(depth, 2), signs=True)
        u = _closed(ts, s, u0, tau, depth)
        back = np.asarray(saxe_time(u0[:, None], u, s=s[:, None], tau=tau[:, None], depth=depth))
        # Compare where the time is well conditioned (u not yet at its end state in floats).
        end = np.where(u0 * s > 0, s, 0.0)[:, None] if depth > 1 else s[:, None]
        ok = np.abs(u - end) > 1e-6 * np.abs(s)[:, None]
        assert ok.mean() > 0.3
        np.testing.assert_allclose(back[ok], ts[ok], rtol=1e-9, atol=1e-12)


def test_extreme_values_vs_quadrature():
    """u0/s from 1e-300 to 1e300, both signs, t from 1e-300 to 1e100: finite, and the time to
    the returned u matches quadrature (relative 1e-10) wherever u has not reached its limit."""
    grid = [(s, u0, t) for s, u0 in [(1.0, 1e-300), (1.0, 1e-8), (1.0, 1e8), (1.0, 1e300),
                                     (-1.0, 0.5), (-1.0, 1e300), (1e100, 1e99), (2.0, -1e-30)]
            for t in (1e-300, 1e-10, 1.0, 1e3, 1e100)]
    s, u0, t = (np.array(x) for x in zip(*grid))
    u = np.asarray(saxe_mode(t, s=s, u0=u0, depth=4))
    assert np.all(np.isfinite(u))
    checked = 0
    for si, u0i, ti, ui in zip(s, u0, t, u):
        end = si if u0i * si > 0 else 0.0
        if ui in (end, 0.0) or abs(ui - u0i) < 1e-10 * abs(u0i):  # at a limit / ill-posed
            continue
        assert _quad_time(u0i, ui, si, 1.0, 4) == pytest.approx(ti, rel=1e-10)
        checked += 1
    assert checked >= 12


@pytest.mark.parametrize("depth", [3, 4, 6])
def test_small_u0_asymptotic(depth):
    """t(u0 -> s/2) ~ tau u0^{-(L-2)/L} / ((L-2) s) (reference: N_l = L + 1 neuron layers)."""
    s, tau = 1.7, 0.6
    for ratio in (1e-6, 1e-9, 1e-12, 1e-15):
        u0 = ratio * s
        t = float(saxe_time(u0, s / 2, s=s, tau=tau, depth=depth))
        asym = tau / ((depth - 2) * s) * u0 ** (-(depth - 2) / depth)
        assert abs(t / asym - 1) <= 3 * ratio ** ((depth - 2) / depth)


def test_logistic_and_linear_laws():
    s, u0, tau = 1.3, 0.02, 0.7
    t = np.linspace(0, 10, 50)
    e = np.exp(2 * s * t / tau)
    np.testing.assert_allclose(
        saxe_mode(t, s=s, u0=u0, tau=tau, depth=2), s * e / (e - 1 + s / u0), rtol=1e-13
    )
    np.testing.assert_allclose(
        saxe_mode(t, s=s, u0=u0, tau=tau, depth=1), s + (u0 - s) * np.exp(-t / tau), rtol=1e-13
    )
    u1 = 1.1
    log_time = tau / (2 * s) * math.log(u1 * (s - u0) / (u0 * (s - u1)))
    assert float(saxe_time(u0, u1, s=s, tau=tau, depth=2)) == pytest.approx(log_time, rel=1e-13)
    lin_time = tau * math.log((s - u0) / (s - u1))
    assert float(saxe_time(u0, u1, s=s, tau=tau, depth=1)) == pytest.approx(lin_time, rel=1e-13)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_limits(depth):
    s = jnp.array([2.0, 2.0, 2.0, -1.0, 0.0, 1.0, -2.0])
    u0 = jnp.array([1e-3, 2.0, 5.0, 0.3, 0.4, 0.0, -0.5])
    at0 = saxe_mode(jnp.zeros(()), s=s, u0=u0, depth=depth)
    assert jnp.array_equal(at0, u0)
    end = saxe_mode(jnp.inf, s=s, u0=u0, depth=depth)
    expected = s if depth == 1 else jnp.where(u0 * s > 0, s, 0.0)
    assert jnp.array_equal(end, expected)
    late = saxe_mode(1e6, s=s, u0=u0, depth=depth)
    assert jnp.all(jnp.isfinite(late))
    np.testing.assert_allclose(late[:3], s[:3], rtol=1e-12)
    if depth >= 2:
        assert late[5] == 0.0  # u0 = 0: the saddle stays
    assert saxe_time(0.3, 0.3, s=1.0, depth=depth) == 0.0
    for u1 in (1.0, 1.2, 0.2) + ((-0.1,) if depth > 1 else ()):
        assert saxe_time(0.3, u1, s=1.0, depth=depth) == jnp.inf  # at/beyond/behind/other side


def test_vmap_and_jit_match_plain_calls():
    ts = jnp.linspace(0.0, 30.0, 17)
    s = jnp.array([0.5, 1.0, 2.0, -1.0])
    u0 = jnp.array([0.01, 3.0, 0.2, 0.4])
    tau = jnp.array([1.0, 0.5, 2.0, 1.5])
    for depth in (3,):
        plain = saxe_mode(ts[:, None], s=s, u0=u0, tau=tau, depth=depth)
        vm = jax.vmap(lambda a, b, c: saxe_mode(ts, s=a, u0=b, tau=c, depth=depth), out_axes=1)
        np.testing.assert_allclose(vm(s, u0, tau), plain, rtol=1e-14, atol=0)
        jt = jax.jit(saxe_mode, static_argnames="depth")
        np.testing.assert_allclose(jt(ts[:, None], s=s, u0=u0, tau=tau, depth=depth), plain,
                                   rtol=1e-14)
        u1 = plain[5]
        times = jax.jit(lambda a, b: saxe_time(a, b, s=s, tau=tau, depth=depth))(u0, u1)
        np.testing.assert_allclose(times, saxe_time(u0, u1, s=s, tau=tau, depth=depth), rtol=1e-14)


def test_float32_smoke():
    t = jnp.linspace(0, 40, 50, dtype=jnp.float32)
    for depth in (3,):
        kw = dict(s=jnp.float32(1.5), u0=jnp.float32(0.01), tau=jnp.float32(1.2), depth=depth)
        u32 = saxe_mode(t, **kw)
        assert u32.dtype == jnp.float32
        u64 = saxe_mode(t.astype(jnp.float64), s=1.5, u0=0.01, tau=1.2, depth=depth)
        assert float(jnp.max(jnp.abs(u32 - u64))) <= 1e-5
        t32 = saxe_time(jnp.float32(0.01), jnp.float32(1.0), s=jnp.float32(1.5), depth=depth)
        assert t32.dtype == jnp.float32 and jnp.isfinite(t32)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_gradients(depth):
    f = lambda t, s, u0, tau: saxe_mode(t, s=s, u0=u0, tau=tau, depth=depth)
    cases = [(1.3, 2.0, 0.01, 0.7), (0.4, 2.0, 5.0, 1.1), (2.0, -1.0, 0.3, 0.9), (0.0, 1.5, 0.2, 1.0)]
    if depth > 1:
        cases.append((1.0, 0.0, 0.5, 0.8))  # s = 0 (power-law decay)
    for args in cases:
        grads = jax.grad(f, argnums=(0, 1, 2, 3))(*args)
        assert all(np.isfinite(g) for g in grads)
        t, s, u0, tau = args
        u = float(f(*args))
        rate = depth * abs(u) ** (2 - 2 / depth) * (s - u) / tau
        assert float(grads[0]) == pytest.approx(rate, rel=1e-10, abs=1e-14)
        for i in range(1, 4):
            h = 1e-6 * max(abs(args[i]), 1.0)
            up = [a + h * (j == i) for j, a in enumerate(args)]
            dn = [a - h * (j == i) for j, a in enumerate(args)]
            fd = (float(f(*up)) - float(f(*dn))) / (2 * h)
            assert float(grads[i]) == pytest.approx(fd, rel=1e-5, abs=1e-8), (args, i)


@pytest.mark.parametrize("depth", [2, 3])
def test_product_vs_gradient_flow(depth):
    """sizes (5, 6, 4) and (5, 6, 7, 4) from init.aligned; modes below/above target, s = 0,
    and (depth 3) a mode at strength 0. (Both simulated in the (5, 6, 7, 4) layout, the
    depth-2 net with an exactly frozen identity layer: see verify._saxe.matrix_case.)"""
    err, limits = matrix_case(jr.PRNGKey(5), depth)
    assert err <= 1e-8 and limits <= 1e-12


def test_product_shapes_and_jit():
    task = tasks.teacher(jr.PRNGKey(0), 3, 2, jnp.array([1.0, 0.5]))
    params0 = init.aligned(task, (3, 4, 2), 0.1, key=jr.PRNGKey(1))
    t = jnp.ones((2, 5))
    P = saxe_product(t, params0, task)
    assert P.shape == (2, 5, 2, 3)
    jitted = jax.jit(saxe_product)(t, params0, task)
    np.testing.assert_allclose(jitted, P, rtol=1e-13)
    np.testing.assert_allclose(saxe_product(0.0, params0, task), params0[1] @ params0[0],
                               rtol=0, atol=1e-15)


def test_decomposition_errors():
    task = tasks.teacher(jr.PRNGKey(0), 4, 3, jnp.array([1.0, 0.5, 0.2]))
    good = init.aligned(task, (4, 5, 3), 0.1, key=jr.PRNGKey(1))
    saxe_decomposition(good, task)
    mix = jnp.eye(4).at[0, 1].set(0.5).at[1, 0].set(0.5)  # couples two input directions
    _, _, Vt = task.svd()
    not_aligned = Task(Vt.T @ mix[:3, :3] @ Vt + jnp.eye(4) - Vt.T @ Vt, task.Syx, task.Syy)
    with pytest.raises(ValueError, match=r"aligned.*residual of [0-9.e-]+.*gradient_flow"):
        saxe_product(1.0, good, not_aligned)
    unbalanced = (2 * good[0], good[1] / 2)
    with pytest.raises(ValueError, match=r"balanced.*violate it by [0-9.e-]+ \(relative\)"):
        saxe_product(1.0, unbalanced, task)
    coupled = init.random(jr.PRNGKey(2), (4, 5, 3), 0.3)
    with pytest.raises(ValueError, match=r"(balanced|decoupled)"):
        saxe_product(1.0, coupled, task)
    rot = jnp.linalg.qr(jr.normal(jr.PRNGKey(3), (4, 4)))[0]
    rotated = (good[0] @ rot, good[1])  # balanced, but not aligned with the task's V
    with pytest.raises(ValueError, match=r"decoupled.*residual of [0-9.e-]+ \(relative\)"):
        saxe_product(1.0, rotated, task)
    with pytest.raises(ValueError, match=r"`params0\[0\]` must have d_in=4"):
        saxe_product(1.0, (jnp.ones((5, 3)), jnp.ones((3, 5))), task)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depth": 0}, r"`depth` must be a positive integer.*got 0"),
        ({"depth": 2.5}, r"`depth` must be a positive integer"),
        ({"depth": True}, r"`depth` must be a positive integer"),
        ({"tau": 0.0}, r"`tau` must be positive"),
        ({"s": jnp.nan}, r"`s` must be finite"),
        ({"t": -1.0}, r"`t` must be non-negative"),
    ],
)
def test_mode_errors(kwargs, match):
    kw = {"t": 1.0, "s": 1.0, "u0": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        saxe_mode(kw.pop("t"), **kw)


def test_verify_check():
    # The weight-decay cases of check() run in tests/test_exact_saxe_decay.py.
    result = check(jr.PRNGKey(0), draws=DRAWS, decay=False)
    assert result.passed, result


def test_depth_1000_compiles_fast_and_matches_quadrature():
    """Depth enters the compiled program only through array sizes (no unrolled loop over the
    roots of unity), so depth 1000 compiles in seconds (it took 160 s with a Python loop), and
    both directions agree with adaptive quadrature of ``tau/L int du / (|u|^p (s - u))``."""
    import time

    from linsolve.exact._saxe import _evaluate

    args = [jnp.ones(3)] * 4
    # Program size in operations (lines of StableHLO; a constant array is one line).
    sizes = {d: len(_evaluate.lower(*args, d, False).as_text().splitlines()) for d in (10, 1000)}
    assert sizes[1000] < 1.1 * sizes[10], sizes
    d, tau = 1000, 0.8
    cases = [(2.0, 0.01), (2.0, 5.0), (-1.5, 0.3), (1.0, -0.999)]  # below, above, opposite, negative
    s = np.array([c[0] for c in cases])[:, None]
    u0 = np.array([c[1] for c in cases])[:, None]
    end = np.where(u0 * s > 0, s, 0.0)
    u1 = u0 + (end - u0) * np.array([0.1, 0.5, 0.9])  # (4, 3) targets on the way
    t1 = np.array([[_quad_time(a, b, c, tau, d) for b in row] for a, row, c in zip(u0[:, 0], u1, s[:, 0])])
    start = time.perf_counter()
    u = np.asarray(saxe_mode(t1, s=s, u0=u0, tau=tau, depth=d))
    back = np.asarray(saxe_time(u0, u1, s=s, tau=tau, depth=d))
    assert time.perf_counter() - start < 30.0
    np.testing.assert_allclose(u, u1, rtol=1e-8)
    np.testing.assert_allclose(back, t1, rtol=1e-8)


def test_bad_inputs_named():
    with pytest.raises(ValueError, match=r"broadcast.*`t` \(3,\), `s` \(2,\)"):
        saxe_mode(jnp.ones(3), s=jnp.ones(2), u0=0.1, depth=3)
    with pytest.raises(ValueError, match=r"broadcast.*`u0` \(3,\), `u1` \(2,\)"):
        saxe_time(jnp.full(3, 0.1), jnp.full(2, 0.5), s=1.0, depth=3)
    with pytest.raises(ValueError, match=r"`u1` must be finite"):
        saxe_time(0.1, jnp.nan, s=1.0, depth=3)
    with pytest.raises(ValueError, match=r"`t` must be non-negative"):
        saxe_mode(jnp.nan, s=1.0, u0=0.1, depth=3)
    task = tasks.teacher(jr.PRNGKey(0), 3, 2, jnp.array([1.0, 0.5]))
    params0 = init.aligned(task, (3, 4, 2), 0.1, key=jr.PRNGKey(1))
    with pytest.raises(ValueError, match=r"`rtol` must be a finite number >= 0"):
        saxe_decomposition(params0, task, rtol=-1.0)
    with pytest.raises(ValueError, match=r"`rtol` must be a finite number >= 0"):
        saxe_product(1.0, params0, task, rtol=float("nan"))
    with pytest.raises(ValueError, match=r"`tau` must be a scalar"):
        saxe_product(1.0, params0, task, tau=jnp.ones(2))
    with pytest.raises(ValueError, match=r"`tau` must be positive"):
        saxe_product(1.0, params0, task, tau=-1.0)
    assert saxe_mode(jnp.zeros((0,)), s=1.0, u0=0.1, depth=3).shape == (0,)  # empty t: empty result
