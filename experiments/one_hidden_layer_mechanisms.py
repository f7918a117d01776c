# %% [markdown]
# # Three mechanisms of feature learning in a one-hidden-layer linear network
#
# Setting (Xu & Ziyin, ICLR 2025, arXiv 2401.07085): the width-d network `f(x) = kappa (u . w) x`
# (d = 50, one-dimensional data, loss `1/2 m2 (kappa u.w - s)^2`) is solved exactly from any
# initialisation by `linsolve.exact.one_hidden_layer`. The network function `F = kappa u.w` follows
# the master mode
#
#     dF/dt = -k (F - s) sqrt(B^2 + A^2 F^2),   B = ||eta_w u0 u0^T - eta_u w0 w0^T||_*,
#
# and every neuron undergoes the same Lorentz boost. Three initialisations give the three mechanisms
# that `linsolve.exact.regime` names: *alignment* (small random init: `|cos(u, w)|` and the NTK
# grow), *disalignment* (large correlated init: both fall) and *rescaling* (`u0` parallel to `w0`:
# the angle is frozen, only the layer norms change).

# %%
"""The three mechanisms of feature learning in the width-d one-hidden-layer linear network.

Follows Xu & Ziyin, "Three Mechanisms of Feature Learning in a Linear Network" (ICLR 2025,
arXiv 2401.07085). The network ``f(x) = kappa (u . w) x`` (width d = 50, one-dimensional data,
loss ``1/2 m2 (kappa u.w - s)^2``) is solved exactly from any initialisation by
``exact.one_hidden_layer``: every neuron undergoes the same Lorentz boost, and ``F = kappa u.w``
follows the master mode with ``B = ||eta_w u0 u0^T - eta_u w0 w0^T||_*``. Three initialisations
put it in the three feature-learning mechanisms named by ``exact.regime`` (``exact.MECHANISMS``):

* alignment: small random init (``|F0| << |s|``): ``|cos(u, w)|`` rises to ``|s|/sqrt(s^2 + kappa^2 D)``
  and the NTK grows by ``sqrt(1 + r^2)/sqrt(1 + r0^2)``, after a plateau;
* disalignment: a large, correlated init (``F0 = 4 s``): ``|cos|`` and the NTK fall;
* rescaling: ``u0`` parallel to ``w0`` (``D = 0``): the angle stays frozen, learning only rescales
  the layer norms ``eta_w |u|^2, eta_u |w|^2 = (G +- c1)/2``.

For each, ``figures/one_hidden_layer_mechanisms_<mechanism>.png`` shows the trajectories of the
network function F, the alignment cosine, the NTK ratio ``K(t)/K(0)`` and the layer norms ``|u|``,
``|w|``: exact solution (lines) against gradient flow of the ``(d, 1), (1, d)`` weight matrices
(markers, ``simulate.gradient_flow``).

Command: ``linsolve reproduce one_hidden_layer_mechanisms [--smoke]``
(or ``python experiments/one_hidden_layer_mechanisms.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 12 s, smoke run 11 s.
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()

WIDTH = 50
S = 1.0  # target E[xy] / E[x^2]


# %% [markdown]
# ## The three initialisations and the observables
#
# `initialisations` builds one `(u0, w0)` per mechanism; `observables` computes the network function
# `F`, the alignment cosine `cos(u, w)`, the NTK `|u|^2 + |w|^2` (unit rates) and the layer norms.


# %%
def initialisations(key, d: int = WIDTH) -> dict:
    """``(u0, w0)`` for each mechanism: small random, large correlated, and parallel inits."""
    import jax.numpy as jnp
    import jax.random as jr

    k1, k2, k3 = jr.split(key, 3)
    xi, zeta, e = (jr.normal(k, (d,)) for k in (k1, k2, k3))
    unit = lambda v: v / jnp.linalg.norm(v)  # noqa: E731
    u_small, w_small = 0.05 * xi, 0.05 * zeta
    w_small = jnp.where(u_small @ w_small < 0, -w_small, w_small)  # F0 > 0: no zero crossing
    return {
        "alignment": (u_small, w_small),
        "disalignment": (2.0 * unit(e) + unit(xi), 2.0 * unit(e) + unit(zeta)),
        "rescaling": (0.2 * unit(e), 1.0 * unit(e)),
    }


def observables(u, w):
    """``F = u.w`` (kappa = 1), ``cos(u, w)``, NTK ``|u|^2 + |w|^2`` (unit rates), ``|u|``, ``|w|``."""
    nu, nw = np.linalg.norm(u, axis=-1), np.linalg.norm(w, axis=-1)
    F = np.sum(u * w, -1)
    return {"F": F, "cos": F / (nu * nw), "ntk": nu**2 + nw**2, "|u|": nu, "|w|": nw}


# %% [markdown]
# ## The figures
#
# For each mechanism, `one_hidden_layer_mechanisms_<mechanism>.png` shows F, the alignment cosine,
# the NTK ratio `K(t)/K(0)` and the layer norms: exact solution (lines) against gradient flow of the
# `(d, 1), (1, d)` weight matrices (markers). The horizon is 1.2 times the exact time for F to close
# 99.9 % of its gap to `s`.


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact, simulate, tasks

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    task = tasks.scalar(s=S)
    n_markers, n_line = (16, 120) if smoke else (28, 300)
    summary = {}
    for name, (u0, w0) in initialisations(jr.PRNGKey(0)).items():
        reg = exact.regime(u0, w0, s=S)
        if reg.name != name:  # the init was built for this mechanism; exact.regime must agree
            raise RuntimeError(f"init for {name!r} is classified {reg.name!r}")
        # Horizon: 1.2 x the exact time for F to close 99.9 % of its gap to s (master mode, k = 1,
        # A = 2 sqrt(eta_u eta_w) / kappa = 2, B = ||C||_*).
        F0, B = float(u0 @ w0), float(exact.one_hidden_layer(0.0, u0, w0, s=S).B)
        T = 1.2 * float(exact.mode_time(F0, S + 1e-3 * (F0 - S), s=S, k=1.0, A=2.0, B=B))
        t_sim, t_line = np.linspace(0.0, T, n_markers), np.linspace(0.0, T, n_line)
        theory = exact.one_hidden_layer(jnp.asarray(np.concatenate([t_line, t_sim])), u0, w0, s=S)
        exact_obs = observables(np.asarray(theory.u), np.asarray(theory.w))
        line = {k: v[:n_line] for k, v in exact_obs.items()}
        at_sim = {k: v[n_line:] for k, v in exact_obs.items()}
        traj = simulate.gradient_flow((w0[:, None], u0[None, :]), task, jnp.asarray(t_sim))
        sim = observables(np.asarray(traj.params[1][:, 0, :]), np.asarray(traj.params[0][:, :, 0]))
        # The library's own fields agree with the observables recomputed from u(t), w(t).
        if not np.allclose(line["ntk"], np.asarray(theory.ntk)[:n_line], rtol=1e-9):
            raise RuntimeError("exact.one_hidden_layer: ntk field disagrees with its u, w")
        deviation = max(float(np.max(np.abs(sim[k] - at_sim[k]) / np.max(np.abs(at_sim[k])))) for k in sim)
        summary[name] = {
            "r": float(reg.r),
            "r0": float(reg.r0),
            "cos0": float(reg.cos0),
            "cos_inf": float(reg.cos_inf),
            "ntk_ratio_inf": float(reg.kernel_ratio),
            "max_rel_deviation": deviation,
        }
        print(
            f"{name:>12}: regime = {reg.name}, r = {reg.r:.3g}, r0 = {reg.r0:.3g}, "
            f"cos {reg.cos0:.3f} -> {reg.cos_inf:.3f}, K(inf)/K(0) = {reg.kernel_ratio:.3f}, "
            f"max rel. |flow - exact| = {deviation:.1e}"
        )

        fig, axes = plt.subplots(2, 2, figsize=(7.2, 5.4), dpi=100, sharex=True)
        ntk0 = line["ntk"][0]
        panels = [
            (axes[0, 0], [("F", "F = u.w", 1.0)], "network function F"),
            (axes[0, 1], [("cos", "cos(u, w)", 1.0)], "alignment cosine cos(u, w)"),
            (axes[1, 0], [("ntk", "K(t)/K(0)", 1 / ntk0)], "NTK ratio K(t)/K(0)"),
            (axes[1, 1], [("|u|", "|u| (readout)", 1.0), ("|w|", "|w| (first layer)", 1.0)], "layer norm"),
        ]
        colors = iter(plt.cm.tab10.colors)
        for ax, series, ylabel in panels:
            for (key, label, scale), style, marker in zip(series, ("-", "--"), ("o", "s")):
                c = next(colors)
                ax.plot(t_line, line[key] * scale, style, color=c, lw=2, label=f"{label}, exact")
                ax.plot(t_sim, sim[key] * scale, marker, color=c, ms=4, mfc="none", label="gradient flow")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, lw=0.5)
        axes[0, 1].set_ylim(0.0, 1.05)
        axes[0, 0].axhline(S, color="k", ls="--", lw=0.8, label="target s")
        for ax in axes[1]:
            ax.set_xlabel("time t (unit learning rates)")
        for ax in axes.ravel():
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
        fig.suptitle(
            f"Learning by {name} (width {WIDTH}, r = {reg.r:.2g}, r0 = {reg.r0:.2g}): "
            "exact (lines) vs gradient flow (markers)",
            fontsize=9.5,
        )
        fig.tight_layout()
        fig.savefig(FIGURES / f"one_hidden_layer_mechanisms_{name}.png")
        plt.close(fig)
    seconds = time.perf_counter() - start
    worst = max(v["max_rel_deviation"] for v in summary.values())
    print(f"max relative deviation exact vs gradient flow over all panels: {worst:.1e} ({seconds:.1f} s)")
    return {"mechanisms": summary, "seconds": seconds}


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
