# %% [markdown]
# # Implicit bias of diagonal linear networks
#
# Setting: the model `beta = u*u - v*v` from `u0 = v0 = alpha`, trained by gradient flow on
# `L = 1/(2n) |X beta - y|^2` with n = 40 < d = 100 (Gaussian X) and a 5-sparse target. Among the
# interpolators of the data, gradient flow picks (Woodworth et al. 2020, arXiv 2002.09277)
#
#     argmin Q_alpha(beta)  s.t.  X beta = y,
#     Q_alpha(beta) = sum_i alpha^2 q(beta_i / alpha^2),
#     q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z/2),
#
# which is the minimum-l2 interpolator for large alpha (kernel regime) and the minimum-l1 one as
# `alpha -> 0` (rich regime): `linsolve.exact.diagonal_implicit_bias`. For small alpha the path
# itself becomes a sequence of jumps between saddles in the time `tau = t / log(1/alpha)` (Pesme &
# Flammarion 2023, arXiv 2304.00488): `linsolve.exact.saddle_to_saddle`.

# %%
"""Diagonal linear networks: the kernel-to-rich transition of the implicit bias, and saddle-to-saddle.

The model ``beta = u*u - v*v`` from ``u0 = v0 = alpha``, trained by gradient flow on
``L = 1/(2n) |X beta - y|^2`` with n = 40 < d = 100 (Gaussian ``X``, isotropic inputs) and a
noise-free 5-sparse target ``beta*`` (``linsolve.sweep._study_diagonal.sparse_regression``).
Gradient flow converges to the interpolator minimising Woodworth et al.'s potential ``Q_alpha``
(``exact.diagonal_implicit_bias``; Woodworth et al. 2020, arXiv 2002.09277): the minimum-l2 one
for large ``alpha`` (kernel regime), the minimum-l1 one as ``alpha -> 0`` (rich regime).

* ``figures/diagonal_implicit_bias_transition.png``: over ``alpha`` from 1e-4 to 1e2, the test
  error ``|beta - beta*|^2`` (the population excess risk times 2), ``|beta|_1`` and ``|beta|_2``
  of the limit: the theory (lines) against gradient flow of the full (u, v) parameters
  (``simulate.diagonal_gradient_flow``, Dopri8 in float64, circles), with the minimum-l1 (LP) and
  minimum-l2 (pseudo-inverse) levels dashed.
* ``figures/diagonal_implicit_bias_saddles.png``: ``beta_i(t)`` against ``tau = t / log(1/alpha)``
  for ``alpha`` = 1e-3, 1e-6, 1e-12 (``exact.diagonal_flow``) approaching the piecewise-constant
  ``alpha -> 0`` limit (``exact.saddle_to_saddle``, black steps, jump times dotted; Pesme &
  Flammarion 2023, arXiv 2304.00488), and the loss.

Prints the theory-vs-simulation gaps (and the flow's final residual) per alpha, the jump times, and
the mean distance of each ``beta(tau)`` to the limit. Command: ``linsolve reproduce
diagonal_implicit_bias [--smoke]`` (or ``python experiments/diagonal_implicit_bias.py``).
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()

N, D, K, SEED = 40, 100, 5, 7  # seed 7: well-separated jumps, one coordinate leaves
SADDLE_ALPHAS = (1e-3, 1e-6, 1e-12)


# %% [markdown]
# ## The kernel-to-rich transition of the limit
#
# Theory on a fine grid of alphas, and gradient flow of the full `(u, v)` parameters
# (`linsolve.simulate.diagonal_gradient_flow`, Dopri8 in float64) on a coarse one.


# %%
def flow_horizon(alpha: float, lam_min: float, cap: float) -> float:
    """Time given to gradient flow: 30 kernel time constants ``1 / (8 alpha^2 lam_min)``, at most
    `cap` (in the rich regime the last approach is algebraic: off-support coordinates decay with a
    kernel proportional to themselves, measured gap ~3e-4 at t = 1e4 for alpha = 1e-4)."""
    return float(min(cap, 30.0 / (8.0 * alpha**2 * lam_min)))


def transition(X, y, beta_star, alphas_line, alphas_sim, cap):
    """Theory on `alphas_line`, (u, v) gradient flow on `alphas_sim`: dicts of arrays."""
    import jax.numpy as jnp

    from linsolve import exact, simulate

    def summary(beta):
        return {"test": np.sum((beta - beta_star) ** 2), "l1": np.sum(np.abs(beta)),
                "l2": np.sqrt(np.sum(beta**2))}

    theory = [summary(np.asarray(exact.diagonal_implicit_bias(X, y, alpha=a).beta))
              for a in alphas_line]
    lam_min = float(np.linalg.eigvalsh(X @ X.T / X.shape[0])[0])
    sim, gaps, residuals = [], [], []
    for a in alphas_sim:
        limit = np.asarray(exact.diagonal_implicit_bias(X, y, alpha=a).beta)
        T = flow_horizon(a, lam_min, cap)
        run = simulate.diagonal_gradient_flow(X, y, jnp.array([0.0, T]), alpha=a, rtol=1e-12,
                                              atol=1e-14, max_steps=2_000_000)
        beta = np.asarray(run.beta[-1])
        if int(run.status) != simulate.CONVERGED:
            raise RuntimeError(f"gradient flow at alpha = {a:g}: status {int(run.status)}")
        sim.append(summary(beta))
        gaps.append(np.linalg.norm(beta - limit) / np.linalg.norm(limit))
        residuals.append(np.linalg.norm(X @ beta - y) / np.linalg.norm(y))
        print(f"alpha = {a:8.1e}: T = {T:8.3g}, |beta_GF - beta_theory| / |beta_theory| = "
              f"{gaps[-1]:.1e}, residual |X beta - y| / |y| = {residuals[-1]:.1e}")
    stack = lambda rows: {key: np.array([r[key] for r in rows]) for key in rows[0]}
    return stack(theory), stack(sim), np.array(gaps), np.array(residuals)


def plot_transition(path, alphas_line, theory, alphas_sim, sim, levels, star):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.5), dpi=100)
    titles = {"test": r"test error $|\beta - \beta^*|^2$", "l1": r"$|\beta|_1$",
              "l2": r"$|\beta|_2$"}
    for ax, key in zip(axes, ("test", "l1", "l2")):
        ax.plot(alphas_line, theory[key], color="C0", lw=1.8, label=r"theory: argmin $Q_\alpha$")
        ax.plot(alphas_sim, sim[key], "o", color="C0", mfc="none", ms=6,
                label="gradient flow on (u, v)")
        if key == "test":  # the minimum-l1 interpolator recovers beta* exactly: level 0, off scale
            ax.plot([], [], color="C3", ls="--", lw=1.2,
                    label=f"min-l1 interpolator ({levels['l1'][key]:.0e})")
        else:
            ax.axhline(levels["l1"][key], color="C3", ls="--", lw=1.2, label="min-l1 interpolator")
        ax.axhline(levels["l2"][key], color="C2", ls="--", lw=1.2, label="min-l2 interpolator")
        if key != "test":
            ax.axhline(star[key], color="0.4", ls=":", lw=1.2, label=r"target $\beta^*$")
        ax.set_xscale("log")
        ax.set_xlabel(r"initial scale $\alpha$  ($u_0 = v_0 = \alpha$)")
        ax.set_title(titles[key], fontsize=10)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[2].legend(fontsize=7, loc="center right")
    fig.suptitle(f"n = {N}, d = {D}, {K}-sparse target: rich (small alpha) to kernel (large alpha)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# %% [markdown]
# ## Saddle to saddle
#
# `linsolve.exact.diagonal_flow` at alpha = 1e-3, 1e-6, 1e-12 against the piecewise-constant
# `alpha -> 0` limit.


# %%
def saddles(X, y, taus):
    """``(limit, flows)``: ``exact.saddle_to_saddle`` and, per alpha, ``beta(tau)`` (T, d), loss."""
    from linsolve import exact

    limit = exact.saddle_to_saddle(X, y)
    flows = {}
    for a in SADDLE_ALPHAS:
        flow = exact.diagonal_flow(taus * np.log(1 / a), X, y, alpha=a)
        flows[a] = (np.asarray(flow.beta), np.asarray(flow.loss), int(flow.status))
    return limit, flows


def limit_path(limit, taus):
    """The piecewise-constant limit ``beta(tau)`` (T, d) and its loss (T,)."""
    times = np.asarray(limit.times)
    index = np.searchsorted(times, taus, side="right") - 1
    return np.asarray(limit.saddles)[index], np.asarray(limit.losses)[index]


def plot_saddles(path, taus, limit, flows, coords):
    import matplotlib.pyplot as plt

    beta_lim, loss_lim = limit_path(limit, taus)
    times = np.asarray(limit.times)[1:]
    fig, axes = plt.subplots(1, 4, figsize=(13.5, 3.4), dpi=100)
    colors = plt.cm.tab10(np.arange(len(coords)) % 10)
    for ax, a in zip(axes[:3], SADDLE_ALPHAS):
        beta = flows[a][0]
        for c, i in zip(colors, coords):
            ax.plot(taus, beta[:, i], color=c, lw=1.5, label=f"beta_{i}")
            ax.plot(taus, beta_lim[:, i], color="k", lw=1.0, ls="--", drawstyle="steps-post")
        for t in times:
            ax.axvline(t, color="0.5", ls=":", lw=0.9)
        ax.set_title(rf"$\alpha$ = {a:g}", fontsize=10)
        ax.set_xlabel(r"$\tau = t / \log(1/\alpha)$")
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_ylabel(r"$\beta_i(\tau)$  (dashed: $\alpha \to 0$ limit)")
    axes[0].legend(fontsize=7, loc="upper left")
    ax = axes[3]
    for a, ls in zip(SADDLE_ALPHAS, ("-", "-.", ":")):
        ax.plot(taus, flows[a][1], ls=ls, lw=1.6, label=rf"$\alpha$ = {a:g}")
    ax.plot(taus, loss_lim, color="k", lw=1.0, ls="--", drawstyle="steps-post",
            label="limit (saddle losses)")
    for t in times:
        ax.axvline(t, color="0.5", ls=":", lw=0.9)
    ax.set_yscale("log")
    ax.set_ylim(max(1e-12, float(np.min(flows[SADDLE_ALPHAS[-1]][1])) / 10), None)
    ax.set_xlabel(r"$\tau = t / \log(1/\alpha)$")
    ax.set_title("loss", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3, lw=0.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# %% [markdown]
# ## The figures
#
# * `diagonal_implicit_bias_transition.png`: test error, `|beta|_1` and `|beta|_2` of the limit
#   against alpha, theory (lines) and gradient flow (circles), with the minimum-l1 and minimum-l2 levels.
# * `diagonal_implicit_bias_saddles.png`: `beta_i(tau)` for three small alphas approaching the
#   limit (black steps), and the loss.


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")

    from linsolve import exact
    from linsolve.sweep._study_diagonal import sparse_regression

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    X, y, beta_star = sparse_regression(SEED, N, D, K)

    # (a) the kernel-to-rich transition of the limit.
    alphas_line = np.geomspace(1e-4, 1e2, 13 if smoke else 41)
    alphas_sim = np.geomspace(1e-4, 1e2, 4 if smoke else 9)
    theory, sim, gaps, residuals = transition(X, y, beta_star, alphas_line, alphas_sim,
                                              1e4 if smoke else 1e5)
    levels = {}
    for name, a in (("l1", 0.0), ("l2", np.inf)):
        beta = np.asarray(exact.diagonal_implicit_bias(X, y, alpha=a).beta)
        levels[name] = {"test": np.sum((beta - beta_star) ** 2), "l1": np.sum(np.abs(beta)),
                        "l2": np.linalg.norm(beta)}
    star = {"l1": np.sum(np.abs(beta_star)), "l2": np.linalg.norm(beta_star)}
    print(f"min-l1: test error {levels['l1']['test']:.2e} (exact recovery); min-l2: test error "
          f"{levels['l2']['test']:.3g} (|beta*|^2 = {star['l2'] ** 2:.3g})")
    plot_transition(FIGURES / "diagonal_implicit_bias_transition.png", alphas_line, theory,
                    alphas_sim, sim, levels, star)

    # (b) saddle-to-saddle: beta(tau) for small alphas against the alpha -> 0 limit.
    taus = np.linspace(0.0, 1.0, 201 if smoke else 801)
    limit, flows = saddles(X, y, taus)
    coords = np.flatnonzero(np.any(np.asarray(limit.supports), axis=0))
    beta_lim, _ = limit_path(limit, taus)
    distance = {}
    for a in SADDLE_ALPHAS:
        beta, _, status = flows[a]
        distance[a] = float(np.mean(np.max(np.abs(beta - beta_lim), axis=1)))
        print(f"alpha = {a:g}: mean over tau of max_i |beta_i - beta_i^limit| = "
              f"{distance[a]:.3f} (status {status})")
    print("jump times tau_k:", np.round(np.asarray(limit.times)[1:], 4).tolist(),
          "supports:", [np.flatnonzero(s).tolist() for s in np.asarray(limit.supports)[1:]])
    plot_saddles(FIGURES / "diagonal_implicit_bias_saddles.png", taus, limit, flows, coords)
    seconds = time.perf_counter() - start
    print(f"figures: diagonal_implicit_bias_transition.png, diagonal_implicit_bias_saddles.png "
          f"({seconds:.1f} s)")
    return {"gaps": gaps, "residuals": residuals, "saddle_distance": distance,
            "jump_times": np.asarray(limit.times), "seconds": seconds}


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
