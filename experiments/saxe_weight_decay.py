"""Saxe modes with anisotropic inputs and weight decay: learning curves and the bistable basins of depth.

A linear network ``W_L ... W_1`` on a task whose input covariance shares its eigenvectors with the
teacher, ``Sxx = V diag(lam) V^T`` and ``Syx = U diag(s) V^T`` (Saxe, McClelland & Ganguli 2014,
arXiv 1312.6120; Saxe et al. 2019, PNAS 116:11537), trained by gradient flow on the loss plus
``(gamma/2) sum_l ||W_l||^2``, keeps the teacher's singular vectors when started balanced and
aligned. Each mode strength obeys

    du/dt = L [ |u|^(2 - 2/L) (s - lam u) - gamma u ]

(``exact.saxe_mode(t, s=, u0=, depth=, variance=lam, weight_decay=gamma)``).

* ``figures/saxe_weight_decay_curves.png``: depth 2 and 3 on a teacher with singular values
  3, 2, 1 and input variances 0.5, 2, 1, with decay 0.2: the exact modes (lines) against
  gradient flow of the full weight matrices (dots). At depth 2 each mode tends to
  ``(s - gamma)/lam``; at depth 3 to the stable root of ``u^(1/3) (s - lam u) = gamma``.
* ``figures/saxe_weight_decay_basins.png``: depth 3, ``s = lam = 1``: the strength reached at
  ``t = T`` by gradient flow of the full matrices over initial strength ``u0`` x decay ``gamma``
  (colours), against the theory: below the separatrix ``u_-(gamma)`` (the unstable root) a mode
  decays to 0, above it it is learned; above ``gamma_c = (3/4) 4^(-1/3)`` nothing is learned
  (Ziyin et al. 2022, arXiv 2202.04777, on weight decay and depth).

Command: ``linsolve reproduce saxe_weight_decay [--smoke]`` (or ``python
experiments/saxe_weight_decay.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"

S = (3.0, 2.0, 1.0)
LAM = (0.5, 2.0, 1.0)
GAMMA = 0.2
SIZE = 3


def aligned_task(s, lam, key=0):
    """``Sxx = V diag(lam) V^T``, ``Syx = U diag(s) V^T`` with random orthogonal U, V (float64)."""
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import tasks

    k1, k2 = jr.split(jr.PRNGKey(key))
    U, _ = jnp.linalg.qr(jr.normal(k1, (len(s), len(s))))
    V, _ = jnp.linalg.qr(jr.normal(k2, (len(s), len(s))))
    Sxx = (V * jnp.asarray(lam)) @ V.T
    Syx = (U * jnp.asarray(s)) @ V.T
    Syy = Syx @ jnp.linalg.solve(Sxx, Syx.T) + 0.1 * jnp.eye(len(s))
    return tasks.Task(Sxx, Syx, Syy), U, V


def balanced_aligned(U, V, u0, depth):
    """Balanced weights with end-to-end map ``U diag(u0) V^T``: ``W_1 = diag(u0^(1/L)) V^T``, ..."""
    import jax.numpy as jnp

    a = jnp.asarray(u0) ** (1.0 / depth)
    layers = [jnp.diag(a) @ V.T] + [jnp.diag(a) for _ in range(depth - 2)] + [U @ jnp.diag(a)]
    return tuple(layers)


def strengths(traj, U, V):
    import jax.numpy as jnp

    return np.asarray(jnp.einsum("oa,toi,ia->ta", U, traj.product(), V))


def separatrix(gamma, s=1.0, lam=1.0):
    """Unstable nonzero fixed point of depth 3: the smaller root x of ``x (s - lam x^3) = gamma``, cubed."""
    out = np.full(np.shape(gamma), np.nan)
    for i, g in enumerate(np.ravel(gamma)):
        roots = np.roots([-lam, 0.0, 0.0, s, -g])
        real = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
        positive = real[real > 0]
        if len(positive) == 2:
            out.flat[i] = positive[0] ** 3
    return out


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact, simulate

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    s, lam = np.array(S), np.array(LAM)
    task, U, V = aligned_task(s, lam)

    # (1) Learning curves at depth 2 and 3 with decay: exact lines, full-matrix flow dots.
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.6), dpi=100, sharey=True)
    colors = plt.cm.viridis(np.linspace(0.05, 0.75, len(s)))
    curve_error = {}
    for ax, depth, u0, T in zip(axes, (2, 3), (1e-3, 0.05), (10.0, 6.0)):
        ts = np.linspace(0.0, T, 25 if smoke else 49)
        params0 = balanced_aligned(U, V, np.full(len(s), u0), depth)
        traj = simulate.gradient_flow(params0, task, jnp.asarray(ts), weight_decay=GAMMA)
        u_sim = strengths(traj, U, V)
        t_line = np.linspace(0.0, T, 300)
        kw = dict(s=s, u0=u0, depth=depth, variance=lam, weight_decay=GAMMA)
        u_line = np.asarray(exact.saxe_mode(t_line[:, None], **kw))
        u_exact = np.asarray(exact.saxe_mode(ts[:, None], **kw))
        curve_error[depth] = float(np.max(np.abs(u_sim - u_exact)))
        for a, color in enumerate(colors):
            ax.plot(t_line, u_line[:, a], color=color, lw=1.6, label=f"s = {s[a]:g}, lam = {lam[a]:g}")
            ax.plot(ts, u_sim[:, a], "o", color=color, ms=3.5, mfc="none")
        ax.set_title(f"depth {depth}, u0 = {u0:g}, weight decay {GAMMA:g}", fontsize=10)
        ax.set_xlabel("time t")
        ax.grid(alpha=0.3, lw=0.5)
        print(f"curves depth {depth}: max |u_flow - u_exact| = {curve_error[depth]:.1e}")
    axes[0].set_ylabel("mode strength u")
    axes[0].plot([], [], "o", color="gray", mfc="none", label="gradient flow")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(FIGURES / "saxe_weight_decay_curves.png")
    plt.close(fig)

    # (2) Depth 3 basins: flow of the full matrices over (u0, gamma), one compilation (vmap).
    one, U1, V1 = aligned_task(np.array([1.0, 0.0]), np.array([1.0, 1.0]), key=2)
    n = 8 if smoke else 16
    u0s, gammas = np.geomspace(1e-3, 0.8, n), np.linspace(0.0, 0.6, n)
    T = 60.0
    G, U0 = np.meshgrid(gammas, u0s)

    def final(u0, gamma):
        params0 = balanced_aligned(U1, V1, jnp.stack([u0, jnp.zeros_like(u0)]), 3)
        traj = simulate.gradient_flow(params0, one, jnp.array([0.0, T]), weight_decay=gamma)
        return jnp.einsum("oi,o,i->", traj.product()[-1], U1[:, 0], V1[:, 0]), traj.status

    u_T, status = jax.vmap(final)(jnp.asarray(U0.ravel()), jnp.asarray(G.ravel()))
    u_T, status = np.asarray(u_T).reshape(U0.shape), np.asarray(status).reshape(U0.shape)
    u_exact = np.asarray(exact.saxe_mode(T, s=1.0, u0=U0, depth=3, variance=1.0, weight_decay=G))
    basin_error = float(np.max(np.abs(u_T - u_exact)))
    gamma_c = 0.75 * 4 ** (-1 / 3)
    g_line = np.linspace(1e-4, gamma_c - 1e-6, 300)
    fig, ax = plt.subplots(figsize=(5.4, 4.0), dpi=100)
    mesh = ax.pcolormesh(gammas, u0s, u_T, shading="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(mesh, ax=ax, label=f"mode strength at t = {T:g} (gradient flow)")
    ax.plot(g_line, separatrix(g_line), color="white", lw=2.0, label="separatrix u_-(gamma) (theory)")
    ax.axvline(gamma_c, color="white", ls="--", lw=1.5, label="gamma_c: no learned state beyond")
    ax.set_yscale("log")
    ax.set_ylim(u0s.min() / 1.3, u0s.max() * 1.3)
    ax.set_xlabel("weight decay gamma")
    ax.set_ylabel("initial strength u0")
    ax.set_title("depth 3, s = 1: learned above the separatrix, decayed below", fontsize=9)
    ax.legend(fontsize=7, loc="lower right", facecolor="0.35", labelcolor="white", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(FIGURES / "saxe_weight_decay_basins.png")
    plt.close(fig)
    converged = int(np.sum(status == simulate.CONVERGED))
    print(f"basins: {converged}/{status.size} converged; max |u_flow(T) - u_exact(T)| = {basin_error:.1e}")
    seconds = time.perf_counter() - start
    print(f"figures: saxe_weight_decay_curves.png, saxe_weight_decay_basins.png ({seconds:.1f} s)")
    return {"curve_error": curve_error, "basin_error": basin_error, "seconds": seconds}


if __name__ == "__main__":
    script_main(main, __doc__)
