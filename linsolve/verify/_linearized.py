"""Theorem check of the kernel-regime (linearised) solution ``f(t) = y + e^{-Theta t/n}(f0 - y)``.

A depth-1 linear network ``f(x) = W x`` is linear in its parameters, so its gradient flow IS the
linearised dynamics with the constant NTK ``Theta = X X^T (x) I`` (``models.ntk_data``). Each draw
compares ``linearized`` with ``simulate.gradient_flow`` on ``W`` (outputs ``X W(t)^T``), with more
samples than inputs (singular kernel) and fewer, in both kernel layouts; the limits are ``f0`` at
t = 0 and the least-squares fit reached from ``W0`` at t = inf, and the other identity is the
matrix exponential (``scipy.linalg.expm``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.linalg

from .. import models, simulate
from ..exact._linearized import linearized
from ..tasks import Task
from ._core import Check, max_abs, rel_error

D_IN, D_OUT = 4, 2
TS = np.concatenate([np.linspace(0.0, 4.0, 17), np.geomspace(5.0, 3000.0, 44)])  # all scales
RTOL, ATOL = 1e-12, 1e-14


def cases(key, draws: int) -> list[tuple]:
    """``(X, Y, W0)`` draws; n alternates between > d_in (singular NTK) and < d_in."""
    out = []
    for i in range(draws):
        n = (3, 7)[i % 2]
        k1, k2, k3, k4 = jr.split(jr.fold_in(key, i), 4)
        X = jr.normal(k1, (n, D_IN)) * jnp.sqrt(jr.uniform(k4, (), minval=0.3, maxval=2.0))
        out.append((X, jr.normal(k2, (n, D_OUT)), jr.normal(k3, (D_OUT, D_IN))))
    return out


@jax.jit
def _simulate(W0, Sxx, Syx, Syy, ts):
    def one(W0, Sxx, Syx, Syy):
        task = Task(Sxx, Syx, Syy)
        traj = simulate.gradient_flow((W0,), task, ts, rtol=RTOL, atol=ATOL, steady_state=False)
        return traj.params[0], (traj.status != simulate.CONVERGED)

    return jax.vmap(one)(W0, Sxx, Syx, Syy)


def simulate_cases(cs, ts=TS):
    """``W(t)`` for every case (one vmapped run: the covariance form does not depend on n)."""
    tasks_ = [Task.from_data(X, Y) for X, Y, _ in cs]
    W, diverged = _simulate(jnp.stack([W0 for _, _, W0 in cs]), jnp.stack([t.Sxx for t in tasks_]),
                            jnp.stack([t.Syx for t in tasks_]), jnp.stack([t.Syy for t in tasks_]),
                            jnp.asarray(ts))
    if bool(jnp.any(diverged)):
        raise RuntimeError("the reference simulation failed for a linearized case.")
    return np.asarray(W)


def least_squares_limit(X, Y, W0):
    """``W(inf) = W0 + (Syx - W0 Sxx) Sxx^+``: the fit of Y closest to W0 (row-space projection)."""
    n = X.shape[0]
    Sxx, Syx = X.T @ X / n, Y.T @ X / n
    return W0 + (Syx - W0 @ Sxx) @ jnp.linalg.pinv(Sxx)


def check(key, draws: int = 20) -> Check:
    cs = cases(key, draws)
    Ws = simulate_cases(cs)
    ts = jnp.asarray(np.append(TS, np.inf))
    j = len(TS) // 3
    rel, drift, limits = 0.0, 0.0, 0.0
    for i, (X, Y, W0) in enumerate(cs):
        n = X.shape[0]
        f_sim = np.einsum("ni,toi->tno", X, Ws[i])
        ntk = models.ntk_data((W0,), X) if i % 2 else X @ X.T
        f0 = X @ W0.T
        sol = linearized(ts, f0, Y, ntk)
        loss_sim = 0.5 * np.mean(np.sum((f_sim - np.asarray(Y)) ** 2, axis=-1), axis=-1)
        rel = max(rel, rel_error(sol.f[:-1], f_sim), rel_error(sol.loss[:-1], loss_sim))
        # Limits: f0 at t = 0 (exactly), the least-squares fit from W0 at t = inf; identity:
        # the matrix exponential (scipy, float64) at an intermediate time.
        K = np.kron(np.asarray(X @ X.T), np.eye(D_OUT))
        r0 = np.asarray(f0 - Y).reshape(-1)
        f_expm = np.asarray(Y).reshape(-1) + scipy.linalg.expm(-K * float(ts[j]) / n) @ r0
        limits = max(limits, max_abs((sol.f[0], f0)),
                     rel_error(sol.f[-1], X @ least_squares_limit(X, Y, W0).T),
                     rel_error(sol.f[j].reshape(-1), f_expm))
        # Invariant: the component of f - y in the kernel's null space (n > d_in) never moves.
        theta, V = np.linalg.eigh(np.asarray(X @ X.T))
        null = V[:, theta <= 1e-10 * theta.max()]
        if null.shape[1]:
            comp = np.einsum("nm,tno->tmo", null, np.asarray(sol.f - Y))
            drift = max(drift, float(np.max(np.abs(comp - comp[0])))
                        / max(float(np.max(np.abs(r0))), 1e-300))
    return Check("linearized", len(cs), rel, drift, limits, 1e-8)
