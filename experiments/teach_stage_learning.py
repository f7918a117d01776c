# %% [markdown]
# # Why small initialisation gives stage-like learning
#
# Setting: inputs are whitened (``Sxx = I``), the teacher map is ``Syx = U diag(s) V^T`` and the
# network is ``P = W2 W1``. Started *aligned* (``P(0) = U diag(u0) V^T``) and *balanced*
# (``W2^T W2 = W1 W1^T``), gradient flow keeps ``P(t) = U diag(u(t)) V^T`` and every mode strength
# follows its own scalar equation
#
#     du/dt = 2 u (s - u).
#
# ``linsolve.exact.saxe_mode`` is its exact solution, ``linsolve.exact.saxe_time`` the exact time
# to go from one strength to another.

# %%
"""Teaching demo: why a small initialisation gives stage-like learning.

A walk through Saxe, McClelland & Ganguli (ICLR 2014, arXiv 1312.6120) in jupytext percent
cells (``# %%``; open it as a notebook with jupytext, or run it as plain Python). A two-layer linear
network learns a teacher with singular values 3, 1, 0.3. Each singular mode of the product learns
on its own, along the logistic curve ``u(t) = s / (1 + (s/u0 - 1) e^{-2 s t})``; from a small
start ``u0`` every mode first waits (exponential growth from ``u0``, rate ``2 s``), then jumps. The
waits grow like ``ln(1/u0) / (2 s)`` while each jump takes ``~ 1/s``: the smaller the init, the
cleaner the staircase.

``figures/teach_stage_learning.png``: (a) the loss from a large (``u0 = 0.1``) and a small
(``u0 = 1e-6``) aligned init, exact (lines) vs gradient descent (markers), and gradient descent
from a small *random* (unaligned) init, which follows the same staircase; (b) the three mode
strengths ``u_alpha(t) / s_alpha`` from the small aligned init.

Command: ``linsolve reproduce teach_stage_learning [--smoke]``
(or ``python experiments/teach_stage_learning.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 11 s, smoke run 10 s.
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()
SINGULAR_VALUES = np.array([3.0, 1.0, 0.3])
SIZES = (4, 8, 4)  # input, hidden, output widths


# %% [markdown]
# ## 1. One mode: a wait, then a jump
#
# Near ``u = 0`` the equation is ``du/dt ~ 2 s u``: the mode grows like ``u0 e^{2 s t}`` and needs
# ``~ ln(s/u0) / (2 s)`` to become visible. Once ``u ~ s/2`` it completes within ``~ 1/s``.
# Stages appear when the *waits* of successive modes differ by more than the *jumps* last.


# %%
def waits_and_jumps(u0: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact time to reach ``s/2`` (the wait) and from ``0.1 s`` to ``0.9 s`` (the jump), per mode."""
    from linsolve import exact

    s = SINGULAR_VALUES
    wait = np.asarray(exact.saxe_time(u0, s / 2, s=s))
    jump = np.asarray(exact.saxe_time(0.1 * s, 0.9 * s, s=s))  # = ln(81) / (2 s), whatever u0
    return wait, jump


# %% [markdown]
# ## 2. The whole network, simulated
#
# ``linsolve.init.aligned`` builds the aligned, balanced start with the given mode strengths;
# ``linsolve.simulate.gradient_descent`` trains the *full* weight matrices (not the modes) with a
# small learning rate, so that ``t = steps x lr`` is close to gradient-flow time. We read the mode
# strengths back as ``u_alpha = U[:, alpha]^T P V[:, alpha]``.


# %%
def train(params0, task, *, lr: float, T: float, records: int):
    """Gradient descent for time ``T``; returns (times, loss, mode strengths (times, r))."""
    import jax.numpy as jnp

    from linsolve import simulate

    steps = int(round(T / lr))
    record_at = np.unique(np.linspace(0, steps, records).round().astype(int))
    traj = simulate.gradient_descent(params0, task, lrs=lr, steps=steps, record_at=record_at)
    U, _, Vt = task.svd()
    u = jnp.einsum("oa,toi,ai->ta", U, traj.product(), Vt)[:, : len(SINGULAR_VALUES)]
    return np.asarray(traj.ts) * lr, np.asarray(traj.loss), np.asarray(u)


# %% [markdown]
# ## 3. Run the walk
#
# Exact losses come from the modes: ``L(t) = 1/2 sum_alpha (s_alpha - u_alpha(t))^2``. A small
# *random* init is not aligned, but its modes only need a short time to align, after which it
# follows the same staircase (Saxe et al. Sec. 2): we simulate one for comparison.


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64: u0 = 1e-6 is resolved exactly
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact, init, tasks

    start = time.perf_counter()
    s = SINGULAR_VALUES
    task = tasks.teacher(jr.PRNGKey(0), SIZES[0], SIZES[-1], jnp.asarray(s))

    # Step 1: waits and jumps for a large and a small start.
    for u0 in (0.1, 1e-6):
        wait, jump = waits_and_jumps(u0)
        print(
            f"u0 = {u0:g}: time to s/2 per mode {np.round(wait, 2)}, jump 0.1s -> 0.9s "
            f"{np.round(jump, 2)}; gap between the last two modes / its jump = "
            f"{(wait[-1] - wait[-2]) / jump[-1]:.2f}"
        )

    # Step 2: simulate both starts (aligned, balanced) and a small random start.
    lr = 0.02 if smoke else 0.002
    T = 1.3 * float(exact.saxe_time(1e-6, s[-1] / 2, s=s[-1]))
    records = 60
    runs = {}
    for u0 in (0.1, 1e-6):
        # The 4 x 4 teacher has a fourth mode with s = 0; it starts (and stays) at strength 0.
        strengths = jnp.asarray([u0, u0, u0, 0.0])
        runs[u0] = train(init.aligned(task, SIZES, strengths), task, lr=lr, T=T, records=records)
    # A random init whose product has entries of about 1e-6 (std 3e-4 per weight, 8 hidden units).
    random0 = init.random(jr.PRNGKey(1), SIZES, 3e-4)
    t_rand, loss_rand, _ = train(random0, task, lr=lr, T=T, records=records)

    # Step 3: compare with the exact solution.
    t_line = np.linspace(0.0, T, 400)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), dpi=100)
    for u0, color in ((0.1, "tab:blue"), (1e-6, "tab:red")):
        t_gd, loss_gd, u_gd = runs[u0]
        u_exact = np.asarray(exact.saxe_mode(t_gd[:, None], s=s, u0=u0))
        loss_exact = lambda u: 0.5 * np.sum((s - u) ** 2, axis=-1)  # noqa: E731
        u_line = np.asarray(exact.saxe_mode(t_line[:, None], s=s, u0=u0))
        print(
            f"u0 = {u0:g}: max |u_GD - u_exact| = {np.max(np.abs(u_gd - u_exact)):.1e} "
            f"(lr = {lr}: O(lr) discretisation error), final loss {loss_gd[-1]:.1e}"
        )
        axes[0].plot(t_line, loss_exact(u_line), color=color, lw=2, label=f"aligned u0 = {u0:g}, exact")
        axes[0].plot(t_gd, loss_gd, "o", color=color, ms=4, mfc="none", label="gradient descent")
    axes[0].plot(t_rand, loss_rand, "x", color="k", ms=5, label="GD, small random init")
    axes[0].set_yscale("log")
    axes[0].set_ylim(1e-6, 1e3)  # room for the legend above the curves
    axes[0].set_xlabel("time t = steps x learning rate")
    axes[0].set_ylabel("loss")
    axes[0].set_title("(a) loss: smooth (large init) vs staircase (small)", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper right")

    t_gd, _, u_gd = runs[1e-6]
    u_line = np.asarray(exact.saxe_mode(t_line[:, None], s=s, u0=1e-6))
    for a, color in enumerate(plt.cm.viridis(np.linspace(0.05, 0.8, len(s)))):
        axes[1].plot(t_line, u_line[:, a] / s[a], color=color, lw=2, label=f"s = {s[a]:g}, exact")
        axes[1].plot(t_gd, u_gd[:, a] / s[a], "o", color=color, ms=4, mfc="none")
    axes[1].plot([], [], "o", color="gray", mfc="none", label="gradient descent")
    axes[1].set_xlabel("time t = steps x learning rate")
    axes[1].set_ylabel("mode strength u / s")
    axes[1].set_title("(b) modes from u0 = 1e-6: learned one by one", fontsize=9)
    axes[1].legend(fontsize=7, loc="center right")
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "teach_stage_learning.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figure: teach_stage_learning.png ({seconds:.1f} s)")
    return {"runs": runs, "seconds": seconds}


# %%
if __name__ == "__main__":
    script_main(main, __doc__)
