"""A wide two-layer linear net under online SGD: the exact linear-regression recursion, kernel regime.

The net ``f(x) = kappa W2 W1 x`` (``W1`` (h, d), ``W2`` (1, h), entries ``N(0, 1)`` at init,
``kappa = 1/sqrt(h d)``: NTK parametrisation with the input dimension in the scale) is trained by
``simulate.gradient_descent`` with per-layer rates ``lrs = (eta_1, eta_2)`` on the minibatch loss
``data_loss = (1/B) sum_b 1/2 (f(x_b) - y_b)^2`` (``Task.from_data`` normalises by the number of
samples): ``W_l <- W_l - eta_l dL_B/dW_l``. Its end-to-end vector ``beta = kappa W1^T W2^T``
moves, to first order in the step, by

    beta <- beta - M (1/B) sum_b (beta.x_b - y_b) x_b,   M = kappa^2 (eta_1 |W2|^2 I + eta_2 W1^T W1),

(``M`` (d, d) is the NTK per unit input, ``K(x, x') = x^T M x'``, at init; the dropped term is the
product of the two layers' updates, ``kappa dW2 dW1``, of relative size ``O(1/sqrt(h))``, and ``M``
itself drifts by ``O(1/sqrt(h))`` during training). Linearised at init the model is linear in its
parameters with features ``psi(x) = J x``, exactly Gaussian for Gaussian ``x``, and with
``u = M^(-1/2) beta``, ``x~ = M^(1/2) x`` the update is plain SGD with unit learning rate,
``u <- u - (1/B) sum_b (u.x~_b - y_b) x~_b``, on inputs ``x~ ~ N(0, M^(1/2) Sigma M^(1/2))`` with
teacher ``u* = M^(-1/2) beta*``; the risk ``1/2 (beta - beta*)^T Sigma (beta - beta*) + sigma^2/2``
is the same in both coordinates. So, with ``M^(1/2) Sigma M^(1/2) = Q diag(mu) Q^T``,

    E R(t) = exact.sgd_risk(t, eigenvalues=mu, c0=(Q^T M^(-1/2) (beta_0 - beta*))^2, lr=1,
                            batch_size=B, noise=sigma)

exactly for the linearised net (Bordelon & Pehlevan 2021, arXiv 2106.02713, for SGD on linear
models with Gaussian features; Jacot, Gabriel & Hongler 2018, arXiv 1806.07572, and Lee et al.
2019, arXiv 1902.06720, for the kernel regime), with the initial function ``beta_0`` of the
network in ``c0``. As ``h -> inf``, ``M -> (eta_1 + eta_2)/d I``.

Each step draws ``B`` fresh samples ``x ~ N(0, Sigma)``, ``y = beta*.x + sigma z`` (online SGD)
and calls ``simulate.gradient_descent(params, Task.from_data(X_b, Y_b), lrs=(eta, eta),
batch_size=B, key=..., steps=1)`` on them (the without-replacement draw of B out of the B samples
takes them all), under ``jax.lax.scan`` over steps and ``jax.vmap`` over runs. Sampling minibatches
from one large dataset instead (n = 2^14) costs a full random permutation of n per step (about
12 ms on a CPU: half an hour for this figure) and adds a finite-n bias, so the data are drawn
afresh. The risk is the exact population risk of the product weights, not a training loss. One
initialisation per width (the theory conditions on it); the mean runs over data and batches.

* ``figures/sgd_kernel_regime.png``: d = 16, ``Sigma = diag(1/k)``, B = 4, label noise 0.1,
  ``eta`` at half the SGD edge of the infinite-width kernel: risk vs step at widths h = 16, 128,
  1024, theory (line) over the mean of 256 SGD runs (markers, +- SEM), and the deviation
  ``(mean - theory) / SEM`` per step: of order 1 at h = 1024, many SEM at h = 16 (the kernel moves).
  Only a linear-in-x net has exactly Gaussian features; a ReLU net's features ``psi(x)`` are not
  Gaussian and its kernel is not ``x^T M x'``, so the recursion would be only an approximation there
  (not shown).

Command: ``linsolve reproduce sgd_kernel_regime [--smoke]`` (or ``python
experiments/sgd_kernel_regime.py``).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"

DIM = 16
BATCH_SIZE = 4
NOISE = 0.1
EDGE_FRACTION = 0.5  # eta as a fraction of the edge of the infinite-width kernel
WIDTHS = (16, 128, 1024)


class KernelSGDProblem(NamedTuple):
    """The linear-regression recursion of a two-layer linear net linearised at init.

    **Fields:**
    - `eigenvalues`: (d,) eigenvalues ``mu`` of ``M^(1/2) Sigma M^(1/2)`` (ascending).
    - `c0`: (d,) ``(Q^T M^(-1/2) (beta_0 - beta*))^2`` in their eigenbasis ``Q``.
    - `kernel`: (d, d) ``M = kappa^2 (eta_1 |W2|^2 I + eta_2 W1^T W1)``, learning rates included.
    - `beta0`: (d,) the initial end-to-end vector ``kappa W1^T W2^T``.
    """

    eigenvalues: np.ndarray
    c0: np.ndarray
    kernel: np.ndarray
    beta0: np.ndarray


def kernel_sgd_problem(params0, *, output_scale, lrs, covariance, teacher) -> KernelSGDProblem:
    """The ``(eigenvalues, c0)`` with which ``exact.sgd_risk(..., lr=1)`` gives the linearised net's risk.

    ``M = kappa^2 (eta_1 |W2|^2 I + eta_2 W1^T W1)``, ``M^(1/2) Sigma M^(1/2) = Q diag(mu) Q^T``,
    ``c0 = (Q^T M^(-1/2) (beta_0 - beta*))^2`` with ``beta_0 = kappa W1^T W2^T`` (module docstring).

    **Arguments:**
    - `params0`: ``(W1, W2)`` of shapes (h, d) and (1, h).
    - `output_scale`: kappa > 0; `lrs`: ``(eta_1, eta_2)``, both > 0 (``M`` positive definite).
    - `covariance`: (d, d) input covariance ``Sigma`` (symmetric PSD); `teacher`: (d,) ``beta*``.

    **Returns:** :class:`KernelSGDProblem` (float64 numpy arrays).
    """
    if not (isinstance(params0, tuple | list) and len(params0) == 2):
        raise ValueError(f"`params0` must be a pair (W1, W2); got {type(params0).__name__}.")
    W1, W2 = (np.asarray(p, np.float64) for p in params0)
    if W1.ndim != 2 or W2.shape != (1, W1.shape[0]):
        raise ValueError(
            f"`params0` must be (W1 (h, d), W2 (1, h)); got shapes {W1.shape}, {W2.shape}."
        )
    d = W1.shape[1]
    kappa = float(output_scale)
    eta = np.asarray(lrs, np.float64)
    if not (np.isfinite(kappa) and kappa > 0):
        raise ValueError(f"`output_scale` must be a finite number > 0; got {output_scale!r}.")
    if eta.shape != (2,) or not np.all(np.isfinite(eta)) or not np.all(eta > 0):
        raise ValueError(f"`lrs` must be two finite rates > 0; got {lrs!r}.")
    sigma = np.asarray(covariance, np.float64)
    if sigma.shape != (d, d) or not np.allclose(sigma, sigma.T):
        raise ValueError(f"`covariance` must be symmetric (d, d) = ({d}, {d}); got {sigma.shape}.")
    beta_star = np.asarray(teacher, np.float64)
    if beta_star.shape != (d,):
        raise ValueError(f"`teacher` must have shape (d,) = ({d},); got {beta_star.shape}.")
    kernel = kappa**2 * (eta[0] * np.sum(W2**2) * np.eye(d) + eta[1] * W1.T @ W1)
    m, V = np.linalg.eigh(kernel)
    if not m.min() > 0:
        raise ValueError(f"the kernel M must be positive definite; got min eigenvalue {m.min()}.")
    root, inverse_root = (V * np.sqrt(m)) @ V.T, (V / np.sqrt(m)) @ V.T
    mu, Q = np.linalg.eigh(root @ sigma @ root)
    beta0 = kappa * (W1.T @ W2[0])
    c0 = (Q.T @ inverse_root @ (beta0 - beta_star)) ** 2
    return KernelSGDProblem(np.maximum(mu, 0.0), c0, kernel, beta0)


@functools.cache
def _sgd_runs(batch_size: int, steps: int, seeds: int):
    """Compiled ``(key, params0, kappa, lrs, variances, teacher, noise) -> (risk, diverged)``.

    ``risk`` (seeds, steps + 1) is the population risk of the product weights after each step of
    ``simulate.gradient_descent`` on a fresh minibatch; ``diverged`` (seeds,) flags runs that blew
    up (their risk is ``inf`` from then on).
    """
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    from linsolve import models, simulate
    from linsolve.tasks import Task

    def run(key, params0, kappa, lrs, variances, teacher, noise):
        def risk_of(params):
            e = models.end_to_end(params, kappa)[0] - teacher
            return 0.5 * jnp.sum(variances * e * e) + 0.5 * noise**2

        def step(carry, k):
            params, diverged = carry
            kx, kz, kb = jr.split(k, 3)
            X = jr.normal(kx, (batch_size, teacher.shape[0]), teacher.dtype) * jnp.sqrt(variances)
            Y = X @ teacher + noise * jr.normal(kz, (batch_size,), teacher.dtype)
            traj = simulate.gradient_descent(
                params, Task.from_data(X, Y), lrs=lrs, steps=1, record_params=False,
                output_scale=kappa, batch_size=batch_size, key=kb,
            )
            diverged = diverged | traj.diverged
            return (traj.params, diverged), jnp.where(diverged, jnp.inf, risk_of(traj.params))

        (_, diverged), risks = jax.lax.scan(step, (params0, jnp.zeros((), bool)),
                                            jr.split(key, steps))
        return jnp.concatenate([risk_of(params0)[None], risks]), diverged

    batched = jax.vmap(run, in_axes=(0,) + (None,) * 6)
    return jax.jit(lambda key, *args: batched(jr.split(key, seeds), *args))


def deviation_in_sem(samples, theory) -> np.ndarray:
    """``(mean - theory) / SEM`` per column of `samples` (runs, T); ``nan`` where the runs agree.

    Columns whose SEM is below ``1e-12 |theory|`` (a deterministic start, equal up to rounding)
    give ``nan``.

    **Arguments:** `samples` (runs >= 2, T); `theory` (T,). **Returns:** (T,).
    """
    samples, theory = np.asarray(samples, np.float64), np.asarray(theory, np.float64)
    if samples.ndim != 2 or samples.shape[0] < 2 or theory.shape != samples.shape[1:]:
        raise ValueError(
            f"`samples` must be (runs >= 2, T) and `theory` (T,); got {samples.shape}, "
            f"{theory.shape}."
        )
    sem = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sem > 1e-12 * np.abs(theory), (samples.mean(0) - theory) / sem, np.nan)


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import exact

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)
    d, B = DIM, BATCH_SIZE
    widths = WIDTHS[:2] if smoke else WIDTHS
    seeds, steps = (64, 100) if smoke else (256, 200)
    variances = 1.0 / np.arange(1, d + 1)
    teacher = np.asarray(jr.normal(jr.PRNGKey(1), (d,), jnp.float64)) * np.sqrt(2.0 / d)
    # eta at a fraction of the edge of the infinite-width kernel M = (2 eta / d) I.
    eta = EDGE_FRACTION * float(exact.sgd_max_learning_rate(2.0 * variances / d, batch_size=B))
    lrs = np.array([eta, eta])
    ts = np.arange(steps + 1)
    marks = np.unique(np.concatenate([np.arange(0, 20, 2), np.arange(20, steps + 1, 10)]))
    print(f"d = {d}, B = {B}, noise = {NOISE}, eta = {eta:.4f} ({EDGE_FRACTION} x the h = inf "
          f"edge), {seeds} runs x {steps} steps per width")

    fig, axes = plt.subplots(1, len(widths) + 1, figsize=(3.6 * (len(widths) + 1), 3.7), dpi=100)
    colors = plt.cm.viridis(np.linspace(0.0, 0.75, len(widths)))
    results = {}
    for i, (h, color) in enumerate(zip(widths, colors)):
        k1, k2 = jr.split(jr.PRNGKey(100 + h))
        params0 = (jr.normal(k1, (h, d), jnp.float64), jr.normal(k2, (1, h), jnp.float64))
        kappa = 1.0 / np.sqrt(h * d)
        problem = kernel_sgd_problem(params0, output_scale=kappa, lrs=lrs,
                                     covariance=np.diag(variances), teacher=teacher)
        theory = np.asarray(exact.sgd_risk(ts, eigenvalues=problem.eigenvalues, c0=problem.c0,
                                           lr=1.0, batch_size=B, noise=NOISE).risk)
        risks, diverged = _sgd_runs(B, steps, seeds)(
            jr.PRNGKey(h), params0, jnp.asarray(kappa), jnp.asarray(lrs), jnp.asarray(variances),
            jnp.asarray(teacher), jnp.asarray(NOISE),
        )
        risks, n_diverged = np.asarray(risks), int(np.sum(diverged))
        z = deviation_in_sem(risks, theory)
        mean, sem = risks.mean(0), risks.std(0, ddof=1) / np.sqrt(seeds)
        tail = slice(steps // 2, None)
        stationary = float(np.mean(mean[tail]) / np.mean(theory[tail]) - 1)
        results[h] = {"max_deviation_sem": float(np.nanmax(np.abs(z))),
                      "stationary_relative_error": stationary, "diverged": n_diverged}
        print(f"h = {h:5d}: max |mean - theory| / SEM = {results[h]['max_deviation_sem']:.2f}; "
              f"late-time mean risk / theory - 1 = {stationary:+.3f}; "
              f"kernel M eigenvalues {np.linalg.eigvalsh(problem.kernel).min():.4f}.."
              f"{np.linalg.eigvalsh(problem.kernel).max():.4f} (h = inf: {2 * eta / d:.4f}); "
              f"diverged runs {n_diverged}")
        ax = axes[i]
        ax.plot(ts, theory, color=color, lw=1.6, label="exact.sgd_risk (linearised)")
        ax.errorbar(ts[marks], mean[marks], yerr=sem[marks], fmt="o", color=color, ms=3.5,
                    mfc="none", elinewidth=0.8, label=f"SGD mean of {seeds} runs")
        ax.axhline(0.5 * NOISE**2, color="gray", ls=":", lw=1.0, label="sigma^2 / 2")
        ax.set_yscale("log")
        ax.set_xlabel("step t")
        ax.set_title(f"({'abcd'[i]}) width h = {h}: max dev {results[h]['max_deviation_sem']:.1f}"
                     " SEM", fontsize=9)
        ax.grid(alpha=0.3, lw=0.5, which="both")
        ax.legend(fontsize=7)
        axes[-1].plot(ts[1:], z[1:], color=color, lw=1.0, label=f"h = {h}")
    axes[0].set_ylabel("population risk")
    ax = axes[-1]
    ax.axhspan(-2, 2, color="gray", alpha=0.2, lw=0, label="+-2 SEM")
    ax.set_xlabel("step t")
    ax.set_ylabel("(SGD mean - theory) / SEM")
    ax.set_title(f"({'abcd'[len(widths)]}) deviation shrinks with width", fontsize=9)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURES / "sgd_kernel_regime.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figure: sgd_kernel_regime.png ({seconds:.1f} s)")
    return {"widths": results, "eta": eta, "seconds": seconds}


if __name__ == "__main__":
    script_main(main, __doc__)
