"""Narrow vs wide one-hidden-layer ReLU nets: are their SGD training dynamics conjugate?

Redman et al., "Identifying equivalent training dynamics", NeurIPS 2024 (arXiv 2302.09160), Fig. 3,
with the MNIST data replaced by a synthetic 10-class Gaussian mixture (no downloads) and the
negative log-likelihood by linsolve's mean-squared loss on one-hot targets. Settings follow the
authors' code otherwise: nets ``d -> h -> 10``, ReLU, no biases, widths ``h in {5, 10, 40}``, SGD
with learning rate 0.1 and batches of 60; per seed one random initialisation plus 9 copies
perturbed by ``w <- w (1 + 0.001 U(-1, 1))``, all trained on the same batch sequence; observables
the ``10 h`` output-layer weights at every step; delays ``n_d = base * 10 / h`` so that the embedded
dimensions ``(n_d + 1) 10 h`` are comparable; DMD truncated to 10 modes; ``W`` between widths per
seed, read against the between-seed baseline ``W`` of each width.

Smaller than the paper (the authors: 25 seeds, base 32, i.e. delays 64/32/8): 6 seeds and base 4
(delays 8/4/1, embedded dimensions 450/500/800) keep the full run within a few minutes on one core
(the cost is the SVD of the (embedded dimension) x (snapshots) matrix; set OPENBLAS_NUM_THREADS=1
on a shared machine). Every width is trained inside one width-40 net whose extra hidden units are
zero (they stay exactly zero under SGD), so the simulator compiles once.

Run: ``python experiments/koopman_width.py [--smoke]``; writes ``figures/koopman_width.png``.
"""

from __future__ import annotations

import itertools
import pathlib

import numpy as np

from linsolve.gallery import script_main

FIGURES = pathlib.Path(__file__).resolve().parent.parent / "figures"

WIDTHS = (5, 10, 40)
CLASSES = 10


def settings(smoke: bool) -> dict:
    if smoke:
        return dict(d=10, n=600, seeds=2, inits=4, steps=60, base=2, shuffles=100)
    return dict(d=20, n=3000, seeds=6, inits=10, steps=1000, base=4, shuffles=1000)


def spectra(cfg: dict, lr: float = 0.1, batch: int = 60) -> tuple[dict, dict]:
    """Koopman eigenvalues per width and seed (``eigs[h]`` is (seeds, 10)) and the loss curves."""
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import models, tasks
    from linsolve.analysis._koopman import dmd, ensemble_observables, perturbed_ensemble

    task = tasks.gaussian_mixture(jr.PRNGKey(0), cfg["n"], cfg["d"], CLASSES, separation=2.0)
    H = max(WIDTHS)
    eigs = {h: [] for h in WIDTHS}
    losses = {h: [] for h in WIDTHS}
    for seed in range(cfg["seeds"]):
        k_batch, *k_init = jr.split(jr.PRNGKey(1000 + seed), 1 + 2 * len(WIDTHS))
        for i, h in enumerate(WIDTHS):
            scales = (1 / np.sqrt(cfg["d"]), 1 / np.sqrt(h))
            net = models.shallow_init(k_init[2 * i], cfg["d"], h, CLASSES, scales=scales, bias=False)
            # Width as a mask: zero hidden units of a ReLU net get zero gradients (relu'(0) = 0) and
            # stay zero, so every width trains exactly inside one width-H net and compiles once.
            padded = models.ShallowNet(
                jnp.zeros((H, cfg["d"])).at[:h].set(net.W1),
                None,
                jnp.zeros((CLASSES, H)).at[:, :h].set(net.W2),
                None,
            )
            ensemble = perturbed_ensemble(padded, cfg["inits"], key=k_init[2 * i + 1], rel=1e-3)
            run = ensemble_observables(
                ensemble, task, lrs=jnp.asarray(lr), steps=cfg["steps"], batch_size=batch, key=k_batch
            )
            if run.diverged.any():
                raise RuntimeError(f"SGD diverged for h={h}, seed={seed}.")
            T, _, N = run.observables.shape
            W2 = run.observables.reshape(T, CLASSES, H, N)
            assert np.all(W2[:, :, h:] == 0)
            delays = cfg["base"] * 10 // h
            eigs[h].append(dmd(W2[:, :, :h].reshape(T, CLASSES * h, N), delays=delays, rank=10))
            losses[h].append(run.loss.mean(axis=1))
    return {h: np.array(e) for h, e in eigs.items()}, {h: np.array(v) for h, v in losses.items()}


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve.analysis._koopman import conjugacy_test, seed_baseline

    cfg = settings(smoke)
    eigs, losses = spectra(cfg)
    pairs = list(itertools.combinations(WIDTHS, 2))
    W = {pair: [] for pair in pairs}
    P = {pair: [] for pair in pairs}
    for (a, b), s in itertools.product(pairs, range(cfg["seeds"])):
        w, p = conjugacy_test(eigs[a][s], eigs[b][s], shuffles=cfg["shuffles"], key=jr.PRNGKey(s))
        W[(a, b)].append(w)
        P[(a, b)].append(p)
    base = {h: seed_baseline(eigs[h]) for h in WIDTHS}

    print(f"settings: {cfg}")
    for h in WIDTHS:
        print(
            f"h={h:2d}: final loss {np.mean([v[-1] for v in losses[h]]):.4f}; "
            f"between-seed W = {base[h].mean:.4f} +- {base[h].std:.4f}"
        )
    for pair in pairs:
        w = np.array(W[pair])
        print(
            f"W(h={pair[0]}, h={pair[1]}) = {w.mean():.4f} +- {w.std():.4f}   "
            f"mean shuffle p = {np.mean(P[pair]):.3f}"
        )

    FIGURES.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ax = axes[0]
    for h, marker in zip(WIDTHS, ("ko", "r^", "b*")):
        e = eigs[h][0]
        ax.plot(e.real, e.imag, marker, ms=6, label=f"h={h}", mfc="none" if h == 5 else None)
    t = np.linspace(-0.06, 0.06, 100)
    ax.plot(np.cos(t), np.sin(t), "k--", lw=0.8, label="unit circle")
    ax.set_ylim(-0.05, 0.05)
    ax.set_xlabel(r"Re $\lambda$")
    ax.set_ylabel(r"Im $\lambda$")
    ax.set_title("Koopman eigenvalues (seed 0)")
    ax.legend()
    ax = axes[1]
    labels = [f"{a}-{b}" for a, b in pairs] + [f"seeds h={h}" for h in WIDTHS]
    means = [np.mean(W[p]) for p in pairs] + [base[h].mean for h in WIDTHS]
    stds = [np.std(W[p]) for p in pairs] + [base[h].std for h in WIDTHS]
    colors = ["C0"] * len(pairs) + ["0.6"] * len(WIDTHS)
    ax.bar(labels, means, yerr=stds, color=colors, capsize=3)
    ax.set_ylabel("Wasserstein distance")
    ax.set_title("between widths (per seed) vs between seeds")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(FIGURES / "koopman_width.png")
    plt.close(fig)
    return {"eigenvalues": eigs, "distances": W, "p_values": P, "baseline": base}


if __name__ == "__main__":
    script_main(main, __doc__)
