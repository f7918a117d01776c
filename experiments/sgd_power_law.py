# %% [markdown]
# # Online SGD on power-law spectra
#
# Setting: linear regression with Gaussian inputs `x ~ N(0, Sigma)`, eigenvalues `lam_k = k^-a`, a
# teacher with `lam_k w*_k^2 = k^-b`, no label noise, trained from `w0 = 0` by online minibatch SGD
# (batch B, rate lr, fresh samples every step). `linsolve.exact.sgd_risk` gives the expected risk
# exactly; it obeys the discrete Volterra equation (Paquette, Paquette, Xiao & Pennington 2024,
# arXiv 2405.15074; Bordelon & Pehlevan 2021, arXiv 2106.02713)
#
#     R(t) = F(t) + (lr^2/B) sum_{s<t} K(t-1-s) R(s),
#     F(t) ~ (lr t)^(-(b-1)/a),   K(t) ~ (lr t)^(-(2 - 1/a)),
#
# with `F` gradient descent on the population loss and `K` the SGD noise. The risk decays like
# `(lr t)^(-(b-1)/a)` when `b < 2a` (signal-dominated) and like `(lr t)^(-(2 - 1/a))` when `b > 2a`
# (noise-dominated).

# %%
"""Online SGD on power-law spectra: risk exponents, SGD-noise phase, optimal rates, critical batch.

Linear regression with Gaussian inputs ``x ~ N(0, Sigma)``, ``lam_k = k^-a`` (k = 1..d), teacher
``w*`` with ``lam_k w*_k^2 = k^-b`` (start ``w0 = 0``, so ``c0_k = w*_k^2 = k^(a-b)``), no label
noise, trained by online minibatch SGD ``w <- w - (lr/B) sum_b (w.x_b - y_b) x_b`` with fresh
samples every step. ``exact.sgd_risk`` gives the expected risk exactly; it obeys the discrete
Volterra equation (Paquette, Paquette, Xiao & Pennington 2024, arXiv 2405.15074; Bordelon &
Pehlevan 2021, arXiv 2106.02713)

    R(t) = F(t) + (lr^2/B) sum_{s<t} K(t-1-s) R(s),
    F(t) ~ 1/2 sum_k k^-b (1 - lr lam_k)^(2t) ~ (lr t)^(-(b-1)/a),
    K(t) = sum_k lam_k^2 (1 - lr lam_k)^(2t) ~ (lr t)^(-(2 - 1/a)),

(the forcing ``F`` is gradient descent on the population loss, the kernel ``K`` the SGD noise).
The kernel's total mass ``(lr/B) sum_k lam_k/(2 - lr lam_k) < 1`` below the edge, so
``R ~ F/(1 - mass) + K (lr^2/B) sum_s R(s)``: the risk decays like ``(lr t)^(-(b-1)/a)`` when
``(b-1)/a < 2 - 1/a`` (``b < 2a``, signal-dominated), and like ``(lr/B) (lr t)^(-(2 - 1/a))``
once the SGD-noise term takes over when ``b > 2a`` (noise-dominated; in the paper's variables
``lam_j = j^(-2 alpha)``, ``b = 2 alpha + 2 beta`` this is its ``beta > alpha`` boundary, Phases
II/III). At finite d both end when ``lr t ~ d^a`` (every mode fitted): the curve then falls
exponentially (the teacher lies in the model, so there is no approximation floor here).

* ``figures/sgd_power_law_curves.png``: a = 1.5, b = 2 (signal-dominated) and b = 4
  (noise-dominated), fixed lr, batch sizes 1, 4, 16: (a) risk vs step, theory (lines) over the
  mean of independent online-SGD runs (markers, error bars = SEM; d = 64); (b) the local slope
  ``d log R / d log t`` of the theory at d = 1024 against ``-(b-1)/a`` and ``-(2 - 1/a)``.
* ``figures/sgd_power_law_batch.png``: d = 256 at fixed compute ``N = B x steps``: (c) the
  learning rate that minimises the risk after ``N/B`` steps (``exact.sgd_optimal_learning_rate``)
  and the divergence edge ``exact.sgd_max_learning_rate`` against B, with the bounds
  ``2B / tr Sigma`` (small batches) and ``2 / lam_max`` (gradient descent); (d) the optimal risk
  against B: flat (linear scaling ``lr ~ B``) below the critical batch size, rising above it,
  where the rate is capped by ``2 / lam_max`` and fewer steps cannot be compensated.

Command: ``linsolve reproduce sgd_power_law [--smoke]`` (or ``python
experiments/sgd_power_law.py``).
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()

SPECTRUM_EXPONENT = 1.5  # a: lam_k = k^-a
TARGET_EXPONENTS = (2.0, 4.0)  # b: lam_k w*_k^2 = k^-b (b < 2a and b > 2a)
BATCH_SIZES = (1, 4, 16)
LEARNING_RATE = 0.25  # about half the edge at B = 1


# %% [markdown]
# ## The problem and the predicted exponents


# %%
def power_law_problem(d: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """``(lam, c0)`` with ``lam_k = k^-a`` and ``c0_k = k^(a - b)`` (so ``lam_k c0_k = k^-b``).

    **Arguments:** `d` dimension >= 1; `a`, `b` the spectral and target exponents (> 0).
    **Returns:** two (d,) float64 arrays.
    """
    if not (isinstance(d, int | np.integer) and d >= 1):
        raise ValueError(f"`d` must be an integer >= 1; got {d!r}.")
    for name, value in (("a", a), ("b", b)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"`{name}` must be a finite number > 0; got {value!r}.")
    k = np.arange(1, d + 1, dtype=np.float64)
    return k**-a, k ** (a - b)


def signal_exponent(a: float, b: float) -> float:
    """Decay exponent of the forcing (gradient descent): ``R ~ (lr t)^(-(b - 1)/a)``."""
    return (b - 1) / a


def noise_exponent(a: float) -> float:
    """Decay exponent of the SGD-noise kernel: ``K(t) ~ (lr t)^(-(2 - 1/a))``."""
    return 2 - 1 / a


def local_slope(steps, risk) -> np.ndarray:
    """``d log R / d log t`` by centred differences on the (positive, increasing) `steps`.

    **Arguments:** `steps` (T,) > 0 increasing; `risk` (T,) > 0. **Returns:** (T,) slopes.
    """
    steps, risk = np.asarray(steps, np.float64), np.asarray(risk, np.float64)
    if steps.ndim != 1 or steps.shape != risk.shape or steps.size < 2:
        raise ValueError(
            f"`steps` and `risk` must be 1-D of one length >= 2; got {steps.shape}, {risk.shape}."
        )
    if not (np.all(steps > 0) and np.all(np.diff(steps) > 0) and np.all(risk > 0)):
        raise ValueError("`steps` must be positive and increasing and `risk` positive.")
    return np.gradient(np.log(risk), np.log(steps))


# %% [markdown]
# ## Monte Carlo: independent online-SGD runs
#
# `linsolve.simulate.online_linear_sgd`, vmapped over seeds; the markers of the figure are the mean
# risk over runs with its standard error.


# %%
def simulate_online_sgd(key, lam, c0, *, lr, batch_size, steps, seeds, noise=0.0):
    """Population risk of online minibatch SGD, one row per independent run.

    ``simulate.online_linear_sgd`` in the eigenbasis of ``Sigma`` (diagonal covariance ``lam``),
    ``w* = sqrt(c0)``, ``w0 = 0``, vmapped over ``seeds`` keys split from `key`; its risk is the
    exact population risk of each run's weights.

    **Arguments:** `key` PRNG key; `lam`, `c0` (d,); `lr` > 0; `batch_size` B >= 1; `steps` >= 1;
    `seeds` number of runs; `noise` >= 0.
    **Returns:** (seeds, steps + 1) risks at steps 0..steps (``inf`` once a run diverged).
    """
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import simulate

    lam = jnp.asarray(lam, jnp.float64)
    w_star = jnp.sqrt(jnp.asarray(c0, jnp.float64))
    if lam.ndim != 1 or w_star.shape != lam.shape:
        raise ValueError(f"`lam` and `c0` must be (d,) arrays; got {lam.shape}, {w_star.shape}.")
    if not (isinstance(seeds, int | np.integer) and seeds >= 1):
        raise ValueError(f"`seeds` must be an integer >= 1; got {seeds!r}.")

    def run(k):
        return simulate.online_linear_sgd(k, covariance=lam, w_star=w_star,
                                          w0=jnp.zeros_like(w_star), lr=lr,
                                          batch_size=batch_size, steps=steps, noise=noise).risk

    return np.asarray(jax.vmap(run)(jr.split(key, int(seeds))))


# %% [markdown]
# ## Critical batch size at fixed compute
#
# At fixed compute `N = B x steps`, the optimal risk is flat in B (linear scaling `lr ~ B`) up to a
# critical batch size, then rises once the rate is capped by `2 / lam_max`.


# %%
def critical_batch_size(batch_sizes, risks, factor: float = 2.0) -> float:
    """The smallest batch size whose fixed-compute optimal risk exceeds ``factor`` times the best.

    **Arguments:** `batch_sizes` (n,) increasing; `risks` (n,) optimal risks; `factor` > 1.
    **Returns:** that batch size, or ``inf`` when none does.
    """
    batch_sizes, risks = np.asarray(batch_sizes, np.float64), np.asarray(risks, np.float64)
    if batch_sizes.shape != risks.shape or batch_sizes.ndim != 1:
        raise ValueError(
            f"`batch_sizes` and `risks` must be 1-D of one length; got {batch_sizes.shape}, "
            f"{risks.shape}."
        )
    above = np.nonzero(risks > factor * np.min(risks))[0]
    above = above[batch_sizes[above] > batch_sizes[np.argmin(risks)]]
    return float(batch_sizes[above[0]]) if above.size else float("inf")


# %% [markdown]
# ## The figures
#
# * `sgd_power_law_curves.png`: a = 1.5, b = 2 and b = 4 at batch sizes 1, 4, 16: (a) the risk,
#   theory (lines) over the Monte Carlo mean (markers); (b) the local slope `d log R / d log t` of
#   the theory against the two predicted exponents.
# * `sgd_power_law_batch.png`: (c) the optimal learning rate at fixed compute and the divergence
#   edge against B; (d) the optimal risk against B, with the critical batch size.


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    a, lr = SPECTRUM_EXPONENT, LEARNING_RATE
    d_sim, d_theory = (32, 256) if smoke else (64, 1024)
    seeds, sim_steps = (64, 200) if smoke else (256, 1000)
    record = np.unique(np.geomspace(1, sim_steps, 14 if smoke else 24).astype(int))
    colors = plt.cm.viridis(np.linspace(0.0, 0.8, len(BATCH_SIZES)))

    # (a) theory vs simulation at d_sim; (b) local slopes of the theory at d_theory.
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9), dpi=100)
    agreement, slopes = {}, {}
    t_line = np.unique(np.geomspace(1, sim_steps, 200).astype(int))
    t_slope = np.unique(np.geomspace(1, 1e6, 240).astype(int))
    for i, (ax, b) in enumerate(zip(axes[:2], TARGET_EXPONENTS)):
        lam, c0 = power_law_problem(d_sim, a, b)
        for B, color in zip(BATCH_SIZES, colors):
            theory = exact.sgd_risk(np.concatenate([t_line, record]), eigenvalues=lam, c0=c0,
                                    lr=lr, batch_size=B).risk
            theory = np.asarray(theory)
            risks = simulate_online_sgd(jr.PRNGKey(10 * i + B), lam, c0, lr=lr, batch_size=B,
                                        steps=sim_steps, seeds=seeds)[:, record]
            mean = risks.mean(0)
            sem = risks.std(0, ddof=1) / np.sqrt(seeds)
            z = float(np.max(np.abs(mean - theory[len(t_line):]) / sem))
            agreement[(b, B)] = z
            ax.plot(t_line, theory[: len(t_line)], color=color, lw=1.5, label=f"B = {B}")
            ax.errorbar(record, mean, yerr=sem, fmt="o", color=color, ms=3.5, mfc="none",
                        elinewidth=0.8)
            print(f"b = {b:g}, B = {B:3d}: max |mean - theory| / SEM = {z:.2f} "
                  f"({len(record)} steps, {seeds} runs, d = {d_sim})")
        ref = 0.5 * (lr * t_line.astype(float)) ** -signal_exponent(a, b)
        ax.plot(t_line, ref * theory[0] / ref[0] * 0.6, color="gray", ls=":", lw=1.2,
                label=f"(lr t)^-{signal_exponent(a, b):.2g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step t")
        kind = "signal" if b < 2 * a else "SGD noise"
        ax.set_title(f"(a) a = {a:g}, b = {b:g} ({kind}-dominated), lr = {lr:g}, d = {d_sim}",
                     fontsize=9)
        ax.grid(alpha=0.3, lw=0.5, which="both")
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("population risk (lines: exact, o: SGD mean +- SEM)")

    ax = axes[2]
    lam, _ = power_law_problem(d_theory, a, 2.0)
    styles = {TARGET_EXPONENTS[0]: "-", TARGET_EXPONENTS[1]: "--"}
    slope_batches = (1, 16, None)
    slope_colors = dict(zip(slope_batches, plt.cm.plasma(np.linspace(0.0, 0.7, 3))))
    for b in TARGET_EXPONENTS:
        lam, c0 = power_law_problem(d_theory, a, b)
        for B in slope_batches:
            risk = np.asarray(exact.sgd_risk(t_slope, eigenvalues=lam, c0=c0, lr=lr,
                                             batch_size=B).risk)
            slope = local_slope(t_slope, risk)
            label = f"b = {b:g}, " + ("GD (B = inf)" if B is None else f"B = {B}")
            ax.plot(t_slope, slope, color=slope_colors[B], ls=styles[b], lw=1.4, label=label)
            # the slope where the power law should hold: lr t in [10, d^a / 10]
            window = (lr * t_slope > 10) & (lr * t_slope < d_theory**a / 10)
            slopes[(b, B)] = float(np.median(slope[window]))
        ax.axhline(-signal_exponent(a, b), color="k", ls=styles[b], lw=0.8)
    ax.axhline(-noise_exponent(a), color="crimson", ls=":", lw=1.2,
               label=f"SGD noise -(2 - 1/a) = {-noise_exponent(a):.3g}")
    ax.axvline(d_theory**a / lr, color="gray", lw=0.8, ls="-.", label="lr t = d^a")
    ax.set_xscale("log")
    ax.set_ylim(-3.5, 0.2)
    ax.set_xlabel("step t")
    ax.set_ylabel("local slope d log R / d log t")
    ax.set_title(f"(b) exact theory, d = {d_theory}; black: -(b-1)/a", fontsize=9)
    ax.grid(alpha=0.3, lw=0.5, which="both")
    ax.legend(fontsize=6.5, loc="lower left")
    fig.tight_layout()
    fig.savefig(FIGURES / "sgd_power_law_curves.png")
    plt.close(fig)
    for b in TARGET_EXPONENTS:
        shown = ", ".join(f"{'GD' if B is None else 'B=' + str(B)}: {slopes[(b, B)]:.3f}"
                          for B in slope_batches)
        print(f"b = {b:g}: median local slope for lr t in [10, d^a/10]: {shown}; predicted "
              f"-(b-1)/a = {-signal_exponent(a, b):.3f}, -(2 - 1/a) = {-noise_exponent(a):.3f}")

    # (c), (d): fixed compute N = B x steps, at d_batch (one eigh per learning rate tried).
    d_batch = 128 if smoke else 256
    batch_grid = 4 ** np.arange(0, 3 if smoke else 5)
    computes = (2**9,) if smoke else (2**9, 2**12)
    lam, _ = power_law_problem(d_batch, a, 2.0)
    edge = np.array([float(exact.sgd_max_learning_rate(lam, batch_size=int(B))) for B in batch_grid])
    optimum, critical = {}, {}
    for b in TARGET_EXPONENTS:
        lam, c0 = power_law_problem(d_batch, a, b)
        for N in computes:
            optimum[(b, N)] = np.array([
                [float(x) for x in exact.sgd_optimal_learning_rate(
                    int(N // B), eigenvalues=lam, c0=c0, batch_size=int(B), grid=16, refine=20)]
                for B in batch_grid
            ])
            critical[(b, N)] = critical_batch_size(batch_grid, optimum[(b, N)][:, 1])
            print(f"b = {b:g}, compute N = B x steps = {N}: lr_opt / edge = "
                  + " ".join(f"{r:.2f}" for r in optimum[(b, N)][:, 0] / edge)
                  + f"; critical batch (risk > 2x best) = {critical[(b, N)]:g}")
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.9), dpi=100)
    ax = axes[0]
    ax.plot(batch_grid, edge, "k-", lw=2.0, label="edge lr* (sgd_max_learning_rate)")
    ax.plot(batch_grid, 2 * batch_grid / lam.sum(), "k:", lw=1.0, label="2B / tr Sigma")
    ax.axhline(2 / lam.max(), color="k", ls="--", lw=1.0, label="2 / lam_max")
    compute_colors = dict(zip(computes, plt.cm.cividis(np.linspace(0.1, 0.8, len(computes)))))
    for b in TARGET_EXPONENTS:
        for N in computes:
            ax.plot(batch_grid, optimum[(b, N)][:, 0], "o", ls=styles[b], color=compute_colors[N],
                    ms=3.5, lw=1.2, label=f"lr_opt, b = {b:g}, N = 2^{int(np.log2(N))}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("learning rate")
    ax.set_title(f"(c) optimal lr after N/B steps (N = B x steps fixed), d = {d_batch}",
                 fontsize=9)
    ax.grid(alpha=0.3, lw=0.5, which="both")
    ax.legend(fontsize=6.5, loc="lower right")
    ax = axes[1]
    for b in TARGET_EXPONENTS:
        for N in computes:
            ax.plot(batch_grid, optimum[(b, N)][:, 1], "o", ls=styles[b], color=compute_colors[N],
                    ms=3.5, lw=1.2, label=f"b = {b:g}, N = 2^{int(np.log2(N))}")
            if np.isfinite(critical[(b, N)]):
                ax.axvline(critical[(b, N)], color=compute_colors[N], ls=styles[b], lw=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("optimal risk at fixed compute")
    ax.set_title("(d) critical batch size (thin lines: risk > 2x its best)", fontsize=9)
    ax.grid(alpha=0.3, lw=0.5, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "sgd_power_law_batch.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figures: sgd_power_law_curves.png, sgd_power_law_batch.png ({seconds:.1f} s)")
    return {"agreement": agreement, "slopes": slopes, "optimum": optimum,
            "critical_batch": critical, "seconds": seconds}


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
