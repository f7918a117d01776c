"""Parametrisation atlas: standard / NTK / mean-field / muP / small-init across widths.

Follows the width-exponent phase diagram of the width-d one-hidden-layer linear network
(Xu & Ziyin, ICLR 2025, arXiv 2401.07085; docs/theory/master_mode.md), with the presets of
``models.PARAMETRIZATIONS`` (NTK: Jacot et al. 2018; mean-field: Mei et al. 2018, Chizat & Bach
2018; muP: Yang & Hu 2021). Each preset scales the init (``sigma^2 = d^-a``), the layer rates
(``eta = d^b``) and the output (``kappa = d^-c``) with the width d; the richness ratio
``r = A|s|/B`` then grows like ``d^rho`` with ``rho = exact.width_exponent(preset)``: NTK -1/2,
standard -1 (kernel limit), mean-field and muP 0 (O(1) feature learning), small-init +1 (strongly
rich).

The ``parametrizations`` sweep study (``linsolve.sweep``) puts the exact solution
(``exact.one_hidden_layer``) beside gradient flow at every (preset, width) point; here it runs
through ``sweep.run`` for several random draws (medians shown).

``figures/parametrization_atlas.png``: against the width, (a) the relative NTK change
``|K_T - K_0|/K_0``, (b) the final alignment ``cos(u, w)`` of readout and features, (c) the relative
weight movement ``|theta_T - theta_0| / |theta_0|`` (feature movement; gradient flow only), (d) the
time for the loss to fall to 1 %. Exact solution (lines) vs gradient flow (markers).

Command: ``linsolve reproduce parametrization_atlas [--smoke]``
(or ``python experiments/parametrization_atlas.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 38 s, smoke run 11 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"

STYLE = {  # preset -> (colour, marker)
    "ntk": ("tab:blue", "o"),
    "standard": ("tab:gray", "v"),
    "mean_field": ("tab:green", "s"),
    "mup": ("tab:orange", "D"),
    "small_init": ("tab:red", "^"),
}


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact, sweep

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    names = sweep.STUDIES["parametrizations"].plot["labels"]["parametrization"]
    widths = [4, 64, 1024] if smoke else [4, 16, 64, 256, 1024, 4096]
    seeds = 1 if smoke else 4
    config = sweep.parse_config(
        {
            "study": "parametrizations",
            "axes": {"parametrization": list(range(len(names))), "width": widths},
            "params": {"n_times": 32 if smoke else 64},
        }
    )
    point = config.study.make(config.params, config.grid.axes)  # one function: one compilation
    runs = [
        sweep.run(point, config.grid, key=jr.PRNGKey(seed), progress=False, batch_size=None)
        for seed in range(seeds)
    ]
    keys = (
        "ntk_change",
        "theory_ntk_change",
        "cos",
        "theory_cos",
        "weight_change",
        "r",
        "error",
        "time_to_learn",
        "theory_time_to_learn",
    )
    med = {k: np.median(np.stack([np.asarray(res[k]) for res in runs]), axis=0) for k in keys}
    worst = float(max(np.max(res["error"]) for res in runs))
    diverged = int(sum(np.sum(res["diverged"]) for res in runs))

    summary = {}
    logd = np.log(widths)
    for i, name in enumerate(names):
        rho = exact.width_exponent(name)
        slope = float(np.polyfit(logd[1:], np.log(med["r"][i, 1:]), 1)[0])
        summary[name] = {"rho": rho, "r_slope": slope, "ntk_change": med["ntk_change"][i].tolist()}
        print(
            f"{name:>10}: rho = {rho:+.1f}, fitted d-slope of r = {slope:+.2f}; NTK change "
            + " ".join(f"{v:.2g}" for v in med["ntk_change"][i])
            + f" at widths {widths}"
        )
    print(
        f"max relative error exact vs gradient flow over {len(runs)} x {config.grid.size} points: "
        f"{worst:.1e}; diverged runs: {diverged}"
    )

    fig, axes = plt.subplots(2, 2, figsize=(8.4, 6.6), dpi=100)
    panels = [
        (axes[0, 0], "ntk_change", "theory_ntk_change", "relative NTK change", "(a) kernel change", True),
        (axes[0, 1], "cos", "theory_cos", "final cos(u, w)", "(b) readout-feature alignment", False),
        (axes[1, 0], "weight_change", None, "relative weight movement", "(c) feature movement (flow)", True),
        (axes[1, 1], "time_to_learn", "theory_time_to_learn", "time t", "(d) time to 1 % loss", False),
    ]
    for ax, sim_key, theory_key, ylabel, title, log in panels:
        for i, name in enumerate(names):
            color, marker = STYLE[name]
            if theory_key is not None:
                ax.plot(widths, med[theory_key][i], "-", color=color, lw=1.8)
            else:  # no closed form for this one: a thin dotted guide through the markers
                ax.plot(widths, med[sim_key][i], ":", color=color, lw=1)
            rho = summary[name]["rho"]
            ax.plot(
                widths,
                med[sim_key][i],
                marker,
                color=color,
                ms=6,
                mfc="none",
                mew=1.5,
                label=f"{name} (rho = {rho:+g})",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_xticks([], minor=True)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("width d")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0, 1].set_ylim(0.0, 1.05)
    axes[0, 1].legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.64))  # the empty middle
    fig.suptitle(
        "Width-d one-hidden-layer linear net under five parametrisations: "
        "exact (lines) vs gradient flow (markers)",
        fontsize=9.5,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "parametrization_atlas.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figure: parametrization_atlas.png ({seconds:.1f} s)")
    return {"parametrizations": summary, "max_error": worst, "seconds": seconds}


if __name__ == "__main__":
    script_main(main, __doc__)
