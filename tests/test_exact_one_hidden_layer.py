"""Width-d one-dimensional network (Xu & Ziyin): closed form vs parameter-space gradient flow."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import models
from linsolve.exact._one_hidden_layer import (
    MECHANISMS,
    one_hidden_layer,
    phase_ratio,
    regime,
    width_exponent,
)
from linsolve.verify._one_hidden_layer import FIELDS, Case, check, compare, draw_cases

TOL = 1e-8


def _hand_built() -> list[Case]:
    """The hard cases named in the reference, built explicitly."""
    rng = np.random.default_rng(7)
    g = rng.standard_normal
    return [
        # F0 s < 0: F crosses zero (u passes orthogonal to w).
        Case("crossing", np.array([0.8, -0.3, 0.2]), np.array([-0.5, 0.1, 0.4]), 1.5, 1.2, 1.1,
             0.7, 1.6),
        # |F0| > |s| with the same sign: disalignment.
        Case("large_init", np.array([2.0, 0.4]), np.array([1.5, -0.6]), 0.3, 0.8, 1.0, 1.3, 0.9),
        # s < 0 from a small positive F0.
        Case("negative_s", 0.3 * g(6), 0.2 * g(6), -2.0, 1.0, 0.7, 2.0, 0.5),
        # B = 0, d = 1 balanced, F0 s > 0 (logistic) and F0 s < 0 (decays into the saddle).
        Case("B0", np.array([0.2]), np.array([0.2]), 1.0, 1.0, 1.0, 1.5, 1.5),
        Case("B0", np.array([0.2]), np.array([-0.2]), 1.0, 1.0, 1.0, 1.5, 1.5),
        # B = 0 at d = 4: u0 parallel to w0 with c1 = 0.
        Case("B0", np.array([0.1, -0.2, 0.05, 0.3]), -np.array([0.1, -0.2, 0.05, 0.3]), -0.8,
             2.0, 1.3, 0.4, 0.4),
        # Rank one, unbalanced, crossing.
        Case("d1", np.array([1.2]), np.array([-0.1]), 0.9, 1.0, 1.0, 0.5, 2.5),
        # Tiny init: a long plateau.
        Case("tiny_init", 1e-4 * g(8), 1e-4 * g(8), 1.0, 1.0, 1.0, 1.0, 1.0),
        # Zero readout: F0 = 0, D = 0 (u grows parallel to w).
        Case("d1", np.zeros(3), np.array([0.3, 0.1, -0.2]), -1.2, 1.0, 0.9, 1.1, 0.8),
    ]


@pytest.fixture(scope="module")
def comparison():
    cases = _hand_built() + draw_cases(jr.PRNGKey(3), 24)
    return cases, compare(cases)


def test_matches_gradient_flow(comparison):
    cases, results = comparison
    assert len(cases) >= 20
    for c, r in zip(cases, results):
        assert not r["diverged"], c
        for field in FIELDS:
            assert r["errors"][field] <= TOL, (c.label, field, r["errors"][field])
        assert r["drift"] <= 1e-12, (c.label, r["drift"])
        assert r["limits"] <= TOL, (c.label, r["limits"])
    # The hard cases are all present.
    F0, B, ratio = (np.array([r[k] for r in results]) for k in ("F0", "B", "ntk_ratio"))
    s = np.array([c.s for c in cases])
    assert np.any((F0 * s < 0) & (B > 0))
    assert np.any(np.abs(F0) > np.abs(s))
    assert np.any(s < 0)
    assert np.any((B == 0) & (F0 * s < 0)) and np.any((B == 0) & (F0 * s > 0))
    assert any(len(c.u0) == 1 for c in cases) and any(len(c.u0) >= 8 for c in cases)
    # Rich (tiny init: the NTK grows 1e6-fold after a long plateau) and lazy (it barely moves).
    assert np.any(ratio > 1e6) and np.any(np.abs(ratio - 1) < 1e-2)


# One grid of times (and d = 4 or 1) for the direct tests, so that they share compilations.
TS = jnp.asarray(np.concatenate([np.linspace(0.0, 50.0, 57), [1e3, 1e8, 1e300, 1e306, 1e307,
                                                               1e308, np.inf]]))
LATE = 57  # TS[LATE] = 1e3


def test_conserved_quantities_and_long_times(getkey):
    for i in range(4):
        u0, w0 = 0.5 * jr.normal(getkey(), (4,)), 1e-3 * jr.normal(getkey(), (4,))
        hyper = dict(s=(-1.0) ** i * 2.0, m2=0.8, kappa=1.5, eta_u=0.3, eta_w=3.0)
        sol = jax.tree_util.tree_map(np.asarray, one_hidden_layer(TS, u0, w0, **hyper))
        u0, w0 = np.asarray(u0), np.asarray(w0)
        for leaf in jax.tree_util.tree_leaves(sol):
            assert np.all(np.isfinite(leaf))
        eu, ew = hyper["eta_u"], hyper["eta_w"]
        C = ew * sol.u[:, :, None] * sol.u[:, None, :] - eu * sol.w[:, :, None] * sol.w[:, None, :]
        C0 = ew * np.outer(u0, u0) - eu * np.outer(w0, w0)
        scale = np.max(ew * np.sum(sol.u**2, -1) + eu * np.sum(sol.w**2, -1))
        assert np.max(np.abs(C - C0)) / scale < 1e-14
        nuc = np.sum(np.abs(np.linalg.eigvalsh(C0)))
        np.testing.assert_allclose(sol.B, nuc, rtol=1e-12)
        np.testing.assert_allclose(sol.c1, np.trace(C0), rtol=1e-12, atol=1e-15)
        D0 = float(u0 @ u0 * (w0 @ w0) - (u0 @ w0) ** 2)
        np.testing.assert_allclose(sol.D, D0, rtol=1e-10)
        np.testing.assert_allclose(sol.F[LATE:], hyper["s"], rtol=1e-14)
    # B = 0 driven into the saddle: u, w -> 0 without overflow (phi -> -inf), for every t.
    sol = jax.tree_util.tree_map(np.asarray, one_hidden_layer(TS, [0.3], [0.3], s=-1.0))
    assert np.all(np.isfinite(sol.u)) and np.max(np.abs(sol.u[LATE:])) < 1e-100
    assert sol.B[0] == 0.0 and sol.phi[-1] == -np.inf
    assert np.all(np.diff(sol.F) <= 0) and sol.F[-1] == 0.0


def test_t_zero_and_infinity(getkey):
    u0, w0 = jr.normal(getkey(), (4,)), jr.normal(getkey(), (4,))
    hyper = dict(s=-0.7, m2=1.3, kappa=0.8, eta_u=2.0, eta_w=0.5)
    sol = one_hidden_layer(TS, u0, w0, **hyper)
    assert bool(jnp.all(sol.u[0] == u0)) and bool(jnp.all(sol.w[0] == w0))
    np.testing.assert_allclose(sol.F[0], 0.8 * (u0 @ w0), rtol=1e-15)
    assert float(sol.phi[0]) == 0.0
    assert float(sol.F[-1]) == -0.7 and float(sol.loss[-1]) == 0.0
    np.testing.assert_allclose(sol.u[-1], sol.u[LATE], rtol=1e-12)
    # The limit lies on the boost orbit: textbook cosh/sinh with phi_inf.
    A = 2 * np.sqrt(2.0 * 0.5) / 0.8
    B = float(sol.B[-1])
    phi = 0.5 * (np.arcsinh(A * -0.7 / B) - np.arcsinh(A * float(sol.F[0]) / B))
    np.testing.assert_allclose(float(sol.phi[-1]), phi, rtol=1e-12)
    np.testing.assert_allclose(sol.u[-1], np.cosh(phi) * u0 + 2 * np.sinh(phi) * w0, rtol=1e-12)
    np.testing.assert_allclose(sol.w[-1], np.sinh(phi) * u0 / 2 + np.cosh(phi) * w0, rtol=1e-12)


def test_ntk_field_matches_models_and_autodiff(getkey):
    u0, w0 = jr.normal(getkey(), (4,)), 0.3 * jr.normal(getkey(), (4,))
    hyper = dict(s=1.7, m2=0.6, kappa=1.3, eta_u=0.4, eta_w=2.2)
    sol = one_hidden_layer(TS, u0, w0, **hyper)
    for i in (0, 3, 10, -1):
        params = (sol.w[i][:, None], sol.u[i][None, :])
        K = models.ntk(params, output_scale=1.3, lrs=(2.2, 0.4))
        np.testing.assert_allclose(K[0, 0], sol.ntk[i], rtol=1e-13)
        gu, gw = jax.grad(lambda u, w: 1.3 * u @ w, argnums=(0, 1))(sol.u[i], sol.w[i])
        np.testing.assert_allclose(0.4 * gu @ gu + 2.2 * gw @ gw, sol.ntk[i], rtol=1e-13)
        cos = sol.u[i] @ sol.w[i] / jnp.linalg.norm(sol.u[i]) / jnp.linalg.norm(sol.w[i])
        np.testing.assert_allclose(cos, sol.cos[i], rtol=1e-12)


def test_regime_hand_built():
    dense = slice(0, 57)  # t in [0, 50] ...
    e = np.eye(4)

    def classify(u0, w0, **hyper):
        info = regime(u0, w0, **hyper)
        sol = one_hidden_layer(TS, u0, w0, **hyper)
        np.testing.assert_allclose(info.kernel_ratio, sol.ntk[-1] / sol.ntk[0], rtol=1e-12)
        np.testing.assert_allclose(info.cos_inf, sol.cos[-1], rtol=1e-12, atol=1e-300)
        return info, sol

    # Kernel: strongly unbalanced init, small target (r, r0 << 1).
    info, sol = classify(np.array([3.0, -2.0, 1.0, 2.5]), np.array([0.01, 0.02, -0.01, 0.0]),
                         s=0.05)
    assert info.name == "kernel" and info.r < 0.1 and info.r0 < 0.1
    assert float(jnp.max(jnp.abs(sol.ntk[dense] / sol.ntk[0] - 1))) <= info.kernel_change <= 0.1
    # Alignment: small orthogonal init, |F0| < |s|; |cos| and the NTK rise.
    info, sol = classify(0.01 * e[0], 0.01 * e[1], s=1.0)
    assert info.name == "alignment" and info.r > 10
    assert abs(float(sol.cos[-1])) > abs(float(sol.cos[0])) + 0.9
    assert float(sol.ntk[-1]) > 10 * float(sol.ntk[0])
    # ... also when the small F0 has the "wrong" sign (F crosses 0 on the way).
    info = regime(0.01 * e[0] + 0.001 * e[1], 0.01 * e[1] - 0.002 * e[0], s=1.0)
    assert info.name == "alignment" and bool(info.crosses_zero)
    # Disalignment: nearly aligned large init, |F0| >> |s|; |cos| and the NTK fall.
    u0, w0 = 3 * e[0] + 0.5 * e[1], 3 * e[0] - 0.5 * e[1]
    info, sol = classify(u0, w0, s=0.5)
    assert info.name == "disalignment" and not bool(info.crosses_zero)
    assert abs(float(sol.cos[-1])) < abs(float(sol.cos[0])) - 0.5
    assert float(sol.ntk[-1]) < 0.5 * float(sol.ntk[0])
    info, sol = classify(u0, w0, s=-0.5)
    assert info.name == "disalignment" and bool(info.crosses_zero)
    # Rescaling: d = 1; u0 parallel to w0; the B = 0 saddle; u0 = 0. The angle stays at 0 or pi.
    for u0, w0, s in (([0.1], [0.2], 2.0), (0.1 * e[2], 0.05 * e[2], -3.0), ([0.3], [0.3], -1.0),
                      (0 * e[0], 0.4 * e[0] + 0.1 * e[3], 1.0)):
        info, sol = classify(np.array(u0), np.array(w0), s=s)
        assert info.name == "rescaling", (u0, w0, s)
        assert float(jnp.min(jnp.abs(sol.cos[1:LATE]))) > 1 - 1e-12
    # Precedence: a lazy d = 1 net is "kernel", not "rescaling".
    assert regime(np.array([10.0]), np.array([0.01]), s=0.1).name == "kernel"
    # Zero init: a fixed point; classified "kernel".
    assert regime(np.zeros(4), np.zeros(4), s=1.0).name == "kernel"
    # Under jit the name is not available; the code is.
    info = jax.jit(lambda u, w: regime(u, w, s=0.5))(jnp.asarray(u0), jnp.asarray(w0))
    assert info.name is None and MECHANISMS[int(info.code)] == "rescaling"


def test_phase_ratio(getkey):
    hyper = dict(s=-1.3, m2=2.0, kappa=0.6, eta_u=0.5, eta_w=1.7)
    for _ in range(5):
        u0, w0 = np.asarray(jr.normal(getkey(), (4,))), np.asarray(0.4 * jr.normal(getkey(), (4,)))
        pr = phase_ratio(u0, w0, **hyper)
        C = 1.7 * np.outer(u0, u0) - 0.5 * np.outer(w0, w0)
        B = np.sum(np.abs(np.linalg.eigvalsh(C)))
        A = 2 * np.sqrt(0.5 * 1.7) / 0.6
        np.testing.assert_allclose(pr.r, A * 1.3 / B, rtol=1e-12)
        np.testing.assert_allclose(pr.r0, A * abs(0.6 * float(u0 @ w0)) / B, rtol=1e-12)
        sol = one_hidden_layer(TS, u0, w0, **hyper)
        np.testing.assert_allclose(
            sol.ntk[-1] / sol.ntk[0], np.sqrt(1 + pr.r**2) / np.sqrt(1 + pr.r0**2), rtol=1e-12
        )
    assert float(phase_ratio(np.array([1.0]), np.array([1.0]), s=1.0).r) == np.inf


def test_width_exponent_presets_and_scaling():
    expected = {"ntk": -0.5, "mean_field": 0.0, "standard": -1.0, "mup": 0.0, "small_init": 1.0}
    widths = 2 ** np.arange(8, 14)
    for name, rho in expected.items():
        assert width_exponent(name) == rho
        a_w, a_u, b_w, b_u, c = models.PARAMETRIZATIONS[name]
        assert width_exponent(a_u, a_w, b_u, b_w, c) == rho
        logr = []
        for width in widths:
            p = models.parametrization(name, int(width))
            rng = np.random.default_rng(int(width))
            # Zero neurons change neither B nor F0: pad to the largest width (one compilation).
            pad = widths[-1] - width
            r = [phase_ratio(np.pad(p.init_scales[1] * rng.standard_normal(width), (0, pad)),
                             np.pad(p.init_scales[0] * rng.standard_normal(width), (0, pad)),
                             s=1.0, kappa=p.output_scale, eta_u=p.lrs[1], eta_w=p.lrs[0]).r
                 for _ in range(4)]  # 4 seeds
            logr.append(float(np.mean(np.log(r))))
        slope = np.polyfit(np.log(widths), logr, 1)[0]
        assert abs(slope - rho) < 0.1, (name, slope, rho)
    rho = width_exponent(jnp.array([0.0, 2.0]), jnp.array([0.0, 2.0]), 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(rho, [-1.0, 1.0])
    with pytest.raises(ValueError, match="preset"):
        width_exponent("nope")


def test_vmap_jit_and_shapes(getkey):
    d = 4
    u0s, w0s = jr.normal(getkey(), (4, d)), jr.normal(getkey(), (4, d))
    kappas = jnp.array([0.5, 1.0, 1.5, 2.0])
    ss = jnp.array([-1.0, 0.5, 2.0, -0.1])
    ts = jnp.array([[0.0, 0.3, 1.0], [2.0, 10.0, jnp.inf]])

    def f(u0, w0, kappa, s):
        return one_hidden_layer(ts, u0, w0, s=s, kappa=kappa, eta_u=0.7, eta_w=1.4, m2=1.1)

    batched = jax.jit(jax.vmap(f))(u0s, w0s, kappas, ss)
    assert batched.u.shape == (4, 2, 3, d) and batched.F.shape == (4, 2, 3)
    for i in range(4):
        plain = f(u0s[i], w0s[i], float(kappas[i]), float(ss[i]))
        row = jax.tree_util.tree_map(lambda x, i=i: x[i], batched)
        for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(row)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * float(jnp.max(jnp.abs(b))))
    # vmap over times equals a call on the array of times.
    one = jax.vmap(lambda t: one_hidden_layer(t, u0s[0], w0s[0], s=1.0))(TS)
    arr = one_hidden_layer(TS, u0s[0], w0s[0], s=1.0)
    for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(arr)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-300)


def test_float32_smoke(getkey):
    u0 = jr.normal(getkey(), (4,), jnp.float32)
    w0 = 0.1 * jr.normal(getkey(), (4,), jnp.float32)
    # TS in float32 (max 3e38): 1e300 and beyond become inf, where float64 is at the limit too.
    sol32 = one_hidden_layer(TS.astype(jnp.float32), u0, w0, s=-1.0, kappa=1.2, eta_u=0.5)
    sol64 = one_hidden_layer(TS, u0.astype(jnp.float64), w0.astype(jnp.float64), s=-1.0,
                             kappa=1.2, eta_u=0.5)
    for a, b in zip(jax.tree_util.tree_leaves(sol32), jax.tree_util.tree_leaves(sol64)):
        assert a.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert regime(u0, w0, s=-1.0).r.dtype == jnp.float32


def test_grad_finite_and_correct(getkey):
    u0, w0 = jr.normal(getkey(), (4,)), 0.2 * jr.normal(getkey(), (4,))

    def objective(u0, w0, kappa, s, eta_w, ts):
        sol = one_hidden_layer(ts, u0, w0, s=s, kappa=kappa, eta_w=eta_w)
        return jnp.sum(sol.loss) + jnp.sum(sol.u[:, 0] ** 2) + jnp.sum(sol.cos) + jnp.sum(sol.F)

    grad = jax.jit(jax.grad(objective, argnums=(0, 1, 2, 3)))
    grads = grad(u0, w0, 1.1, 0.8, 1.5, TS)
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g)))
    eps = 1e-6
    fd = (objective(u0, w0, 1.1 + eps, 0.8, 1.5, TS)
          - objective(u0, w0, 1.1 - eps, 0.8, 1.5, TS)) / (2 * eps)
    np.testing.assert_allclose(grads[2], fd, rtol=1e-6)
    e1 = jnp.zeros(4).at[1].set(eps)
    fd = (objective(u0, w0 + e1, 1.1, 0.8, 1.5, TS)
          - objective(u0, w0 - e1, 1.1, 0.8, 1.5, TS)) / (2 * eps)
    np.testing.assert_allclose(grads[1][1], fd, rtol=1e-6)
    # B = 0 (u0 = w0 at equal rates). F0 s > 0: finite at every time. F0 s < 0 (the saddle):
    # the sensitivity along the unstable direction grows like e^{k A |s| t / 2}, so only finite
    # times are asked for.
    grads = grad(u0, u0, 1.1, 0.8, 1.0, TS)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    grads = grad(u0, u0, 1.1, -0.8, 1.0, jnp.linspace(0.0, 5.0, TS.shape[0]))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_bad_input():
    u0, w0 = np.ones(3), np.ones(3)
    with pytest.raises(ValueError, match="u0"):
        one_hidden_layer(1.0, np.ones((3, 1)), w0, s=1.0)
    with pytest.raises(ValueError, match="same shape"):
        one_hidden_layer(1.0, u0, np.ones(4), s=1.0)
    with pytest.raises(ValueError, match="kappa"):
        one_hidden_layer(1.0, u0, w0, s=1.0, kappa=-1.0)
    with pytest.raises(ValueError, match="eta_w"):
        one_hidden_layer(1.0, u0, w0, s=1.0, eta_w=0.0)
    with pytest.raises(ValueError, match="`t`"):
        one_hidden_layer(-1.0, u0, w0, s=1.0)
    with pytest.raises(ValueError, match="w0"):
        one_hidden_layer(1.0, u0, np.array([1.0, np.nan, 0.0]), s=1.0)
    with pytest.raises(ValueError, match="`s`"):
        regime(u0, w0, s=np.ones(2))
    with pytest.raises(ValueError, match="missing"):
        width_exponent(0.0, 0.0)


def test_verify_check():
    result = check(jr.PRNGKey(0), draws=8)
    assert result.passed, result
