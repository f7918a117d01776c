"""Lazy, rich and delayed-rich learning of the unbalanced single neuron ``f(x) = a w.x``.

Follows Kunin, Raventos, Domine, Chen, Klindt, Saxe & Ganguli, "Get rich quick" (NeurIPS 2024,
arXiv 2406.06158), Figs. 2-4a of its single-neuron notebook: whitened 2-D inputs, target
``beta* = (0, 1)``, a small start ``beta0 = a0 w0 = 0.1 (-1, 0)`` orthogonal to it, ``a0 > 0``, and
the conserved imbalance ``delta = a^2 - |w|^2`` (unit rates) set by the init. ``exact.single_neuron``
gives ``a(t)``, ``w(t)``, ``beta(t)`` and the kernel ``M = a^2 I + w w^T`` (``dbeta/dt = -M grad L``)
in closed form; ``simulate.gradient_flow`` integrates the same weights.

* ``delta >> 0`` (downstream, ``a`` large): lazy; ``M ~ a^2 I`` barely changes and ``beta`` runs
  straight to ``beta*``, exponentially fast.
* ``delta ~ 0`` (balanced): rich; ``w`` rotates onto ``beta*`` while it grows (sigmoidal loss).
* ``delta << 0`` (upstream, ``w`` large, ``a`` small): delayed rich; ``beta`` first shrinks toward
  0 (``w`` turns at small ``a``), then grows along ``beta*``; the kernel changes the most.

``figures/single_neuron_regimes.png``: (a) paths of ``beta`` in the plane, (b) loss and (c) kernel
distance ``S(t) = 1 - cos(M(0), M(t))`` against time, exact (lines) vs gradient flow (markers);
(d) the final kernel distance against delta: exact at ``t = inf`` (line) and the ``unbalanced``
sweep study (``sweep.run`` of the study's point function: gradient flow at every grid
point, markers).

Command: ``linsolve reproduce single_neuron_regimes [--smoke]``
(or ``python experiments/single_neuron_regimes.py``).
Runtime (measured standalone, incl. ~4 s of imports, on a shared 2-core CPU under load ~3):
full run 19 s, smoke run 14 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"

BETA_STAR = (0.0, 1.0)
INIT_SCALE = 0.1  # |beta0| = a0 |w0|
DELTAS = (-4.0, -1.0, 0.0, 1.0, 4.0)
T_END = 60.0


def initial_weights(delta: float, scale: float = INIT_SCALE):
    """``(a0, w0)`` with ``a0^2 - |w0|^2 = delta``, ``a0 |w0| = scale``, ``a0 > 0``, ``w0 || (-1, 0)``.

    ``a0^2`` is the positive root of ``x^2 - delta x - scale^2``, written without cancellation.
    """
    root = np.hypot(delta, 2 * scale)
    a0 = np.sqrt((delta + root) / 2 if delta >= 0 else 2 * scale**2 / (root - delta))
    return a0, (scale / a0) * np.array([-1.0, 0.0])


def kernel_distance(M):
    """``1 - <M(0), M(t)> / (|M(0)| |M(t)|)`` for kernels (T, d, d)."""
    inner = np.einsum("ij,tij->t", M[0], M)
    return 1.0 - inner / (np.linalg.norm(M[0]) * np.linalg.norm(M, axis=(1, 2)))


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import Task, exact, simulate
    from linsolve.sweep import parse_config, run

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    bs = np.array(BETA_STAR)
    task = Task(jnp.eye(2), jnp.asarray(bs)[None, :], jnp.asarray([[bs @ bs]]))
    n_line, n_sim = (150, 18) if smoke else (400, 30)
    t_line = np.concatenate([[0.0], np.geomspace(1e-2, T_END, n_line - 1)])
    t_sim = np.concatenate([[0.0], np.geomspace(1e-2, T_END, n_sim - 1)])

    fig, axes = plt.subplots(2, 2, figsize=(8.4, 6.6), dpi=100)
    colors = ("#08306b", "#4292c6", "#238b45", "#ef6548", "#99000d")  # upstream blue, balanced green
    rows = {}
    for delta, color in zip(DELTAS, colors):
        a0, w0 = initial_weights(delta)
        th = exact.single_neuron(jnp.asarray(np.concatenate([t_line, t_sim])), a0, w0, bs)
        beta, loss, S = np.asarray(th.beta), np.asarray(th.loss), kernel_distance(np.asarray(th.ntk))
        traj = simulate.gradient_flow(
            (jnp.asarray(w0)[None, :], jnp.full((1, 1), a0)), task, jnp.asarray(t_sim)
        )
        a_sim, w_sim = np.asarray(traj.params[1][:, 0, 0]), np.asarray(traj.params[0][:, 0, :])
        beta_sim = a_sim[:, None] * w_sim
        M_sim = a_sim[:, None, None] ** 2 * np.eye(2) + w_sim[:, :, None] * w_sim[:, None, :]
        S_sim = kernel_distance(M_sim)
        line, at = slice(0, n_line), slice(n_line, None)
        error = float(np.max(np.abs(beta_sim - beta[at])))
        learned = t_line[np.argmax(loss[line] <= 0.01 * loss[0])]
        rows[delta] = {
            "a0": a0,
            "kernel_distance": float(S[n_line - 1]),
            "t_learn": float(learned),
            "min_beta": float(np.min(np.linalg.norm(beta[line], axis=1))),
            "error": error,
        }
        print(
            f"delta = {delta:+.0f}: a0 = {a0:.3f}, |w0| = {np.linalg.norm(w0):.3f}, loss to 1 % at t = "
            f"{learned:.2f}, min |beta| = {rows[delta]['min_beta']:.3g}, S(T) = {S[n_line - 1]:.3f}; "
            f"max |beta_flow - beta_exact| = {error:.1e}"
        )
        label = rf"$\delta$ = {delta:+g}"
        axes[0, 0].plot(beta[line, 0], beta[line, 1], color=color, lw=2, label=label)
        axes[0, 0].plot(beta_sim[:, 0], beta_sim[:, 1], "o", color=color, ms=4, mfc="none")
        axes[0, 1].plot(t_line[1:], loss[line][1:], color=color, lw=2, label=label)
        axes[0, 1].plot(t_sim[1:], np.asarray(traj.loss)[1:], "o", color=color, ms=4, mfc="none")
        axes[1, 0].plot(t_line[1:], S[line][1:], color=color, lw=2, label=label)
        axes[1, 0].plot(t_sim[1:], S_sim[1:], "o", color=color, ms=4, mfc="none")

    ax = axes[0, 0]
    ax.plot(*bs, "k*", ms=12, label=r"target $\beta^*$")
    ax.plot(-INIT_SCALE, 0.0, "ks", ms=6, label=r"start $\beta_0$")
    ax.set_xlabel(r"$\beta_1$")
    ax.set_ylabel(r"$\beta_2$")
    ax.set_xlim(-0.5, 0.3)  # delayed rich swings out to beta_1 ~ -0.4 before turning to beta*
    ax.set_ylim(-0.08, 1.1)
    ax.set_title(r"(a) path of $\beta = a w$: exact (lines), flow (circles)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    for ax, ylabel, title in (
        (axes[0, 1], r"loss $\frac{1}{2}|\beta - \beta^*|^2$", "(b) loss"),
        (axes[1, 0], "kernel distance S(t)", r"(c) kernel distance $1 - \cos(M(0), M(t))$"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("time t (unit learning rates)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_ylim(1e-8, 2.0)
    axes[0, 1].legend(fontsize=7, loc="lower left")
    axes[1, 0].legend(fontsize=7, loc="upper left")

    # (d) the unbalanced sweep study over delta (gradient flow) against the exact limit.
    delta_grid = {"lin": [-6.0, 6.0, 7 if smoke else 13]}
    config = parse_config(
        {
            "study": "unbalanced",
            "axes": {"init_scale": [INIT_SCALE], "delta": delta_grid},
            "params": {"n_times": 32 if smoke else 64},
        }
    )
    # sweep.run on the study's point function; one wide vmap (batch_size=None) compiles fastest here.
    result = run(
        config.study.make(config.params, config.grid.axes), config.grid, progress=False, batch_size=None
    )
    d_sweep = result.axes["delta"]
    S_sweep = result["kernel_distance"][0]
    d_line = np.linspace(-6.0, 6.0, 41 if smoke else 121)
    S_line = []
    for delta in d_line:
        a0, w0 = initial_weights(delta)
        M = np.asarray(exact.single_neuron(jnp.asarray([0.0, jnp.inf]), a0, w0, bs).ntk)
        S_line.append(kernel_distance(M)[-1])
    S_line = np.array(S_line)
    S_at = np.interp(d_sweep, d_line, S_line)
    sweep_error = float(np.max(result["error"]))
    print(
        f"unbalanced study, {len(d_sweep)} deltas in [-6, 6]: max |S_flow(T) - S_exact(inf)| = "
        f"{np.max(np.abs(S_sweep - S_at)):.1e}, max relative |beta_flow - beta_exact| = {sweep_error:.1e}"
    )
    ax = axes[1, 1]
    ax.plot(d_line, S_line, color="k", lw=2, label=r"exact, $t = \infty$")
    ax.plot(
        d_sweep,
        S_sweep,
        "o",
        color="tab:orange",
        ms=7,
        mfc="none",
        mew=1.5,
        label="sweep study (gradient flow)",
    )
    ax.set_xlabel(r"imbalance $\delta = a_0^2 - |w_0|^2$")
    ax.set_ylabel("final kernel distance S")
    ax.set_title("(d) lazy (right) vs rich / delayed rich (left)", fontsize=9)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(
        rf"Single neuron $f(x) = a\,w\cdot x$, $|\beta_0| = {INIT_SCALE}$, $\beta_0 \perp \beta^*$",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "single_neuron_regimes.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    worst = max(r["error"] for r in rows.values())
    print(f"max |beta_flow - beta_exact| over the trajectories: {worst:.1e}")
    print(f"figure: single_neuron_regimes.png ({seconds:.1f} s)")
    return {"trajectories": rows, "sweep_error": sweep_error, "seconds": seconds}


if __name__ == "__main__":
    script_main(main, __doc__)
