# %% [markdown]
# # Lazy vs rich learning, tuned by the balance lambda
#
# Setting (Dominé, Anguita, Proca, Braun, Kunin, Mediano & Saxe, ICLR 2025, arXiv 2409.14623): a
# two-layer linear network `P = W2 W1` (3 -> 3 -> 3) learns a whitened teacher with singular values
# 3, 2, 1 from a small *lambda-balanced* initialisation
#
#     W2^T W2 - W1 W1^T = lambda I,
#
# a quantity that gradient flow conserves. The flow then has a closed form (a matrix Riccati
# equation, after Fukumizu 1998 and Braun et al. 2022): `linsolve.exact.lambda_balanced` gives the
# network function, the representations `W1^T W1` (input) and `W2 W2^T` (output) and the NTK at all
# times. Small `|lambda|` is the *rich* regime (sigmoidal loss, the kernel moves); `|lambda| >> s`
# is *lazy* (exponential loss, the kernel stays put); the sign of lambda picks which layer stays
# static.

# %%
"""Lazy vs rich learning in two-layer linear networks, tuned by the balance lambda.

Follows Dominé, Anguita, Proca, Braun, Kunin, Mediano & Saxe (ICLR 2025, arXiv 2409.14623), on the
matrix Riccati solution of Fukumizu (1998) and Braun et al. (2022). A 3 -> 3 -> 3 linear network
learns a whitened teacher (singular values 3, 2, 1) from a small lambda-balanced initialisation
``W2^T W2 - W1 W1^T = lambda I`` (``init.lambda_balanced``, scale 0.1); ``exact.lambda_balanced``
gives the network function, the representations ``W1^T W1`` (input) and ``W2 W2^T`` (output) and
the NTK in closed form at all times, beside ``simulate.gradient_flow`` of the same weights.

``figures/lazy_rich_lambda.png``: (a) loss curves for lambda = 0, 1, 8 (sigmoidal rich vs
exponential lazy); (b) relative NTK change ``|K_T - K_0| / |K_0|`` against lambda: large (rich) at
lambda = 0, small (lazy) for ``|lambda| >> s``; (c) relative change of the input and output
representations: the sign of lambda picks which layer stays static (lambda < 0: W1 large, its
``W1^T W1`` barely moves; lambda > 0: ``W2 W2^T`` barely moves); (d) time for the loss to fall to
1 % of its initial value. Exact solution (lines, 41 lambdas) against gradient flow (markers).

The random init keeps ``det(W2 W1)`` of the sign of ``det(Syx)`` (the seed is chosen so), so that
no run has to cross the ``det P = 0`` saddle of square layers.

Command: ``linsolve reproduce lazy_rich_lambda [--smoke]`` (or ``python experiments/lazy_rich_lambda.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 13 s, smoke run 13 s.
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()

SINGULAR_VALUES = (3.0, 2.0, 1.0)
SIZES = (3, 3, 3)
SCALE = 0.1
CURVES = (0.0, 1.0, 8.0)  # lambdas of panel (a)


# %% [markdown]
# ## Helpers: the training time, and an init with the task's orientation
#
# The horizon is 16 time constants of the slowest mode plus the small-init plateau. The random init
# is redrawn until `det(W2 W1)` has the sign of `det(Syx)`, so that no run has to cross the
# `det P = 0` saddle of square layers.


# %%
def horizon(lam: float) -> float:
    """Training time: 16 time constants of the slowest mode plus the small-init plateau."""
    s_min = min(SINGULAR_VALUES)
    return 16 * (1 + np.log1p(s_min / (abs(lam) + SCALE**2))) / (abs(lam) + 2 * s_min)


def relative_change(X):
    """``|X_T - X_0|_F / |X_0|_F`` for a (T, ...) trajectory."""
    return float(np.linalg.norm(X[-1] - X[0]) / np.linalg.norm(X[0]))


def oriented_init(task, lam):
    """``init.lambda_balanced`` from the first seed whose ``det(W2 W1)`` has the sign of ``det(Syx)``
    (the sign does not depend on lambda for a given seed: square layers, same Gaussian draw)."""
    import jax.random as jr

    from linsolve import init

    target = np.sign(np.linalg.det(np.asarray(task.Syx)))
    for seed in range(1, 20):
        W1, W2 = init.lambda_balanced(jr.PRNGKey(seed), SIZES, lam, SCALE)
        if np.sign(np.linalg.det(np.asarray(W2 @ W1))) == target:
            return W1, W2
    raise RuntimeError("no seed with the task's orientation")  # pragma: no cover


# %% [markdown]
# ## Order parameters at one lambda
#
# Relative changes `|X_T - X_0|_F / |X_0|_F` of the NTK and of the two representations, and the time
# for the loss to fall to 1 % of its initial value: exact, and (for the markers) from gradient flow
# of the same weights, with the largest relative deviation between the two.


# %%
def measures(lam, task, n_times, simulate_too):
    """Exact (and optionally gradient-flow) order parameters at one lambda."""
    import jax
    import jax.numpy as jnp

    from linsolve import exact, models, simulate
    from linsolve.sweep import time_to_learn

    W1, W2 = oriented_init(task, lam)
    ts = jnp.linspace(0.0, horizon(lam), n_times)
    th = exact.lambda_balanced(ts, W1, W2, task)
    out = {
        "theory": {
            "ntk": relative_change(th.ntk),
            "input": relative_change(th.input_gram),
            "output": relative_change(th.output_gram),
            "time": float(time_to_learn(ts, th.loss)),
            "loss": np.asarray(th.loss),
        },
        "ts": np.asarray(ts),
    }
    if simulate_too:
        traj = simulate.gradient_flow((W1, W2), task, ts)
        V1, V2 = traj.params
        K = jax.vmap(models.ntk)(traj.params)
        out["flow"] = {
            "ntk": relative_change(K),
            "input": relative_change(jnp.einsum("tji,tjk->tik", V1, V1)),
            "output": relative_change(jnp.einsum("tij,tkj->tik", V2, V2)),
            "time": float(time_to_learn(ts, traj.loss)),
            "loss": np.asarray(traj.loss),
        }
        out["error"] = float(
            max(
                jnp.max(jnp.abs(traj.product() - th.product)) / jnp.max(jnp.abs(th.product)),
                jnp.max(jnp.abs(K - th.ntk)) / jnp.max(jnp.abs(th.ntk)),
            )
        )
    return out


# %% [markdown]
# ## The figure
#
# `lazy_rich_lambda.png`: (a) loss curves for lambda = 0, 1, 8; (b) relative NTK change against
# lambda: large (rich) at 0, small (lazy) for `|lambda| >> s`; (c) relative change of the input and
# output representations; (d) time to learn. Exact solution (lines) against gradient flow (circles).


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import tasks

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    task = tasks.teacher(jr.PRNGKey(0), SIZES[0], SIZES[-1], jnp.asarray(SINGULAR_VALUES))
    n_times = 80 if smoke else 240
    mags = np.geomspace(0.03, 30.0, 3 if smoke else 7)
    lam_sim = np.concatenate([-mags[::-1], [0.0], mags])
    mags_line = np.geomspace(0.02, 40.0, 5 if smoke else 20)
    lam_line = np.concatenate([-mags_line[::-1], [0.0], mags_line])
    lines = [measures(lam, task, n_times, False) for lam in lam_line]
    points = [measures(lam, task, n_times, True) for lam in lam_sim]
    curves = {lam: measures(lam, task, n_times, True) for lam in CURVES}
    errors = [p["error"] for p in points]
    for lam, p in zip(lam_sim, points):
        th, fl = p["theory"], p["flow"]
        print(
            f"lambda = {lam:+8.3f}: NTK change {th['ntk']:.3g} (flow {fl['ntk']:.3g}), W1^T W1 change "
            f"{th['input']:.3g}, W2 W2^T change {th['output']:.3g}, time to 1% loss {th['time']:.3g} "
            f"(flow {fl['time']:.3g}); max rel. |flow - exact| (product, NTK) = {p['error']:.1e}"
        )
    print(f"max relative deviation exact vs gradient flow over {len(points)} lambdas: {max(errors):.1e}")

    fig, axes = plt.subplots(2, 2, figsize=(8.4, 6.4), dpi=100)
    ax = axes[0, 0]
    for lam, c in zip(CURVES, ("tab:blue", "tab:red", "tab:green")):
        p = curves[lam]
        every = max(1, round(0.15 * n_times / p["ts"][-1]))  # a marker every ~0.15 time units
        ax.plot(p["ts"], p["theory"]["loss"], color=c, lw=2, label=rf"$\lambda$ = {lam:g}")
        ax.plot(p["ts"][::every], p["flow"]["loss"][::every], "o", color=c, ms=4, mfc="none")
    ax.set_yscale("log")
    ax.set_ylim(1e-10, 30)
    ax.set_xlim(0, 8.0)
    ax.set_xlabel("time t (unit learning rate)")
    ax.set_ylabel("loss")
    ax.set_title("(a) loss: exact (lines), gradient flow (circles)", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    series = [
        (axes[0, 1], [("ntk", "NTK", "tab:purple")], "relative NTK change", "(b) kernel change"),
        (
            axes[1, 0],
            [("input", r"input $W_1^TW_1$", "tab:orange"), ("output", r"output $W_2W_2^T$", "tab:cyan")],
            "relative representation change",
            "(c) representation change",
        ),
        (axes[1, 1], [("time", "loss to 1 %", "tab:gray")], "time t", "(d) time to learn"),
    ]
    for ax, keys, ylabel, title in series:
        for key, label, c in keys:
            ax.plot(lam_line, [q["theory"][key] for q in lines], color=c, lw=2, label=f"{label}, exact")
            ax.plot(
                lam_sim,
                [q["flow"][key] for q in points],
                "o",
                color=c,
                ms=6,
                mfc="none",
                mew=1.5,
                label=f"{label}, gradient flow",
            )
        ax.set_xscale("symlog", linthresh=0.03)
        ax.set_yscale("log")
        ax.set_xlabel(r"balance $\lambda$")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=7, loc="lower center")
    for ax in axes.ravel()[1:]:
        ax.set_xticks([-10, -1, -0.1, 0, 0.1, 1, 10], ["-10", "-1", "-0.1", "0", "0.1", "1", "10"])
    fig.suptitle(
        r"Two-layer linear net, $\lambda$-balanced init $W_2^TW_2 - W_1W_1^T = \lambda I$ (scale 0.1), "
        "teacher s = 3, 2, 1",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "lazy_rich_lambda.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figure: lazy_rich_lambda.png ({seconds:.1f} s)")
    return {"lambda": lam_sim, "points": points, "max_error": max(errors), "seconds": seconds}


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
