"""Deep neural collapse along training of a 5-hidden-layer ReLU MLP, and where the collapse happens.

Beaglehole, Sukenik, Mondelli & Belkin, "Average gradient outer product as a mechanism for deep neural
collapse", NeurIPS 2024 (arXiv 2402.13728), Sec. 5 and App. D, on a synthetic task. Settings of the
paper's MLP: 5 hidden layers of width 512, ReLU, no biases, init scale 0.3 (times the He std), MSE on
+-1 one-hot targets, SGD with batches of 128 and learning rate 0.05 (linsolve's loss is
``1/2 mean_i |f(x_i) - y_i|^2``, i.e. K/2 = 2 times the paper's per-entry mean, so the step is
effectively twice as large). Data: a 4-class Gaussian mixture in d = 32 (512 points, means at radius
3, unit noise, standardised) instead of MNIST/CIFAR-10.

Reduced to keep the full run within a few minutes on one CPU core: 512 training points (not 50 000),
3000 SGD steps (750 epochs of 4 batches), 12 log-spaced records, float32, one seed (the paper: 3).

Measured at every record, per layer l (``linsolve.analysis``): NC1 = tr Sigma_W / tr Sigma_B at the
layer input ``h_{l-1}``, after the right singular factor ``S_l V_l^T h_{l-1}`` and after the ReLU; and
the NFA correlation ``rho(W_l^T W_l, AGOP_l^{1/2})`` (AGOP of the network w.r.t. the layer input),
with its chance level ``rho(G^T G, AGOP_l^{1/2})`` for Gaussian matrices G of the same shape.

Run: ``python experiments/neural_collapse_training.py [--smoke]``; writes
``figures/collapse_training_nc1.png`` and ``figures/collapse_training_nfa.png``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from linsolve.gallery import script_main

FIGURES = pathlib.Path(__file__).resolve().parent.parent / "figures"


def settings(smoke: bool) -> dict:
    if smoke:
        return dict(n=128, d=16, width=64, steps=200, records=5)
    return dict(n=512, d=32, width=512, steps=3000, records=12)


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve.analysis._agop import layer_agops, nfa_correlation
    from linsolve.analysis._collapse import collapse_along_training
    from linsolve.mlp import mlp_init
    from linsolve.simulate import gradient_descent
    from linsolve.tasks import Task

    FIGURES.mkdir(exist_ok=True)
    cfg = settings(smoke)
    K, depth, dtype = 4, 6, jnp.float32
    rng = np.random.default_rng(0)
    means = rng.normal(size=(K, cfg["d"]))
    means = 3.0 * means / np.linalg.norm(means, axis=1, keepdims=True)
    labels = np.arange(cfg["n"]) % K
    X = means[labels] + rng.normal(size=(cfg["n"], cfg["d"]))
    X = (X - X.mean(0)) / X.std(0)
    Y = 2 * np.eye(K)[labels] - 1
    Xj = jnp.asarray(X, dtype)
    task = Task.from_data(Xj, jnp.asarray(Y, dtype))

    sizes = (cfg["d"],) + (cfg["width"],) * (depth - 1) + (K,)
    net0 = mlp_init(jr.PRNGKey(0), sizes, bias=False, scale=0.3, dtype=dtype)
    record_at = np.unique(np.r_[0, np.round(np.geomspace(1, cfg["steps"], cfg["records"]))].astype(int))
    traj = gradient_descent(
        net0,
        task,
        lrs=0.05,
        steps=cfg["steps"],
        record_at=record_at,
        batch_size=128 if not smoke else 32,
        key=jr.PRNGKey(1),
    )
    col = collapse_along_training(traj, Xj, labels)
    steps = np.asarray(traj.ts)
    final = jax.tree_util.tree_map(lambda x: x[-1], traj.params)
    accuracy = float(np.mean(np.argmax(np.asarray(final(Xj)), 1) == labels))

    # chance level of the NFA correlation: Gaussian matrices of each layer's shape, final AGOPs
    agops = layer_agops(final, Xj)
    keys = jr.split(jr.PRNGKey(2), 5)
    chance = np.array(
        [
            np.mean([float(nfa_correlation(jr.normal(k, W.shape, dtype), M)) for k in keys])
            for W, M in zip(final.weights, agops)
        ]
    )
    post, inp, svd, nfa = (np.asarray(x) for x in (col.post, col.input, col.svd, col.nfa))
    out = {
        "steps": steps,
        "loss": np.asarray(traj.loss),
        "train_accuracy": accuracy,
        "nc1_input_final": inp[-1],
        "nc1_svd_final": svd[-1],
        "nc1_post_final": post[-1],
        "nc1_post_init": post[0],
        "nfa_final": nfa[-1],
        "nfa_init": nfa[0],
        "nfa_chance": chance,
    }
    np.set_printoptions(precision=3, linewidth=120)
    print(
        f"loss: {out['loss'][0]:.3f} -> {out['loss'][-1]:.2e} after {cfg['steps']} steps; "
        f"train accuracy {accuracy:.3f}"
    )
    print(
        "layer | NC1 input  NC1 S V^T  NC1 after ReLU (final) | NC1 after layer at init | "
        "NFA init  NFA final  chance"
    )
    for l in range(depth):
        print(
            f"{l + 1:5d} | {inp[-1, l]:9.3e}  {svd[-1, l]:9.3e}  {post[-1, l]:14.3e} | {post[0, l]:23.3e} | "
            f"{nfa[0, l]:8.3f}  {nfa[-1, l]:9.3f}  {chance[l]:6.3f}"
        )
    hidden = slice(1, depth - 1)
    frac = np.log(inp[-1, hidden] / svd[-1, hidden]) / np.log(inp[-1, hidden] / post[-1, hidden])
    print(
        f"share of the log-decrease of NC1 through hidden layers 2..{depth - 1} done by S V^T: "
        f"{frac} (1 = all of it; > 1: the ReLU raises NC1 again)"
    )
    print(
        f"NFA final, mean over layers: {nfa[-1].mean():.3f} +- {nfa[-1].std():.3f}; "
        f"chance {chance.mean():.3f}"
    )

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    s_plot = np.maximum(steps, 0.5)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    ax = axes[0]
    ax.semilogx(s_plot, out["loss"], "k.-")
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss")
    ax.set_title(f"MLP {depth - 1}x{cfg['width']}, ReLU, +-1 targets", fontsize=9)
    ax = axes[1]
    ax.semilogx(s_plot, inp[:, 0], ":", c="gray", label="input x")
    for l in range(depth):
        ax.semilogx(s_plot, post[:, l], ".-", c=colors[l % len(colors)], label=f"after layer {l + 1}")
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("NC1")
    ax.set_title("NC1 per layer along training", fontsize=9)
    ax.legend(fontsize=6)
    ax = axes[2]
    xs = np.arange(1, depth + 1)
    ax.semilogy(xs, inp[-1], "o-", label=r"layer input $h_{l-1}$")
    ax.semilogy(xs, svd[-1], "s-", label=r"$S_l V_l^\top h_{l-1}$")
    ax.semilogy(xs, post[-1], "^-", label=r"after ReLU (output: $W_L h$)")
    ax.set_xlabel("layer l")
    ax.set_ylabel("NC1 (end of training)")
    ax.set_title("the right singular factor does the collapsing", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "collapse_training_nc1.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.2, 3.5))
    for l in range(depth):
        ax.semilogx(s_plot, nfa[:, l], ".-", c=colors[l % len(colors)], label=f"layer {l + 1}")
        ax.axhline(chance[l], c=colors[l % len(colors)], lw=0.8, ls=":")
    ax.set_xlabel("SGD step")
    ax.set_ylabel(r"$\rho(W_l^\top W_l, \mathrm{AGOP}_l^{1/2})$")
    ax.set_title("NFA correlation along training (dotted: chance)", fontsize=9)
    ax.legend(fontsize=6, ncols=2)
    fig.tight_layout()
    fig.savefig(FIGURES / "collapse_training_nfa.png", dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    script_main(main, __doc__)
