"""Deep neural collapse in Deep Recursive Feature Machines: the AGOP step does the collapsing.

Beaglehole, Sukenik, Mondelli & Belkin, "Average gradient outer product as a mechanism for deep neural
collapse", NeurIPS 2024 (arXiv 2402.13728), Sec. 4 and Fig. 2, on a synthetic task: a 4-class
Gaussian mixture (240 points, d = 30, means at radius 3, unit noise) instead of MNIST/CIFAR. Deep
RFM as in the paper: Laplace kernel of bandwidth 2, ridgeless, ReLU random features of width 1024,
one AGOP step per layer, targets +-1 one-hot. Per layer, NC1 = tr Sigma_W / tr Sigma_B is measured on
the normalised layer input X_l, after the AGOP projection M_l^{1/2} X_l and after the random feature
map ReLU(W M_l^{1/2} X_l). Controls: the same network without the AGOP (M_l = I, random features
alone), a class-imbalanced mixture (120/60/40/20 points), and the linear kernel, which collapses an
interpolated data set (d >= N) in a single layer.

Run: ``python experiments/neural_collapse_rfm.py [--smoke]``; writes ``figures/collapse_rfm_nc1.png``
and ``figures/collapse_rfm_gram.png``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from linsolve.gallery import script_main

FIGURES = pathlib.Path(__file__).resolve().parent.parent / "figures"


def mixture(counts, d: int, seed: int, separation: float = 3.0):
    """Gaussian mixture with the given class counts; means at radius `separation`, unit noise."""
    rng = np.random.default_rng(seed)
    k = len(counts)
    means = rng.normal(size=(k, d))
    means = separation * means / np.linalg.norm(means, axis=1, keepdims=True)
    labels = np.repeat(np.arange(k), counts)
    return means[labels] + rng.normal(size=(labels.size, d)), labels


def centred_gram(Z: np.ndarray) -> np.ndarray:
    """Gram matrix of the centred, normalised rows (the paper's collapse picture)."""
    Z = Z - Z.mean(0)
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    return Z @ Z.T


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve.analysis._rfm import deep_rfm

    FIGURES.mkdir(exist_ok=True)
    layers, width = (2, 64) if smoke else (10, 1024)
    d, K = 30, 4
    X, labels = mixture([60] * K, d, seed=0)
    Xi, labels_i = mixture([120, 60, 40, 20], d, seed=1)
    key = jr.PRNGKey(0)

    runs = {
        "agop": deep_rfm(X, labels, layers=layers, width=width, key=key),
        "no_agop": deep_rfm(X, labels, layers=layers, width=width, key=key, use_agop=False),
        "imbalanced": deep_rfm(Xi, labels_i, layers=layers, width=width, key=key),
    }
    Xl, labels_l = mixture([10] * K, 60, seed=2)  # d = 60 >= N = 40
    linear = deep_rfm(Xl, labels_l, layers=1, kernel="linear", feature_map="none", key=key)

    out = {
        name: {f: np.asarray(getattr(r, f)) for f in ("nc1_input", "nc1_agop", "nc1_features")}
        for name, r in runs.items()
    }
    out["agop"]["nc2_input"] = np.asarray(runs["agop"].nc2_input)
    out["linear_nc1"] = float(linear.nc1_agop[0])
    out["linear_nc2"] = float(linear.nc2_agop[0])
    out["train_accuracy"] = float(runs["agop"].train_accuracy)

    a = out["agop"]
    print("layer  NC1(X_l)   NC1(M^1/2 X_l)  NC1(ReLU feats)  NC2(X_l)  | no AGOP NC1(X_l) | imbalanced")
    for l in range(layers):
        print(
            f"{l + 1:5d}  {a['nc1_input'][l]:9.3e}  {a['nc1_agop'][l]:14.3e}  {a['nc1_features'][l]:15.3e}  "
            f"{a['nc2_input'][l]:8.3e}  | {out['no_agop']['nc1_input'][l]:16.3e} | "
            f"{out['imbalanced']['nc1_input'][l]:10.3e}"
        )
    drop_agop = np.log(a["nc1_input"] / a["nc1_agop"])
    rise_rf = np.log(a["nc1_features"] / a["nc1_agop"])
    print(
        f"mean log-decrease of NC1 through M^1/2: {drop_agop.mean():.2f}; "
        f"mean log-increase through the random features: {rise_rf.mean():.2f}"
    )
    print(
        f"NC1 ratio last/first layer input: {a['nc1_input'][-1] / a['nc1_input'][0]:.2e} (AGOP), "
        f"{out['no_agop']['nc1_input'][-1] / out['no_agop']['nc1_input'][0]:.2f} (random features only)"
    )
    print(
        f"linear kernel, d=60 >= N=40, ridgeless, one layer: NC1 = {out['linear_nc1']:.1e}, "
        f"NC2 = {out['linear_nc2']:.1e}; train accuracy (Laplace) = {out['train_accuracy']:.3f}"
    )

    # NC1 and NC2 over depth
    ls = np.arange(1, layers + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    ax = axes[0]
    ax.semilogy(ls, a["nc1_input"], "o-", label=r"$X_l$")
    ax.semilogy(ls, a["nc1_agop"], "s-", label=r"$M_l^{1/2} X_l$")
    ax.semilogy(ls, a["nc1_features"], "^-", label=r"ReLU$(W_l M_l^{1/2} X_l)$")
    ax.semilogy(ls, out["no_agop"]["nc1_input"], "x--", c="gray", label=r"$X_l$, no AGOP ($M_l=I$)")
    ax.semilogy(ls, out["imbalanced"]["nc1_input"], "d:", c="k", ms=3, label=r"$X_l$, imbalanced")
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(r"NC1 = tr$\Sigma_W$ / tr$\Sigma_B$")
    ax.set_title("Deep RFM (Laplace): NC1", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    r = runs["agop"]
    ax.semilogy(ls, np.asarray(r.nc2_input), "o-", label=r"$X_l$")
    ax.semilogy(ls, np.asarray(r.nc2_agop), "s-", label=r"$M_l^{1/2} X_l$")
    ax.semilogy(ls, np.asarray(r.nc2_features), "^-", label="ReLU features")
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(r"NC2 = $\|\bar M \bar M^\top - \Sigma_{ETF}\|_F$")
    ax.set_title("distance of the class means to a simplex ETF", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "collapse_rfm_nc1.png", dpi=100)
    plt.close(fig)

    # Gram matrices of centred, normalised M^{1/2} X_l at a few layers
    stages = r.layers(X)
    show = sorted({0, layers // 2, layers - 1})
    fig, axes = plt.subplots(1, len(show), figsize=(2.7 * len(show) + 0.8, 2.7), layout="constrained")
    for ax, l in zip(np.atleast_1d(axes), show):
        im = ax.imshow(centred_gram(np.asarray(stages[l][1])), vmin=-1 / (K - 1) - 0.1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"layer {l + 1}: Gram of $M^{{1/2}}X$", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=np.atleast_1d(axes).tolist(), shrink=0.8)
    fig.savefig(FIGURES / "collapse_rfm_gram.png", dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    script_main(main, __doc__)
