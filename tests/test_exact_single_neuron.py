"""The unbalanced single neuron (Kunin et al. 2024) against gradient flow and exact identities."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import Task, models
from linsolve.exact._mode import mode
from linsolve.exact._single_neuron import (
    single_neuron,
    single_neuron_implicit_bias,
    single_neuron_potential,
)
from linsolve.verify._single_neuron import (
    CATEGORIES,
    FIELDS,
    FRACTIONS,
    Case,
    check,
    closed_cases,
    compare,
    draw_cases,
    simulate_cases,
)

TS = jnp.array([0.0, 0.3, 1.0, 3.0, 10.0, 1e2, 1e4, jnp.inf])


def _special_cases():
    bs = np.array([1.0, -0.5, 0.3])
    return [
        # delta = 0 exactly (3-4-5), unit rates.
        Case("exact_balanced", 5 / 8, np.array([3 / 8, 1 / 2, 0.0]), bs, 1.0, 1.0),
        # a0 = 0 with w0 _|_ beta*: a saddle that never moves.
        Case("saddle", 0.0, np.array([0.0, 0.3, 0.0]), np.array([1.0, 0.0, 0.0]), 1.3, 0.7),
        # The origin.
        Case("origin", 0.0, np.zeros(3), bs, 1.0, 1.0),
        # beta* = 0 and delta = 0: Omega = 0, algebraic decay a ~ t^{-1/2}.
        Case("omega_zero", 5 / 8, np.array([3 / 8, 1 / 2, 0.0]), np.zeros(3), 1.0, 1.0),
        # Omega t small over most of the window: delta ~ 1e-6, |beta*| = 1e-4.
        Case("tiny_omega", 0.3, np.array([0.3 * np.sqrt(1 - 1e-5), 0.0, 0.0]),
             1e-4 * np.array([0.6, 0.8, 0.0]), 1.0, 1.0),
        # Negative a0, w0 anti-aligned, strongly upstream: a crosses zero.
        Case("crossing_neg", -0.05, np.array([2.0, -0.4, 0.3]), np.array([1.5, 0.0, 0.0]),
             0.5, 2.0),
    ]


@pytest.fixture(scope="module")
def comparison():
    cases = draw_cases(jr.PRNGKey(7), 24) + _special_cases()
    return cases, compare(cases)


def test_closed_form_matches_gradient_flow(comparison):
    cases, res = comparison
    assert not np.any(res["diverged"])
    for f in FIELDS:
        worst = int(np.argmax(res[f]))
        assert res[f][worst] <= 1e-8, (f, cases[worst], res[f][worst])
    deltas = np.array([c.delta for c in cases])
    assert (deltas > 1.0).any() and (deltas < -1.0).any() and (np.abs(deltas) < 1e-12).any()
    assert {c.label for c in cases} >= set(CATEGORIES)
    assert len({c.eta_a for c in cases}) > 20 and any(c.a0 < 0 for c in cases)


def test_delta_conserved_and_limits(comparison):
    cases, res = comparison
    assert np.max(res["drift"]) <= 1e-12
    assert np.max(res["limits"]) <= 1e-9


def _closed(cases, times):
    """The closed form of each case at `times` (k,) through the verify module's jit(vmap)
    evaluator (times padded to its fixed length, so every call shares one compilation)."""
    times = np.asarray(times, float)
    padded = np.concatenate([times, np.full(len(FRACTIONS) - len(times), times[-1])])
    sol = closed_cases(cases, np.broadcast_to(padded, (len(cases), len(padded))))
    return {f: x[:, : len(times)] for f, x in sol.items()}


def _plain(case, t):
    return single_neuron(t, case.a0, case.w0, case.beta_star, eta_a=case.eta_a, eta_w=case.eta_w)


def test_a_crosses_zero_when_upstream():
    case = _special_cases()[-1]
    ts = 40.0 * FRACTIONS[None, :]
    sol = closed_cases([case], ts)
    sim = simulate_cases([case], ts)
    assert sol["a"][0, 0] < 0 < sol["a"][0, -1]
    assert np.max(np.abs(sol["a"] - sim["a"])) <= 1e-9 * np.max(np.abs(sim["a"]))


def test_balanced_cosine_law():
    # eta = 1, delta = 0: sgn(a) cos(w, beta*) = tanh(s t + artanh(sgn(a0) cos0)).
    rng = np.random.default_rng(1)
    cases = []
    for i in range(6):
        w0, bs = 0.5 * rng.standard_normal(3), rng.standard_normal(3)
        cases.append(Case("balanced", (-1) ** i * float(np.linalg.norm(w0)), w0, bs, 1.0, 1.0))
    t = np.linspace(0.0, 6.0, 25)
    sol = _closed(cases, t)
    for i, c in enumerate(cases):
        s = np.linalg.norm(c.beta_star)
        w = sol["w"][i]
        cos = w @ c.beta_star / (np.linalg.norm(w, axis=-1) * s)
        cos0 = c.w0 @ c.beta_star / (np.linalg.norm(c.w0) * s)
        expected = np.tanh(s * t + np.arctanh(np.sign(c.a0) * cos0))
        np.testing.assert_allclose(np.sign(sol["a"][i]) * cos, expected, atol=1e-12)
        assert np.max(np.abs(sol["delta"][i])) <= 1e-14


def test_parallel_start_follows_master_mode():
    # w0 parallel to beta*: signed |beta| obeys dF/dt = -(F - s) sqrt(delta^2 + 4 eta_a eta_w F^2).
    rng = np.random.default_rng(2)
    cases, us = [], []
    for i in range(8):
        u = rng.standard_normal(3)
        u /= np.linalg.norm(u)
        s = rng.uniform(0.5, 2.0)
        eta_a, eta_w = np.exp(rng.uniform(-1.0, 1.0, 2))
        a0 = (-1) ** i * rng.uniform(0.01, 1.5)
        c0 = (-1) ** (i // 2) * rng.uniform(0.01, 2.5)  # i = 2, 3, 6, 7: anti-aligned starts
        cases.append(Case("parallel", float(a0), c0 * u, s * u, float(eta_a), float(eta_w)))
        us.append(u)
    t = np.linspace(0.0, 30.0, 40)
    sol = _closed(cases, t)
    F0 = np.array([c.a0 * (c.w0 @ u) for c, u in zip(cases, us)])
    s = np.array([np.linalg.norm(c.beta_star) for c in cases])
    A = np.array([2 * np.sqrt(c.eta_a * c.eta_w) for c in cases])
    B = np.array([abs(c.delta) for c in cases])
    F = jax.jit(lambda t, F0, s, A, B: mode(t, F0=F0, s=s, k=1.0, A=A, B=B))(
        t[None, :], F0[:, None], s[:, None], A[:, None], B[:, None])
    signed = np.einsum("itd,id->it", sol["beta"], np.stack(us))
    np.testing.assert_allclose(signed, F, rtol=0, atol=1e-12 * np.max(np.maximum(s, abs(F0))))
    assert np.any(F0 * s < 0) and np.any(B > 1.0)


def test_time_derivative_is_the_flow():
    # Central differences in t of the closed form equal the gradient-flow vector field.
    cases = _special_cases()[-1:] + draw_cases(jr.PRNGKey(4), 10)
    t, h = np.array([0.1, 0.7, 2.5, 9.0]), 2e-5
    sol = _closed(cases, np.concatenate([t, t + h, t - h]))
    a, w = (sol[f][:, : len(t)] for f in ("a", "w"))
    da = (sol["a"][:, len(t): 2 * len(t)] - sol["a"][:, 2 * len(t):]) / (2 * h)
    dw = (sol["w"][:, len(t): 2 * len(t)] - sol["w"][:, 2 * len(t):]) / (2 * h)
    for i, c in enumerate(cases):
        r = a[i][:, None] * w[i] - c.beta_star
        scale = 1 + np.max(np.abs(r))
        np.testing.assert_allclose(da[i], -c.eta_a * np.sum(w[i] * r, -1), atol=1e-7 * scale)
        np.testing.assert_allclose(dw[i], -c.eta_w * a[i][:, None] * r, atol=1e-7 * scale)


def test_ntk_matches_models():
    cases = _special_cases() + draw_cases(jr.PRNGKey(3), 6)
    sol = _closed(cases, TS)
    ntk = jax.jit(jax.vmap(lambda w, a, ew, ea: models.ntk((w[None, :], a.reshape(1, 1)),
                                                          lrs=jnp.stack([ew, ea]))))
    cq = jax.jit(jax.vmap(lambda w, a, ew, ea: models.conserved_quantities(
        (w[None, :], a.reshape(1, 1)), lrs=jnp.stack([ew, ea]))[0][0, 0]))
    for i, c in enumerate(cases):
        rates = (jnp.full(len(TS), c.eta_w), jnp.full(len(TS), c.eta_a))
        theta = ntk(jnp.asarray(sol["w"][i]), jnp.asarray(sol["a"][i]), *rates)
        np.testing.assert_allclose(sol["ntk"][i], theta, rtol=1e-14, atol=1e-14)
        delta = cq(jnp.asarray(sol["w"][i]), jnp.asarray(sol["a"][i]), *rates)
        np.testing.assert_allclose(sol["delta"][i], delta, rtol=1e-14, atol=1e-14)


def test_t0_exact_and_t_inf_fixed_points():
    bs, z = np.array([1.0, -2.0, 0.5]), np.zeros(3)
    flat_w0 = np.array([3 / 8, 1 / 2, 0.0])
    cases = [
        Case("generic", 0.3, np.array([-0.2, 0.1, 0.4]), bs, 0.7, 1.9),
        Case("up", 2.0, np.array([0.5, 0.3, 0.0]), z, 1.0, 1.0),  # beta* = 0, delta > 0
        Case("down", 0.5, np.array([2.0, 0.3, 0.0]), z, 1.0, 1.0),  # beta* = 0, delta < 0
        Case("flat", 5 / 8, flat_w0, z, 1.0, 1.0),  # Omega = 0
        Case("saddle", 0.0, np.array([0.0, 0.3, 0.0]), np.array([1.0, 0.0, 0.0]), 1.0, 1.0),
        Case("origin", 0.0, z, bs, 1.0, 1.0),
        Case("leave", 0.0, np.array([0.5, 0.0, 0.0]), bs, 1.0, 1.0),  # a0 = 0, w0.beta* > 0
    ]
    sol = _closed(cases, TS)
    a, w, beta = sol["a"], sol["w"], sol["beta"]
    for i, c in enumerate(cases):  # t = 0 exactly
        assert a[i, 0] == c.a0 and np.all(w[i, 0] == c.w0)
    # Generic: beta(inf) = beta* with eta_w a^2 = p; t = 1e4 already there.
    c = cases[0]
    p = (c.delta + np.sqrt(c.delta**2 + 4 * c.eta_a * c.eta_w * (bs @ bs))) / 2
    np.testing.assert_allclose(beta[0, -1], bs, atol=1e-15)
    np.testing.assert_allclose(c.eta_w * a[0, -1] ** 2, p, rtol=1e-14)
    np.testing.assert_allclose(beta[0, -2], beta[0, -1], atol=1e-14)
    assert sol["loss"][0, -1] <= 1e-30
    # beta* = 0: delta > 0 keeps a (w -> 0); delta < 0 kills a (|w|^2 -> -delta/eta_a).
    np.testing.assert_allclose(a[1, -1] ** 2, cases[1].delta, rtol=1e-14)
    assert np.all(w[1, -1] == 0)
    assert a[2, -1] == 0
    np.testing.assert_allclose(w[2, -1] @ w[2, -1], -cases[2].delta, rtol=1e-14)
    np.testing.assert_allclose(w[2, -2], w[2, -1], rtol=1e-14)
    # Omega = 0: E~ = a0, so a = a0 / sqrt(1 + 2 a0^2 t) -> 0 and w -> 0.
    np.testing.assert_allclose(a[3, :-1], (5 / 8) / np.sqrt(1 + 2 * (5 / 8) ** 2 * TS[:-1]),
                               rtol=1e-14)
    assert a[3, -1] == 0 and np.all(w[3, -1] == 0)
    # The saddle a0 = 0, w0 _|_ beta* and the origin never move.
    assert np.all(a[4] == 0) and np.all(w[4] == cases[4].w0)
    assert np.all(a[5] == 0) and np.all(w[5] == 0)
    # a0 = 0 with w0.beta* > 0 leaves the saddle with a > 0.
    assert np.all(a[6, 1:] > 0)
    np.testing.assert_allclose(beta[6, -1], bs, atol=1e-14)


def test_long_times_do_not_overflow():
    ts = np.array([1e2, 1e3, 1e4, 1e6, np.inf])
    cases = [Case("fast", 5.0, np.array([0.1, 0.0, 0.0]), np.array([30.0, 0.0, 0.0]), 2.0, 0.5),
             Case("crossing", 0.01, np.array([8.0, 1.0, 0.0]), np.array([-3.0, 4.0, 0.0]), 2.0,
                  0.5),
             Case("tiny", 1e-6, np.array([1e-6, 0.0, 0.0]), np.array([1.0, 1.0, 1.0]), 2.0, 0.5)]
    sol = _closed(cases, ts)
    for f, x in sol.items():
        assert np.all(np.isfinite(x)), f
    np.testing.assert_allclose(sol["beta"][:, :-1], np.broadcast_to(
        sol["beta"][:, -1:], (3, 4, 3)), atol=1e-12)


def test_shapes_and_jit_vmap_match_plain_calls():
    cases = draw_cases(jr.PRNGKey(11), 10) + _special_cases()
    t = np.array([0.0, 0.5, 2.0, 7.0, 40.0, np.inf])
    batched = _closed(cases, t)  # jit(vmap) over the parameters and the time rows
    padded = np.concatenate([t, np.full(len(FRACTIONS) - len(t), t[-1])])
    for i, c in enumerate(cases):
        sol = _plain(c, padded)
        for f in ("a", "w", "beta", "loss", "ntk", "delta"):
            np.testing.assert_allclose(batched[f][i], getattr(sol, f)[: len(t)], rtol=1e-12,
                                       atol=1e-14, err_msg=f"{c} {f}")
    c = cases[0]
    shapes = jax.eval_shape(lambda s: _plain(c, s), jnp.zeros((2, 3)))
    assert shapes.a.shape == (2, 3) and shapes.w.shape == (2, 3, 3)
    assert shapes.ntk.shape == (2, 3, 3, 3) and shapes.loss.shape == (2, 3)
    shapes = jax.eval_shape(lambda s: _plain(c, s), jnp.zeros(()))
    assert shapes.a.shape == () and shapes.w.shape == (3,) and shapes.ntk.shape == (3, 3)


def test_float32_smoke():
    f32 = jnp.float32
    c = Case("x", 0.1, np.array([-1.5, 0.2, 0.3]), np.array([1.0, 0.5, 0.0]), 0.8, 1.3)
    sol = single_neuron(TS.astype(f32), f32(c.a0), jnp.asarray(c.w0, f32),
                        jnp.asarray(c.beta_star, f32), eta_a=f32(c.eta_a), eta_w=f32(c.eta_w))
    ref = _closed([c], TS)
    for f in ("a", "w", "beta", "loss", "ntk", "delta"):
        x = getattr(sol, f)
        assert x.dtype == f32 and bool(jnp.all(jnp.isfinite(x)))
    np.testing.assert_allclose(sol.beta, ref["beta"][0], atol=2e-5)


def test_gradients_are_finite_and_match_finite_differences():
    t = jnp.asarray(np.concatenate([[0.5, 3.0], np.full(len(FRACTIONS) - 2, 1e3)]))

    def loss_at(a0, w0, bs, ea, ew):
        return jnp.sum(single_neuron(t, a0, w0, bs, eta_a=ea, eta_w=ew).loss)

    grad = jax.jit(jax.grad(loss_at, argnums=(0, 1, 2, 3, 4)))
    args = (0.2, jnp.array([-0.4, 0.1, 0.3]), jnp.array([1.0, -0.5, 0.2]), 0.9, 1.4)
    grads = grad(*args)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    h = 1e-6
    for k, shift in [(0, h), (3, h), (4, h)]:
        up = list(args)
        down = list(args)
        up[k], down[k] = args[k] + shift, args[k] - shift
        fd = (loss_at(*up) - loss_at(*down)) / (2 * shift)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-6)
    for a0, w0, bs in [(0.0, [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]),  # a0 = 0
                       (1.0, [0.5, 0.2, 0.0], [0.0, 0.0, 0.0]),  # beta* = 0
                       (0.7, [0.0, 0.0, 0.0], [1.0, 0.0, 0.0])]:  # w0 = 0
        g = grad(a0, jnp.array(w0), jnp.array(bs), 1.0, 1.0)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in g)


# ----------------------------------------------------------------------------------------------
# Implicit bias on rank-deficient tasks.


def _tasks(key):
    q = np.linalg.qr(np.asarray(jr.normal(key, (3, 3))))[0]
    return {
        "projection2": q[:, :2] @ q[:, :2].T,
        "rank1": 1.7 * np.outer(q[:, 0], q[:, 0]),
        "general2": q[:, :2] @ np.diag([2.0, 0.5]) @ q[:, :2].T,
    }


def _ib_cases(key, sxx):
    """(task name, Case) pairs; `beta_star` is the teacher (Syx = beta_star Sxx)."""
    rng = np.random.default_rng(int(jr.randint(key, (), 0, 2**31 - 1)))
    out = []
    for name in ("projection2", "rank1", "general2"):
        for kind in ("big_w", "small", "big_a", "lazy"):
            bt = rng.standard_normal(3)
            w0 = rng.standard_normal(3)
            a0 = float(rng.choice([-1, 1]) * rng.uniform(0.2, 1.0))
            if kind == "big_w":
                w0 = 1.5 * w0
            elif kind == "big_a":
                a0 *= 2.5
            elif kind == "lazy":
                a0, w0 = 3.0 * np.sign(a0), 0.1 * w0
            out.append((name, Case(f"{name}-{kind}", a0, w0, bt,
                                   float(np.exp(rng.uniform(-0.7, 0.7))),
                                   float(np.exp(rng.uniform(-0.7, 0.7))))))
    # General Sxx, w0 against the teacher: a crosses zero, a case the closed form cannot sign.
    null, small, big = np.linalg.eigh(sxx["general2"])[1].T
    bt = big + 0.2 * small
    out.append(("general2", Case("general2-cross", 0.3, -2.5 * bt + 0.5 * null, bt, 1.0, 1.0)))
    return out


def _grad_phi(beta, delta):
    """The reference's grad Phi_delta(beta) = |w| beta/|beta|, |w|^2 = (Z - delta)/2."""
    r = np.linalg.norm(beta)
    Z = np.sqrt(delta**2 + 4 * r * r)
    return np.sqrt((Z - delta) / 2) * beta / r


def _newton_argmin(delta, beta_part, null, g):
    """argmin over beta = beta_part + null @ z of Phi_delta(beta) - g.beta: Newton on the
    stationarity condition null^T (grad Phi(beta) - g) = 0 (strictly convex), Jacobian by
    central differences."""
    def F(z):
        return null.T @ (_grad_phi(beta_part + null @ z, delta) - g)

    z = np.zeros(null.shape[1])
    for _ in range(60):
        h = 1e-6 * (1 + np.linalg.norm(z))
        jac = np.stack([(F(z + h * e) - F(z - h * e)) / (2 * h) for e in np.eye(len(z))], -1)
        step = np.linalg.solve(jac, F(z))
        z = z - step
        if np.max(np.abs(step)) < 1e-15 * (1 + np.max(np.abs(z))):
            break
    return beta_part + null @ z


def test_potential_matches_reference_forms():
    rng = np.random.default_rng(8)
    beta, delta = rng.standard_normal((10, 3)), rng.normal(size=10) * 3
    phi = single_neuron_potential(beta, delta)
    Z = np.sqrt(delta**2 + 4 * np.sum(beta**2, -1))
    np.testing.assert_allclose(phi, (Z - 2 * delta) * np.sqrt((Z + delta) / 2) / 3, rtol=1e-13)
    grads = jax.jit(jax.vmap(jax.grad(single_neuron_potential)))(jnp.asarray(beta),
                                                                 jnp.asarray(delta))
    expected = np.stack([_grad_phi(b, d) for b, d in zip(beta, delta)])
    np.testing.assert_allclose(grads, expected, rtol=1e-12)
    np.testing.assert_allclose(single_neuron_potential(beta[0], 0.0),
                               2 / 3 * np.linalg.norm(beta[0]) ** 1.5, rtol=1e-14)
    # No cancellation for delta << 0 (Phi ~ sqrt(-delta) |beta| near 0).
    np.testing.assert_allclose(single_neuron_potential(np.array([1e-9, 0.0, 0.0]), -4.0),
                               2e-9, rtol=1e-12)


@pytest.fixture(scope="module")
def implicit_bias_runs():
    key = jr.PRNGKey(5)
    sxx = _tasks(key)
    pairs = _ib_cases(jr.fold_in(key, 1), sxx)
    cases = [c for _, c in pairs]
    Sxx = np.stack([sxx[name] for name, _ in pairs])
    ts = 1500.0 * FRACTIONS[None, :] * np.ones((len(cases), 1))
    sim = simulate_cases(cases, ts, Sxx=Sxx)
    return pairs, sxx, sim


def test_implicit_bias_matches_long_gradient_flow(implicit_bias_runs):
    pairs, sxx, sim = implicit_bias_runs
    assert not np.any(sim["diverged"])
    for i, (name, c) in enumerate(pairs):
        S = sxx[name]
        task = Task(jnp.asarray(S), jnp.asarray(S @ c.beta_star)[None, :],
                    jnp.asarray(c.beta_star @ S @ c.beta_star).reshape(1, 1))
        a_end = sim["a"][i, -1]
        # For a general Sxx the sign of a(inf) is not a closed-form quantity: pass it.
        sign = int(np.sign(a_end)) if name == "general2" else None
        beta = single_neuron_implicit_bias(c.a0, c.w0, task, eta_a=c.eta_a, eta_w=c.eta_w,
                                           a_sign=sign)
        converged = np.max(np.abs(sim["beta"][i, -1] - sim["beta"][i, -2]))
        assert converged <= 1e-11, c
        np.testing.assert_allclose(beta, sim["beta"][i, -1], atol=1e-9, err_msg=str(c))
        # The limit interpolates and w moved only inside range(Sxx).
        np.testing.assert_allclose(S @ beta, S @ c.beta_star, atol=1e-12)
    crossed = {c.label: np.sign(sim["a"][i, -1]) != np.sign(c.a0)
               for i, (_, c) in enumerate(pairs)}
    assert crossed["general2-cross"] and not all(crossed.values())
    assert any(v for k, v in crossed.items() if not k.startswith("general2"))
    # Without `a_sign`, a general Sxx gets the reference's no-crossing hypothesis, which is then
    # wrong (the documented limitation); Sxx proportional to a projection never needs it.
    i = [c.label for _, c in pairs].index("general2-cross")
    c, S = pairs[i][1], sxx["general2"]
    task = Task(jnp.asarray(S), jnp.asarray(S @ c.beta_star)[None, :], jnp.ones((1, 1)))
    assumed = single_neuron_implicit_bias(c.a0, c.w0, task)
    assert np.max(np.abs(assumed - sim["beta"][i, -1])) > 1e-2


def test_implicit_bias_is_the_mirror_potential_minimiser(implicit_bias_runs):
    # Reference Sec. 4: beta_inf = argmin_{S beta = S beta*} Phi_delta'(beta) - sigma
    # grad Phi_delta'(beta0).beta, delta' = delta/sqrt(eta_a eta_w), sigma = sgn(a(inf) a0).
    pairs, sxx, sim = implicit_bias_runs
    for i, (name, c) in enumerate(pairs):
        S = sxx[name]
        evals, evecs = np.linalg.eigh(S)
        null = jnp.asarray(evecs[:, evals < 1e-9])
        beta_part = jnp.asarray(np.linalg.pinv(S) @ S @ c.beta_star)
        delta = c.delta / np.sqrt(c.eta_a * c.eta_w)
        beta0 = jnp.asarray(c.a0 * c.w0)
        sigma = float(np.sign(sim["a"][i, -1] * c.a0))
        g = sigma * _grad_phi(np.asarray(beta0), delta)
        beta = _newton_argmin(delta, np.asarray(beta_part), np.asarray(null), g)
        np.testing.assert_allclose(beta, sim["beta"][i, -1], atol=1e-8, err_msg=str(c))


def test_implicit_bias_delta_limits():
    key = jr.PRNGKey(9)
    sxx = _tasks(key)
    bt, v = np.array([0.7, -1.2, 0.4]), np.array([0.5, 1.0, -0.8])
    for name in ("projection2", "general2"):
        S = sxx[name]
        task = Task(jnp.asarray(S), jnp.asarray(S @ bt)[None, :], jnp.ones((1, 1)))
        beta0 = 0.3 * v
        proj = np.linalg.pinv(S) @ S @ bt + (np.eye(3) - np.linalg.pinv(S) @ S) @ beta0
        errs = []
        for scale in (10.0, 100.0, 1000.0):  # delta ~ scale^2 -> +inf, beta0 fixed
            beta = single_neuron_implicit_bias(scale, beta0 / scale, task)
            errs.append(float(jnp.max(jnp.abs(beta - proj))))
        assert errs[2] < 1e-5 and errs[0] > errs[1] > errs[2]
    # delta -> -inf on a rank-1 task: the rescaled beta0 that interpolates.
    S = sxx["rank1"]
    task = Task(jnp.asarray(S), jnp.asarray(S @ bt)[None, :], jnp.ones((1, 1)))
    beta0 = 0.3 * v
    u = np.linalg.eigh(S)[1][:, -1]
    target = beta0 * (u @ bt) / (u @ beta0)
    beta = single_neuron_implicit_bias(1e-3, beta0 / 1e-3, task)
    np.testing.assert_allclose(beta, target, atol=1e-5)


def test_verify_check_passes():
    result = check(jr.PRNGKey(0), draws=20)
    assert result.passed, result
    assert result.cases == 30  # 20 draws + 10 weight-decay cases
