"""Committee machines under online SGD: the symmetric plateau, its length, wide students, the largest rate.

A two-layer student ``phi(x) = sum_k v_k g(w_k.x / sqrt N)`` with ``g(x) = erf(x / sqrt 2)``
learns a teacher ``phi*(x) = sum_m g(w*_m.x / sqrt N)`` (``T = I``) from one fresh Gaussian sample
a step (labels ``y = phi* + sigma z``); as ``N -> inf`` the overlaps ``Q = W W^T / N``,
``R = W W*^T / N`` (and ``v``) follow the ODEs of ``exact.committee_ode`` in ``alpha = steps / N``
(Saad & Solla 1995, Phys. Rev. E 52:4225; Biehl & Schwarze 1995; Goldt, Advani, Saxe, Krzakala &
Zdeborova 2019, arXiv 1906.08632). ODE lines are drawn over the mean of online-SGD runs (markers,
N = 1000, float64, started from the SAME order parameters: exact overlaps on orthonormal
directions, ``R0 = r0 G``, ``Q0 = R0 R0^T + 0.01 I``, see ``linsolve.sweep`` study ``committee``).
The readout is fixed at ``v = 1`` (the soft committee machine) unless said otherwise.

* ``figures/committee_plateau.png``: (a) ``eps_g`` vs ``alpha`` for K = M = 2 and K = M = 3 at
  lr = 1: a fast drop onto the symmetric plateau (all ``R_in`` equal: the student has not yet
  specialised), a long stay, and the escape; (a') the overlaps ``R_in`` of K = M = 3, which split
  at the escape (specialisation: each student unit picks one teacher unit). (b) the plateau
  length (the ``alpha`` at which ``eps_g`` falls below 1 % of its start) vs ``log(1/r0)``: linear,
  the slope being the inverse of the unstable rate of the symmetric fixed point; SGD at finite N
  follows it until ``r0`` is below the ``O(1/sqrt N)`` asymmetry that SGD's noise injects, below
  which the simulated plateau stops growing.
* ``figures/committee_overparameterised.png``: (c) M = 2 teacher, students K = 2..5, label noise
  ``sigma = 0.3``: the late-time error (ODE, at ``alpha = ALPHA_LATE``) vs lr. With the readout
  fixed (as in Goldt et al. 2019, Sec. 3 and their Fig. 2, soft committee machine) it grows with
  lr (``~ lr sigma^2``) and with ``K - M``; training both layers (their Sec. 4, dashed) it stays
  about constant or decreases with K. (For K > M the approach is slow, a power law: the printed
  drift over the last factor 3 in alpha says how far from asymptotic it is.) (d) K = M = 2, no
  noise: ``eps_g`` at a late alpha vs lr: the student learns up to a largest rate and fails above
  it; the erf units saturate there, so the norms grow only algebraically and
  ``committee_ode``'s ``diverged`` flag (its ``divergence_factor`` bound) is not what marks the
  edge: the edge is where the late error leaves zero.

Command: ``linsolve reproduce committee_dynamics [--smoke]`` (or ``python
experiments/committee_dynamics.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"

LR = 1.0
INIT_NORM = 0.1  # |w_perp|^2 / N = 0.01
NOISE = 0.3
ALPHA_LATE = 1e4


def plateau_length(alpha, eps, fraction=0.01):
    """First ``alpha`` at which ``eps`` falls to `fraction` of ``eps[0]`` (log-linear
    interpolation between records; ``inf`` if never).

    **Arguments:** `alpha` (T,) increasing times; `eps` (T,) or (S, T) errors (one row per run).
    **Returns:** a float, or (S,) floats.
    """
    alpha, eps = np.asarray(alpha, float), np.asarray(eps, float)
    if alpha.ndim != 1 or eps.shape[-1] != alpha.shape[0]:
        raise ValueError(f"`eps` must end with the length of `alpha` {alpha.shape}; got {eps.shape}.")
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1); got {fraction!r}.")
    rows = np.atleast_2d(eps)
    out = np.full(rows.shape[0], np.inf)
    for i, e in enumerate(rows):
        target = fraction * e[0]
        below = np.nonzero(e <= target)[0]
        if below.size == 0:
            continue
        j = below[0]
        if j == 0:
            out[i] = alpha[0]
            continue
        l0, l1 = np.log(max(e[j - 1], 1e-300)), np.log(max(e[j], 1e-300))
        frac = (l0 - np.log(target)) / (l0 - l1) if l1 < l0 else 0.0
        out[i] = alpha[j - 1] + np.clip(frac, 0, 1) * (alpha[j] - alpha[j - 1])
    return out if eps.ndim == 2 else float(out[0])


def _start(K, M, r0, N, dtype):
    import jax.random as jr

    from linsolve.sweep._study_committee import committee_start

    return committee_start(jr.PRNGKey(0), N=N, K=K, M=M, init_overlap=r0, init_norm=INIT_NORM,
                           dtype=dtype)


def _ode(alpha, K, M, r0, lr, noise=0.0, train_readout=False, **kw):
    from linsolve import exact, simulate

    W_star, W0 = _start(K, M, r0, 64, np.float64)  # the order parameters do not depend on N
    Q0, R0, T, v0, vs = simulate.committee_order_parameters(W0, np.ones(K), W_star, np.ones(M))
    return exact.committee_ode(alpha, Q0=Q0, R0=R0, T=T, v0=v0, v_star=vs, lr=lr, noise=noise,
                               train_readout=train_readout, **kw)


def _simulate(K, M, r0, lr, *, N, alpha, n_records, seeds, noise=0.0):
    """Seeds x records of online SGD in float64 from the exact start; returns (alpha, eps, R)."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import simulate

    W_star, W0 = _start(K, M, r0, N, jnp.float64)
    every = int(round(alpha * N / n_records))
    f = jax.vmap(lambda key: simulate.online_sgd_committee(
        key, N=N, K=K, M=M, lr=lr, steps=every * n_records, record_every=every,
        noise=noise, train_readout=False, teacher=(W_star, jnp.ones(M)),
        student=(W0, jnp.ones(K))))
    runs = f(jr.split(jr.PRNGKey(int(1000 * r0 + 10 * K + 100 * lr)), seeds))
    return np.asarray(runs.alpha[0], float), np.asarray(runs.eps_g, float), np.asarray(runs.R, float)


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    N, seeds = (300, 3) if smoke else (1000, 3)
    out = {}

    # (a) plateau and specialisation, K = M = 2 and 3 at r0 = 0.05
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 3.9), dpi=100)
    horizons = {2: 150.0, 3: 250.0}
    if smoke:
        horizons = {2: 30.0, 3: 30.0}
    colors = {2: "C0", 3: "C3"}
    gaps = {}
    for K, horizon in horizons.items():
        alpha, eps, R = _simulate(K, K, 0.05, LR, N=N, alpha=horizon, n_records=30, seeds=seeds)
        line = np.linspace(0.0, horizon, 301)
        both = np.concatenate([line, alpha])
        order = np.argsort(both, kind="stable")
        sol = _ode(both[order], K, K, 0.05, LR)
        eps_both = np.empty(len(both))
        eps_both[order] = np.asarray(sol.eps_g)
        R_both = np.empty((len(both), K, K))
        R_both[order] = np.asarray(sol.R)
        theory, at_records = eps_both[:301], eps_both[301:]
        mean = eps.mean(0)
        scale = at_records.max()
        gaps[K] = float(np.max(np.abs(mean - at_records)) / scale)
        axes[0].plot(line, theory, color=colors[K], lw=1.5, label=f"ODE K = M = {K}")
        axes[0].errorbar(alpha, mean, yerr=eps.std(0, ddof=1) / np.sqrt(seeds), fmt="o",
                         color=colors[K], ms=3, mfc="none", elinewidth=0.8,
                         label=f"SGD N = {N}, {seeds} seeds")
        length = plateau_length(alpha, at_records), plateau_length(alpha, eps)
        print(f"(a) K = M = {K}, lr = {LR:g}, r0 = 0.05: max |mean SGD - ODE| / max ODE = "
              f"{gaps[K]:.3f}; time to learn (1 %) ODE {length[0]:.1f}, SGD runs "
              + ", ".join(f"{x:.1f}" for x in length[1]))
        out[f"time_to_learn_K{K}"] = (length[0], length[1])
        if K == 3:
            ode_R = R_both[:301]
            for i in range(K):
                for n in range(K):
                    axes[1].plot(line, ode_R[:, i, n], color=f"C{i}", lw=1.2,
                                 ls=("-", "--", ":")[n])
                    axes[1].plot(alpha, R[:, :, i, n].mean(0), "o", color=f"C{i}", ms=2.5,
                                 mfc="none")
    axes[0].set_yscale("log")
    axes[0].set_xlabel(r"$\alpha$ = steps / N")
    axes[0].set_ylabel(r"$\epsilon_g$")
    axes[0].set_title(f"(a) symmetric plateau and escape, lr = {LR:g}", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel(r"$\alpha$")
    axes[1].set_ylabel(r"$R_{in}$ (colour: student i; line style: teacher n)")
    axes[1].set_title("(a') K = M = 3 overlaps: equal on the plateau, split at the escape",
                      fontsize=9)

    # (b) plateau length vs log(1 / r0): ODE curve, SGD markers
    r0_line = np.geomspace(1e-5 if not smoke else 1e-3, 0.3, 6 if smoke else 14)
    t = np.linspace(0.0, 600.0 if not smoke else 200.0, 1201 if not smoke else 401)
    ode_len = np.array([plateau_length(t, np.asarray(_ode(t, 2, 2, r0, LR).eps_g))
                        for r0 in r0_line])
    fit = np.isfinite(ode_len) & (r0_line < 0.03)
    slope = np.polyfit(np.log(1 / r0_line[fit]), ode_len[fit], 1)[0] if fit.sum() >= 2 else np.nan
    print(f"(b) K = M = 2: ODE plateau length vs log(1/r0): slope {slope:.2f} per e-fold; "
          + ", ".join(f"r0={r:.0e}: {x:.1f}" for r, x in zip(r0_line, ode_len)))
    axes[2].plot(np.log(1 / r0_line), ode_len, "k-", lw=1.5, label="ODE")
    sim_r0 = (0.1, 0.01)
    sim_len = {}
    for r0 in sim_r0:
        horizon = float(t[-1]) if smoke else 200.0
        alpha, eps, _ = _simulate(2, 2, r0, LR, N=N, alpha=horizon, n_records=60, seeds=seeds)
        lengths = plateau_length(alpha, eps)
        sim_len[r0] = lengths
        axes[2].errorbar(np.log(1 / r0), np.mean(lengths), yerr=np.std(lengths), fmt="o",
                         color="C1", ms=4, mfc="none")
        print(f"(b) r0 = {r0:g}: SGD time to learn {np.mean(lengths):.1f} +- {np.std(lengths):.1f}"
              f" (ODE {np.interp(np.log(1 / r0), np.log(1 / r0_line[::-1]), ode_len[::-1]):.1f})")
    axes[2].plot([], [], "o", color="C1", mfc="none", label=f"SGD N = {N} (mean, std)")
    axes[2].axvline(np.log(np.sqrt(N)), color="gray", ls=":", lw=1,
                    label=r"$r_0 = 1/\sqrt{N}$")
    axes[2].set_xlabel(r"$\log(1/r_0)$  ($R_0 = r_0 G$)")
    axes[2].set_ylabel(r"time to learn (1 % of $\epsilon_g(0)$), $\alpha$")
    axes[2].set_title("(b) plateau length grows like log(1 / initial overlap)", fontsize=9)
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3, lw=0.5)
    fig.tight_layout()
    fig.savefig(FIGURES / "committee_plateau.png")
    plt.close(fig)
    out.update(gaps=gaps, ode_plateau=(r0_line, ode_len), slope=slope, sim_plateau=sim_len)

    # (c) over-parameterised students with label noise (ODE; one compile per mode: padded to K = 5)
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.9), dpi=100)
    widths = (2, 3) if smoke else (2, 3, 4, 5)
    lrs_c = np.array([0.2, 1.0]) if smoke else np.array([0.1, 0.2, 0.5, 1.0])
    late = 300.0 if smoke else ALPHA_LATE
    times = np.array([0.0, late / 3, late])
    max_K = max(widths)
    asymptotic = {}
    for train_readout, ls in ((False, "-"), (True, "--")):
        solve = jax.jit(jax.vmap(
            lambda lr, mask, Q0, R0, v0: _padded_ode(times, Q0, R0, v0, lr, train_readout),
            in_axes=(0, None, None, None, None)))
        for K in widths:
            Q0, R0, v0 = _padded_start(K, max_K, 2)
            sol = solve(jnp.asarray(lrs_c), None, Q0, R0, v0)
            eps = np.asarray(sol.eps_g)
            asymptotic[(train_readout, K)] = eps[:, -1]
            drift = np.abs(eps[:, -1] - eps[:, 1]) / eps[:, -1]
            print(f"(c) {'both layers' if train_readout else 'readout fixed'}, M = 2, K = {K}, "
                  f"sigma = {NOISE:g}: eps_g(alpha = {late:g}) = "
                  + ", ".join(f"{x:.4g}" for x in eps[:, -1])
                  + f" at lr = {lrs_c.tolist()} (drift over the last x3: {drift.max():.2f})")
            axes[0].plot(lrs_c, eps[:, -1], "o", ls=ls, color=f"C{K - 2}", ms=3.5,
                         label=f"K = {K}" + (" (both layers)" if train_readout else ""))
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("learning rate")
    axes[0].set_ylabel(rf"ODE $\epsilon_g$ at $\alpha$ = {late:g}")
    axes[0].set_title(rf"(c) M = 2, $\sigma$ = {NOISE:g}: solid readout fixed, dashed both layers",
                      fontsize=9)
    axes[0].legend(fontsize=6.5, ncol=2)

    # (d) the largest learning rate, K = M = 2, no noise
    lrs_d = np.geomspace(0.5, 8.0, 7 if smoke else 25)
    late_d = 60.0 if smoke else 300.0
    final = []
    for lr in lrs_d:
        sol = _ode(np.array([0.0, late_d]), 2, 2, 0.05, float(lr))
        final.append(float(sol.eps_g[-1]))
    final = np.array(final)
    learned = final < 0.01 * _ode(np.array([0.0]), 2, 2, 0.05, 1.0).eps_g[0]
    edge = float(lrs_d[~learned][lrs_d[~learned] > lrs_d[learned].max()].min()) if learned.any() \
        and (~learned).any() else np.nan
    print(f"(d) K = M = 2: eps_g(alpha = {late_d:g}) vs lr: "
          + ", ".join(f"{lr:.2f}: {e:.3g}" for lr, e in zip(lrs_d, final))
          + f"; first rate that fails above the learned ones: {edge:.2f}")
    axes[1].plot(lrs_d, np.maximum(final, 1e-12), "k-", lw=1.5, label="ODE")
    sim_lrs = (1.0, 3.0)
    sim_final = {}
    for lr in sim_lrs:
        _, eps, _ = _simulate(2, 2, 0.05, lr, N=N, alpha=min(late_d, 60.0), n_records=10,
                              seeds=seeds)
        sol = _ode(np.array([0.0, min(late_d, 60.0)]), 2, 2, 0.05, lr)
        sim_final[lr] = (float(eps[:, -1].mean()), float(sol.eps_g[-1]))
        axes[1].plot(lr, max(eps[:, -1].mean(), 1e-12), "o", color="C1", mfc="none")
        print(f"(d) lr = {lr:g}: SGD eps_g(alpha = {min(late_d, 60.0):g}) = "
              f"{sim_final[lr][0]:.3g}, ODE {sim_final[lr][1]:.3g}")
    axes[1].plot([], [], "o", color="C1", mfc="none", label=rf"SGD N = {N} at $\alpha$ = 60")
    if np.isfinite(edge):
        axes[1].axvline(edge, color="crimson", ls=":", label=f"fails to learn from lr ~ {edge:.2f}")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("learning rate")
    axes[1].set_ylabel(rf"$\epsilon_g$ at $\alpha$ = {late_d:g}")
    axes[1].set_title("(d) K = M = 2: the largest learning rate", fontsize=9)
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3, lw=0.5, which="both")
    fig.tight_layout()
    fig.savefig(FIGURES / "committee_overparameterised.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figures: committee_plateau.png, committee_overparameterised.png ({seconds:.1f} s)")
    out.update(asymptotic=asymptotic, lr_edge=edge, final=(lrs_d, final), sim_final=sim_final,
               seconds=seconds)
    return out


def _padded_start(K, max_K, M):
    """Order parameters of a K-unit student zero-padded to `max_K` units (exact: module docstring
    of ``linsolve.sweep._study_committee``)."""
    from linsolve import simulate

    W_star, W0 = _start(max_K, M, 0.1, 64, np.float64)
    mask = (np.arange(max_K) < K).astype(float)
    Q0, R0, _, v0, _ = simulate.committee_order_parameters(W0 * mask[:, None], mask, W_star,
                                                           np.ones(M))
    return Q0, R0, v0


def _padded_ode(times, Q0, R0, v0, lr, train_readout):
    import jax.numpy as jnp

    from linsolve import exact

    M = R0.shape[1]
    return exact.committee_ode(times, Q0=Q0, R0=R0, T=jnp.eye(M), v0=v0, v_star=jnp.ones(M),
                               lr=lr, noise=NOISE, train_readout=train_readout, rtol=1e-7,
                               atol=1e-10, max_steps=200_000)


if __name__ == "__main__":
    script_main(main, __doc__)
