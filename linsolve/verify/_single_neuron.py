"""Theorem check of the unbalanced single neuron (Kunin et al. 2024) against gradient flow.

The closed form :func:`linsolve.exact._single_neuron.single_neuron` is compared with
``simulate.gradient_flow`` on the original parameter-space ODE of the two-layer linear net
``(W1, W2) = (w0[None, :], [[a0]])``, ``lrs = (eta_w, eta_a)``, on the whitened task
``Task(I, beta*[None, :], [[|beta*|^2]])``. All cases have d = :data:`D` and are simulated in
vmapped chunks of :data:`CHUNK` (one compilation whatever the number of draws).

Weight decay and isotropic input variance (``exact._single_neuron_decay``): the exact case (equal
rates, balanced start) is checked by :func:`compare_decay` against ``gradient_flow(...,
weight_decay=gamma)`` on ``Sxx = c I`` (c in [0.3, 3], gamma in [0, 0.5]), the closed form taking
rates ``c eta``, decay ``gamma / c``; :func:`check` reports both sets of cases together.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..exact._single_neuron import single_neuron
from ..simulate import gradient_flow
from ..simulate._common import CONVERGED
from ..tasks import Task
from ._core import Check, rel_error

__all__ = [
    "Case",
    "DecayCase",
    "draw_cases",
    "draw_decay_cases",
    "end_times",
    "simulate_cases",
    "closed_cases",
    "compare",
    "compare_decay",
    "check",
]

D = 3
CHUNK = 8
# Save times as fractions of t_end (all but 1e-9 of the way to the limit); the last one
# (3 t_end) stands in for t = inf in the limit check.
FRACTIONS = np.unique(np.concatenate([np.linspace(0.0, 1.0, 49), np.geomspace(1e-4, 0.02, 6),
                                      [1.5, 3.0]]))
FIELDS = ("a", "w", "beta", "loss")
CATEGORIES = ("generic", "small_init", "anti_aligned", "balanced", "crossing", "a0_zero",
              "beta_zero", "w0_zero", "lazy", "upstream")


class Case(NamedTuple):
    """One initial condition and its hyperparameters (Python/NumPy values)."""

    label: str
    a0: float
    w0: np.ndarray
    beta_star: np.ndarray
    eta_a: float
    eta_w: float

    @property
    def delta(self) -> float:
        return self.eta_w * self.a0**2 - self.eta_a * float(self.w0 @ self.w0)


def _loguniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _unit(rng):
    v = rng.standard_normal(D)
    return v / np.linalg.norm(v)


def draw_cases(key, draws: int) -> list[Case]:
    """`draws` random cases cycling through :data:`CATEGORIES` (seeded by `key`).

    generic; small_init (scale 1e-3..1e-2, long plateau); anti_aligned (``w0`` against
    ``beta*``); balanced (``delta ~ 0``); crossing (``delta < 0``, ``a`` crosses zero);
    a0_zero; beta_zero (``beta* = 0``, either sign of delta); w0_zero; lazy (``delta >> 0``);
    upstream (``delta << 0`` without crossing). Rates are log-uniform in [0.3, 3].
    """
    seed = int(jr.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(draws):
        label = CATEGORIES[i % len(CATEGORIES)]
        eta_a, eta_w = _loguniform(rng, 0.3, 3.0), _loguniform(rng, 0.3, 3.0)
        bs = _loguniform(rng, 0.5, 2.0) * _unit(rng)
        sign = float(rng.choice([-1.0, 1.0]))
        scale = _loguniform(rng, 0.2, 1.5)
        a0, w0 = sign * scale * abs(rng.standard_normal()), scale * rng.standard_normal(D)
        if label == "small_init":
            scale = _loguniform(rng, 1e-3, 1e-2)
            a0, w0 = sign * scale, scale * _unit(rng)
        elif label == "anti_aligned":
            a0 = sign * _loguniform(rng, 0.01, 0.3)
            w0 = -sign * _loguniform(rng, 0.01, 0.3) * (bs / np.linalg.norm(bs) + 0.1 * _unit(rng))
        elif label == "balanced":
            w0 = scale * _unit(rng)
            a0 = sign * np.sqrt(eta_a / eta_w) * np.linalg.norm(w0)
        elif label == "crossing":
            w0 = -sign * _loguniform(rng, 1.0, 2.5) * (bs / np.linalg.norm(bs) + 0.5 * _unit(rng))
            a0 = sign * _loguniform(rng, 0.02, 0.3)
        elif label == "a0_zero":
            a0 = 0.0
        elif label == "beta_zero":
            bs = np.zeros(D)
            if (i // len(CATEGORIES)) % 2:
                a0 = sign * _loguniform(rng, 1.0, 2.0)
                w0 = _loguniform(rng, 0.1, 0.5) * _unit(rng)
        elif label == "w0_zero":
            w0 = np.zeros(D)
        elif label == "lazy":
            a0 = sign * _loguniform(rng, 2.5, 4.0)
            w0 = _loguniform(rng, 0.01, 0.2) * _unit(rng)
        elif label == "upstream":
            w0 = sign * _loguniform(rng, 1.5, 2.5) * (bs / np.linalg.norm(bs) + 0.3 * _unit(rng))
            a0 = sign * _loguniform(rng, 0.01, 0.2)
        cases.append(Case(label, float(a0), np.asarray(w0, float), np.asarray(bs, float),
                          eta_a, eta_w))
    return cases


def _columns(cases: list[Case]):
    rows = [(c.a0, c.w0, c.beta_star, c.eta_a, c.eta_w) for c in cases]
    return [jnp.asarray(np.stack(col)) for col in zip(*rows)]


def _chunked(fn, columns, n):
    """``fn`` on chunks of :data:`CHUNK` rows (the last padded), results concatenated to n rows."""
    pad = -n % CHUNK
    columns = [jnp.concatenate([c, jnp.repeat(c[-1:], pad, 0)]) for c in columns]
    parts = [fn(*[c[s:s + CHUNK] for c in columns]) for s in range(0, n + pad, CHUNK)]
    return jax.tree_util.tree_map(lambda *x: np.concatenate([np.asarray(y) for y in x])[:n],
                                  *parts)


@jax.jit
def _closed_at(ts, a0, w0, bs, eta_a, eta_w):
    return jax.vmap(lambda t, *p: single_neuron(t, *p[:3], eta_a=p[3], eta_w=p[4]))(
        ts, a0, w0, bs, eta_a, eta_w)


# Window search grid; it has as many points as FRACTIONS so every closed-form call shares one
# compilation.
_GRID = np.concatenate([np.geomspace(1e-2, 1e4, len(FRACTIONS) - 1), [np.inf]])


def end_times(cases: list[Case]) -> np.ndarray:
    """Per case, the first time on a geometric grid (1e-2 to 1e4) after which ``a, w`` stay within
    1e-9 (relative) of their ``t = inf`` limit; 1e4 if none (the closed form only picks the
    window)."""
    grid = np.broadcast_to(_GRID, (len(cases), len(_GRID)))
    sol = _chunked(_closed_at, [jnp.asarray(grid)] + _columns(cases), len(cases))
    a, w = sol.a, sol.w
    scale = np.maximum(np.max(np.abs(a), 1), np.max(np.abs(w), (1, 2)))
    gap = np.maximum(np.abs(a[:, :-1] - a[:, -1:]), np.max(np.abs(w[:, :-1] - w[:, -1:]), 2))
    close = gap <= 1e-9 * scale[:, None]
    stays = np.flip(np.cumprod(np.flip(close, 1), 1), 1).astype(bool)
    first = np.argmax(stays, 1)
    return np.where(stays.any(1), _GRID[first], 1e4)


def _sim_one(a0, w0, bs, eta_a, eta_w, ts, Sxx):
    task = Task(Sxx, (Sxx @ bs)[None, :], (bs @ Sxx @ bs).reshape(1, 1))
    traj = gradient_flow((w0[None, :], a0.reshape(1, 1)), task, ts, lrs=jnp.stack([eta_w, eta_a]),
                         rtol=1e-12, atol=1e-14, steady_state=False)
    return traj.params[1][:, 0, 0], traj.params[0][:, 0, :], traj.loss, (traj.status != CONVERGED)


_sim_batch = jax.jit(jax.vmap(_sim_one))


def simulate_cases(cases: list[Case], ts: np.ndarray, Sxx=None) -> dict:
    """Gradient flow of every case at its save times ``ts[i]`` on the task ``Sxx`` (default
    ``I``; (n, d, d) for one per case) with ``Syx = beta* Sxx``: dict of (n, T, ...) arrays."""
    n = len(cases)
    Sxx = np.broadcast_to(np.eye(D) if Sxx is None else Sxx, (n, D, D))
    columns = _columns(cases) + [jnp.asarray(ts), jnp.asarray(Sxx)]
    a, w, loss, diverged = _chunked(_sim_batch, columns, n)
    return dict(ts=np.asarray(ts), a=a, w=w, beta=a[..., None] * w, loss=loss, diverged=diverged)


def closed_cases(cases: list[Case], ts: np.ndarray) -> dict:
    """The closed form of every case at ``ts[i]``: dict of (n, T, ...) arrays of every field."""
    sol = _chunked(_closed_at, [jnp.asarray(ts)] + _columns(cases), len(cases))
    return {f: getattr(sol, f) for f in ("a", "w", "beta", "loss", "delta", "ntk")}


def compare(cases: list[Case]) -> dict:
    """Per case (arrays of length n): relative error of each field vs simulation on the whole
    learning curve, drift of delta along the closed form, and the limit errors."""
    t_end = end_times(cases)
    ts = t_end[:, None] * FRACTIONS[None, :]
    sim, sol = simulate_cases(cases, ts), closed_cases(cases, ts)
    cols = _columns(cases)
    n = len(cases)
    limits_t = np.broadcast_to(np.array([0.0] * (len(_GRID) - 1) + [np.inf]), (n, len(_GRID)))
    at = _chunked(_closed_at, [jnp.asarray(limits_t)] + cols, n)
    out = {f: np.array([rel_error(sol[f][i], sim[f][i]) for i in range(n)]) for f in FIELDS}
    deltas = np.array([c.delta for c in cases])
    a, w = sol["a"], sol["w"]
    size = np.max(np.stack([np.asarray(cols[4])[:, None] * a**2,
                            np.asarray(cols[3])[:, None] * np.sum(w**2, -1)]), (0, 2))
    out["drift"] = np.max(np.abs(sol["delta"] - deltas[:, None]), 1) / np.maximum(size, 1e-300)
    a0, w0, bs = (np.asarray(x) for x in cols[:3])
    # t = 0 exactly.
    start = np.maximum(np.abs(at.a[:, 0] - a0), np.max(np.abs(at.w[:, 0] - w0), 1))
    # t = inf against the simulation at 3 t_end (converged to 1e-9 by construction) ...
    a_inf, w_inf = at.a[:, -1], at.w[:, -1]
    scale = np.maximum(np.max(np.abs(sim["a"]), 1), np.max(np.abs(sim["w"]), (1, 2)))
    end = np.maximum(np.abs(a_inf - sim["a"][:, -1]), np.max(np.abs(w_inf - sim["w"][:, -1]), 1))
    end = np.where(t_end < 1e4, end / np.maximum(scale, 1e-300), 0.0)
    # ... and, exactly, beta(inf) = beta* for a generic start.
    generic = np.array([c.a0 != 0 or float(c.w0 @ c.beta_star) != 0 for c in cases])
    generic &= np.linalg.norm(bs, axis=1) > 0
    fixed = np.where(generic, np.max(np.abs(a_inf[:, None] * w_inf - bs), 1), 0.0)
    out["limits"] = np.maximum.reduce([start, end, fixed])
    out["diverged"] = sim["diverged"]
    return out


def check(key, draws: int = 20) -> Check:
    """Closed form vs gradient flow on `draws` random cases (:func:`draw_cases`) plus
    ``max(4, draws // 2)`` weight-decay cases (:func:`draw_decay_cases`)."""
    key, key_decay = jr.split(key)
    cases = draw_cases(key, draws)
    res = compare(cases)
    dcases = draw_decay_cases(key_decay, max(4, draws // 2))
    dres = compare_decay(dcases)
    rel = float(max(np.max(r[f]) for f in FIELDS for r in (res, dres)))
    if np.any(res["diverged"]) or np.any(dres["diverged"]):
        rel = float("inf")
    drift = float(max(np.max(res["drift"]), np.max(dres["drift"])))
    limits = float(max(np.max(res["limits"]), np.max(dres["limits"])))
    return Check("single_neuron", len(cases) + len(dcases), rel, drift, limits, 1e-8)


# --- Weight decay on Sxx = c I: equal rates, balanced start (the exact case). ---


class DecayCase(NamedTuple):
    """Balanced start ``a0^2 = |w0|^2``, one rate ``eta``, decay ``gamma``, ``Sxx = c I``."""

    label: str
    a0: float
    w0: np.ndarray
    beta_star: np.ndarray
    eta: float
    gamma: float
    variance: float


DECAY_CATEGORIES = ("grows", "dies", "beta_zero", "no_decay", "small_init")


def draw_decay_cases(key, draws: int) -> list[DecayCase]:
    """`draws` balanced cases cycling through :data:`DECAY_CATEGORIES`: grows (``|beta*| >
    gamma/c``: ``beta -> (1 - gamma/(c|beta*|)) beta*``), dies (``|beta*| < gamma/c``: a, w -> 0),
    beta_zero, no_decay (gamma = 0), small_init (scale 1e-3: a long plateau). gamma uniform in
    [0, 0.5], c log-uniform in [0.3, 3], eta log-uniform in [0.3, 3]."""
    seed = int(jr.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < draws:
        label = DECAY_CATEGORIES[len(cases) % len(DECAY_CATEGORIES)]
        eta, c = _loguniform(rng, 0.3, 3.0), _loguniform(rng, 0.3, 3.0)
        gamma = float(rng.uniform(0.0, 0.5)) if label != "no_decay" else 0.0
        bs = _loguniform(rng, 0.2, 2.0) * _unit(rng)
        w0 = (_loguniform(rng, 1e-3, 1e-2) if label == "small_init" else
              _loguniform(rng, 0.2, 1.5)) * _unit(rng)
        a0 = float(rng.choice([-1.0, 1.0])) * float(np.linalg.norm(w0))
        if label == "beta_zero":
            bs = np.zeros(D)
        margin = np.linalg.norm(bs) - gamma / c
        if label in ("grows", "small_init") and margin < 0.05:
            continue
        if label == "dies" and margin > -0.05:
            continue
        cases.append(DecayCase(label, a0, w0, bs, eta, gamma, c))
    return cases


def _decay_columns(cases):
    rows = [(c.a0, c.w0, c.beta_star, c.eta, c.gamma, c.variance) for c in cases]
    return [jnp.asarray(np.stack(col)) for col in zip(*rows)]


@jax.jit
def _closed_decay_at(ts, a0, w0, bs, eta, gamma, c):
    return jax.vmap(lambda t, a, w, b, e, g, v: single_neuron(
        t, a, w, b, eta_a=v * e, eta_w=v * e, weight_decay=g / v))(ts, a0, w0, bs, eta, gamma, c)


def _sim_decay_one(a0, w0, bs, eta, gamma, c, ts):
    Sxx = c * jnp.eye(D, dtype=w0.dtype)
    task = Task(Sxx, (Sxx @ bs)[None, :], (bs @ Sxx @ bs).reshape(1, 1))
    traj = gradient_flow((w0[None, :], a0.reshape(1, 1)), task, ts, lrs=jnp.stack([eta, eta]),
                         weight_decay=gamma, rtol=1e-12, atol=1e-14, steady_state=False)
    return traj.params[1][:, 0, 0], traj.params[0][:, 0, :], traj.loss, (traj.status != CONVERGED)


_sim_decay_batch = jax.jit(jax.vmap(_sim_decay_one))


def compare_decay(cases: list[DecayCase]) -> dict:
    """As :func:`compare` for weight-decay cases: per-case relative errors of a, w, beta, loss
    (the simulated task loss is ``c/2 |beta - beta*|^2``), drift of ``delta`` (stays 0) and limits
    (``t = 0`` exact; ``t = inf`` vs the simulation at 3 t_end and vs the ridge-shrunk target)."""
    n, cols = len(cases), _decay_columns(cases)
    grid = np.broadcast_to(_GRID, (n, len(_GRID)))
    at = _chunked(_closed_decay_at, [jnp.asarray(grid)] + cols, n)
    scale = np.maximum(np.max(np.abs(at.a), 1), np.max(np.abs(at.w), (1, 2)))
    gap = np.maximum(np.abs(at.a[:, :-1] - at.a[:, -1:]),
                     np.max(np.abs(at.w[:, :-1] - at.w[:, -1:]), 2))
    stays = np.flip(np.cumprod(np.flip(gap <= 1e-9 * scale[:, None], 1), 1), 1).astype(bool)
    t_end = np.where(stays.any(1), _GRID[np.argmax(stays, 1)], 1e4)
    ts = t_end[:, None] * FRACTIONS[None, :]
    a, w, loss, diverged = _chunked(_sim_decay_batch, cols + [jnp.asarray(ts)], n)
    sol = _chunked(_closed_decay_at, [jnp.asarray(ts)] + cols, n)
    c = np.array([x.variance for x in cases])
    sim = dict(a=a, w=w, beta=a[..., None] * w, loss=loss)
    mine = dict(a=sol.a, w=sol.w, beta=sol.beta, loss=c[:, None] * sol.loss)
    out = {f: np.array([rel_error(mine[f][i], sim[f][i]) for i in range(n)]) for f in FIELDS}
    size = np.maximum(np.max(np.abs(sol.a), 1) ** 2, 1e-300)
    out["drift"] = np.max(np.abs(sol.delta), 1) / (np.array([x.eta for x in cases]) * c * size)
    limits_t = np.broadcast_to(np.array([0.0] * (len(_GRID) - 1) + [np.inf]), (n, len(_GRID)))
    at = _chunked(_closed_decay_at, [jnp.asarray(limits_t)] + cols, n)
    start = np.maximum(np.abs(at.a[:, 0] - cols[0]), np.max(np.abs(at.w[:, 0] - cols[1]), 1))
    sim_scale = np.maximum(np.max(np.abs(a), 1), np.max(np.abs(w), (1, 2)))
    end = np.maximum(np.abs(at.a[:, -1] - a[:, -1]), np.max(np.abs(at.w[:, -1] - w[:, -1]), 1))
    end = np.where(t_end < 1e4, end / np.maximum(sim_scale, 1e-300), 0.0)
    bs = np.asarray(cols[2])
    norm = np.linalg.norm(bs, axis=1)
    shrink = np.maximum(1 - np.array([x.gamma for x in cases]) / (c * np.maximum(norm, 1e-300)), 0)
    target = np.where((norm > 0)[:, None], shrink[:, None] * bs, 0.0)
    fixed = np.max(np.abs(at.a[:, -1, None] * at.w[:, -1] - target), 1)
    out["limits"] = np.maximum.reduce([start, end, fixed])
    out["diverged"] = diverged
    out["label"] = np.array([x.label for x in cases])
    return out
