"""lambda-balanced networks with anisotropic (aligned) or isotropic inputs and weight decay."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import init, tasks
from linsolve.exact import mode
from linsolve.exact._lambda_balanced import lambda_balanced
from linsolve.tasks import Task
from linsolve.verify._core import rel_error
from linsolve.verify._lambda_balanced import (
    TS,
    anisotropic_cases,
    observables,
    realise_anisotropic,
    simulate_cases,
)

TS_EXT = jnp.asarray(np.concatenate([TS[::4], [1e3, np.inf]]))
FIELDS = ("product", "input_gram", "output_gram", "ntk", "loss")


def _aligned_case(key, var, lam, a0, sizes=(3, 3, 3), svals=(2.0, 1.2, 0.6)):
    d_in, h, d_out = sizes
    kU, kV, kR = jr.split(key, 3)
    U = jnp.linalg.qr(jr.normal(kU, (d_out, d_out)))[0]
    V = jnp.linalg.qr(jr.normal(kV, (d_in, d_in)))[0]
    R = jnp.linalg.qr(jr.normal(kR, (h, h)))[0]
    m = len(svals)
    Syx = U[:, :m] @ jnp.diag(jnp.asarray(svals)) @ V[:, :m].T
    Sxx = V @ jnp.diag(jnp.asarray(var)) @ V.T
    a0 = jnp.asarray(a0)
    w2 = jnp.sqrt((lam + jnp.sqrt(lam**2 + 4 * a0**2)) / 2)
    w1 = jnp.where(w2 > 0, a0 / jnp.where(w2 > 0, w2, 1.0), jnp.sqrt(max(-lam, 0.0)))
    W1 = R[:, :m] @ jnp.diag(w1) @ V[:, :m].T
    W2 = U[:, :m] @ jnp.diag(w2) @ R[:, :m].T
    task = Task(Sxx, Syx, Syx @ jnp.linalg.solve(Sxx, Syx.T) + 0.1 * jnp.eye(d_out))
    return W1, W2, task, U[:, :m], V[:, :m]


@pytest.mark.parametrize("lam,gamma", [(0.0, 0.0), (0.0, 0.3), (0.8, 0.0), (-1.3, 0.0)])
def test_aligned_modes_are_master_modes(getkey, lam, gamma):
    var, a0, svals = [0.4, 2.5, 1.1], [0.3, -0.2, 1e-3], [2.0, 1.2, 0.6]
    if lam == 0:
        a0 = np.abs(a0)
    W1, W2, task, U, V = _aligned_case(getkey(), var, lam, a0, svals=svals)
    sol = lambda_balanced(TS_EXT, W1, W2, task, tau=0.8, weight_decay=gamma)
    M = jnp.einsum("oa,top,pb->tab", U, sol.product, V)
    a = jnp.diagonal(M, axis1=1, axis2=2)
    assert float(jnp.max(jnp.abs(M - jax.vmap(jnp.diag)(a)))) < 1e-12  # decoupled
    ref = mode(TS_EXT[:, None], F0=jnp.asarray(a0), s=jnp.asarray(svals), k=1 / 0.8, A=2.0,
               B=abs(lam), variance=jnp.asarray(var), weight_decay=gamma)
    assert rel_error(a, ref) < 1e-12
    np.testing.assert_allclose(sol.product[0], W2 @ W1, rtol=0, atol=0)
    np.testing.assert_allclose(sol.input_gram[0], W1.T @ W1, rtol=0, atol=0)
    target = (jnp.asarray(svals) - gamma) / jnp.asarray(var)
    np.testing.assert_allclose(a[-1], target, rtol=1e-12)
    np.testing.assert_allclose(sol.loss, task.loss(sol.product), rtol=1e-12)


def test_aligned_isotropic_agrees_with_whitened_riccati(getkey):
    """Sxx = c I, aligned init: the mode route equals the Riccati solution of Syx/c, tau/c, gamma/c
    (two independent closed forms)."""
    c, tau = 1.7, 1.2
    for lam, gamma in ((0.0, 0.0), (0.0, 0.25), (0.9, 0.0), (-0.6, 0.0)):
        a0 = [0.3, 0.2, 1e-2] if lam == 0 else [0.3, -0.2, 1e-2]
        W1, W2, task, _, _ = _aligned_case(getkey(), [c] * 3, lam, a0)
        ali = lambda_balanced(TS_EXT, W1, W2, task, tau=tau, weight_decay=gamma)
        white = Task(jnp.eye(3), task.Syx / c, task.Syy)
        ric = lambda_balanced(TS_EXT, W1, W2, white, tau=tau / c, weight_decay=gamma / c)
        for f in ("product", "input_gram", "output_gram"):
            assert rel_error(getattr(ali, f), getattr(ric, f)) < 1e-9, (lam, gamma, f)
        np.testing.assert_allclose(ali.ntk, ric.ntk / c, rtol=1e-9, atol=1e-12)


def test_whitened_decay_is_riccati_with_shifted_F(getkey):
    """lam = 0, generic init: weight decay keeps lam = 0, F -> F - gamma I (limits and scaling)."""
    task = tasks.teacher(getkey(), 3, 4, jnp.array([2.0, 1.0, 0.5]))
    W1, W2 = init.lambda_balanced(getkey(), (3, 3, 4), 0.0, 0.5)
    sol = lambda_balanced(TS_EXT, W1, W2, task, weight_decay=0.3)
    U, s, Vt = jnp.linalg.svd(task.Syx, full_matrices=False)
    assert rel_error(sol.product[-1], U @ jnp.diag(s - 0.3) @ Vt) < 1e-12  # shrunk by gamma
    assert rel_error(sol.product[-2], sol.product[-1]) < 1e-12
    assert float(jnp.max(jnp.abs(sol.lam))) == 0.0
    big = lambda_balanced(TS_EXT, W1, W2, task, weight_decay=2.5)  # decay beats every mode
    assert float(jnp.max(jnp.abs(big.product[-1]))) == 0.0
    # A Task with identity Sxx in the whitened path: defaults unchanged.
    base = lambda_balanced(TS_EXT, W1, W2, task)
    same = lambda_balanced(TS_EXT, W1, W2, task, weight_decay=0.0)
    for f in FIELDS:
        assert np.array_equal(getattr(base, f), getattr(same, f))


def test_errors(getkey):
    W1, W2, task, _, _ = _aligned_case(getkey(), [0.4, 2.5, 1.1], 0.5, [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="weight_decay.*lam = 0"):
        lambda_balanced(1.0, W1, W2, task, weight_decay=0.1)
    R = jnp.linalg.qr(jr.normal(getkey(), (3, 3)))[0]
    with pytest.raises(ValueError, match="aligned inits"):  # rotated input side: not aligned
        lambda_balanced(1.0, W1 @ R, W2, task)
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda a, b: lambda_balanced(1.0, a, b, task).product)(W1, W2)
    with pytest.raises(ValueError, match="weight_decay"):
        lambda_balanced(1.0, W1, W2, task, weight_decay=jnp.nan)
    generic = init.lambda_balanced(getkey(), (3, 3, 3), 0.5, 0.5)  # anisotropic, generic init
    with pytest.raises(ValueError, match="isotropic.*aligned inits"):
        lambda_balanced(1.0, *generic, Task(jnp.diag(jnp.array([2.0, 2.0, 2.1])), task.Syx,
                                            task.Syy))


def test_isotropic_generic_init_against_gradient_flow(getkey):
    """Sxx = c I with a generic (non-aligned) lambda-balanced init, with and without weight decay,
    against the full-matrix float64 flow; the loss is that of the original task."""
    cases, gammas = [], []
    for c, lam, gamma, sizes in ((1.7, 0.6, 0.0, (3, 2, 2)), (0.5, -0.4, 0.0, (3, 2, 3)),
                                 (2.3, 0.0, 0.35, (3, 3, 4))):
        d_in, h, d_out = sizes
        teacher = tasks.teacher(getkey(), d_in, d_out, jnp.array([2.0, 0.8]))
        task = Task(c * jnp.eye(d_in), teacher.Syx, teacher.Syy)
        W1, W2 = init.lambda_balanced(getkey(), sizes, lam, 0.4)
        cases.append((W1, W2, task, 0.8))
        gammas.append(gamma)
    sims = simulate_cases(cases, gammas=gammas)
    for (W1, W2, task, tau), gamma, (W1s, W2s) in zip(cases, gammas, sims):
        sol = lambda_balanced(jnp.asarray(TS), W1, W2, task, tau=tau, weight_decay=gamma)
        P, A, B, ntk = observables(W1s, W2s, tau)
        err = max(rel_error(sol.product, P), rel_error(sol.input_gram, A),
                  rel_error(sol.output_gram, B), rel_error(sol.ntk, ntk))
        assert err < 1e-8, (gamma, err)
        np.testing.assert_allclose(sol.loss, jax.vmap(task.loss)(jnp.asarray(P)), rtol=1e-9,
                                   atol=1e-12)


@pytest.mark.slow
def test_anisotropic_draws_against_gradient_flow():
    """All kinds of ``verify._lambda_balanced.anisotropic_cases`` against the full-matrix flow."""
    cs = anisotropic_cases(jr.PRNGKey(5), 20)
    realised = [realise_anisotropic(c) for c in cs]
    sims = simulate_cases(realised, gammas=[c["gamma"] for c in cs])
    for c, (W1, W2, task, tau), (W1s, W2s) in zip(cs, realised, sims):
        sol = lambda_balanced(jnp.asarray(TS), W1, W2, task, tau=tau, weight_decay=c["gamma"])
        P, A, B, ntk = observables(W1s, W2s, tau)
        err = max(rel_error(sol.product, P), rel_error(sol.input_gram, A),
                  rel_error(sol.output_gram, B), rel_error(sol.ntk, ntk))
        assert err < 1e-8, (c["kind"], err)
