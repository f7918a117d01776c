"""Embedding principle in depth (Bai, Luo, Xu & Zhang, arXiv 2205.13283): critical points of shallow nets
lifted into deeper nets.

Studies (data: 20 points in R^2, target sin(2 x1) + x2^2, mean-squared loss):
1. the least-squares linear model (a strict minimum) lifted into a two-layer ReLU net: the all-active
   lift A (a degenerate minimum) and the boundary lift B (a strict saddle); Hessian spectra, and
   gradient descent from A, B plus 1e-4 noise (does it stay or escape?);
2. the same for a trained one-hidden-layer ReLU net (polished to a critical point by Newton steps)
   lifted into three layers;
3. loss plateaus across depths (2, 3, 4 layers) from small initialisation, against the loss levels of
   shallow critical points;
4. deep linear saddles (learn some singular directions, not others) lifted from two to three layers:
   the number of negative Hessian eigenvalues is kept;
5. dimension of the output-preserving lifted manifold against the number of data points n.

Writes figures/embedding_spectra.png, embedding_escape.png, embedding_plateaus.png and
embedding_manifold.png.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    Y = np.sin(2 * X[:, :1]) + X[:, 1:] ** 2
    return X, Y


def _noisy_runs(params, task, *, noise, seeds, steps, lr, record_at):
    """Full-batch GD from ``params + noise * N(0, I)`` for each seed (vmapped: one compilation)."""
    from jax.flatten_util import ravel_pytree

    from linsolve.simulate import gradient_descent

    flat, unravel = ravel_pytree(params)
    starts = flat + noise * jnp.asarray(np.random.default_rng(123).normal(size=(seeds, flat.shape[0])))

    def one(theta):
        return gradient_descent(unravel(theta), task, lrs=lr, steps=steps, record_at=record_at).loss

    return np.asarray(jax.vmap(one)(starts)), [unravel(s) for s in starts]


def _newton_polish(risk, params, iterations=3):
    """Newton steps with a pseudo-inverse Hessian: a GD-trained point onto the critical manifold."""
    from jax.flatten_util import ravel_pytree

    from linsolve.analysis._hessian import hessian_spectrum

    grad = jax.jit(jax.grad(risk))
    for _ in range(iterations):
        H = np.asarray(hessian_spectrum(risk, params).hessian)
        flat, unravel = ravel_pytree(params)
        g = np.asarray(ravel_pytree(grad(params))[0])
        new = unravel(flat - jnp.asarray(np.linalg.lstsq(H, g, rcond=1e-10)[0]))
        if np.linalg.norm(ravel_pytree(grad(new))[0]) >= np.linalg.norm(g):
            break  # not in the basin of quadratic convergence (e.g. a short smoke run): keep the GD point
        params = new
    return params


def _counts(spec):
    return (
        f"{spec.n_negative:2d} neg / {spec.n_zero:2d} zero / {spec.n_positive:2d} pos ({spec.classification})"
    )


def main(smoke: bool = False) -> dict:
    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve.analysis._hessian import gradient_norm, hessian_spectrum
    from linsolve.analysis._lifting import (
        boundary_lift,
        lift,
        linearisation_index,
        output_manifold_dimension,
    )
    from linsolve.mlp import MLP, mlp_init
    from linsolve.models import end_to_end
    from linsolve.simulate import gradient_descent
    from linsolve.tasks import Task

    FIGURES.mkdir(exist_ok=True)
    Xn, Yn = _data()
    X, Y = jnp.asarray(Xn), jnp.asarray(Yn)
    task = Task.from_data(X, Y)
    out: dict = {}

    def risk(p):
        r = p(X) - Y
        return 0.5 * jnp.mean(jnp.sum(r * r, axis=-1))

    steps = 500 if smoke else 20_000
    seeds = 2 if smoke else 16
    lr = 0.05  # below 2 / lambda_max of the lifted Hessians (lambda_max ~ 24)
    record = np.r_[0, np.unique(np.logspace(0, np.log10(steps), 40).astype(int))]
    rtol = 1e-6  # zero threshold for polished (not exactly) critical points

    # ---- 1. least-squares linear model lifted into two layers --------------------------------
    sol = np.linalg.lstsq(np.c_[Xn, np.ones(20)], Yn, rcond=None)[0]
    shallow = MLP((jnp.asarray(sol[:2].T),), (jnp.asarray(sol[2]),), None, None, "relu")
    L_ls = float(risk(shallow))
    A = lift(shallow, after_layer=0, X=X)
    B = boundary_lift(shallow, X, Y, after_layer=0)
    specs = {"linear model": hessian_spectrum(risk, shallow)}
    specs["lift A (all active)"] = hessian_spectrum(risk, A)
    specs["lift B (boundary)"] = hessian_spectrum(risk, B.params)
    print("1. least-squares linear model (3 params) lifted to a 2-layer ReLU net")
    print(
        f"   L_LS = {L_ls:.6f};  |grad| after lifts: A {float(gradient_norm(risk, A)):.1e}, "
        f"B {float(gradient_norm(risk, B.params)):.1e}"
    )
    for name, spec in specs.items():
        print(f"   {name:22s} {_counts(spec)}, lambda_min = {float(spec.eigenvalues[0]):+.3e}")
    print(f"   boundary: sample i0 = {B.sample}, escape curvature d^2L/dt^2 = {float(B.curvature):+.3e}")
    runs = {}
    for name, p in (("A", A), ("B", B.params)):
        losses, starts = _noisy_runs(p, task, noise=1e-4, seeds=seeds, steps=steps, lr=lr, record_at=record)
        runs[name] = losses
        final = losses[:, -1] - L_ls
        escaped = final < -1e-6
        print(
            f"   GD from lift {name} + 1e-4 noise ({seeds} seeds, lr {lr}, {steps} steps): "
            f"L_final - L_LS in [{final.min():+.2e}, {final.max():+.2e}], escaped {escaped.sum()}/{seeds}"
        )
        if name == "B":
            z = np.array([float(s.layers(X).pre[0][B.sample, B.neuron]) for s in starts])
            off = z < 0
            print(
                f"     kink sample switched off by the noise (z_i0 < 0): {off.sum()}/{seeds}; escaped among "
                f"those {np.sum(escaped & off)}/{off.sum()}, "
                f"among the others {np.sum(escaped & ~off)}/{(~off).sum()}"
            )
            out["linear_B_escaped"] = int(escaped.sum())
            out["linear_B_off"] = int(off.sum())
        else:
            out["linear_A_max_change"] = float(np.abs(final).max())
    out["L_ls"] = L_ls

    # ---- 2. trained one-hidden-layer ReLU net lifted into three layers ---------------------------
    net = mlp_init(jax.random.PRNGKey(1), (2, 5, 1))
    train_steps = 2_000 if smoke else 100_000
    tr = gradient_descent(net, task, lrs=lr, steps=train_steps, record_at=np.array([0, train_steps]))
    trained = jax.tree_util.tree_map(lambda a: a[-1], tr.params)
    trained = _newton_polish(risk, trained, iterations=2)
    L_relu = float(risk(trained))
    A2 = lift(trained, after_layer=1, X=X)
    B2 = boundary_lift(trained, X, Y, after_layer=1)
    specs2 = {"ReLU net (2 layers)": hessian_spectrum(risk, trained, rtol=rtol)}
    specs2["lift A (3 layers)"] = hessian_spectrum(risk, A2, rtol=rtol)
    specs2["lift B (3 layers)"] = hessian_spectrum(risk, B2.params, rtol=rtol)
    print(
        f"2. trained 2-layer ReLU net (width 5, 21 params), L = {L_relu:.6f}, "
        f"|grad| = {float(gradient_norm(risk, trained)):.1e}, linearisation index "
        f"{np.asarray(linearisation_index(trained, X))}"
    )
    for name, spec in specs2.items():
        print(f"   {name:22s} {_counts(spec)}, lambda_min = {float(spec.eigenvalues[0]):+.3e}")
    zeros_pred = specs2["ReLU net (2 layers)"].n_zero + 5 * 5 + 5
    print(f"   predicted zeros of lift A: {zeros_pred} (= zeros before + m^2 + m, m = 5)")
    for name, p in () if smoke else (("A", A2), ("B", B2.params)):  # smoke: skip (compile time)
        losses, starts = _noisy_runs(p, task, noise=1e-4, seeds=seeds, steps=steps, lr=lr, record_at=record)
        runs[name + "2"] = losses
        final = losses[:, -1] - L_relu
        escaped = final < -1e-6
        msg = (
            f"   GD from lift {name} + noise: L_final - L in [{final.min():+.2e}, {final.max():+.2e}], "
            f"escaped {escaped.sum()}/{seeds}"
        )
        if name == "B":
            z = np.array([float(s.layers(X).pre[1][B2.sample, B2.neuron]) for s in starts])
            msg += (
                f" (kink sample switched off in {(z < 0).sum()}, "
                f"escaped among those {np.sum(escaped & (z < 0))})"
            )
            out["relu_B_escaped"] = int(escaped.sum())
        print(msg)
    out["L_relu"] = L_relu

    # ---- 3. loss plateaus across depths ----------------------------------------------------------
    psteps = 500 if smoke else 50_000
    precord = np.r_[0, np.unique(np.logspace(0, np.log10(psteps), 60).astype(int))]
    L_zero = 0.5 * float(np.mean(Yn**2))
    L_const = 0.5 * float(np.var(Yn))
    plateaus = {}
    for depth in (2,) if smoke else (2, 3, 4):
        sizes = (2,) + (8,) * (depth - 1) + (1,)

        def one(key, sizes=sizes):
            p = mlp_init(key, sizes, scale=0.3)
            t = gradient_descent(
                p,
                task,
                lrs=lr,
                steps=psteps,
                record_at=precord,
                observe=lambda q: {"lin": jnp.mean(linearisation_index(q, X))},
            )
            return t.loss, t.observables["lin"]

        losses, lin = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(10 + depth), 2 if smoke else 8))
        plateaus[depth] = (np.asarray(losses), np.asarray(lin))
        # time spent within 5% of each shallow critical level
        near = {
            name: np.mean(np.abs(np.asarray(losses) / level - 1) < 0.05)
            for name, level in (("0", L_zero), ("const", L_const), ("LS", L_ls))
        }
        print(
            f"3. depth {depth}: final loss median {np.median(losses[:, -1]):.2e}; fraction of records within "
            f"5% of L(f=0)={L_zero:.3f}: {near['0']:.2f}, L(const)={L_const:.3f}: {near['const']:.2f}, "
            f"L_LS={L_ls:.3f}: {near['LS']:.2f}; mean linearisation index {np.mean(lin):.2f}"
        )

    # ---- 4. deep linear saddles lifted from two to three layers ----------------------------------
    s = np.array([3.0, 2.0, 1.0])
    S = jnp.diag(jnp.asarray(s))
    lin_loss = lambda p: 0.5 * jnp.sum((end_to_end(p) - S) ** 2)  # whitened task, Sxx = I
    print("4. deep linear 2-layer net (d = 3, width 2, s = 3, 2, 1): saddles learning mode subsets")
    table = []
    for learned in itertools.chain.from_iterable(itertools.combinations(range(3), r) for r in range(3)):
        W1 = np.zeros((2, 3))
        W2 = np.zeros((3, 2))
        for j, mode in enumerate(learned):
            W1[j, mode] = W2[mode, j] = np.sqrt(s[mode])
        params = (jnp.asarray(W1), jnp.asarray(W2))
        before = hessian_spectrum(lin_loss, params)
        after = hessian_spectrum(
            lin_loss, lift(params, after_layer=1, width=3, kind="random", key=jax.random.PRNGKey(0))
        )
        table.append((learned, before, after))
        print(f"   learned modes {str([m + 1 for m in learned]):9s} before: {_counts(before)}")
        print(f"   {'':25s} after : {_counts(after)}")
    kept = all(b.n_negative == a.n_negative for _, b, a in table)
    print(f"   negative counts kept by every lift: {kept}")
    out["linear_saddles_kept"] = kept
    S1 = jnp.diag(jnp.asarray([3.0, 1.0]))
    ref_loss = lambda p: 0.5 * jnp.sum((end_to_end(p) - S1) ** 2)
    ref = (jnp.asarray([[0.0, 1.0]]), jnp.asarray([[0.0], [1.0]]))
    rb, ra = hessian_spectrum(ref_loss, ref), hessian_spectrum(ref_loss, lift(ref, after_layer=1))
    print(f"   reference (width 1, s = 3, 1, mode 2 learned): {_counts(rb)} -> {_counts(ra)}")

    # ---- 5. lifted manifold dimension against n ------------------------------------------------
    ns = list(range(1, 21))
    dim_lin = [r.dimension for r in output_manifold_dimension(A, X, n=ns)]
    dim_relu = [r.dimension for r in output_manifold_dimension(A2, X, n=ns)]
    dim_orig = [r.dimension for r in output_manifold_dimension(trained, X, n=ns)]
    print(f"5. output-preserving manifold dimension vs n = 1..20: lifted linear model (9 params): {dim_lin}")
    P_A2 = output_manifold_dimension(A2, X).n_params
    print(f"   lifted ReLU net ({P_A2} params): {dim_relu}")
    print(f"   trained ReLU net (21 params): {dim_orig}")
    out["dim_lin"] = dim_lin

    # ---- figures ----------------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, group in zip(axes, (specs, specs2)):
        for name, spec in group.items():
            ev = np.asarray(spec.eigenvalues)
            ax.plot(np.arange(ev.size) / max(ev.size - 1, 1), ev, "o-", ms=3, label=f"{name} ({ev.size})")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("eigenvalue rank / (P - 1)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("Hessian eigenvalue")
    axes[0].set_title("linear model -> 2-layer ReLU", fontsize=9)
    axes[1].set_title("trained 2-layer ReLU -> 3 layers", fontsize=9)
    fig.tight_layout()
    fig.savefig(FIGURES / "embedding_spectra.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    steps_axis = np.maximum(record, 1)
    for ax, (a, b, level, title) in zip(
        axes, (("A", "B", L_ls, "lifted linear model"), ("A2", "B2", L_relu, "lifted trained ReLU net"))
    ):
        for key, color in ((a, "C0"), (b, "C3")):
            for i, curve in enumerate(runs.get(key, [])):
                ax.plot(
                    steps_axis,
                    curve,
                    color=color,
                    alpha=0.5,
                    lw=1,
                    label=f"lift {key[0]} + 1e-4 noise" if i == 0 else None,
                )
        ax.axhline(level, color="k", ls="--", lw=0.8, label="shallow critical loss")
        ax.set_xscale("log")
        ax.set_xlabel("GD step")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("loss")
    fig.tight_layout()
    fig.savefig(FIGURES / "embedding_escape.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    psteps_axis = np.maximum(precord, 1)
    for depth, (losses, lin) in plateaus.items():
        color = f"C{depth - 2}"
        for i, curve in enumerate(losses):
            axes[0].plot(
                psteps_axis, curve, color=color, alpha=0.5, lw=1, label=f"{depth} layers" if i == 0 else None
            )
        axes[1].plot(psteps_axis, lin.mean(axis=0), color=color, label=f"{depth} layers")
    for level, name in ((L_zero, "f = 0"), (L_const, "best constant"), (L_ls, "least squares (linear)")):
        axes[0].axhline(level, color="k", ls=":", lw=0.8)
        axes[0].text(psteps_axis[-1], level, name, fontsize=7, ha="right", va="bottom")
    axes[0].set_xscale("log")
    axes[0].set_ylim(0, 1.1 * L_zero)
    axes[0].set_xlabel("GD step")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=7)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("GD step")
    axes[1].set_ylabel("mean linearisation index")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "embedding_plateaus.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(ns, dim_lin, "o-", ms=3, label="lifted linear model (9 params)")
    ax.plot(ns, np.array(dim_relu), "s-", ms=3, label=f"lifted ReLU net ({P_A2} params)")
    ax.plot(ns, dim_orig, "^-", ms=3, label="trained ReLU net (21 params)")
    ax.set_xlabel("number of data points n")
    ax.set_ylabel("dim of output-preserving manifold")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "embedding_manifold.png", dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    script_main(main, __doc__)
