# %% [markdown]
# # Saxe modes: stage-like learning and the effect of depth
#
# Setting (Saxe, McClelland & Ganguli, ICLR 2014, arXiv 1312.6120): whitened inputs, a teacher map
# `Syx = U diag(s) V^T` and a deep linear network `P = W_L ... W_1`, started *balanced* and
# *aligned* with the teacher. Gradient flow then keeps the teacher's singular vectors, and each mode strength
# `u_a = U[:, a]^T P V[:, a]` follows its own scalar equation
#
#     du/dt = L |u|^(2 - 2/L) (s - u).
#
# For two layers (L = 2) it is the logistic curve `u(t) = s / (1 + (s/u0 - 1) e^(-2 s t))`: a small
# mode waits about `ln(s/u0) / (2 s)`, then jumps to `s`. `linsolve.exact.saxe_mode` is the exact
# solution at any depth and `linsolve.exact.saxe_time` the exact time between two strengths; this
# notebook checks both against gradient flow of the full weight matrices
# (`linsolve.simulate.gradient_flow`).

# %%
"""Stage-like learning and deep vs shallow learning times of balanced, decoupled linear networks.

Follows Saxe, McClelland & Ganguli (ICLR 2014, arXiv 1312.6120). A linear network ``W_L ... W_1``
with whitened inputs, started balanced and aligned with the teacher ``Syx = U diag(s) V^T``, keeps
the teacher's singular vectors; each mode strength ``u_alpha = u_alpha^T P v_alpha`` obeys
``du/dt = L |u|^{2 - 2/L} (s - u)`` (``exact.saxe_mode``, ``exact.saxe_time``).

* ``figures/saxe_modes_stages.png``: a two-layer net (6 -> 6 -> 6) learns a teacher with singular
  values 3, 2, 1, 0.5 from a small aligned init (``u0 = 1e-3``): the exact ``saxe_mode`` (lines)
  against gradient flow of the full weight matrices (dots). Strong modes are learned first, each
  after a plateau of length ``~ ln(s/u0) / (2 s)``.
* ``figures/saxe_modes_depth.png``: the time to reach ``s/2`` for depth L = 2, 3, 4 weight
  matrices, ``exact.saxe_time`` (lines) against gradient flow (markers): (a) against the singular
  value at ``u0 = 1e-3`` (``t ~ 1/s`` for L = 2, ``~ s^{-(2 - 2/L)}`` deeper); (b) against the initial
  strength at ``s = 1``: logarithmic in ``1/u0`` for the shallow net, a power law
  ``u0^{-(L-2)/L}`` for deep ones.

Command: ``linsolve reproduce saxe_modes [--smoke]`` (or ``python experiments/saxe_modes.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 21 s, smoke run 14 s.
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()

STAGE_S = (3.0, 2.0, 1.0, 0.5)
SIZE = 6  # input, hidden and output width
U0 = 1e-3


# %% [markdown]
# ## Reading the modes off a simulation
#
# The simulated product `P(t) = W_L(t) ... W_1(t)` is projected on the teacher's singular vectors:
# `u_a(t) = U[:, a]^T P(t) V[:, a]`.


# %%
def mode_strengths(traj, task, r):
    """Strengths ``u_alpha(t) = U[:, alpha]^T P(t) V[:, alpha]`` of the first `r` teacher modes."""
    import jax.numpy as jnp

    U, _, Vt = task.svd()
    return np.asarray(jnp.einsum("oa,toi,ai->ta", U, traj.product(), Vt)[:, :r])


# %% [markdown]
# ## Learning times from gradient flow
#
# The time for a mode to go from `u0` to `s/2` is bracketed on the simulated trajectory (first on a
# log-spaced grid, then on finer grids inside each bracket) and compared with `saxe_time`. The
# theory predicts, at fixed `u0`, `t ~ 1/s` for L = 2 and `t ~ s^-(2 - 2/L)` for deeper nets; at fixed `s`,
# a logarithm `ln(1/u0)` for L = 2 and a power law `u0^-((L - 2)/L)` for L >= 3.


# %%
def half_times(depth, s, u0, theory, per_mode, passes):
    """Gradient-flow times for every mode to go from `u0` to ``s/2`` at `depth` (`theory`: the
    exact times, used only to choose the first window).

    The simulated crossing is bracketed, not predicted: a first gradient-flow run records on a
    log-spaced grid shared by all modes, each later run on `per_mode` equally spaced times inside
    every mode's bracket (deep nets jump from a long plateau to ``s`` within ~1 % of the time), and
    the last bracket is interpolated linearly in ``logit(u/s)``.
    """
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import init, simulate, tasks

    order = np.argsort(-s, kind="stable")  # task.svd() lists the modes by decreasing s
    s, u0 = s[order], u0[order]
    n = len(s)
    task = tasks.teacher(jr.PRNGKey(1), SIZE, SIZE, jnp.asarray(s))
    # Modes beyond len(s) have s = 0; they start at U0 too and decay.
    strengths = np.concatenate([u0, np.full(SIZE - n, U0)])
    params0 = init.aligned(task, (SIZE,) * (depth + 1), jnp.asarray(strengths))
    lo, hi = np.full(n, theory.min() / 4), np.full(n, theory.max() * 4)
    for p in range(passes):
        spacing = np.geomspace if p == 0 else np.linspace
        grids = np.stack([spacing(a, b, per_mode) for a, b in zip(lo, hi)])  # (n, per_mode)
        flat = grids.ravel()
        sort = np.argsort(flat, kind="stable")
        ts = np.concatenate([[0.0], flat[sort]])
        u_sorted = mode_strengths(simulate.gradient_flow(params0, task, jnp.asarray(ts)), task, n)[1:]
        u = np.empty_like(u_sorted)
        u[sort] = u_sorted
        u = u.reshape(n, per_mode, n)
        frac = np.empty(n)
        for a in range(n):
            j = max(int(np.argmax(u[a, :, a] >= s[a] / 2)), 1)
            lo[a], hi[a] = grids[a, j - 1], grids[a, j]
            pair = u[a, j - 1 : j + 1, a]
            with np.errstate(divide="ignore", invalid="ignore"):  # u = s exactly far past s/2
                logit = np.log(pair / (s[a] - pair))
            frac[a] = np.clip(-logit[0] / (logit[1] - logit[0]), 0.0, 1.0)
    simulated = lo + frac * (hi - lo)
    return simulated[np.argsort(order)]


# %% [markdown]
# ## The two figures
#
# * `saxe_modes_depth.png`: the time to reach `s/2` against the singular value (a) and against the
#   initial strength (b), for depths L = 2, 3, 4: `saxe_time` (lines), gradient flow (circles).
# * `saxe_modes_stages.png`: a two-layer 6 -> 6 -> 6 net learns singular values 3, 2, 1, 0.5 from
#   `u0 = 1e-3`: strong modes first, each after its plateau; `saxe_mode` (lines), gradient flow
#   (dots).
#
# The smoke setting uses depths 2, 3 and fewer points (it only exercises the code).


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact, init, simulate, tasks
    from linsolve.plot import mode_learning

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    depths = (2, 3) if smoke else (2, 3, 4)
    s_axis = np.geomspace(0.5, 4.0, 4 if smoke else 6)
    u0_axis = np.geomspace(1e-6, 1e-1, 4 if smoke else 6)
    per_mode, passes = 20, 2 if smoke else 4
    n_times = len(s_axis) * per_mode + 1  # every gradient-flow run has this many records

    # Learning times against the singular value (fixed u0) and the initial strength (s = 1).
    s_line, u0_line = np.geomspace(0.45, 4.4, 80), np.geomspace(5e-7, 0.2, 80)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.8), dpi=100)
    colors = plt.cm.viridis(np.linspace(0.05, 0.8, len(depths)))
    deviations, half_learned = {}, {}
    for depth, color in zip(depths, colors):
        # All exact times of this depth in one call (one compilation): lines, then markers.
        s_all = np.concatenate([s_line, s_axis, np.ones(len(u0_line) + len(u0_axis))])
        u0_all = np.concatenate([np.full(len(s_line) + len(s_axis), U0), u0_line, u0_axis])
        t_all = np.asarray(exact.saxe_time(u0_all, s_all / 2, s=s_all, depth=depth))
        line_s, th_s, line_u, th_u = np.split(t_all, np.cumsum([len(s_line), len(s_axis), len(u0_line)]))
        half_learned[depth] = th_s
        sim_s = half_times(depth, s_axis, np.full_like(s_axis, U0), th_s, per_mode, passes)
        sim_u = half_times(depth, np.ones_like(u0_axis), u0_axis, th_u, per_mode, passes)
        axes[0].plot(s_line, line_s, color=color, lw=1.8, label=f"L = {depth}")
        axes[0].plot(s_axis, sim_s, "o", color=color, ms=6, mfc="none", mew=1.5)
        axes[1].plot(u0_line, line_u, color=color, lw=1.8, label=f"L = {depth}")
        axes[1].plot(u0_axis, sim_u, "o", color=color, ms=6, mfc="none", mew=1.5)
        both = np.concatenate([np.abs(sim_s / th_s - 1), np.abs(sim_u / th_u - 1)])
        deviations[depth] = float(both.max())
        print(
            f"depth {depth}: t_1/2 over s = {s_axis.min():.2g}..{s_axis.max():.2g}: "
            f"{th_s.max():.3g}..{th_s.min():.3g}; over u0 = 1e-6..1e-1 at s = 1: "
            f"{th_u.max():.3g}..{th_u.min():.3g}; max |t_flow / t_exact - 1| = {deviations[depth]:.1e}"
        )
    axes[0].set_xlabel("singular value s")
    axes[0].set_title(f"(a) learning time vs s (u0 = {U0:g})", fontsize=10)
    axes[1].set_xlabel("initial mode strength u0")
    axes[1].set_title("(b) learning time vs init (s = 1)", fontsize=10)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("time to reach s/2")
        ax.grid(alpha=0.3, which="both", lw=0.5)
    axes[0].set_xticks([0.5, 1, 2, 4], ["0.5", "1", "2", "4"])
    axes[0].set_xticks([], minor=True)
    axes[0].plot([], [], "o", color="gray", mfc="none", label="gradient flow")
    axes[0].plot([], [], "-", color="gray", label="saxe_time (exact)")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(FIGURES / "saxe_modes_depth.png")
    plt.close(fig)

    # Stage-like learning at depth 2 (same shapes as the depth sweep: one compilation).
    s = np.array(STAGE_S)
    task = tasks.teacher(jr.PRNGKey(0), SIZE, SIZE, jnp.asarray(s))
    T = 2.0 * float(half_learned[2][0])  # twice the exact time for s = 0.5 to reach s/2
    ts = np.linspace(0.0, T, n_times)
    traj = simulate.gradient_flow(init.aligned(task, (SIZE,) * 3, U0), task, jnp.asarray(ts))
    u_sim = mode_strengths(traj, task, len(s))
    t_line = np.linspace(0.0, T, 400)
    u_both = np.asarray(exact.saxe_mode(np.concatenate([t_line, ts])[:, None], s=s, u0=U0))
    u_line, u_exact = u_both[: len(t_line)], u_both[len(t_line) :]
    stage_error = float(np.max(np.abs(u_sim - u_exact)))
    every = max(1, n_times // 40)
    fig = mode_learning(
        ts[::every],
        u_sim[::every],
        t_line,
        u_line,
        s,
        title="2 layers, u0 = 1e-3: saxe_mode (lines) vs gradient flow (dots)",
    )
    ax = fig.axes[0]
    ax.set_xlabel("time t (gradient flow, unit learning rate)")
    ax.set_ylim(-0.1, 4.0)  # room for the legend above the data
    ax.plot([], [], "o", color="gray", ms=3, label="gradient flow")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.savefig(FIGURES / "saxe_modes_stages.png", dpi=100)
    plt.close(fig)
    print(f"stages: max |u_flow - u_exact| = {stage_error:.1e} over {len(s)} modes, t in [0, {T:.1f}]")
    seconds = time.perf_counter() - start
    print(f"figures: saxe_modes_stages.png, saxe_modes_depth.png ({seconds:.1f} s)")
    return {"stage_error": stage_error, "time_deviation": deviations, "seconds": seconds}


# %% [markdown]
# ## Run
#
# `script_main` runs `main(smoke)`: the full setting by default, the small one with `--smoke` on the
# command line or `LINSOLVE_SMOKE=1` in the environment (the notebook tests and the default docs
# build use it). Figures go to the repository's `figures/`, or to `$LINSOLVE_FIGURES`; in a notebook
# they are also shown below.


# %%
if __name__ == "__main__":
    script_main(main, __doc__)
