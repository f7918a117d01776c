# %% [markdown]
# # How layer-wise learning rates move the phase boundary
#
# The exact solution of ``f(x) = kappa (u . w) x`` (``linsolve.exact.one_hidden_layer``) has an NTK
# ``K = kappa^2 (eta_u |w|^2 + eta_w |u|^2) = kappa^2 sqrt(B^2 + A^2 F^2)`` with
# ``A = 2 sqrt(eta_u eta_w) / kappa`` and ``B = ||eta_w u0 u0^T - eta_u w0 w0^T||_*`` fixed by the
# init. Learning moves ``F = kappa u.w`` from ``F0`` to ``s``, so the kernel changes by
# ``sqrt(1 + r^2) / sqrt(1 + r0^2)`` with ``r = A|s|/B``: the ratio r is the order parameter.

# %%
"""Teaching demo: how layer-wise learning rates move the lazy/rich phase boundary.

A walk through the width-exponent phase diagram of the width-d one-hidden-layer linear network
(Xu & Ziyin, ICLR 2025, arXiv 2401.07085; docs/theory/master_mode.md) in jupytext percent cells
(``# %%``; open it as a notebook with jupytext, or run it as plain Python). The network
``f(x) = kappa (u . w) x`` starts from a standard init (``|u|^2 ~ 1``, ``|w|^2 ~ d``: the readout
is ``1/sqrt(d)`` smaller) and trains with layer rates ``eta_u = d^-b``, ``eta_w = d^b`` and output
scale ``kappa = d^-c``. Whether it learns features is decided by ``r = A|s|/B`` (``r << 1``: kernel
regime), and ``r ~ d^rho`` with ``rho = exact.width_exponent(...)``. The rates enter ``B``: by
AM-GM, ``r <= |s| / (kappa |u| |w|)``, with equality when the rates balance the layer norms,
``eta_w |u|^2 = eta_u |w|^2``. So the rate exponent b moves the boundary ``rho = 0``: for this
init it is ``c = 1 + max(b - 1, -b)``, lowest (richest) at ``b = 1/2``, where the rates undo the
init's imbalance.

``figures/teach_layer_rates.png``: the NTK change ``max_t |K(t)/K(0) - 1|`` of the exact solution
over (b, c) at width d = 1024 (``sweep.run`` of ``exact.regime``; ``plot.heatmap`` with its
``r = 1`` contour), the predicted boundary ``rho = 0`` (dashed line) and three gradient-flow checks
(markers, with the simulated NTK change written beside them).

Command: ``linsolve reproduce teach_layer_rates [--smoke]``
(or ``python experiments/teach_layer_rates.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 13 s, smoke run 12 s.
"""

from __future__ import annotations

import time

import numpy as np

from linsolve.gallery import figures_dir, script_main

FIGURES = figures_dir()
WIDTH = 1024
A_U, A_W = 1.0, 0.0  # init exponents: sigma_u^2 = 1/d (standard readout), sigma_w^2 = 1
S = 1.0


# %% [markdown]
# ## 1. One width: the rate ratio sets r
#
# ``exact.phase_ratio`` gives ``(r, r0)`` for an init and rates. Sweeping the ratio
# ``eta_w / eta_u = d^{2b}`` at a fixed product ``eta_u eta_w = 1``, r is largest where
# ``eta_w |u|^2 = eta_u |w|^2``, i.e. ``d^{2b} = |w|^2 / |u|^2 ~ d``: ``b = 1/2``.


# %%
def init(key, d: int = WIDTH):
    """``u0 ~ N(0, d^-A_U)``, ``w0 ~ N(0, d^-A_W)`` (d,) each."""
    import jax.random as jr

    ku, kw = jr.split(key)
    return d ** (-A_U / 2) * jr.normal(ku, (d,)), d ** (-A_W / 2) * jr.normal(kw, (d,))


def rates(b, d: int = WIDTH):
    """``(eta_u, eta_w) = (d^-b, d^b)``."""
    return d ** (-b), d**b


# %% [markdown]
# ## 2. All widths: the exponent rho
#
# With ``sigma^2 = d^-a``, ``eta = d^b`` and ``kappa = d^-c`` per layer,
# ``rho = (b_u + b_w)/2 + c - 1 - max(b_w - a_u, b_u - a_w)`` (``exact.width_exponent``). Here
# ``b_u = -b``, ``b_w = b``: ``rho = c - 1 - max(b - 1, -b)``, a V-shaped boundary in the (b, c) plane.


# %%
def boundary(b):
    """The output exponent c on the predicted phase boundary rho = 0, for rate exponents b."""
    from linsolve import exact

    return -np.asarray(exact.width_exponent(A_U, A_W, -np.asarray(b), np.asarray(b), 0.0))


# %% [markdown]
# ## 3. The phase diagram from the exact solution, and gradient-flow checks
#
# ``sweep.run`` evaluates a point function over the grid (vmapped, one compilation); the point
# function asks ``exact.regime`` for the largest NTK change along the exact path and for r. Then
# ``simulate.gradient_flow`` trains the actual weight vectors at three points of the diagram.


# %%
def point(rate_exponent, output_exponent, key):
    """Exact NTK change and phase ratio r at one (b, c) point (random init drawn from `key`)."""
    from linsolve import exact

    u0, w0 = init(key)
    eta_u, eta_w = rates(rate_exponent)
    reg = exact.regime(u0, w0, s=S, kappa=WIDTH ** (-output_exponent), eta_u=eta_u, eta_w=eta_w)
    return {"ntk_change": reg.kernel_change, "r": reg.r}


def flow_check(b: float, c: float, key):
    """NTK change ``max_t |K(t)/K(0) - 1|`` by gradient flow and by the exact solution."""
    import jax.numpy as jnp

    from linsolve import exact, simulate, tasks

    u0, w0 = init(key)
    eta_u, eta_w = rates(b)
    kappa = WIDTH ** (-c)
    ratio = exact.phase_ratio(u0, w0, s=S, kappa=kappa, eta_u=eta_u, eta_w=eta_w)
    B0 = float(eta_w * u0 @ u0 + eta_u * w0 @ w0)  # ~ B for a random init
    rate = kappa**2 * (B0 + 2 * np.sqrt(eta_u * eta_w) / kappa * S)  # slowest of kernel / rich rates
    ts = jnp.linspace(0.0, 12 * (1 + np.log1p(float(ratio.r))) / rate, 48)
    traj = simulate.gradient_flow(
        (w0[:, None], u0[None, :]), tasks.scalar(s=S), ts, lrs=(eta_w, eta_u), output_scale=kappa
    )
    w, u = traj.params[0][:, :, 0], traj.params[1][:, 0, :]
    K = kappa**2 * (eta_u * jnp.sum(w * w, -1) + eta_w * jnp.sum(u * u, -1))
    K_exact = exact.one_hidden_layer(ts, u0, w0, s=S, kappa=kappa, eta_u=eta_u, eta_w=eta_w).ntk
    return float(jnp.max(jnp.abs(K / K[0] - 1))), float(jnp.max(jnp.abs(K_exact / K_exact[0] - 1)))


# %%
def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.random as jr

    from linsolve import exact, sweep
    from linsolve.plot import heatmap

    start = time.perf_counter()
    # Step 1: r against the rate exponent at one width.
    u0, w0 = init(jr.PRNGKey(0))
    print(f"width {WIDTH}: |u0|^2 = {float(u0 @ u0):.3g}, |w0|^2 = {float(w0 @ w0):.3g}")
    for b in (-0.5, 0.0, 0.5, 1.0, 1.5):
        eta_u, eta_w = rates(b)
        r = float(exact.phase_ratio(u0, w0, s=S, kappa=1.0, eta_u=eta_u, eta_w=eta_w).r)
        print(
            f"  b = {b:+.1f} (eta_w/eta_u = d^{2 * b:+.0f}): r = {r:.3g}   (bound |s|/|u||w| = "
            f"{S / np.sqrt(float(u0 @ u0) * float(w0 @ w0)):.3g})"
        )

    # Step 2: the predicted boundary.
    print("predicted boundary c(b) for b = -1, 0, 0.5, 1, 1.5:", boundary([-1, 0, 0.5, 1, 1.5]))

    # Step 3: the phase diagram (exact solution at every point) and gradient-flow checks.
    grid = sweep.Grid(
        rate_exponent=np.linspace(-1.0, 2.0, 7 if smoke else 13),
        output_exponent=np.linspace(0.0, 2.0, 5 if smoke else 9),
    )
    result = sweep.run(point, grid, key=jr.PRNGKey(1), progress=False)
    checks = [(-0.5, 0.5), (0.5, 0.5), (0.5, 1.5)]
    sims = []
    for i, (b, c) in enumerate(checks):
        sim, th = flow_check(b, c, jr.PRNGKey(10 + i))
        sims.append(sim)
        print(
            f"gradient flow at b = {b:+.1f}, c = {c:.1f} (rho = {c - boundary(b):+.1f}): NTK change "
            f"{sim:.3g} (exact {th:.3g}, rel. deviation {abs(sim / th - 1):.1e})"
        )

    fig = heatmap(
        result,
        "rate_exponent",
        "output_exponent",
        "ntk_change",
        boundary="r",
        legend=False,  # the script's own legend below names the r = 1 contour
        title=f"Exact NTK change max |K(t)/K(0) - 1|, width {WIDTH}",
    )
    ax = fig.axes[0]
    bs, cs = grid.axes["rate_exponent"], grid.axes["output_exponent"]
    to_x = lambda b: (np.asarray(b) - bs[0]) / (bs[1] - bs[0])  # noqa: E731  (heatmap draws by index)
    to_y = lambda c: (np.asarray(c) - cs[0]) / (cs[1] - cs[0])  # noqa: E731
    b_line = np.linspace(bs[0], bs[-1], 200)
    ax.plot(to_x(b_line), to_y(boundary(b_line)), "--", color="red", lw=2, label=r"predicted $\rho = 0$")
    for (b, c), sim in zip(checks, sims):
        ax.plot(to_x(b), to_y(c), "o", ms=9, mfc="none", mec="red", mew=2)
        ax.annotate(
            f"flow: {sim:.2g}",
            (to_x(b), to_y(c)),
            xytext=(9, -4),
            textcoords="offset points",
            fontsize=8,
            bbox={"fc": "white", "alpha": 0.85, "lw": 0, "pad": 1.5},
        )
    ax.plot([], [], "-", color="white", lw=2, label=f"r = 1 (exact, d = {WIDTH})")
    ax.plot([], [], "o", mfc="none", mec="red", mew=2, label="gradient-flow check")
    ax.set_ylim(-0.5, len(cs) - 0.5)
    ax.set_xlabel(r"rate exponent b  ($\eta_u = d^{-b}$, $\eta_w = d^{b}$)")
    ax.set_ylabel(r"output exponent c  ($\kappa = d^{-c}$)")
    ax.legend(fontsize=7, loc="lower right", facecolor="0.75", framealpha=0.95)
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "teach_layer_rates.png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figure: teach_layer_rates.png ({seconds:.1f} s)")
    return {"result": result, "checks": dict(zip(checks, sims)), "seconds": seconds}


# %%
if __name__ == "__main__":
    script_main(main, __doc__)
