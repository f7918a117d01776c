# %% [markdown]
# # What the NTK does in the lazy regime
#
# Gradient flow on the mean-squared loss ``1/n sum_i 1/2 (f(x_i) - y_i)^2`` moves the outputs as
#
#     df(x)/dt = -(1/n) sum_i K_t(x, x_i) (f(x_i) - y_i),   K_t(x, x') = grad_theta f(x) . grad_theta f(x'),
#
# for *any* network: ``K_t`` is the neural tangent kernel at time t. If ``K_t`` stayed at ``K_0``,
# this would be a linear ODE, solved exactly by ``linsolve.exact.linearized``. The claim of the
# lazy regime is that, in the NTK parametrisation, ``K_t -> K_0`` as the width d grows.

# %%
"""Teaching demo: what the neural tangent kernel does in the lazy regime.

A walk through Jacot, Gabriel & Hongler (NeurIPS 2018) and Lee et al. (NeurIPS 2019) in jupytext
percent cells (``# %%``; open it as a notebook with jupytext, or run it as plain Python). A
one-hidden-layer tanh network in the NTK parametrisation (``f(x) = W2 tanh(W1 x + b1) / sqrt(d)``,
unit Gaussian weights) is trained by gradient flow on 12 points of ``sin(pi x)``. Its empirical NTK
at initialisation ``K0`` (``models.ntk_data``) defines a *linear* model whose training-set outputs
``f(t) = y + exp(-K0 t / n) (f0 - y)`` are known exactly (``exact.linearized``). As the width grows
the kernel freezes (``|K_T - K_0| / |K_0| -> 0``) and the network follows the linear model ever more
closely: that is the lazy (kernel) regime.

``figures/teach_lazy_ntk.png``: (a) the 12 training outputs over time at width 16, linearised model
(lines) vs the network (markers); (b) against the width, the relative NTK change over training and
the largest gap between network and linearised outputs (markers, gradient flow), with a ``1/d``
guide (line).

Command: ``linsolve reproduce teach_lazy_ntk [--smoke]`` (or ``python experiments/teach_lazy_ntk.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 19 s, smoke run 12 s.
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()
N_POINTS = 12
T_END = 20.0


# %% [markdown]
# ## 1. Nested networks of growing width
#
# We draw one wide network and take its first d hidden units as the width-d network. The other
# units are set to zero: a zero unit has ``tanh(0) = 0`` and a zero readout, so it receives zero
# gradient and stays zero under gradient flow, and it adds nothing to the NTK. Every width then
# has the same array shapes, and the simulator compiles once. The NTK parametrisation puts the
# ``1/sqrt(d)`` in the output scale ``kappa``.


# %%
def nested_network(key, width: int, max_width: int):
    """Width-`width` tanh net inside arrays of `max_width` units (unit Gaussian W1, b1, W2)."""
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve.models import ShallowNet

    k1, k2, k3 = jr.split(key, 3)
    on = (jnp.arange(max_width) < width).astype(float)
    W1 = jr.normal(k1, (max_width, 1)) * on[:, None]
    b1 = jr.normal(k2, (max_width,)) * on
    W2 = jr.normal(k3, (1, max_width)) * on[None, :]
    return ShallowNet(W1, b1, W2, jnp.zeros(1), "tanh")


# %% [markdown]
# ## 2. Kernel at initialisation, linear prediction, and the real network
#
# ``models.ntk_data`` returns the empirical NTK on the training inputs (shape (n, n, 1, 1); we jit
# it once and pass it in as `kernel`);
# ``exact.linearized`` solves the kernel ODE for all times at once; ``simulate.gradient_flow``
# trains the network itself (adaptive Runge-Kutta, float64) and records its outputs through the
# ``observe`` hook. The gap between the two is the part of training the kernel does not explain.


# %%
def lazy_check(net, kappa, task, ts, observe, kernel):
    """(NTK change over training, max |f_net - f_linearised|, outputs of both) for one network."""
    import jax
    import jax.numpy as jnp

    from linsolve import exact, models, simulate

    X, y = task.X, task.Y[:, 0]
    K0 = kernel(net, kappa)
    f0 = models.apply(net, X, kappa)[:, 0]
    linear = exact.linearized(ts, f0, y, K0)
    traj = simulate.gradient_flow(net, task, ts, output_scale=kappa, observe=observe)
    f_net = kappa * traj.observables["f"]  # observe records the unscaled output
    KT = kernel(jax.tree_util.tree_map(lambda x: x[-1], traj.params), kappa)
    change = float(jnp.linalg.norm(KT - K0) / jnp.linalg.norm(K0))
    gap = float(jnp.max(jnp.abs(f_net - linear.f)))
    return change, gap, np.asarray(f_net), np.asarray(linear.f)


# %% [markdown]
# ## 3. Run the walk over widths


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import Task, models

    start = time.perf_counter()
    X = jnp.linspace(-1.0, 1.0, N_POINTS)[:, None]
    task = Task.from_data(X, jnp.sin(jnp.pi * X))
    widths = [16, 256, 4096] if smoke else [16, 64, 256, 1024, 4096, 16384]
    ts = jnp.linspace(0.0, T_END, 41)
    observe = lambda p: {"f": p(X)[:, 0]}  # noqa: E731  (one function object: one compilation)
    # The (n, n) NTK on the training inputs, compiled once (models.ntk_data gives (n, n, 1, 1)).
    kernel = jax.jit(lambda net, kappa: models.ntk_data(net, X, output_scale=kappa)[:, :, 0, 0])
    changes, gaps, outputs = [], [], {}
    for d in widths:
        net = nested_network(jr.PRNGKey(0), d, max(widths))
        change, gap, f_net, f_lin = lazy_check(net, d**-0.5, task, ts, observe, kernel)
        changes.append(change)
        gaps.append(gap)
        outputs[d] = (f_net, f_lin)
        print(f"width {d:>6}: NTK change |K_T - K_0|/|K_0| = {change:.2e}, max |f_net - f_lin| = {gap:.2e}")
    slope_K = np.polyfit(np.log(widths), np.log(changes), 1)[0]
    slope_f = np.polyfit(np.log(widths), np.log(gaps), 1)[0]
    print(f"log-log slopes against width: NTK change {slope_K:.2f}, output gap {slope_f:.2f}")

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), dpi=100)
    f_net, f_lin = outputs[widths[0]]
    t = np.asarray(ts)
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, N_POINTS))
    for i, c in enumerate(colors):
        axes[0].plot(t, f_lin[:, i], color=c, lw=1.5)
        axes[0].plot(t[::2], f_net[::2, i], "o", color=c, ms=3.5, mfc="none")
    axes[0].set_xlabel("time t (unit learning rate)")
    axes[0].set_ylabel(r"output $f(x_i, t)$ on the 12 training points")
    axes[0].set_title(f"(a) width {widths[0]}: linearised model (lines), network (circles)", fontsize=9)
    axes[1].plot(widths, changes, "o", ms=7, mfc="none", mew=1.5, label=r"NTK change $|K_T - K_0|/|K_0|$")
    axes[1].plot(widths, gaps, "s", ms=7, mfc="none", mew=1.5, label=r"max $|f_{net} - f_{lin}|$")
    guide = changes[-1] * widths[-1] / np.asarray(widths, float)
    axes[1].plot(widths, guide, "k--", lw=1, label=r"guide $\propto 1/d$")
    axes[1].set_xscale("log", base=2)
    axes[1].set_xticks(widths, [str(w) for w in widths])
    axes[1].set_xticks([], minor=True)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("width d (NTK parametrisation)")
    axes[1].set_ylabel("relative change / output gap")
    axes[1].set_title("(b) wider: frozen kernel, linear training", fontsize=9)
    axes[1].legend(fontsize=7, loc="lower left")
    axes[1].grid(alpha=0.3, lw=0.5, which="both")
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "teach_lazy_ntk.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figure: teach_lazy_ntk.png ({seconds:.1f} s)")
    return {"widths": widths, "ntk_change": changes, "output_gap": gaps, "seconds": seconds}


# %%
if __name__ == "__main__":
    script_main(main, __doc__)
