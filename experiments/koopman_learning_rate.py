"""Koopman spectra of gradient descent on two-layer linear nets: learning rate and reparametrisation.

A check of the Redman et al. (NeurIPS 2024, arXiv 2302.09160) conjugacy test where the answer is
known exactly. Gradient descent ``theta <- theta - eta grad L`` on ``L = 1/2 |W2 W1 - S|^2``
(whitened teacher task) commutes with the hidden-unit rotation ``(W1, W2) -> (R W1, W2 R^T)``
(``R`` orthogonal), so the two runs are linearly conjugate and share every Koopman eigenvalue:
``W = 0`` up to round-off. Near a minimum ``theta*`` the GD map is ``delta -> (I - eta H) delta``
(``H`` the loss Hessian at ``theta*``), so the Koopman eigenvalues of the linearised dynamics are
``1 - eta lambda_i(H)`` and two learning rates give spectra at the analytic distance
``W(eta, eta') = |eta - eta'| mean_i lambda_i(H)`` (real sets, matched in order): different rates
are not conjugate.

* Part A (near the minimum): 30 initial conditions ``theta* + 1e-4 xi``, 80 GD steps, observable
  ``theta - theta*`` (a translation, itself a conjugacy), plain DMD (no delays, numerical rank):
  DMD eigenvalues vs ``1 - eta lambda_i(H)`` and ``W(eta, eta_ref)`` vs the formula.
* Part B (whole training from a small random init): one init plus 9 copies perturbed by 1 %,
  all parameters as observables, 4 delays, rank-10 DMD: the rotated run, a different learning rate
  and the between-seed baseline (other random inits at the same rate).

Run: ``python experiments/koopman_learning_rate.py [--smoke]``; writes
``figures/koopman_learning_rate.png``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from linsolve.gallery import script_main

FIGURES = pathlib.Path(__file__).resolve().parent.parent / "figures"

SIZES = (3, 3, 2)  # d_in, hidden, d_out
S = (2.0, 1.0)  # teacher singular values
ETA_REF = 0.1


def flat(params):
    """All parameters of a deep linear tuple as one vector (the raw-state observable)."""
    import jax.numpy as jnp

    return jnp.concatenate([W.ravel() for W in params])


def _rotate(params, R):
    """``(W1, W2) -> (R W1, W2 R^T)`` for stacked (ensemble) or single parameters."""
    import jax.numpy as jnp

    W1, W2 = params
    return jnp.einsum("ij,...jk->...ik", R, W1), jnp.einsum("...ij,kj->...ik", W2, R)


def setup():
    """Task, a minimum ``theta*`` reached by GD from a random init, and the Hessian spectrum there."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import init, models, simulate, tasks

    task = tasks.teacher(jr.PRNGKey(0), SIZES[0], SIZES[-1], jnp.asarray(S))
    p0 = init.random(jr.PRNGKey(1), SIZES, 0.5)
    star = simulate.gradient_descent(p0, task, lrs=0.1, steps=4000, record_every=4000)
    star = tuple(W[-1] for W in star.params)
    shapes = [W.shape for W in star]

    def unflat(v):
        out, i = [], 0
        for shape in shapes:
            n = int(np.prod(shape))
            out.append(v[i : i + n].reshape(shape))
            i += n
        return tuple(out)

    v_star = flat(star)
    grad_norm = float(jnp.linalg.norm(jax.grad(lambda v: models.loss(unflat(v), task))(v_star)))
    hessian = jax.hessian(lambda v: models.loss(unflat(v), task))(v_star)
    lam = np.linalg.eigvalsh(np.asarray(hessian))
    lam[np.abs(lam) < 1e-9 * lam.max()] = 0.0
    return task, star, lam, grad_norm


def near_minimum(task, star, etas, *, n=30, eps=1e-4, steps=80, rotation=None, key=0):
    """DMD eigenvalues (no delays, numerical rank) of GD started at ``theta* + eps xi``."""
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve.analysis._koopman import dmd, ensemble_observables

    keys = jr.split(jr.PRNGKey(key), len(star))
    ens = tuple(W[None] + eps * jr.normal(k, (n,) + W.shape) for W, k in zip(star, keys))
    if rotation is not None:
        star, ens = _rotate(star, rotation), _rotate(ens, rotation)
    v_star = np.asarray(flat(star))[None, :, None]
    out = []
    for eta in etas:
        run = ensemble_observables(ens, task, lrs=jnp.asarray(eta), steps=steps, observable=flat)
        out.append(dmd(run.observables - v_star, delays=0))
    return out


def whole_training(task, eta, *, key, steps, rotation=None, inits=10, delays=4, rank=10):
    """Rank-10 delay-DMD eigenvalues of GD from a small random init plus perturbed copies."""
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import init
    from linsolve.analysis._koopman import dmd, ensemble_observables, perturbed_ensemble

    k1, k2 = jr.split(jr.PRNGKey(key))
    ens = perturbed_ensemble(init.random(k1, SIZES, 0.1), inits, key=k2, rel=1e-2)
    if rotation is not None:
        ens = _rotate(ens, rotation)
    run = ensemble_observables(ens, task, lrs=jnp.asarray(eta), steps=steps, observable=flat)
    return dmd(run.observables, delays=delays, rank=rank)


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve._validate import random_orthonormal
    from linsolve.analysis._koopman import conjugacy_test, seed_baseline, spectral_distance

    task, star, lam, grad_norm = setup()
    R = random_orthonormal(jr.PRNGKey(7), SIZES[1], SIZES[1], star[0].dtype)
    etas = np.array([0.05, 0.1, 0.2]) if smoke else np.array([0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3])
    print(f"minimum: |grad L| = {grad_norm:.1e}; Hessian eigenvalues = {np.round(lam, 4).tolist()}")

    # Part A: near the minimum.
    eigs = near_minimum(task, star, etas)
    errors = [np.max(np.abs(np.sort(e.real) - np.sort(1 - eta * lam))) for eta, e in zip(etas, eigs)]
    imag = max(np.max(np.abs(e.imag)) for e in eigs)
    i_ref = int(np.argmin(np.abs(etas - ETA_REF)))
    W_dmd = np.array([spectral_distance(e, eigs[i_ref]) for e in eigs])
    W_lin = np.abs(etas - ETA_REF) * lam.mean()
    W_rot_a = spectral_distance(eigs[i_ref], near_minimum(task, star, [ETA_REF], rotation=R)[0])
    W_seed_a = spectral_distance(eigs[i_ref], near_minimum(task, star, [ETA_REF], key=1)[0])
    print(f"A: max |DMD - (1 - eta lambda)| over eta = {max(errors):.2e} (max |Im| {imag:.1e})")
    for eta, wd, wl in zip(etas, W_dmd, W_lin):
        print(f"A: eta={eta:.3f}  W(eta, {ETA_REF}) DMD = {wd:.5f}   linearisation = {wl:.5f}")
    print(f"A: max |W_DMD - W_linearisation| = {np.max(np.abs(W_dmd - W_lin)):.1e}")
    print(f"A: rotated (R W1, W2 R^T): W = {W_rot_a:.1e}; other perturbations: W = {W_seed_a:.1e}")

    # Part B: whole training runs.
    steps = 100 if smoke else 300
    seeds = 3 if smoke else 6
    ref = whole_training(task, ETA_REF, key=0, steps=steps)
    rot = whole_training(task, ETA_REF, key=0, steps=steps, rotation=R)
    other = whole_training(task, 1.5 * ETA_REF, key=0, steps=steps)
    same = [ref] + [whole_training(task, ETA_REF, key=s, steps=steps) for s in range(1, seeds)]
    base = seed_baseline(same)
    W_rot, p_rot = conjugacy_test(ref, rot, key=jr.PRNGKey(0))
    W_lr, p_lr = conjugacy_test(ref, other, key=jr.PRNGKey(1))
    print(
        f"B: rotated W = {W_rot:.1e} (p = {p_rot:.2f}); eta x1.5 W = {W_lr:.4f} (p = {p_lr:.3f}); "
        f"between seeds W = {base.mean:.4f} +- {base.std:.4f}"
    )

    FIGURES.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=100)
    ax = axes[0]
    grid = np.linspace(0, etas.max() * 1.05, 50)
    for lv in np.unique(np.round(lam, 8)):
        ax.plot(grid, 1 - grid * lv, "-", color="0.7", lw=1)
    for eta, e in zip(etas, eigs):
        ax.plot(np.full(e.size, eta), e.real, "o", color="C3", ms=4, mfc="none")
    ax.set_xlabel(r"learning rate $\eta$")
    ax.set_ylabel(r"Koopman eigenvalue (real)")
    ax.set_title(r"near $\theta^*$: DMD (o) vs $1-\eta\lambda_i(H)$ (lines)", fontsize=10)
    ax = axes[1]
    ax.plot(etas, W_lin, "-", color="0.5", label=r"$|\eta-\eta_{ref}|\,\overline{\lambda}$")
    ax.plot(etas, W_dmd, "o", color="C0", label="DMD")
    ax.axhline(W_rot_a, color="C2", ls="--", label=f"rotated, W={W_rot_a:.0e}")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(0, 2 * W_dmd.max())
    ax.set_xlabel(r"learning rate $\eta$")
    ax.set_ylabel(r"W($\eta$, $\eta_{ref}$=0.1)")
    ax.legend(fontsize=8)
    ax.set_title("spectral distance near the minimum", fontsize=10)
    ax = axes[2]
    labels = ["rotated", "between seeds", r"$\eta\times1.5$"]
    values = [W_rot, base.mean, W_lr]
    ax.bar(labels, values, yerr=[0, base.std, 0], color=["C2", "0.6", "C0"], capsize=3)
    for i, v in enumerate(values):
        ax.annotate(
            f"{v:.1e}",
            (i, v),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    ax.set_ylabel("Wasserstein distance")
    ax.set_title("whole training (4 delays, rank 10)", fontsize=10)
    fig.tight_layout()
    fig.savefig(FIGURES / "koopman_learning_rate.png")
    plt.close(fig)
    return {
        "hessian": lam,
        "max_error": max(errors),
        "W_dmd": W_dmd,
        "W_lin": W_lin,
        "W_rot_near_min": W_rot_a,
        "W_rot": W_rot,
        "W_lr": W_lr,
        "baseline": base,
    }


if __name__ == "__main__":
    script_main(main, __doc__)
