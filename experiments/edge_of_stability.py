"""Progressive sharpening and the edge of stability: sharpness against 2/lr in full-batch GD.

Gradient descent with step ``lr`` is linearly stable at a minimum only if the sharpness
``S = lambda_max(Hessian of the loss)`` is at most ``2/lr``. Cohen, Kaur, Li, Kolter & Talwalkar
2021 (arXiv 2103.00065) observed that full-batch GD raises ``S`` along training (*progressive
sharpening*) until ``S ~ 2/lr``, then stays there (the *edge of stability*) while the loss keeps
falling, non-monotonically. ``figures/edge_of_stability.png`` shows both halves for two models,
``S`` recorded at every record by ``analysis.sharpness_observer`` (20 Lanczos steps on
Hessian-vector products of exactly the loss GD descends); dashed lines mark ``2/lr``:

* top, a depth-3 linear net (width 5) on a whitened teacher task ``Syx = U diag(2, 1.2, 0.6) V^T``
  from a small balanced init (scale 0.05), at lr = 0.2, 0.27, 0.3, every step recorded (log step
  axis). Its flattest global minimum is the balanced one, the minimum gradient flow reaches, with
  ``S* = L s_1^(2 - 2/L)`` (dotted; for the top mode's scalar chain ``a_L ... a_1 = s_1`` the
  sharpness ``s_1^2 sum_l a_l^-2`` is smallest at ``a_l = s_1^(1/L)`` by AM-GM). Below
  ``lr = 2/S* = 0.265`` GD converges there; above it no minimum is stable: the sharpness climbs
  past ``2/lr`` as the top mode is learned and GD settles in a period-2 oscillation whose sharpness
  alternates across ``2/lr`` (dots: every step; lines: the mean over 20 steps), while the loss
  stalls above zero.
* bottom, a shallow ReLU net (width 64) on 100 Gaussian inputs labelled by a random ReLU teacher
  (width 8), small init, at lr = 0.25, 0.45, 0.7 (every 15th step): the sharpness rises steadily;
  at the smallest rate it stays below ``2/lr``; at the larger ones it reaches ``2/lr`` and hovers
  there while the loss keeps decreasing, non-monotonically.

Command: ``linsolve reproduce edge_of_stability [--smoke]`` (or ``python
experiments/edge_of_stability.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"

DEPTH = 3
WIDTH = 5
SINGULAR_VALUES = (2.0, 1.2, 0.6)
LINEAR_RATES = (0.2, 0.27, 0.3)
RELU_RATES = (0.25, 0.45, 0.7)
WINDOW = 20


def linear_setup():
    """Whitened teacher task, small balanced init, and the balanced minimum's sharpness ``S*``."""
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import init, tasks

    task = tasks.teacher(jr.PRNGKey(0), WIDTH, WIDTH, jnp.asarray(SINGULAR_VALUES))
    params0 = init.balanced(jr.PRNGKey(1), (WIDTH,) * (DEPTH + 1), 0.05)
    s1 = max(SINGULAR_VALUES)
    return task, params0, DEPTH * s1 ** (2 - 2 / DEPTH)


def relu_setup(d=5, n=100, width=64, scale=0.3):
    """A random ReLU teacher's data (targets scaled to unit variance) and a small ReLU student."""
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import models, tasks

    kx, kt, ks = jr.split(jr.PRNGKey(0), 3)
    X = jr.normal(kx, (n, d))
    teacher = models.shallow_init(kt, d, 8, 1, scales=(1.0, 1.0))
    Y = teacher(X)
    task = tasks.Task.from_data(X, Y / jnp.std(Y))
    net = models.shallow_init(ks, d, width, 1, scales=(scale / np.sqrt(d), scale / np.sqrt(width)))
    return task, net


def train(params0, task, rates, steps, record_every, k):
    """Full-batch GD at each rate (one compilation, vmapped), sharpness recorded: (R, T) arrays."""
    import jax
    import jax.numpy as jnp

    from linsolve import analysis, simulate

    observe = analysis.sharpness_observer(task, k=k)

    def run(lr):
        traj = simulate.gradient_descent(
            params0, task, lrs=lr, steps=steps, record_every=record_every,
            record_params=False, observe=observe,
        )
        return traj.loss, traj.observables["sharpness"], traj.diverged

    loss, sharp, diverged = jax.vmap(run)(jnp.asarray(rates))
    steps_axis = np.arange(loss.shape[1]) * record_every
    return steps_axis, np.asarray(loss), np.asarray(sharp), np.asarray(diverged)


def running_mean(x, window):
    """Means over `window` consecutive records, and the lag of the first one."""
    return np.convolve(x, np.ones(window) / window, mode="valid"), window - 1


def eos_summary(sharp, lr, fraction=0.95):
    """From the first record with ``S >= fraction 2/lr`` on: median, min, max of ``S lr / 2``."""
    ratio = sharp * lr / 2
    hit = np.flatnonzero(ratio >= fraction)
    if hit.size == 0:
        return None, float(np.max(ratio))
    phase = ratio[hit[0] :]
    return int(hit[0]), (float(np.median(phase)), float(np.min(phase)), float(np.max(phase)))


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    k = 10 if smoke else 20
    results = {}

    # Deep linear net: every step recorded (the oscillations have period 2).
    task, params0, s_star = linear_setup()
    steps = 300 if smoke else 1000
    t_lin, loss_lin, sharp_lin, div_lin = train(params0, task, LINEAR_RATES, steps, 1, k)
    # ReLU net.
    rtask, net0 = relu_setup()
    steps = 1500 if smoke else 6000
    t_relu, loss_relu, sharp_relu, div_relu = train(net0, rtask, RELU_RATES, steps, 15, k)

    fig, axes = plt.subplots(2, 2, figsize=(10.0, 7.2), dpi=100)
    colors = plt.cm.viridis(np.linspace(0.0, 0.8, 3))
    panels = (
        ("deep linear, depth 3", t_lin, loss_lin, sharp_lin, div_lin, LINEAR_RATES, WINDOW),
        ("shallow ReLU, width 64", t_relu, loss_relu, sharp_relu, div_relu, RELU_RATES, 1),
    )
    for row, (name, ts, losses, sharps, diverged, rates, window) in enumerate(panels):
        ax_s, ax_l = axes[row]
        summary = {}
        for lr, color, loss, sharp, div in zip(rates, colors, losses, sharps, diverged):
            if window > 1:
                ax_s.plot(ts, sharp, ".", color=color, ms=1.2, alpha=0.5)
                mean, lag = running_mean(sharp, window)
                ax_s.plot(ts[lag:], mean, color=color, lw=1.6, label=f"lr = {lr:g}")
            else:
                ax_s.plot(ts, sharp, color=color, lw=1.6, label=f"lr = {lr:g}")
            ax_s.axhline(2 / lr, color=color, ls="--", lw=1.0)
            ax_l.semilogy(ts, loss, color=color, lw=0.8 if window > 1 else 1.4, label=f"lr = {lr:g}")
            onset, stats = eos_summary(sharp, lr)
            late = loss[len(loss) // 2 :]
            summary[lr] = {
                "diverged": bool(div),
                "final_loss": float(loss[-1]),
                "late_loss_range": (float(np.min(late)), float(np.max(late))),
                "final_sharpness": float(sharp[-1]),
                "eos_onset_step": None if onset is None else int(ts[onset]),
                "sharpness_lr_over_2": stats,
            }
            if window > 1 and onset is not None:
                mean, lag = running_mean(sharp, window)
                averaged = float(np.median(mean[max(onset - lag, 0) :])) * lr / 2
                summary[lr]["mean_sharpness_lr_over_2"] = averaged
                stats = (*stats, averaged)
            if onset is None:
                text = f"never reaches 2/lr (max S lr/2 = {stats:.3f})"
            else:
                text = (
                    f"S >= 0.95 * 2/lr from step {int(ts[onset])}; S lr/2 median {stats[0]:.3f} "
                    f"(min {stats[1]:.3f}, max {stats[2]:.3f})"
                )
                if len(stats) == 4:
                    text += f", {window}-step mean of S lr/2 median {stats[3]:.3f}"
            print(f"{name}, lr = {lr:g}: final loss {float(loss[-1]):.3e}, late loss "
                  f"{np.min(late):.3e}..{np.max(late):.3e}, final S {float(sharp[-1]):.3f}; {text}")
        if row == 0:
            label = f"S* = L s1^(2-2/L) = {s_star:.2f}"
            ax_s.axhline(s_star, color="black", ls=":", lw=1.4, label=label)
            s_reached = float(sharps[0, -1])
            summary["s_star"] = s_star
            summary["s_star_rel_error"] = abs(s_reached - s_star) / s_star
            print(f"{name}: S* = {s_star:.4f}; lr = {rates[0]:g} ends at S = {s_reached:.6f} "
                  f"(rel. error {summary['s_star_rel_error']:.1e})")
        ax_s.set_ylim(0.0, 1.15 * 2 / min(rates) if row else 14.0)
        if row == 0:
            for ax in (ax_s, ax_l):
                ax.set_xscale("symlog", linthresh=10)
                ax.set_xlim(0, ts[-1])
        ax_s.set_title(f"{name}: sharpness (dashed: 2/lr)", fontsize=10)
        ax_l.set_title(f"{name}: training loss", fontsize=10)
        for ax in (ax_s, ax_l):
            ax.set_xlabel("step")
            ax.grid(alpha=0.3, lw=0.5)
        ax_s.set_ylabel("top Hessian eigenvalue S")
        ax_l.set_ylabel("loss")
        ax_s.legend(fontsize=7, loc="lower right")
        results["deep_linear" if row == 0 else "relu"] = summary
    fig.suptitle("Progressive sharpening and the edge of stability (Cohen et al. 2021)", fontsize=11)
    fig.tight_layout()
    fig.savefig(FIGURES / "edge_of_stability.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figure: edge_of_stability.png ({seconds:.1f} s)")
    results["seconds"] = seconds
    return results


if __name__ == "__main__":
    script_main(main, __doc__)
