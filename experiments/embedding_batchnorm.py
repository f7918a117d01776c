"""Batch normalisation and layer linearisation (Bai, Luo, Xu & Zhang, arXiv 2205.13283).

A layer whose ReLU neurons are all sign-constant on the training set acts linearly on the data, the
signature of a lifted critical point. With batch normalisation before the ReLU, a neuron's
normalised pre-activation has batch mean ``beta`` and standard deviation ``gamma``, so it can only be
sign-constant when the shift dominates the scale. This study trains the same deep ReLU MLPs with
and without BN by full-batch gradient descent and records the layer linearisation index (fraction of
sign-constant neurons per hidden layer) and the loss.

Writes figures/embedding_batchnorm.png.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def main(smoke: bool = False) -> dict:
    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve.analysis._lifting import linearisation_index
    from linsolve.mlp import mlp_init
    from linsolve.simulate import gradient_descent
    from linsolve.tasks import Task

    FIGURES.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    n, d, width, depth = 64, 4, 16, 4
    X = rng.normal(size=(n, d))
    w = rng.normal(size=(d, 2)) / np.sqrt(d)
    Y = np.sin(2 * X @ w[:, :1]) + np.maximum(X @ w[:, 1:], 0)
    task = Task.from_data(jnp.asarray(X), jnp.asarray(Y))
    Xj = jnp.asarray(X)
    steps = 300 if smoke else 5_000
    seeds = 2 if smoke else 6
    lr = 0.05
    record = np.r_[0, np.unique(np.logspace(0, np.log10(steps), 40).astype(int))]
    sizes = (d,) + (width,) * (depth - 1) + (1,)
    results = {}
    for bn in (False, True):

        def one(key, bn=bn):
            p = mlp_init(key, sizes, batchnorm=bn)
            t = gradient_descent(
                p,
                task,
                lrs=lr,
                steps=steps,
                record_at=record,
                observe=lambda q: {"lin": linearisation_index(q, Xj)},
            )
            return t.loss, t.observables["lin"]

        losses, lin = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(0), seeds))
        results[bn] = (np.asarray(losses), np.asarray(lin))  # (seeds, T), (seeds, T, depth - 1)
    out = {}
    for bn, (losses, lin) in results.items():
        name = "with BN" if bn else "no BN"
        half = np.searchsorted(record, steps // 10)
        print(
            f"{name:8s}: loss at step {record[half]} median {np.median(losses[:, half]):.3e}, "
            f"final median {np.median(losses[:, -1]):.3e}; linearisation index per layer (mean over seeds "
            f"and records) {np.round(lin.mean(axis=(0, 1)), 3)}, final {np.round(lin[:, -1].mean(axis=0), 3)}"
        )
        out[name] = {"final_loss": float(np.median(losses[:, -1])), "lin": lin.mean(axis=(0, 1)).tolist()}

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.maximum(record, 1)
    for bn, (losses, lin) in results.items():
        color = "C3" if bn else "C0"
        label = "with BN" if bn else "no BN"
        for i in range(losses.shape[0]):
            axes[0].plot(x, losses[i], color=color, alpha=0.5, lw=1, label=label if i == 0 else None)
        for layer in range(lin.shape[2]):
            axes[1].plot(
                x,
                lin[:, :, layer].mean(axis=0),
                color=color,
                ls=("-", "--", ":")[layer % 3],
                label=f"{label}, hidden layer {layer + 1}",
            )
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("GD step")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=7)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("GD step")
    axes[1].set_ylabel("linearisation index (sign-constant fraction)")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(FIGURES / "embedding_batchnorm.png", dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    script_main(main, __doc__)
