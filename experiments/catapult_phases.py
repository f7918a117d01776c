# %% [markdown]
# # Catapult phases of gradient descent at a finite learning rate
#
# Setting (Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari, 2020, arXiv 2003.02218): the width-d
# network `f(x) = kappa (u . w) x` with `kappa = 1/sqrt(d)` and `u, w ~ sigma N(0, I)` is trained by
# gradient descent on `1/2 (F - s)^2`. Its iterates close on the three numbers
# `(|u|^2, |w|^2, u.w)`: `linsolve.exact.one_hidden_layer_gd` is this exact 3-D map, at any width.
# With the learning rate in units of the initial curvature,
#
#     x = lr lambda_0,   lambda_0 = kappa^2 (|u0|^2 + |w0|^2),
#
# wide nets are *lazy* for `x < 2`, *catapult* for `2 < x < 4` (the loss spikes and the curvature
# falls until `lr lambda < 2`) and *diverge* for `x > 4`.

# %%
"""Gradient descent at a finite learning rate: lazy, catapult and divergent phases, exactly.

The width-d network ``f(x) = kappa (u . w) x`` (``kappa = 1/sqrt(d)``, ``u, w ~ sigma N(0, I)``)
trained by gradient descent on ``1/2 (F - s)^2`` follows a closed 3-D map of
``(|u|^2, |w|^2, u.w)`` at any width (``exact.one_hidden_layer_gd``). With the learning rate in
units of the initial curvature, ``x = lr lambda_0``, ``lambda_0 = kappa^2 (|u0|^2 + |w0|^2)``,
Lewkowycz et al. (2020, arXiv 2003.02218) find three phases: lazy (``x < 2``), catapult
(``2 < x < 4``: the loss spikes and the curvature falls until ``lr lambda < 2``) and divergent
(``x > 4``), for wide nets.

``figures/catapult_phases.png``:

* (a) a catapult run, ``d = 1024``, ``x = 3``: loss and ``lr lambda`` along the exact map (lines)
  against GD of the full vectors (dots), with lazy (``x = 1``) and divergent (``x = 4.2``) runs;
* (b) the two boundaries from the exact map (``exact.gd_phase_boundaries``, bisection) against
  the width, for targets ``s = 0`` and ``s = 1`` (median and range over seeds): the catapult
  boundary tends to 2 like ``1/d``, the divergence boundary is 4 at ``s = 0`` at every width and
  moves with the target;
* (c) against the layer-rate ratio ``lr_w / lr_u`` (``d = 1024``): in units of ``lr lambda_0``
  (weighted by the rates) the boundaries stay at 2 and ~4;
* (d) against the init scale ``sigma`` at ``s = 1`` (``d = 1024``): a small init starts far from
  the target, and the divergence boundary moves away from 4 once ``s`` dominates ``F_0``.

Command: ``linsolve reproduce catapult_phases [--smoke]`` (or ``python
experiments/catapult_phases.py``).
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()


# %% [markdown]
# ## Helpers
#
# `start` draws the initialisation; `boundaries` finds the two phase boundaries of the exact map by
# bisection (`linsolve.exact.gd_phase_boundaries`), in units of `lr lambda_0`; `_band` draws their
# median and range over seeds.


# %%
def start(d, seed, sigma=1.0):
    import jax.random as jr

    ku, kw = jr.split(jr.PRNGKey(seed))
    return sigma * jr.normal(ku, (d,)), sigma * jr.normal(kw, (d,))


def boundaries(d, seed, *, s=0.0, ratio=1.0, sigma=1.0, steps=2000):
    """``(x_catapult, x_diverge)`` in units of lr lambda_0, from the exact map."""
    from linsolve import exact

    u0, w0 = start(d, seed, sigma)
    b = exact.gd_phase_boundaries(u0, w0, s=s, kappa=d**-0.5, lr_ratio=ratio, max_steps=steps)
    return float(b.lr_catapult * b.lambda0), float(b.lr_diverge * b.lambda0)


def _band(ax, xs, values, color, label):
    values = np.asarray(values)  # (len(xs), seeds, 2)
    for j, style in ((0, "-"), (1, "--")):
        med = np.median(values[:, :, j], axis=1)
        ax.plot(xs, med, style, color=color, lw=1.6,
                label=f"{label}: {'catapult' if j == 0 else 'divergence'}")
        ax.fill_between(xs, values[:, :, j].min(1), values[:, :, j].max(1), color=color, alpha=0.2,
                        lw=0)


# %% [markdown]
# ## The figure
#
# `catapult_phases.png`: (a) lazy, catapult and divergent runs at d = 1024, the exact map (lines)
# against gradient descent of the full vectors (dots); the boundaries against (b) the width, (c) the
# layer-rate ratio `lr_w / lr_u` and (d) the init scale `sigma`. The smoke setting uses fewer
# widths, ratios, scales and seeds.


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact, simulate, tasks

    t0 = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    seeds = range(2 if smoke else 5)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.4), dpi=100)

    # (a) trajectories: exact map against GD of the full vectors.
    ax = axes[0, 0]
    d, steps = 1024, 60
    u0, w0 = start(d, 0)
    kappa = d**-0.5
    lam0 = kappa**2 * float(u0 @ u0 + w0 @ w0)
    errors = {}
    for x, color in ((1.0, "C0"), (3.0, "C3"), (4.2, "C7")):
        lr = x / lam0
        path = exact.one_hidden_layer_gd(jnp.arange(steps + 1), u0, w0, s=0.0, kappa=kappa,
                                         lr_u=lr, lr_w=lr)
        traj = simulate.gradient_descent((w0[:, None], u0[None, :]), tasks.scalar(s=0.0),
                                         lrs=lr, steps=steps, output_scale=kappa)
        live = np.isfinite(np.asarray(traj.loss))
        errors[x] = float(np.max(np.abs(np.asarray(path.loss - traj.loss)[live])
                                 / np.max(np.asarray(traj.loss)[live])))
        k = np.arange(steps + 1)
        ax.semilogy(k, np.asarray(path.loss), color=color, lw=1.5, label=f"loss, lr lambda_0 = {x:g}")
        ax.semilogy(k[live][::3], np.asarray(traj.loss)[live][::3], "o", color=color, ms=3,
                    mfc="none")
        ax.semilogy(k, np.asarray(path.ntk), ":", color=color, lw=1.5)
    ax.axhline(2.0, color="k", lw=0.8, ls="--")
    ax.set_ylim(1e-12, 1e6)
    ax.set_xlabel("GD step")
    ax.set_title(f"(a) d = {d}: loss (solid) and lr lambda (dotted); dots: full-vector GD",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower left")

    # (b) against the width.
    ax = axes[0, 1]
    widths = [4, 64, 1024] if smoke else [2, 4, 16, 64, 256, 1024, 4096, 16384]
    for s, color in ((0.0, "C0"), (1.0, "C3")):
        _band(ax, widths, [[boundaries(d, seed, s=s) for seed in seeds] for d in widths], color,
              f"s = {s:g}")
    ax.set_xscale("log")
    ax.axhline(2, color="k", lw=0.6)
    ax.axhline(4, color="k", lw=0.6)
    ax.set_xlabel("width d")
    ax.set_ylabel("boundary  lr lambda_0")
    ax.set_title("(b) phase boundaries vs width (exact map)", fontsize=9)
    ax.legend(fontsize=7)

    # (c) against the layer-rate ratio.
    ax = axes[1, 0]
    ratios = [0.1, 1.0, 10.0] if smoke else list(np.geomspace(0.05, 20.0, 9))
    for s, color in ((0.0, "C0"), (1.0, "C3")):
        _band(ax, ratios, [[boundaries(1024, seed, s=s, ratio=r) for seed in seeds]
                           for r in ratios], color, f"s = {s:g}")
    ax.set_xscale("log")
    ax.set_xlabel("lr ratio  lr_w / lr_u")
    ax.set_ylabel("boundary  lr lambda_0")
    ax.set_title("(c) vs layer-wise learning rates (d = 1024)", fontsize=9)
    ax.legend(fontsize=7)

    # (d) against the init scale at s = 1.
    ax = axes[1, 1]
    sigmas = [0.3, 1.0, 3.0] if smoke else list(np.geomspace(0.1, 10.0, 9))
    _band(ax, sigmas, [[boundaries(1024, seed, s=1.0, sigma=g) for seed in seeds]
                       for g in sigmas], "C2", "s = 1")
    ax.set_xscale("log")
    ax.set_xlabel("init scale sigma")
    ax.set_ylabel("boundary  lr lambda_0")
    ax.set_title("(d) vs init scale (d = 1024, s = 1)", fontsize=9)
    ax.legend(fontsize=7)
    for a in axes.flat:
        a.grid(alpha=0.3, lw=0.5)
    fig.tight_layout()
    fig.savefig(FIGURES / "catapult_phases.png")
    plt.close(fig)
    wide = [boundaries(16384 if not smoke else 1024, seed) for seed in seeds]
    print("trajectories: max |loss_map - loss_GD| / max loss = "
          + ", ".join(f"{e:.1e} (x = {x:g})" for x, e in errors.items()))
    print("widest net, s = 0: boundaries " + "; ".join(f"{a:.4f}, {b:.4f}" for a, b in wide))
    seconds = time.perf_counter() - t0
    print(f"figure: catapult_phases.png ({seconds:.1f} s)")
    return {"errors": errors, "wide": wide, "seconds": seconds}


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
