"""Theorem check of the width-d one-dimensional network (Xu & Ziyin) against gradient flow.

The closed form :func:`linsolve.exact._one_hidden_layer.one_hidden_layer` is compared with
``simulate.gradient_flow`` on the original parameter-space ODE of the two-layer linear net
``(W1, W2) = (w[:, None], u[None, :])``, ``lrs = (eta_w, eta_u)``, ``output_scale = kappa`` on
``tasks.scalar(s, m2)``. Cases of different widths share one compilation: a width-d case is padded
with zero neurons to width :data:`D_MAX` (a zero neuron ``u_i = w_i = 0`` never moves, so the padded
flow is exactly the width-d flow), and the simulation is vmapped over chunks of :data:`CHUNK` cases.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..exact._mode import mode_time
from ..exact._one_hidden_layer import one_hidden_layer
from ..simulate import gradient_flow
from ..tasks import scalar
from ._core import Check, rel_error

__all__ = ["Case", "draw_cases", "simulate_cases", "compare", "check"]

D_MAX = 16
CHUNK = 8
# Save times as fractions of t_end (the time to close all but 1e-8 of the gap F0 -> F_inf);
# the last one (3 t_end) stands in for t = inf.
FRACTIONS = np.concatenate([np.linspace(0.0, 1.0, 41), np.geomspace(1e-4, 0.02, 8), [1.5, 3.0]])
FRACTIONS = np.unique(FRACTIONS)
FIELDS = ("u", "w", "F", "ntk", "cos", "loss")
CATEGORIES = ("generic", "crossing", "large_init", "negative_s", "B0", "d1", "tiny_init", "lazy")


class Case(NamedTuple):
    """One initial condition and its hyperparameters (Python/NumPy values)."""

    label: str
    u0: np.ndarray
    w0: np.ndarray
    s: float
    m2: float
    kappa: float
    eta_u: float
    eta_w: float

    @property
    def hyper(self) -> dict:
        return dict(s=self.s, m2=self.m2, kappa=self.kappa, eta_u=self.eta_u, eta_w=self.eta_w)


def _loguniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_cases(key, draws: int) -> list[Case]:
    """`draws` random cases cycling through :data:`CATEGORIES` (seeded by `key`).

    generic; crossing (``F0 s < 0``); large_init (``|F0| > |s|``); negative_s; B0 (``u0`` parallel
    to ``w0`` with ``c1 = 0``, equal rates so that B is exactly 0, both signs of ``F0 s``, d = 1
    included); d1 (rank one, unbalanced); tiny_init (long plateau); lazy (``B >> A|s|``).
    """
    seed = int(jr.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(draws):
        label = CATEGORIES[i % len(CATEGORIES)]
        d = int(rng.choice([1, 2, 3, 5, 8, 16])) if label != "d1" else 1
        kappa = _loguniform(rng, 0.3, 3.0)
        m2 = _loguniform(rng, 0.3, 3.0)
        eta_u, eta_w = _loguniform(rng, 0.2, 5.0), _loguniform(rng, 0.2, 5.0)
        s = float(rng.choice([-1.0, 1.0]) * _loguniform(rng, 0.3, 3.0))
        su, sw = _loguniform(rng, 0.1, 1.0), _loguniform(rng, 0.1, 1.0)
        u0, w0 = su * rng.standard_normal(d), sw * rng.standard_normal(d)
        if label == "crossing":
            F0 = kappa * u0 @ w0
            s = -np.sign(F0) * abs(s)
        elif label == "large_init":
            u0, w0 = 3 * u0 / np.sqrt(d), 3 * w0 / np.sqrt(d)
            w0 = w0 if u0 @ w0 != 0 else w0 + u0
            s = float(np.sign(rng.standard_normal()) * 0.2 * kappa * abs(u0 @ w0))
        elif label == "negative_s":
            s = -abs(s)
        elif label == "B0":
            eta_w = eta_u
            d = int(rng.choice([1, 4]))
            v = rng.standard_normal(d)
            u0 = _loguniform(rng, 0.05, 1.0) * v / np.linalg.norm(v)
            w0 = (1.0 if (i // len(CATEGORIES)) % 2 == 0 else -1.0) * u0
        elif label == "tiny_init":
            u0, w0 = u0 * 1e-3, w0 * 1e-3
        elif label == "lazy":
            u0 = u0 * 4 / np.sqrt(d)
            w0 = w0 * 0.25 / np.sqrt(d)
            s = float(np.sign(s) * 0.1)
        cases.append(Case(label, u0, w0, float(s), m2, kappa, eta_u, eta_w))
    return cases


def end_time(case: Case) -> float:
    """Exact time for F to close all but 1e-8 of the gap between F0 and its limit."""
    F0 = case.kappa * float(case.u0 @ case.w0)
    c = case
    A = 2 * np.sqrt(c.eta_u * c.eta_w) / c.kappa
    su, sw = np.sqrt(c.eta_u), np.sqrt(c.eta_w)
    B = 4 * np.linalg.norm(0.5 * (sw * c.u0 + su * c.w0)) * np.linalg.norm(
        0.5 * (sw * c.u0 - su * c.w0))
    F_inf = c.s if (B > 0 or F0 * c.s > 0) else 0.0
    F1 = F_inf + 1e-8 * (F0 - F_inf)
    return float(mode_time(F0, F1, s=c.s, k=c.kappa**2 * c.m2, A=A, B=B))


def _sim_one(u0, w0, s, m2, kappa, eta_u, eta_w, ts):
    traj = gradient_flow(
        (w0[:, None], u0[None, :]), scalar(s=s, m2=m2), ts, lrs=(eta_w, eta_u),
        output_scale=kappa, rtol=1e-12, atol=1e-14,
    )
    return traj.params[1][:, 0, :], traj.params[0][:, :, 0], traj.diverged


_sim_batch = jax.jit(jax.vmap(_sim_one))


def simulate_cases(cases: list[Case]) -> list[dict]:
    """Gradient flow of every case at ``ts = t_end * FRACTIONS``; dicts with ts, u, w (T, d)."""
    if any(len(c.u0) > D_MAX for c in cases):
        raise ValueError(f"cases wider than D_MAX={D_MAX} are not supported by this harness.")
    rows = []
    for c in cases:
        pad = D_MAX - len(c.u0)
        rows.append((np.pad(c.u0, (0, pad)), np.pad(c.w0, (0, pad)), c.s, c.m2, c.kappa,
                     c.eta_u, c.eta_w, end_time(c) * FRACTIONS))
    n = len(rows)
    rows += [rows[-1]] * (-n % CHUNK)
    out = []
    for start in range(0, len(rows), CHUNK):
        batch = [jnp.asarray(np.stack(col)) for col in zip(*rows[start:start + CHUNK])]
        u, w, diverged = _sim_batch(*batch)
        for j in range(CHUNK):
            out.append(dict(ts=np.asarray(batch[-1][j]), u=np.asarray(u[j]), w=np.asarray(w[j]),
                            diverged=bool(diverged[j])))
    return [dict(o, u=o["u"][:, :len(c.u0)], w=o["w"][:, :len(c.u0)]) for o, c in zip(out, cases)]


def _observables(u, w, c: Case) -> dict:
    F = c.kappa * np.sum(u * w, -1)
    nu, nw = np.sum(u * u, -1), np.sum(w * w, -1)
    return dict(
        u=u, w=w, F=F, ntk=c.kappa**2 * (c.eta_u * nw + c.eta_w * nu),
        cos=np.sum(u * w, -1) / np.sqrt(nu * nw), loss=0.5 * c.m2 * (F - c.s) ** 2,
    )


def _boost_limit(c: Case):
    """``u, w`` at ``t = inf`` from the textbook boost with ``phi_inf`` (B > 0), independently."""
    F0 = c.kappa * c.u0 @ c.w0
    A = 2 * np.sqrt(c.eta_u * c.eta_w) / c.kappa
    C = c.eta_w * np.outer(c.u0, c.u0) - c.eta_u * np.outer(c.w0, c.w0)
    B = np.sum(np.abs(np.linalg.eigvalsh(C)))
    phi = 0.5 * (np.arcsinh(A * c.s / B) - np.arcsinh(A * F0 / B))
    r = np.sqrt(c.eta_u / c.eta_w)
    return (np.cosh(phi) * c.u0 + r * np.sinh(phi) * c.w0,
            np.sinh(phi) * c.u0 / r + np.cosh(phi) * c.w0)


def compare(cases: list[Case]) -> list[dict]:
    """Per case: relative errors of every field vs simulation, invariant drift, limit errors."""
    sims = simulate_cases(cases)
    results = []
    for c, sim in zip(cases, sims):
        ts = sim["ts"]
        closed = one_hidden_layer(jnp.asarray(ts[:-1]), c.u0, c.w0, **c.hyper)
        ref = _observables(sim["u"][:-1], sim["w"][:-1], c)
        errs = {f: rel_error(getattr(closed, f), ref[f]) for f in FIELDS}
        u, w = np.asarray(closed.u), np.asarray(closed.w)
        # Conserved quantities along the closed form, relative to their natural scales.
        C = c.eta_w * np.einsum("ti,tj->tij", u, u) - c.eta_u * np.einsum("ti,tj->tij", w, w)
        C0 = c.eta_w * np.outer(c.u0, c.u0) - c.eta_u * np.outer(c.w0, c.w0)
        G = c.eta_w * np.sum(u * u, -1) + c.eta_u * np.sum(w * w, -1)
        nu, nw, uw = np.sum(u * u, -1), np.sum(w * w, -1), np.sum(u * w, -1)
        D = nu * nw - uw**2
        D0 = (c.u0 @ c.u0) * (c.w0 @ c.w0) - (c.u0 @ c.w0) ** 2
        drift = max(
            np.max(np.abs(C - C0)) / np.max(G),
            np.max(np.abs(np.trace(C, axis1=1, axis2=2) - np.trace(C0))) / np.max(G),
            np.max(np.abs(D - D0)) / np.max(nu * nw),
            np.max(np.abs(np.asarray(closed.D) - D0)) / max(np.max(nu * nw), 1e-300),
        )
        # Limits: t = 0 exact; t = inf vs the simulation at 3 t_end and vs the textbook boost.
        at0 = one_hidden_layer(0.0, c.u0, c.w0, **c.hyper)
        inf = one_hidden_layer(jnp.inf, c.u0, c.w0, **c.hyper)
        lim0 = max(float(np.max(np.abs(at0.u - c.u0))), float(np.max(np.abs(at0.w - c.w0))),
                   abs(float(at0.F) - c.kappa * float(c.u0 @ c.w0)))
        scale = max(np.max(np.abs(sim["u"])), np.max(np.abs(sim["w"])))
        if float(inf.B) == 0 and float(at0.F) * c.s <= 0:
            # The saddle at the origin: the limit is exactly 0 (the simulation, whose rounding
            # seeds the unstable direction, cannot stand in for t = inf here).
            lim_inf = max(float(np.max(np.abs(inf.u))), float(np.max(np.abs(inf.w))),
                          abs(float(inf.F)))
        else:
            lim_inf = max(np.max(np.abs(inf.u - sim["u"][-1])),
                          np.max(np.abs(inf.w - sim["w"][-1]))) / scale
        if float(inf.B) > 0:
            ub, wb = _boost_limit(c)
            lim_inf = max(lim_inf, np.max(np.abs(inf.u - ub)) / scale,
                          np.max(np.abs(inf.w - wb)) / scale, abs(float(inf.F) - c.s) / abs(c.s))
        results.append(dict(label=c.label, errors=errs, rel_error=max(errs.values()),
                            drift=float(drift), limits=float(max(lim0, lim_inf)),
                            diverged=sim["diverged"]))
    return results


def check(key, draws: int = 20) -> Check:
    """Closed form vs ``simulate.gradient_flow`` on `draws` random cases (all categories)."""
    results = compare(draw_cases(key, draws))
    bad = any(r["diverged"] for r in results)
    return Check(
        family="one_hidden_layer (Xu & Ziyin)",
        cases=len(results),
        max_rel_error=float("inf") if bad else max(r["rel_error"] for r in results),
        max_invariant_drift=max(r["drift"] for r in results),
        limits_error=max(r["limits"] for r in results),
        tolerance=1e-8,
    )
