"""Representation dynamics over long training (after Sharon & Dar 2024, arXiv 2405.17377).

Part 1. A small ReLU MLP (two hidden layers) on a three-class Gaussian mixture with 20 % of the
training labels flipped is trained far past interpolation (zero training error on the noisy
labels) with minibatch SGD and with Adam, recording log-spaced snapshots
(``gradient_descent(record_at=...)``). Each layer is compared with itself at every other snapshot:
linear CKA on a held-out evaluation set (epoch x epoch heat maps) and the agreement of the decision
regions of least-squares linear probes on planes through triplets of training points (Somepalli et
al. 2022). Train/test error curves mark the interpolation epoch; decision regions of the network
and of a probe are drawn on one plane at several epochs.

Part 2. A two-layer linear net from a small (balanced) init on a whitened teacher task learns its
modes one after another (Saxe et al. 2014); the exact matrix Riccati solution
(``linsolve.exact.lambda_balanced``) gives the epoch x epoch CKA matrix in closed form
(``cka_matrix_exact``), compared with the one from simulated gradient descent (and gradient flow).

Figures: figures/representation_{errors,cka,probes,regions,linear}.png.
Run: ``python experiments/representation_dynamics.py [--smoke]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"
K = 3  # classes


def _data(rng, d, n, n_test, noise_frac, separation):
    """Gaussian mixture: class means at radius `separation`, unit noise; training labels flipped
    to another class with probability `noise_frac` (the test labels are clean). NumPy, so that
    data generation compiles nothing."""
    means = rng.normal(size=(K, d))
    means = separation * means / np.linalg.norm(means, axis=1, keepdims=True)

    def sample(m):
        lab = np.arange(m) % K
        return means[lab] + rng.normal(size=(m, d)), lab

    X, y = sample(n)
    Xt, yt = sample(n_test)
    flip = rng.uniform(size=n) < noise_frac
    y_noisy = np.where(flip, (y + rng.integers(1, K, n)) % K, y)
    return X, y_noisy, flip, Xt, yt


def _he_mlp(rng, sizes, readout_scale=0.1):
    """ReLU MLP with He-normal weights (as ``mlp_init``), the read-out layer scaled down by
    `readout_scale` (small initial outputs avoid an early loss spike of SGD), zero biases."""
    from linsolve.mlp import MLP

    gains = [2.0] * (len(sizes) - 2) + [2.0 * readout_scale**2]
    weights = tuple(
        jax.device_put(rng.normal(size=(m, k)) * np.sqrt(g / k))
        for k, m, g in zip(sizes[:-1], sizes[1:], gains)
    )
    biases = tuple(jax.device_put(np.zeros(m)) for m in sizes[1:])
    return MLP(weights, biases, None, None, "relu")


def _log_steps(steps, count):
    return np.unique(np.concatenate([[0], np.geomspace(1, steps, count).astype(int)]))


def _relu_run(opt, lr, cfg, data, planes):
    """Train one optimiser; return errors, CKA matrices and probe-agreement matrices per layer."""
    from linsolve import Task
    from linsolve.analysis._cka import cka_matrix
    from linsolve.analysis._probes import agreement_matrix, fit_probe
    from linsolve.simulate import gradient_descent

    X, y_noisy, _, Xt, yt = data
    n = X.shape[0]
    task = Task.from_data(X, np.eye(K)[y_noisy], labels=y_noisy)
    net = _he_mlp(np.random.default_rng(cfg["seed"] + 1), (X.shape[1], cfg["width"], cfg["width"], K))
    rec = _log_steps(cfg["steps"], cfg["snapshots"])
    t0 = time.perf_counter()
    traj = gradient_descent(
        net,
        task,
        lrs=lr,
        steps=cfg["steps"],
        record_at=rec,
        optimizer=opt,
        batch_size=cfg["batch"],
        key=jr.PRNGKey(cfg["seed"] + 2),
    )
    jax.block_until_ready(traj.loss)
    train_s = time.perf_counter() - t0
    epochs = rec * cfg["batch"] / n

    layers = jax.jit(jax.vmap(lambda p, Z: p.layers(Z).post, in_axes=(0, None)))
    post_train, post_test = layers(traj.params, X), layers(traj.params, Xt)
    train_err = np.asarray(jnp.mean(jnp.argmax(post_train[-1], -1) != y_noisy, axis=1))
    test_err = np.asarray(jnp.mean(jnp.argmax(post_test[-1], -1) != yt, axis=1))
    interp = int(np.argmax(train_err == 0)) if np.any(train_err == 0) else None

    # CKA on the held-out set, every layer (hidden 1, hidden 2, output).
    cka = [np.asarray(cka_matrix(R)) for R in post_test]

    # Decision regions on the plane grids: the hidden layers' probes and the network output.
    pts = planes.points.reshape(-1, X.shape[1])
    post_pts = layers(traj.params, pts)
    T = rec.size
    preds = []
    for l in range(2):
        fits = [fit_probe(post_train[l][t], y_noisy, num_classes=K) for t in range(T)]
        preds.append(np.stack([np.asarray(fits[t](post_pts[l][t])) for t in range(T)]))
    preds.append(np.asarray(jnp.argmax(post_pts[-1], -1)))
    agree = [np.asarray(agreement_matrix(p)) for p in preds]
    return dict(
        epochs=epochs,
        train_err=train_err,
        test_err=test_err,
        interp=interp,
        cka=cka,
        agree=agree,
        preds=preds,
        train_s=train_s,
        loss=np.asarray(traj.loss),
    )


def _linear_run(cfg):
    """Two-layer linear net from small init: closed-form CKA matrices vs simulated snapshots."""
    from linsolve import Task
    from linsolve.analysis._cka import cka_matrix, cka_matrix_exact
    from linsolve.simulate import gradient_descent, gradient_flow

    d, n = cfg["lin_d"], cfg["lin_n"]
    rng = np.random.default_rng(cfg["seed"] + 10)
    svals = np.asarray(cfg["lin_svals"])
    U = np.linalg.qr(rng.normal(size=(d, svals.size)))[0]
    V = np.linalg.qr(rng.normal(size=(d, svals.size)))[0]
    X = rng.normal(size=(n, d))
    w, Q = np.linalg.eigh(X.T @ X / n)
    X = X @ Q @ np.diag(w**-0.5) @ Q.T  # whitened: X^T X / n = I exactly
    task = Task.from_data(X, X @ V @ np.diag(svals) @ U.T)  # teacher W* = U diag(s) V^T
    # balanced (lam = 0) small init: W2 = O (W1 W1^T)^{1/2}, so W2^T W2 = W1 W1^T
    W1 = cfg["lin_scale"] * rng.normal(size=(d, d))
    w, Q = np.linalg.eigh(W1 @ W1.T)
    W2 = np.linalg.qr(rng.normal(size=(d, d)))[0] @ (Q * np.sqrt(np.clip(w, 0, None))) @ Q.T
    W1, W2 = jax.device_put(W1), jax.device_put(W2)
    lr, steps = cfg["lin_lr"], cfg["lin_steps"]
    rec = np.unique(np.linspace(0, steps, cfg["snapshots"] + 1).astype(int))  # stages: linear time
    traj = gradient_descent((W1, W2), task, lrs=lr, steps=steps, record_at=rec)
    X = task.X
    hid = jnp.einsum("nd,thd->tnh", X, traj.params[0])
    out = jnp.einsum("nd,tod->tno", X, traj.product())
    sim = {"hidden": np.asarray(cka_matrix(hid)), "output": np.asarray(cka_matrix(out))}
    # GD with rate lr after k steps is time t = k with tau = 1/lr.
    exact = {
        layer: np.asarray(cka_matrix_exact(rec, W1, W2, task, tau=1 / lr, layer=layer, X=X))
        for layer in ("hidden", "output")
    }
    out_d = dict(rec=rec, time=rec * lr, sim=sim, exact=exact, loss=np.asarray(traj.loss), svals=svals)
    out_d["svals_t"] = np.asarray(jnp.linalg.svd(traj.product(), compute_uv=False))
    out_d["gd_err"] = max(float(np.max(np.abs(sim[k] - exact[k]))) for k in sim)
    if cfg["lin_flow"]:
        flow = gradient_flow((W1, W2), task, rec * lr)
        fh = jnp.einsum("nd,thd->tnh", X, flow.params[0])
        out_d["flow_err"] = float(np.max(np.abs(np.asarray(cka_matrix(fh)) - exact["hidden"])))
    return out_d


def _ticks(ax, epochs, axis="both"):
    idx = np.unique(np.linspace(0, epochs.size - 1, 5).astype(int))
    labels = [f"{e:.3g}" for e in epochs[idx]]
    if axis in ("both", "x"):
        ax.set_xticks(idx, labels, fontsize=7, rotation=45)
    if axis in ("both", "y"):
        ax.set_yticks(idx, labels, fontsize=7)


def _heatmaps(plt, runs, key, titles, path, suptitle):
    fig, axes = plt.subplots(len(runs), 3, figsize=(10, 3.2 * len(runs)), squeeze=False, layout="constrained")
    for r, (name, res) in enumerate(runs.items()):
        for c in range(3):
            ax = axes[r, c]
            im = ax.imshow(res[key][c], vmin=0, vmax=1, cmap="viridis", origin="lower")
            _ticks(ax, res["epochs"])
            if res["interp"] is not None:
                ax.axvline(res["interp"], color="w", lw=0.8, ls="--")
                ax.axhline(res["interp"], color="w", lw=0.8, ls="--")
            ax.set_title(f"{name}: {titles[c]}", fontsize=9)
            if c == 0:
                ax.set_ylabel("epoch", fontsize=8)
            if r == len(runs) - 1:
                ax.set_xlabel("epoch", fontsize=8)
        fig.colorbar(im, ax=axes[r].tolist(), shrink=0.8)
    fig.suptitle(suptitle, fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(smoke: bool = False) -> dict:
    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve.analysis._probes import triplet_planes

    cfg = dict(
        seed=0,
        d=10,
        n=100,
        n_test=1000,
        noise=0.2,
        sep=2.5,
        width=100,
        batch=32,
        steps=50_000,
        snapshots=40,
        n_planes=8,
        resolution=30,
        sgd_lr=0.01,
        adam_lr=1e-3,
        lin_d=6,
        lin_n=200,
        lin_svals=(2.0, 1.5, 1.0, 0.5),
        lin_scale=1e-4,
        lin_lr=0.01,
        lin_steps=3000,
        lin_flow=True,
    )
    if smoke:
        cfg.update(width=32, steps=600, snapshots=12, n_planes=3, resolution=12, lin_flow=False)
    FIGURES.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    data = _data(
        np.random.default_rng(cfg["seed"]), cfg["d"], cfg["n"], cfg["n_test"], cfg["noise"], cfg["sep"]
    )
    X, y_noisy = data[0], data[1]
    planes = triplet_planes(
        jr.PRNGKey(cfg["seed"] + 3), X, y_noisy, n_planes=cfg["n_planes"], resolution=cfg["resolution"]
    )
    runs = {
        "SGD": _relu_run("sgd", cfg["sgd_lr"], cfg, data, planes),
        "Adam": _relu_run("adam", cfg["adam_lr"], cfg, data, planes),
    }
    lin = _linear_run(cfg)

    # --- figures ------------------------------------------------------------------------------
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for c, (name, res) in zip(("C0", "C3"), runs.items()):
        e = np.maximum(res["epochs"], res["epochs"][1] / 2)
        ax[0].plot(e, res["train_err"], c, ls="--", label=f"{name} train (noisy labels)")
        ax[0].plot(e, res["test_err"], c, label=f"{name} test (clean)")
        ax[1].loglog(e, res["loss"], c, label=name)
        if res["interp"] is not None:
            for a in ax:
                a.axvline(e[res["interp"]], color=c, lw=0.8, ls=":")
    ax[0].set_xscale("log")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("error")
    ax[0].legend(fontsize=7)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("train loss (MSE)")
    ax[1].legend(fontsize=7)
    ax[0].set_title(f"errors; dotted: interpolation ({int(cfg['noise'] * 100)}% label noise)", fontsize=9)
    fig.tight_layout()
    fig.savefig(FIGURES / "representation_errors.png", dpi=100)
    plt.close(fig)

    layer_names = ("hidden 1", "hidden 2", "output")
    _heatmaps(
        plt,
        runs,
        "cka",
        [f"CKA {n}" for n in layer_names],
        FIGURES / "representation_cka.png",
        "epoch x epoch linear CKA (held-out set); dashed: interpolation",
    )
    _heatmaps(
        plt,
        runs,
        "agree",
        ["probe regions hidden 1", "probe regions hidden 2", "network regions"],
        FIGURES / "representation_probes.png",
        "epoch x epoch decision-region agreement on planes through training triplets",
    )

    res = runs["SGD"]
    T = res["epochs"].size
    r = cfg["resolution"]
    show = sorted({1, T // 3, res["interp"] if res["interp"] is not None else T // 2, T - 1})
    fig, axes = plt.subplots(2, len(show), figsize=(2.4 * len(show), 5))
    anc = np.asarray(planes.anchors[0])
    frame = np.stack([np.asarray(planes.a[0]), np.asarray(planes.b[0])])
    anchor_x = np.asarray(planes.origin[0]) + anc @ frame
    rows = [int(np.argmin(np.sum((np.asarray(X) - x) ** 2, axis=1))) for x in anchor_x]
    anchor_lab, anchor_flip = np.asarray(y_noisy)[rows], np.asarray(data[2])[rows]
    coords = np.asarray(planes.coords[0])
    ext = [coords[:, 0].min(), coords[:, 0].max(), coords[:, 1].min(), coords[:, 1].max()]
    for c, t in enumerate(show):
        for row, (pi, lab) in enumerate(((2, "network"), (1, "probe on hidden 2"))):
            img = res["preds"][pi][t].reshape(-1, r * r)[0].reshape(r, r)
            a = axes[row, c]
            a.imshow(img, origin="lower", extent=ext, cmap="Set2", vmin=0, vmax=K - 1, aspect="auto")
            a.scatter(
                anc[:, 0],
                anc[:, 1],
                c=plt.get_cmap("Set2")(anchor_lab / (K - 1)),
                s=40,
                edgecolors=np.where(anchor_flip, "red", "black"),
                linewidths=1.5,
            )
            a.set_xticks([])
            a.set_yticks([])
            a.set_title(f"{lab}\nepoch {res['epochs'][t]:.3g}", fontsize=8)
    fig.suptitle(
        "SGD: decision regions on a plane through three training points (dots: their training "
        "labels; red edge: flipped label)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "representation_regions.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(2, 4, figsize=(13, 6))
    tt = lin["time"]
    for row, layer in enumerate(("hidden", "output")):
        ex, sm = lin["exact"][layer], lin["sim"][layer]
        for c, (M, title) in enumerate(((ex, "closed form (exact)"), (sm, "simulated GD"))):
            im = axes[row, c].imshow(M, vmin=0, vmax=1, origin="lower")
            axes[row, c].set_title(f"{layer} layer CKA: {title}", fontsize=8)
            _ticks(axes[row, c], lin["time"])
        fig.colorbar(im, ax=axes[row, 1])
        im = axes[row, 2].imshow(np.abs(ex - sm), origin="lower", cmap="magma")
        axes[row, 2].set_title("|exact - GD| (GD is O(lr) from the flow)", fontsize=8)
        _ticks(axes[row, 2], lin["time"])
        fig.colorbar(im, ax=axes[row, 2])
    axes[0, 3].plot(tt, lin["loss"])
    axes[0, 3].set_title("loss: stage-like learning", fontsize=8)
    axes[0, 3].set_xlabel("time t = k lr")
    axes[1, 3].plot(tt, lin["svals_t"])
    for s in np.asarray(lin["svals"]):
        axes[1, 3].axhline(s, color="gray", lw=0.5, ls=":")
    axes[1, 3].set_title("singular values of W2 W1", fontsize=8)
    axes[1, 3].set_xlabel("time t = k lr")
    fig.suptitle("two-layer linear net from small init: epoch x epoch CKA (axes: time)", fontsize=10)
    fig.tight_layout()
    fig.savefig(FIGURES / "representation_linear.png", dpi=100)
    plt.close(fig)

    # --- key numbers --------------------------------------------------------------------------
    summary = {}
    for name, res in runs.items():
        i = res["interp"]
        ie = None if i is None else round(float(res["epochs"][i]), 1)
        row = dict(
            interp_epoch=ie,
            final_train_err=round(float(res["train_err"][-1]), 3),
            final_test_err=round(float(res["test_err"][-1]), 3),
            min_test_err=round(float(res["test_err"].min()), 3),
            train_seconds=round(res["train_s"], 1),
        )
        if i is not None:
            for l, ln in enumerate(("h1", "h2", "out")):
                row[f"cka_interp_final_{ln}"] = round(float(res["cka"][l][i, -1]), 3)
                row[f"agree_interp_final_{ln}"] = round(float(res["agree"][l][i, -1]), 3)
        summary[name] = row
        print(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in row.items()))
    summary["linear"] = {"max_abs_exact_minus_gd": lin["gd_err"]}
    if "flow_err" in lin:
        summary["linear"]["max_abs_exact_minus_flow"] = lin["flow_err"]
    print("[linear] " + ", ".join(f"{k}={v:.3g}" for k, v in summary["linear"].items()))
    print(f"total {time.perf_counter() - t0:.1f}s; figures in {FIGURES}")
    return summary


if __name__ == "__main__":
    script_main(main, __doc__)
