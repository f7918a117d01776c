"""Theorem check for the Saxe balanced-mode family.

The closed forms :func:`~linsolve.exact._saxe.saxe_mode` and ``saxe_product`` are compared with
:func:`linsolve.simulate.gradient_flow` on the original parameter-space ODE: an explicit chain of
``depth`` scalar weights (balanced: equal magnitudes, the sign of ``u0`` on the first weight), and a
full-matrix net from :func:`linsolve.init.aligned`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import init, tasks
from ..exact._saxe import saxe_mode, saxe_product, saxe_time
from ..simulate._common import CONVERGED
from ..simulate._flow import gradient_flow
from ._core import Check, rel_error

__all__ = ["check", "draw_cases", "matrix_case", "simulate_chains", "window"]

DEPTHS = (2, 3, 4, 5)
N_TIMES = 121
BATCH = 8  # simulations are padded to a multiple of this, so batches share compilations


def window(s, u0, tau, depth: int, gap: float = 1e-9) -> np.ndarray:
    """Upper bound on the time a mode with ``0 < u0`` and ``s > 0`` needs to come within
    ``gap s`` of ``s``, from elementary bounds on ``t = tau/L int du / (u^p (s - u))`` (plateau
    plus exponential approach; independent of the closed form).
    """
    s, u0, tau = (np.asarray(x, float) for x in (s, u0, tau))
    d = depth
    p = 2 - 2 / d
    v0 = u0 / s
    if d == 2:
        plateau = np.log(np.maximum(1 / v0, 1)) / d
    else:
        plateau = np.maximum(v0 ** (1 - p) - 1, 0) / (d * (p - 1))
    below = (4 / 3) * (plateau + np.log(np.maximum(1 - v0, gap) / gap) / d)
    above = np.log(np.maximum(v0 - 1, gap) / gap) / d
    return 1.1 * tau * s ** (-p) * np.where(v0 < 1, below, above)


def draw_cases(key, n: int, depth: int, *, signs: bool = False):
    """``n`` random ``(s, u0, tau)`` with ``u0/s`` log-uniform in ``[1e-3, 3]`` and their windows.

    ``s`` log-uniform in [0.3, 3], ``tau`` in [0.5, 2]. With ``signs``, every fourth draw flips
    ``s`` (a mode started against the task, decaying to 0) and every third flips both signs.
    Returns numpy arrays ``s, u0, tau`` (n,) and ``ts`` (n, N_TIMES).
    """
    k1, k2, k3 = jr.split(key, 3)
    s = np.exp(np.asarray(jr.uniform(k1, (n,), minval=math.log(0.3), maxval=math.log(3.0))))
    ratio = np.exp(np.asarray(jr.uniform(k2, (n,), minval=math.log(1e-3), maxval=math.log(3.0))))
    tau = np.exp(np.asarray(jr.uniform(k3, (n,), minval=math.log(0.5), maxval=math.log(2.0))))
    u0 = ratio * s
    t_end = window(s, u0, tau, depth, 1e-9)
    if signs:
        idx = np.arange(n)
        flip_s = idx % 4 == 3
        flip_both = idx % 3 == 2
        # Opposite signs: the mode decays; the window covers the fall to 1% of u0.
        p = 2 - 2 / depth
        v0 = ratio
        fall = (
            np.log(100.0) / depth
            if depth == 2
            else ((v0 / 100) ** (1 - p) - v0 ** (1 - p)) / (depth * (p - 1))
        )
        t_end = np.where(flip_s, 1.1 * tau * s ** (-p) * fall, t_end)
        s = np.where(flip_s, -s, s)
        s = np.where(flip_both, -s, s)
        u0 = np.where(flip_both, -u0, u0)
    ts = np.linspace(0.0, 1.0, N_TIMES)[None, :] * t_end[:, None]
    return s, u0, tau, ts


DMAX = max(DEPTHS)


def _chain(u0, s, tau, ts, depth):
    """A chain of DMAX scalar weights whose first ``DMAX - depth`` are frozen at exactly 1.

    The frozen weights get the rate 1e-300 (their change, ~1e-300 |grad| t, is far below an ulp
    of 1.0), so the flow is bit-for-bit that of the explicit chain of ``depth`` weights, each at
    ``|u0|^{1/depth}`` (the sign of u0 on the first), rate ``1/tau``; ``depth`` is traced, so
    every depth shares one compilation. ``depth = DMAX`` is the plain chain.
    """
    task = tasks.scalar(s=s)
    a = jnp.abs(u0) ** (1.0 / depth)
    layers = jnp.arange(DMAX)
    first = DMAX - depth
    w = jnp.where(layers < first, 1.0, jnp.where((layers == first) & (u0 < 0), -a, a))
    lrs = jnp.where(layers < first, 1e-300, 1.0 / tau)
    params = tuple(jnp.reshape(w[l], (1, 1)) for l in range(DMAX))
    traj = gradient_flow(params, task, ts, lrs=lrs, rtol=1e-12, atol=1e-14, steady_state=False)
    u = traj.params[0][:, 0, 0]
    for W in traj.params[1:]:
        u = u * W[:, 0, 0]
    moved = jnp.max(jnp.stack([jnp.where(l < first, jnp.max(jnp.abs(W[:, 0, 0] - 1.0)), 0.0)
                               for l, W in enumerate(traj.params)]))
    return u, (traj.status != CONVERGED) | (moved > 0)


@jax.jit
def _chains(u0, s, tau, ts, depth):
    return jax.vmap(_chain)(u0, s, tau, ts, depth)


def simulate_chains(u0, s, tau, ts, depth):
    """``gradient_flow`` of explicit chains of ``depth`` scalar weights; returns ``u`` (n, T).

    `depth` is an int or an (n,) int array (each in 2..DMAX); all draws run in one vmapped call
    (one compilation, the batch padded to a multiple of BATCH). The chain starts balanced,
    ``|W_l| = |u0|^{1/depth}``, the sign of ``u0`` on the first weight.
    """
    u0, s, tau, ts = (jnp.asarray(x, jnp.float64) for x in (u0, s, tau, ts))
    n = u0.shape[0]
    depth = jnp.broadcast_to(jnp.asarray(depth, jnp.int32), (n,))
    if bool(jnp.any((depth < 1) | (depth > DMAX))):
        raise ValueError(f"`depth` must be in 1..{DMAX}; got {np.asarray(depth).tolist()}.")
    pad = (-n) % BATCH
    args = (u0, s, tau, ts, depth)
    if pad:
        args = tuple(jnp.concatenate([x, jnp.repeat(x[:1], pad, 0)]) for x in args)
    u, bad = _chains(*args)
    if bool(jnp.any(bad)):
        raise RuntimeError("gradient_flow failed on a scalar chain; the comparison is invalid.")
    return u[:n]


def _time_drift(ts, u, s, u0, tau, depth):
    """The invariant ``t - T(u0 -> u(t))`` of a 1-D flow, in strength units (``|.| |du/dt|``).

    Rows are draws; times where ``u(t)`` has reached its end state in floating point (so the
    time to it is infinite) are skipped. Returns the max over draws of max_t / max_t |u|.
    """
    rate = depth * np.abs(u) ** (2 - 2 / depth) * np.abs(s - u) / tau
    t_back = np.asarray(saxe_time(u0, u, s=s, tau=tau, depth=depth))
    ok = np.isfinite(t_back) & (ts > 0)
    drift = np.abs(np.where(ok, t_back, ts) - ts) * rate
    return float(np.max(np.max(drift, axis=-1) / np.max(np.abs(u), axis=-1)))


def matrix_case(key, depth: int):
    """A full-matrix comparison on a teacher with (d_in, d_out) = (5, 4) and a zero singular value.

    The net has sizes (5, 6, 4) (``depth = 2``) or (5, 6, 7, 4) (``depth = 3``); the init is
    :func:`linsolve.init.aligned` (random hidden frames) with strengths below the target, above
    it, on the zero-target mode, and (depth 3) at zero, a saddle that stays. Returns
    ``(rel_error, limits_error)`` of ``saxe_product`` against ``gradient_flow``. The depth-2 net
    is simulated inside the depth-3 layout (one compilation for both): a middle layer
    ``[I_6; 0]`` with rate 1e-300 (its change, ~1e-300 |grad| t, is nil) and the last layer
    padded by a zero column that gets no gradient, so the flow is that of the (5, 6, 4) net.

    Modes started against their target (``u0 s < 0``) are left to the scalar chains: in a matrix
    net the decoupled manifold is unstable there, and rounding errors grow out of it.
    """
    if depth not in (2, 3):
        raise ValueError(f"`depth` must be 2 or 3; got {depth}.")
    kt, ki = jr.split(key)
    task = tasks.teacher(kt, 5, 4, jnp.array([2.5, 1.2, 0.6, 0.0]))
    sizes = (5, 6, 7, 4) if depth == 3 else (5, 6, 4)
    strengths = jnp.array([0.02, 0.0 if depth > 2 else 0.05, 1.5, 0.3])
    params0 = init.aligned(task, sizes, strengths, key=ki)
    U, s, Vt = task.svd()
    tau = 0.8
    t_end = float(window(0.6, 0.05, tau, depth))
    ts = jnp.linspace(0.0, t_end, N_TIMES)
    if depth == 3:
        sim_params, lrs = params0, jnp.full((3,), 1 / tau)
    else:
        W1, W2 = params0
        middle = jnp.concatenate([jnp.eye(6), jnp.zeros((1, 6))])
        sim_params = (W1, middle, jnp.concatenate([W2, jnp.zeros((4, 1))], axis=1))
        lrs = jnp.array([1 / tau, 1e-300, 1 / tau])
    traj = gradient_flow(sim_params, task, ts, lrs=lrs, rtol=1e-12, atol=1e-14, steady_state=False)
    closed = saxe_product(ts, params0, task, tau=tau)
    err = rel_error(closed, traj.product())
    u_end = jnp.where((strengths > 0) & (s > 0), s, 0.0)
    limits = max(
        float(jnp.max(jnp.abs(saxe_product(0.0, params0, task, tau=tau) - traj.product()[0]))),
        float(jnp.max(jnp.abs(saxe_product(jnp.inf, params0, task, tau=tau) - (U * u_end) @ Vt))),
    )
    return err, limits


def check(key, draws: int = 20) -> Check:
    """Saxe modes of depth 2-5 and full matrices vs ``gradient_flow``; tolerance 1e-8.

    ``draws`` random ``(s, u0, tau)`` per depth (a third with flipped signs), each compared over
    a window covering plateau, transition and convergence; plus a depth-3 full-matrix net. The
    invariant is ``t - T(u0 -> u(t))`` (zero along the exact flow), measured in strength units;
    the limits error collects ``t = 0`` and ``t = inf`` of the modes and of the full matrices.
    """
    keys = jr.split(key, len(DEPTHS) + 1)
    cases = [draw_cases(k, draws, depth, signs=True) for k, depth in zip(keys[:-1], DEPTHS)]
    s, u0, tau, ts = (np.concatenate(x) for x in zip(*cases))
    sim = np.asarray(simulate_chains(u0, s, tau, ts, np.repeat(DEPTHS, draws)))
    rel, drift, limits = 0.0, 0.0, 0.0
    for j, depth in enumerate(DEPTHS):
        sl = slice(j * draws, (j + 1) * draws)
        s_, u0_, tau_, ts_ = s[sl], u0[sl], tau[sl], ts[sl]
        col = (s_[:, None], u0_[:, None], tau_[:, None])
        closed = np.asarray(saxe_mode(ts_, s=col[0], u0=col[1], tau=col[2], depth=depth))
        rel = max(rel, max(rel_error(closed[i], sim[sl][i]) for i in range(draws)))
        drift = max(drift, _time_drift(ts_, closed, *col, depth))
        end = np.asarray(saxe_mode(jnp.inf, s=s_, u0=u0_, tau=tau_, depth=depth))
        limits = max(limits, float(np.max(np.abs(closed[:, 0] - u0_))),
                     float(np.max(np.abs(end - np.where(u0_ * s_ > 0, s_, 0.0)))))
    err, lim = matrix_case(keys[-1], 3)
    return Check("saxe", len(s) + 1, max(rel, err), drift, max(limits, lim), 1e-8)
