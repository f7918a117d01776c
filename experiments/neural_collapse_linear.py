"""Neural collapse in deep linear networks: the exact (Saxe) solution predicts every layer's NC1 and NFA.

Beaglehole, Sukenik, Mondelli & Belkin (NeurIPS 2024, arXiv 2402.13728) attribute the layer-wise
decrease of within-class variability to the right singular structure ``S_l V_l^T`` of the weights,
which the Neural Feature Ansatz ties to the AGOP. In a deep linear network trained by gradient flow
from a balanced, task-aligned initialisation on whitened inputs, that structure is known exactly
(Saxe, McClelland & Ganguli 2014): ``W_l(t) = R_{l+1} diag(u(t)^{1/L}) R_l^T`` with ``R_1 = V``,
``R_{L+1} = U`` the singular vectors of ``Syx`` and every mode strength ``u_a(t)`` given by
``linsolve.exact.saxe_mode``. Hence the input of layer ``l`` is ``R_l diag(u^{(l-1)/L}) V^T x``, its NC1
is that of ``X V diag(u^{(l-1)/L})``, the AGOP w.r.t. it is ``R_l diag(u^{2(L-l+1)/L}) R_l^T``, and
``rho(W_l^T W_l, AGOP_l^{1/2})`` is the Pearson correlation of ``R_l diag(u^{2/L}) R_l^T`` with
``R_l diag(u^{(L-l+1)/L}) R_l^T``: exactly 1 for layer ``L - 1`` (where ``(L - l + 1)/L = 2/L``; the
first layer of a two-layer net), below 1 for the other layers whenever the strengths differ.

Set-up: a 4-class Gaussian mixture (400 points, d = 16, means at radii 6, 1.5, 0.8, 0.4), centred and whitened
(``Sxx = I``), targets +-1 one-hot; a depth-4 linear net of width 16, loss ``1/2 mean |f(x) - y|^2``.
Simulation: ``linsolve.simulate.gradient_flow`` (adaptive Dopri8) from (a) the aligned init with
strengths 1e-4 (the exact solution applies) and (b) a small random Gaussian init (std 0.02; the
exact solution applies only after the network has aligned). The per-layer NC1 (at every layer
input, after ``S V^T``, at the output) and NFA correlations of the simulations are compared with the
closed form.

Run: ``python experiments/neural_collapse_linear.py [--smoke]``; writes
``figures/collapse_linear.png``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from linsolve.gallery import script_main

FIGURES = pathlib.Path(__file__).resolve().parent.parent / "figures"


def whitened_mixture(counts, d: int, seed: int, radii=(6.0, 1.5, 0.8, 0.4)):
    """Centred, whitened Gaussian-mixture inputs (``X^T X / N = I``) and their labels.

    Class means at different radii, so that the task's singular values (and the times at which
    the modes are learned) differ.
    """
    rng = np.random.default_rng(seed)
    k = len(counts)
    means = rng.normal(size=(k, d))
    means = np.asarray(radii)[:, None] * means / np.linalg.norm(means, axis=1, keepdims=True)
    labels = np.repeat(np.arange(k), counts)
    X = means[labels] + rng.normal(size=(labels.size, d))
    X = X - X.mean(0)
    lam, V = np.linalg.eigh(X.T @ X / X.shape[0])
    return X @ (V / np.sqrt(lam)) @ V.T, labels


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import init
    from linsolve.analysis._collapse import collapse_along_training
    from linsolve.exact import saxe_mode
    from linsolve.simulate import gradient_flow
    from linsolve.tasks import Task

    FIGURES.mkdir(exist_ok=True)
    K, d, L, width = 4, 16, 4, 16
    per_class = 25 if smoke else 100
    X, labels = whitened_mixture([per_class] * K, d, seed=0)
    Y = 2 * np.eye(K)[labels] - 1
    task = Task.from_data(jnp.asarray(X), jnp.asarray(Y))
    U, s, Vt = task.svd()
    sizes = (d, width, width, width, K)
    u0 = 1e-4
    ts = np.concatenate([[0.0], np.geomspace(1.0, 1000.0, 12 if smoke else 40)])

    # exact solution: mode strengths and the decoupled weights they define
    u = np.asarray(saxe_mode(jnp.asarray(ts)[:, None], s=s, u0=u0, depth=L))  # (T, r)
    exact = [init.decoupled(U, jnp.asarray(ut), Vt.T, sizes) for ut in u]
    exact = tuple(jnp.stack(W) for W in zip(*exact))

    aligned = gradient_flow(init.aligned(task, sizes, u0), task, jnp.asarray(ts))
    random0 = init.random(jr.PRNGKey(0), sizes, 0.02)
    rand = gradient_flow(random0, task, jnp.asarray(ts))

    c_exact = collapse_along_training(exact, X, labels)
    c_aligned = collapse_along_training(aligned, X, labels)
    c_rand = collapse_along_training(rand, X, labels)

    nc1_in = lambda c: np.asarray(c.input)  # (T, L): input of layers 1..L
    out = {
        "singular_values": np.asarray(s),
        "max_nc1_error_aligned": float(np.max(np.abs(np.asarray(c_aligned.post) - np.asarray(c_exact.post)))),
        "max_nfa_error_aligned": float(np.max(np.abs(np.asarray(c_aligned.nfa) - np.asarray(c_exact.nfa)))),
        "final_nc1_layer_inputs_exact": nc1_in(c_exact)[-1],
        "final_nc1_output_exact": float(c_exact.post[-1, -1]),
        "final_nc1_layer_inputs_random": nc1_in(c_rand)[-1],
        "final_nfa_exact": np.asarray(c_exact.nfa)[-1],
        "final_nfa_random": np.asarray(c_rand.nfa)[-1],
    }
    # singular values of W_1 along the random-init run vs the exact u^{1/L}
    sv_rand = np.linalg.svd(np.asarray(rand.params[0]), compute_uv=False)[:, : len(s)]
    out["final_w1_singular_values_random"] = sv_rand[-1]
    out["final_w1_singular_values_exact"] = u[-1] ** (1 / L)

    np.set_printoptions(precision=4, suppress=False)
    print(f"task singular values s = {out['singular_values']}")
    print(
        f"aligned init, gradient flow vs exact: max |NC1 error| = {out['max_nc1_error_aligned']:.2e}, "
        f"max |NFA error| = {out['max_nfa_error_aligned']:.2e}"
    )
    print(
        f"final NC1 at layer inputs 1..{L} (exact):  {out['final_nc1_layer_inputs_exact']}, "
        f"output {out['final_nc1_output_exact']:.4f}"
    )
    print(
        f"final NC1 at layer inputs 1..{L} (random init): {out['final_nc1_layer_inputs_random']}, "
        f"output {float(c_rand.post[-1, -1]):.4f}"
    )
    print(f"final NFA rho(W^T W, AGOP^1/2) per layer, exact:  {out['final_nfa_exact']}")
    print(f"final NFA rho(W^T W, AGOP^1/2) per layer, random: {out['final_nfa_random']}")
    print(
        f"final singular values of W_1: random init {out['final_w1_singular_values_random']}, "
        f"exact u^(1/L) {out['final_w1_singular_values_exact']}"
    )

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    t_plot = ts[1:]
    ax = axes[0]
    for l in range(1, L + 1):
        series = (
            np.asarray(c_exact.post[:, l - 1]),
            np.asarray(c_aligned.post[:, l - 1]),
            np.asarray(c_rand.post[:, l - 1]),
        )
        ax.semilogx(t_plot, series[0][1:], c=colors[l - 1], label=f"after layer {l}")
        ax.semilogx(t_plot, series[1][1:], "o", c=colors[l - 1], ms=3, mfc="none")
        ax.semilogx(t_plot, series[2][1:], "--", c=colors[l - 1], lw=1)
    ax.axhline(float(c_exact.input[0, 0]), c="gray", lw=0.8, ls=":", label="input x")
    ax.set_yscale("log")
    ax.set_xlabel("time t")
    ax.set_ylabel("NC1")
    ax.set_title("NC1 per layer: exact (line), flow (o), random init (--)", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[1]
    for l in range(L):
        ax.semilogx(t_plot, np.asarray(c_exact.nfa[1:, l]), c=colors[l], label=f"layer {l + 1}")
        ax.semilogx(t_plot, np.asarray(c_aligned.nfa[1:, l]), "o", c=colors[l], ms=3, mfc="none")
        ax.semilogx(t_plot, np.asarray(c_rand.nfa[1:, l]), "--", c=colors[l], lw=1)
    ax.set_xlabel("time t")
    ax.set_ylabel(r"$\rho(W_l^\top W_l, \mathrm{AGOP}_l^{1/2})$")
    ax.set_title("NFA correlation per layer", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[2]
    for a in range(len(s)):
        ax.loglog(
            t_plot, u[1:, a] ** (1 / L), c=colors[a], label=f"exact $u_{a + 1}^{{1/L}}$, s={float(s[a]):.2f}"
        )
        ax.loglog(t_plot, sv_rand[1:, a], "--", c=colors[a], lw=1)
    ax.set_xlabel("time t")
    ax.set_ylabel("singular values of $W_1$")
    ax.set_title("right singular structure: exact vs random init (--)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "collapse_linear.png", dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    script_main(main, __doc__)
