"""Theorem check of the master mode ``dF/dt = -k (F - s) sqrt(B^2 + A^2 F^2)``.

(B = 0 draws that decay into the saddle F = 0 are compared until F has fallen by 1e4: beyond that
the parameter-space flow itself is unstable transverse to the saddle.)

Issue 16: a second set of draws adds an input variance ``v`` in [0.3, 3] (every B) and a weight
decay ``gamma`` in [0, 0.5] (B = 0), realised by ``Sxx = k v``, ``Syx = k s`` and the parameter-space
weight decay ``k gamma`` (the mode's ``dF/dt = -k [(v F - s) sqrt(B^2 + A^2 F^2) + gamma A F]``).

Parameter-space realisation: the width-1 network ``F = kappa u w`` with loss ``1/2 m2 (F - s)^2`` and
rates ``eta_u``, ``eta_w`` obeys the mode with ``k = kappa^2 m2``, ``A = 2 sqrt(eta_u eta_w)/kappa`` and
``B = |eta_w u^2 - eta_u w^2|``. Each draw picks (F0, s, k, A, B), builds
``u0, w0`` with ``u0 w0 = F0/kappa`` and the required imbalance, and integrates the 2-parameter ODE.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import simulate, tasks
from ..exact._mode import mode, mode_time
from ._core import Check, max_abs, rel_error


def _draws(key, draws: int):
    rng = np.random.default_rng(np.asarray(jr.key_data(key) if hasattr(jr, "key_data") else key))
    cases = []
    for i in range(draws):
        s = float(rng.choice([-1, 1]) * rng.uniform(0.5, 3.0)) if i % 7 else 0.0
        F0 = float(rng.choice([-1, 1]) * rng.choice([1e-3, 0.1, 1.0, 5.0]) * rng.uniform(0.5, 1.5))
        B = float(rng.choice([0.0, 1e-3, 0.3, 1.0, 10.0]) * rng.uniform(0.5, 2.0))
        cases.append((F0, s, float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.5, 3.0)), B))
    cases += [(1e-3, 2.0, 1.0, 2.0, 0.0), (-0.5, 1.0, 1.0, 2.0, 0.2), (4.0, 1.0, 1.0, 2.0, 0.5)]
    cases = [c + (1.0, 0.0) for c in cases]
    for i in range(draws):  # input variance (any B) and weight decay (B = 0)
        s = float(rng.choice([-1, 1]) * rng.uniform(0.5, 3.0))
        F0 = float(rng.choice([-1, 1]) * rng.choice([1e-3, 0.1, 1.0, 5.0]) * rng.uniform(0.5, 1.5))
        B = 0.0 if i % 2 == 0 else float(rng.choice([1e-3, 0.3, 1.0, 10.0]) * rng.uniform(0.5, 2.0))
        gamma = float(rng.uniform(0.0, 0.5)) if B == 0 else 0.0
        cases.append((F0, s, float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.5, 3.0)), B,
                      float(rng.uniform(0.3, 3.0)), gamma))
    return cases


def _realise(F0, s, k, A, B, sign, v=1.0):
    """Width-1 net (kappa = 1, m2 = k, eta_u = eta_w = A/2) with the mode's (F0, B); variance v."""
    eta = A / 2
    c = sign * B / eta  # u^2 - w^2
    root = np.sqrt(c * c + 4 * F0 * F0)
    u2 = (c + root) / 2 if c >= 0 else 2 * F0 * F0 / (root - c)  # no cancellation for c < 0
    u0 = np.sqrt(u2)
    w0 = F0 / u0 if u0 > 0 else np.sqrt(max(-c, 0.0))
    params0 = (jnp.array([[w0]]), jnp.array([[u0]]))
    if v == 1.0:
        return params0, tasks.scalar(s=s, m2=k), eta
    return params0, tasks.Task(jnp.array([[k * v]]), jnp.array([[k * s]]), jnp.array([[k * s * s / v]])), eta


def check(key, draws: int = 20) -> Check:
    cases = _draws(key, draws)
    rel, drift, limits = 0.0, 0.0, 0.0
    for i, (F0, s, k, A, B, v, g) in enumerate(cases):
        params0, task, eta = _realise(F0, s, k, A, B, 1 if i % 2 else -1, v)
        kw = dict(s=s, k=k, A=A, B=B, variance=v, weight_decay=g)
        rate = k * v * (B + A * abs(s / v)) + k * v * A * abs(F0)
        T = min(25.0 / max(rate, 1e-3), 400.0)
        if B == 0 and np.sign(F0) * s - g <= 0:
            # F decays into the saddle at 0, where the parameter-space flow is unstable (rounding
            # grows like e^{k A |s| t} transverse to it): compare until F has fallen by 1e4.
            T = min(T, float(mode_time(F0, 1e-4 * F0, **kw)))
        ts = jnp.linspace(0.0, T, 64)
        traj = simulate.gradient_flow(params0, task, ts, lrs=eta, weight_decay=k * g, rtol=1e-12,
                                      atol=1e-14, steady_state=False)
        F_sim = traj.product()[:, 0, 0]
        F = mode(ts, F0=F0, **kw)
        rel = max(rel, rel_error(F, F_sim))
        # Invariant: the imbalance B = |eta (u^2 - w^2)| along the simulation (checks the map).
        imb = eta * (traj.params[1][:, 0, 0] ** 2 - traj.params[0][:, 0, 0] ** 2)
        drift = max(drift, abs(float(jnp.max(jnp.abs(imb))) - B) / max(B, 1.0))
        s_eff = (s - np.sign(F0) * g) / v
        F_inf = s_eff if (B > 0 or F0 * s_eff > 0) else 0.0
        limits = max(
            limits,
            max_abs(
                (mode(0.0, F0=F0, **kw), F0),
                (mode(jnp.inf, F0=F0, **kw), F_inf),
            ),
        )
        # mode_time inverts mode on the transition (where the inversion is well conditioned).
        j = int(jnp.argmax(jnp.abs(F - F0) > 0.3 * abs(F_inf - F0)))
        if j > 0 and abs(float(F[j]) - F_inf) > 1e-3 * max(abs(F_inf), 1e-3):
            t_back = mode_time(F0, F[j], **kw)
            limits = max(limits, abs(float(t_back) - float(ts[j])) / float(ts[j]))
    return Check("mode", len(cases), rel, drift, limits, 1e-8)
