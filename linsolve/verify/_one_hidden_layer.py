"""Theorem check of the width-d one-dimensional network (Xu & Ziyin) against gradient flow.

The closed form :func:`linsolve.exact._one_hidden_layer.one_hidden_layer` is compared with
``simulate.gradient_flow`` on the original parameter-space ODE of the two-layer linear net
``(W1, W2) = (w[:, None], u[None, :])``, ``lrs = (eta_w, eta_u)``, ``output_scale = kappa`` on
``tasks.scalar(s, m2)``. Cases of different widths share one compilation: a width-d case is padded
with zero neurons to width :data:`D_MAX` (a zero neuron ``u_i = w_i = 0`` never moves, so the padded
flow is exactly the width-d flow), and the simulation is vmapped over chunks of :data:`CHUNK` cases.

Weight decay (``exact._one_hidden_layer_decay``): its exact case (equal rates, ``u0 = +-w0``) is
checked the same way by :func:`compare_decay` against ``gradient_flow(..., weight_decay=gamma)``
(gamma in [0, 0.5], m2 in [0.3, 3]); :func:`check` reports both sets of cases together.
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
from ..simulate._common import CONVERGED
from ..tasks import scalar
from ._core import Check, rel_error

__all__ = [
    "Case",
    "draw_cases",
    "draw_decay_cases",
    "simulate_cases",
    "closed_cases",
    "compare",
    "compare_decay",
    "check",
]

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
    gamma: float = 0.0  # weight decay (exact only for eta_u = eta_w and u0 = +-w0)

    @property
    def s_gamma(self) -> float:
        """The logistic target with decay, ``s - sgn(F0) gamma / (kappa m2)`` (``s`` if gamma = 0)."""
        F0 = self.kappa * float(self.u0 @ self.w0)
        return self.s - np.sign(F0) * self.gamma / (self.kappa * self.m2)

    @property
    def hyper(self) -> dict:
        return dict(s=self.s, m2=self.m2, kappa=self.kappa, eta_u=self.eta_u, eta_w=self.eta_w)


def _loguniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_cases(key, draws: int) -> list[Case]:
    """`draws` random cases cycling through :data:`CATEGORIES` (seeded by `key`).

    generic; crossing (``F0 s < 0``); large_init (``|F0| > |s|``); negative_s; B0
    (``u0 = sqrt(eta_u) v``, ``w0 = +-sqrt(eta_w) v``: parallel with ``c1 = 0``, so B = 0; both
    signs of ``F0 s``, d = 1 included); d1 (rank one, unbalanced); tiny_init (long plateau);
    lazy (``B >> A|s|``).
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
            d = int(rng.choice([1, 4]))
            v = _loguniform(rng, 0.05, 1.0) * rng.standard_normal(d) / np.sqrt(d)
            sign = 1.0 if (i // len(CATEGORIES)) % 2 == 0 else -1.0
            u0, w0 = np.sqrt(eta_u) * v, sign * np.sqrt(eta_w) * v
        elif label == "tiny_init":
            u0, w0 = u0 * 1e-3, w0 * 1e-3
        elif label == "lazy":
            u0 = u0 * 4 / np.sqrt(d)
            w0 = w0 * 0.25 / np.sqrt(d)
            s = float(np.sign(s) * 0.1)
        cases.append(Case(label, u0, w0, float(s), m2, kappa, eta_u, eta_w))
    return cases


def end_time(case: Case) -> float:
    """Exact time for F to close all but 1e-8 of the gap between F0 and its limit.

    On the B = 0 saddle (``F0 s < 0``: F -> 0, u, w -> 0) all but 1e-6: there the flow amplifies
    perturbations along the unstable direction like ``e^{k A |s| t}``, so the simulated direction
    of the shrinking u, w (and their cosine) is only as good as the integrator's absolute error
    times that factor.
    """
    F0 = case.kappa * float(case.u0 @ case.w0)
    c = case
    A = 2 * np.sqrt(c.eta_u * c.eta_w) / c.kappa
    x, y = np.sqrt(c.eta_w) * c.u0, np.sqrt(c.eta_u) * c.w0
    floor = 8 * np.finfo(float).eps * (np.abs(x) + np.abs(y))  # as in the closed form: B0 -> 0
    a = np.where(np.abs(x + y) <= floor, 0.0, x + y)
    b = np.where(np.abs(x - y) <= floor, 0.0, x - y)
    B = np.linalg.norm(a) * np.linalg.norm(b)
    saddle = B == 0 and F0 * c.s <= 0
    F_inf = 0.0 if saddle else c.s
    F1 = F_inf + (1e-6 if saddle else 1e-8) * (F0 - F_inf)
    return float(_mode_time(F0, F1, c.s, c.kappa**2 * c.m2, A, B))


_mode_time = jax.jit(lambda F0, F1, s, k, A, B: mode_time(F0, F1, s=s, k=k, A=A, B=B))


def _sim_one(u0, w0, s, m2, kappa, eta_u, eta_w, ts):
    traj = gradient_flow(
        (w0[:, None], u0[None, :]), scalar(s=s, m2=m2), ts, lrs=(eta_w, eta_u),
        output_scale=kappa, rtol=1e-13, atol=1e-15, steady_state=False,
    )
    return traj.params[1][:, 0, :], traj.params[0][:, :, 0], (traj.status != CONVERGED)


_sim_batch = jax.jit(jax.vmap(_sim_one))


def _padded_rows(cases: list[Case]) -> list[tuple]:
    if any(len(c.u0) > D_MAX for c in cases):
        raise ValueError(f"cases wider than D_MAX={D_MAX} are not supported by this harness.")
    rows = []
    for c in cases:
        pad = D_MAX - len(c.u0)
        rows.append((np.pad(c.u0, (0, pad)), np.pad(c.w0, (0, pad)), c.s, c.m2, c.kappa,
                     c.eta_u, c.eta_w, end_time(c) * FRACTIONS))
    return rows + [rows[-1]] * (-len(rows) % CHUNK)


def _batches(rows):
    for start in range(0, len(rows), CHUNK):
        yield [jnp.asarray(np.stack(col)) for col in zip(*rows[start:start + CHUNK])]


def simulate_cases(cases: list[Case]) -> list[dict]:
    """Gradient flow of every case at ``ts = t_end * FRACTIONS``; dicts with ts, u, w (T, d)."""
    out = []
    for batch in _batches(_padded_rows(cases)):
        u, w, diverged = _sim_batch(*batch)
        for j in range(CHUNK):
            out.append(dict(ts=np.asarray(batch[-1][j]), u=np.asarray(u[j]), w=np.asarray(w[j]),
                            diverged=bool(diverged[j])))
    return [dict(o, u=o["u"][:, :len(c.u0)], w=o["w"][:, :len(c.u0)]) for o, c in zip(out, cases)]


def _closed_one(u0, w0, s, m2, kappa, eta_u, eta_w, ts):
    # The closed form at the save times, with the last one (3 t_end) replaced by t = inf.
    t = jnp.concatenate([ts[:-1], jnp.full((1,), jnp.inf, ts.dtype)])
    return one_hidden_layer(t, u0, w0, s=s, m2=m2, kappa=kappa, eta_u=eta_u, eta_w=eta_w)


_closed_batch = jax.jit(jax.vmap(_closed_one))


def closed_cases(cases: list[Case]) -> list[dict]:
    """The closed form of every case as dicts of fields (times ``ts[:-1]`` then ``inf``)."""
    out = []
    for batch in _batches(_padded_rows(cases)):
        sol = _closed_batch(*batch)
        fields = {f: np.asarray(getattr(sol, f)) for f in sol.__dataclass_fields__}
        out += [{f: x[j] for f, x in fields.items()} for j in range(CHUNK)]
    return [dict(o, u=o["u"][:, :len(c.u0)], w=o["w"][:, :len(c.u0)]) for o, c in zip(out, cases)]


def _observables(u, w, c: Case) -> dict:
    F = c.kappa * np.sum(u * w, -1)
    nu, nw = np.sum(u * u, -1), np.sum(w * w, -1)
    den = np.sqrt(nu * nw)
    cos = np.sum(u * w, -1) / np.where(den > 0, den, 1.0)  # 0 where u or w is zero
    return dict(
        u=u, w=w, F=F, ntk=c.kappa**2 * (c.eta_u * nw + c.eta_w * nu), cos=cos,
        loss=0.5 * c.m2 * (F - c.s) ** 2,
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
    sims, closed = simulate_cases(cases), closed_cases(cases)
    results = []
    for c, sim, sol in zip(cases, sims, closed):
        ref = _observables(sim["u"][:-1], sim["w"][:-1], c)
        errs = {f: rel_error(sol[f][:-1], ref[f]) for f in FIELDS}
        u, w = sol["u"], sol["w"]
        # Conserved quantities along the closed form (t = inf included), relative to their
        # natural scales (G = eta_w |u|^2 + eta_u |w|^2 bounds every entry of C).
        C = c.eta_w * np.einsum("ti,tj->tij", u, u) - c.eta_u * np.einsum("ti,tj->tij", w, w)
        C0 = c.eta_w * np.outer(c.u0, c.u0) - c.eta_u * np.outer(c.w0, c.w0)
        G = np.max(c.eta_w * np.sum(u * u, -1) + c.eta_u * np.sum(w * w, -1))
        nu, nw, uw = np.sum(u * u, -1), np.sum(w * w, -1), np.sum(u * w, -1)
        D0 = (c.u0 @ c.u0) * (c.w0 @ c.w0) - (c.u0 @ c.w0) ** 2
        Dscale = max(np.max(nu * nw), np.finfo(float).tiny)
        drift = max(
            np.max(np.abs(C - C0)) / G,
            np.max(np.abs(np.trace(C, axis1=1, axis2=2) - np.trace(C0))) / G,
            np.max(np.abs(sol["c1"] - np.trace(C0))) / G,
            np.max(np.abs(nu * nw - uw**2 - D0)) / Dscale,
            np.max(np.abs(sol["D"] - D0)) / Dscale,
        )
        # Limits: t = 0 exact; t = inf vs the simulation at 3 t_end and vs the textbook boost.
        lim0 = max(np.max(np.abs(u[0] - c.u0)), np.max(np.abs(w[0] - c.w0)),
                   abs(sol["F"][0] - c.kappa * (c.u0 @ c.w0)))
        F0 = c.kappa * float(c.u0 @ c.w0)
        scale = max(np.max(np.abs(sim["u"])), np.max(np.abs(sim["w"])))
        if sol["B"][-1] == 0 and F0 * c.s <= 0:
            # The saddle at the origin: the limit is exactly 0 (the simulation, whose rounding
            # seeds the unstable direction, cannot stand in for t = inf here).
            lim_inf = max(np.max(np.abs(u[-1])), np.max(np.abs(w[-1])), abs(sol["F"][-1]))
        else:
            lim_inf = max(np.max(np.abs(u[-1] - sim["u"][-1])),
                          np.max(np.abs(w[-1] - sim["w"][-1]))) / scale
            lim_inf = max(lim_inf, abs(sol["F"][-1] - c.s) / abs(c.s))
        if sol["B"][-1] > 0:
            ub, wb = _boost_limit(c)
            lim_inf = max(lim_inf, np.max(np.abs(u[-1] - ub)) / scale,
                          np.max(np.abs(w[-1] - wb)) / scale)
        results.append(dict(label=c.label, errors=errs, rel_error=max(errs.values()),
                            drift=float(drift), limits=float(max(lim0, lim_inf)),
                            diverged=sim["diverged"], F0=F0, B=float(sol["B"][0]),
                            ntk_ratio=float(sol["ntk"][-1] / sol["ntk"][0])))
    return results


def check(key, draws: int = 20) -> Check:
    """Closed form vs ``simulate.gradient_flow`` on `draws` random cases (all categories) plus
    ``max(4, draws // 2)`` weight-decay cases (:func:`draw_decay_cases`)."""
    key, key_decay = jr.split(key)
    results = compare(draw_cases(key, draws))
    results += compare_decay(draw_decay_cases(key_decay, max(4, draws // 2)))
    bad = any(r["diverged"] for r in results)
    return Check(
        family="one_hidden_layer",
        cases=len(results),
        max_rel_error=float("inf") if bad else max(r["rel_error"] for r in results),
        max_invariant_drift=max(r["drift"] for r in results),
        limits_error=max(r["limits"] for r in results),
        tolerance=1e-8,
    )


# --- Weight decay: equal rates, u0 = +-w0 (the exact case). ---


DECAY_D = 5


def draw_decay_cases(key, draws: int) -> list[Case]:
    """Random exact-case starts: d in {1, 2, 5}, ``u0 = +-w0``, gamma uniform in [0, 0.5]
    (every fourth case exactly 0, with ``F0 s > 0``), m2 in [0.3, 3]; labels "grows" (``sgn(F0) s_gamma > 0``:
    F -> s_gamma) and "dies" (decay switches the mode off: F, u, w -> 0). Starts with
    ``|s_gamma|`` below 0.05 (algebraically slow) are redrawn."""
    seed = int(jr.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < draws:
        d = int(rng.choice([1, 2, DECAY_D]))
        kappa, m2 = _loguniform(rng, 0.3, 3.0), _loguniform(rng, 0.3, 3.0)
        eta = _loguniform(rng, 0.2, 5.0)
        gamma = 0.0 if len(cases) % 4 == 3 else float(rng.uniform(0.0, 0.5))
        s = float(rng.choice([-1.0, 1.0]) * _loguniform(rng, 0.05, 3.0))
        v = _loguniform(rng, 0.05, 1.0) * rng.standard_normal(d) / np.sqrt(d)
        sign = float(rng.choice([-1.0, 1.0]))
        if gamma == 0:  # without decay, F0 s < 0 is the B = 0 saddle (checked by `compare`)
            s = sign * abs(s)
        c = Case("", v, sign * v, s, m2, kappa, eta, eta, gamma)
        if abs(c.s_gamma) < 0.05:
            continue
        F0 = kappa * float(v @ (sign * v))
        cases.append(c._replace(label="grows" if np.sign(F0) * c.s_gamma > 0 else "dies"))
    return cases


def decay_end_time(c: Case) -> float:
    """Exact time for F to close all but 1e-8 of the gap to its limit (logistic, target s_gamma)."""
    F0 = c.kappa * float(c.u0 @ c.w0)
    F_inf = c.s_gamma if np.sign(F0) * c.s_gamma > 0 else 0.0
    F1 = F_inf + 1e-8 * (F0 - F_inf)
    # The logistic time of exact.mode_time (B = 0) in |F| with target sgn(F0) s_gamma.
    s, a0, a1 = np.sign(F0) * c.s_gamma, abs(F0), abs(F1)
    return float(np.log(a1 * (s - a0) / (a0 * (s - a1))) / (2 * c.kappa * c.m2 * c.eta_u * s))


def _sim_decay_one(u0, w0, s, m2, kappa, eta, gamma, ts):
    traj = gradient_flow(
        (w0[:, None], u0[None, :]), scalar(s=s, m2=m2), ts, lrs=(eta, eta), output_scale=kappa,
        weight_decay=gamma, rtol=1e-13, atol=1e-15, steady_state=False,
    )
    return traj.params[1][:, 0, :], traj.params[0][:, :, 0], (traj.status != CONVERGED)


def _closed_decay_one(u0, w0, s, m2, kappa, eta, gamma, ts):
    t = jnp.concatenate([ts[:-1], jnp.full((1,), jnp.inf, ts.dtype)])
    return one_hidden_layer(t, u0, w0, s=s, m2=m2, kappa=kappa, eta_u=eta, eta_w=eta,
                            weight_decay=gamma)


_sim_decay_batch = jax.jit(jax.vmap(_sim_decay_one))
_closed_decay_batch = jax.jit(jax.vmap(_closed_decay_one))


def compare_decay(cases: list[Case]) -> list[dict]:
    """Per weight-decay case: relative errors of every field vs ``gradient_flow(...,
    weight_decay=gamma)``, drift of ``C(t) = C0 e^{-2 gamma eta t}`` (here 0: u = +-w), limits
    (``t = 0`` exact; ``t = inf`` vs the simulation at 3 t_end and vs ``F_inf = s_gamma`` or 0)."""
    rows = [(np.pad(c.u0, (0, DECAY_D - len(c.u0))), np.pad(c.w0, (0, DECAY_D - len(c.w0))),
             c.s, c.m2, c.kappa, c.eta_u, c.gamma, decay_end_time(c) * FRACTIONS) for c in cases]
    rows += [rows[-1]] * (-len(rows) % CHUNK)
    sims, sols = [], []
    for batch in _batches(rows):
        u, w, diverged = _sim_decay_batch(*batch)
        sol = _closed_decay_batch(*batch)
        for j in range(CHUNK):
            sims.append(dict(u=np.asarray(u[j]), w=np.asarray(w[j]), diverged=bool(diverged[j])))
            sols.append({f: np.asarray(getattr(sol, f)[j]) for f in sol.__dataclass_fields__})
    results = []
    for c, sim, sol in zip(cases, sims, sols):
        d = len(c.u0)
        su, sw, u, w = sim["u"][:, :d], sim["w"][:, :d], sol["u"][:, :d], sol["w"][:, :d]
        ref = _observables(su[:-1], sw[:-1], c)
        errs = {f: rel_error(sol[f][:-1] if f not in ("u", "w") else
                             (u if f == "u" else w)[:-1], ref[f]) for f in FIELDS}
        G = max(np.max(c.eta_u * np.sum(u * u + w * w, -1)), np.finfo(float).tiny)
        C = c.eta_u * (np.einsum("ti,tj->tij", u, u) - np.einsum("ti,tj->tij", w, w))
        drift = max(np.max(np.abs(C)) / G, np.max(np.abs(sol["c1"])), np.max(np.abs(sol["B"])))
        F0 = c.kappa * float(c.u0 @ c.w0)
        lim0 = max(np.max(np.abs(u[0] - c.u0)), np.max(np.abs(w[0] - c.w0)), abs(sol["F"][0] - F0))
        scale = max(np.max(np.abs(su)), np.max(np.abs(sw)))
        F_inf = c.s_gamma if np.sign(F0) * c.s_gamma > 0 else 0.0
        lim_inf = max(np.max(np.abs(u[-1] - su[-1])), np.max(np.abs(w[-1] - sw[-1]))) / scale
        lim_inf = max(lim_inf, abs(sol["F"][-1] - F_inf) / max(abs(c.s), abs(F0)))
        results.append(dict(label=c.label, errors=errs, rel_error=max(errs.values()),
                            drift=float(drift), limits=float(max(lim0, lim_inf)),
                            diverged=sim["diverged"], F0=F0, gamma=c.gamma))
    return results
