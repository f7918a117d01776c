"""Theorem check for the Saxe balanced-mode family.

The closed forms :func:`~linsolve.exact._saxe.saxe_mode` and ``saxe_product`` are compared with
:func:`linsolve.simulate.gradient_flow` on the original parameter-space ODE: an explicit chain of
``depth`` scalar weights (balanced: equal magnitudes, the sign of ``u0`` on the first weight), and a
full-matrix net from :func:`linsolve.init.aligned`; and (:func:`decay_cases`) full-matrix nets of
depth 2-5 on tasks with aligned anisotropic inputs (``Sxx = V diag(lam) V^T``) under weight decay,
in both basins of the bistable depth >= 3 case, against ``gradient_flow(weight_decay=)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import init, tasks
from ..exact._saxe import saxe_mode, saxe_time
from ..exact._saxe_matrix import saxe_product
from ..simulate._common import CONVERGED
from ..simulate._flow import gradient_flow
from ._core import Check, rel_error

__all__ = ["check", "decay_cases", "decay_draw", "draw_cases", "fixed_points", "matrix_case",
           "simulate_chains", "window"]

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


# ---------------------------------------------------------------------------------------------
# Anisotropic inputs and weight decay: full matrices, depths 2-5 in one compiled layout.

DECAY_DEPTHS = (2, 3, 4, 5)
_D_IN, _D_OUT, _WIDTH, _DTOP = 4, 3, 4, 5


def fixed_points(s, lam, gamma, depth: int):
    """``(x_-, x_+)`` in ``u = x^L``: the positive roots of ``x^{L-2} (s - lam x^L) = gamma``
    (``L >= 3``, ``gamma > 0``; NaN where there are none), by SciPy's ``brentq`` (independent of
    the closed form).
    """
    import scipy.optimize

    d = depth
    q = lambda x: x ** (d - 2) * (s - lam * x**d) - gamma
    if s <= 0 or d < 3 or gamma <= 0:
        return math.nan, math.nan
    xs = ((d - 2) * s / ((2 * d - 2) * lam)) ** (1 / d)
    if q(xs) <= 0:
        return math.nan, math.nan
    top = (s / lam) ** (1 / d)
    lo = scipy.optimize.brentq(q, 0.0, xs, xtol=1e-300, rtol=1e-15, maxiter=500)
    hi = scipy.optimize.brentq(q, xs, top, xtol=1e-300, rtol=1e-15, maxiter=500)
    return lo, hi


def decay_draw(rng, depth: int, index: int = 0):
    """A random aligned anisotropic task and balanced aligned init, (d_in, d_out) = (4, 3).

    Random orthogonal ``U`` (3, 3), ``V`` (4, 4); ``Sxx = V diag(lam) V^T``, ``lam`` uniform in
    [0.3, 3]; ``Syx = U diag(s) V[:, :3]^T``, ``s`` in [0.5, 2.5] (the last 0 on every third draw);
    ``gamma`` uniform in [0, 0.5]; ``tau`` in [0.5, 2]. For depth >= 3 the modes with two fixed
    points start below the separatrix ``x_-^L`` (decay to 0) on even draws, and between it and
    ``x_+^L`` or above ``x_+^L`` on odd draws. (Mixing the basins in one net, e.g. a strong mode
    off and a weak one on, is a saddle of the full-matrix flow: rounding errors rotate the learned
    mode onto the stronger one, so the decoupled solution is not what a simulation follows.)
    Returns ``(task, params0, tau, gamma, u_inf)`` with the independent limits ``u_inf`` (in
    ``task.svd()`` order).
    """
    U = np.linalg.qr(rng.normal(size=(_D_OUT, _D_OUT)))[0]
    V = np.linalg.qr(rng.normal(size=(_D_IN, _D_IN)))[0]
    lam_all = rng.uniform(0.3, 3.0, _D_IN)
    s = np.sort(rng.uniform(0.5, 2.5, _D_OUT))[::-1]
    if index % 3 == 2:  # a zero singular value; Sxx isotropic on the null space of Syx
        s[-1], lam_all[-1] = 0.0, lam_all[-2]
    gamma, tau = rng.uniform(0.0, 0.5), float(np.exp(rng.uniform(math.log(0.5), math.log(2.0))))
    lam = lam_all[:_D_OUT]
    u0, u_inf = np.empty(_D_OUT), np.empty(_D_OUT)
    for a in range(_D_OUT):
        lo, hi = fixed_points(s[a], lam[a], gamma, depth)
        if depth >= 3 and np.isfinite(lo):
            choice = 0 if index % 2 == 0 else 1 + a % 2
            u0[a] = (0.6 * lo**depth, 0.5 * (lo**depth + hi**depth), 1.5 * hi**depth)[choice]
            u_inf[a] = 0.0 if choice == 0 else hi**depth
        else:
            u0[a] = max(s[a], 0.3) / lam[a] * math.exp(rng.uniform(math.log(0.05), 0.0))
            target = (s[a] - gamma) / lam[a] if depth == 2 else 0.0
            u_inf[a] = {1: s[a] / (lam[a] + gamma), 2: max(target, 0.0)}.get(depth, 0.0)
    Sxx = V @ np.diag(lam_all) @ V.T
    Syx = U @ np.diag(s) @ V[:, :_D_OUT].T
    task = tasks.Task(jnp.asarray(Sxx), jnp.asarray(Syx), jnp.asarray(Syx @ Syx.T + np.eye(_D_OUT)))
    order = np.argsort(-np.asarray(task.svd()[1]), kind="stable")  # already descending
    sizes = (_D_IN,) + (_WIDTH,) * (depth - 1) + (_D_OUT,)
    params0 = init.aligned(task, sizes, jnp.asarray(u0[order]), key=jr.PRNGKey(int(rng.integers(1 << 30))))
    return task, params0, tau, gamma, u_inf[order]


def _embed(params0, tau):
    """Depth-L net inside the depth-5 layout: identity layers frozen (rate 1e-300) before the last."""
    L = len(params0)
    eye = jnp.eye(_WIDTH)
    layers = params0[:-1] + (eye,) * (_DTOP - L) + params0[-1:]
    lrs = jnp.array([1 / tau] * (L - 1) + [1e-300] * (_DTOP - L) + [1 / tau])
    return layers, lrs


@jax.jit
def _decay_flows(params, task, ts, lrs, gamma):
    def one(p, tk, t, lr, g):
        traj = gradient_flow(p, tk, t, lrs=lr, weight_decay=g, rtol=1e-12, atol=1e-14,
                             steady_state=False)
        return traj.product(), traj.status != CONVERGED
    return jax.vmap(one)(params, task, ts, lrs, gamma)


def decay_cases(key, per_depth: int = 2):
    """Closed-form ``saxe_product`` with variance and decay vs ``gradient_flow(weight_decay=)``.

    ``per_depth`` draws (:func:`decay_draw`, index ``i + depth``, so the basins alternate between
    depths and, for ``per_depth >= 2``, within each) for each depth 2-5, all integrated in one vmapped,
    once-compiled call (depth-5 layout, frozen identity layers). Each window covers 99.9% of the
    slowest mode's way to its limit, or ``30 tau`` (slow exponential decay when gamma is small).
    Returns ``(rel_error, limits_error, n_cases)``; the limits error compares ``t = 0`` with
    ``params0`` and ``t = inf`` with the limits from
    :func:`fixed_points`.
    """
    from ..exact._saxe_matrix import saxe_decomposition

    rng = np.random.default_rng(int(jr.randint(key, (), 0, 2**31 - 1)))
    cases = [(depth, decay_draw(rng, depth, i + depth)) for depth in DECAY_DEPTHS
             for i in range(per_depth)]
    n_t = 41
    all_ts, closed, limits = [], [], 0.0
    for depth, (task, params0, tau, gamma, u_inf) in cases:
        _, s, _, u0 = saxe_decomposition(params0, task)
        lam = np.einsum("ri,ij,rj->r", *(np.asarray(x) for x in (task.svd()[2], task.Sxx, task.svd()[2])))
        ends = np.asarray(saxe_time(u0, u0 + 0.999 * (u_inf - u0), s=s, tau=tau, depth=depth,
                                    variance=lam, weight_decay=gamma))
        t_end = min(1.2 * float(np.max(ends[np.isfinite(ends)], initial=1.0)), 30 * tau)
        all_ts.append(np.linspace(0.0, t_end, n_t))
    for (depth, (task, params0, tau, gamma, u_inf)), ts in zip(cases, all_ts):
        closed.append(np.asarray(saxe_product(ts, params0, task, tau=tau, weight_decay=gamma)))
        U, _, Vt = task.svd()
        lim = np.asarray(saxe_product(np.array([0.0, np.inf]), params0, task, tau=tau, weight_decay=gamma))
        P0 = params0[0]
        for W in params0[1:]:
            P0 = W @ P0
        limits = max(limits, float(np.max(np.abs(lim[0] - np.asarray(P0)))),
                     float(np.max(np.abs(lim[1] - np.asarray((U * u_inf) @ Vt)))))
    emb = [_embed(c[1][1], c[1][2]) for c in cases]
    stack = lambda xs: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *xs)
    sim, bad = _decay_flows(stack([e[0] for e in emb]), stack([c[1][0] for c in cases]),
                            jnp.asarray(np.stack(all_ts)), jnp.stack([e[1] for e in emb]),
                            jnp.asarray([c[1][3] for c in cases]))
    if bool(jnp.any(bad)):
        raise RuntimeError("gradient_flow failed on a weight-decay case; the comparison is invalid.")
    sim = np.asarray(sim)
    rel = max(rel_error(c, sim[i]) for i, c in enumerate(closed))
    return rel, limits, len(cases)


def check(key, draws: int = 20, *, decay: bool = True) -> Check:
    """Saxe modes of depth 2-5 and full matrices vs ``gradient_flow``; tolerance 1e-8.

    ``draws`` random ``(s, u0, tau)`` per depth (a third with flipped signs), each compared over
    a window covering plateau, transition and convergence; plus a depth-3 full-matrix net. The
    invariant is ``t - T(u0 -> u(t))`` (zero along the exact flow), measured in strength units;
    the limits error collects ``t = 0`` and ``t = inf`` of the modes and of the full matrices.
    With ``decay`` (default) also :func:`decay_cases`: random input variances in [0.3, 3] and
    weight decay in [0, 0.5], depths 2-5, both basins of the bistable case, full matrices vs
    ``gradient_flow(weight_decay=)``.
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
    derr, dlim, n_decay = decay_cases(jr.fold_in(key, 7)) if decay else (0.0, 0.0, 0)
    return Check("saxe", len(s) + 1 + n_decay, max(rel, err, derr), drift,
                 max(limits, lim, dlim), 1e-8)
