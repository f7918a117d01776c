"""Deep matrix factorisation: completion error against the nuclear norm; greedy low-rank learning.

A depth-N linear net ``P = W_N ... W_1`` trained by gradient flow from a small balanced init follows
the end-to-end ODE (Arora, Cohen & Hazan 2018, arXiv 1802.06509)

    dP/dt = -lr sum_{j=1}^{N} (P P^T)^{(j-1)/N} grad l(P) (P^T P)^{(N-j)/N}

(``simulate.end_to_end_flow``), whose singular values obey ``ds_k/dt = -lr N s_k^{2-2/N}
<grad l, u_k v_k^T>``: small ones barely move, large ones grow fast, more so the deeper the net.
Arora, Cohen, Hu & Luo 2019 (arXiv 1905.13655) argue that this bias towards low rank is *not* the
nuclear norm's: on matrix completion with few observed entries, depth >= 3 recovers the ground
truth where the nuclear-norm minimiser (and depth 2) fails.

* ``figures/deep_matrix_completion_error.png``: a 20 x 20 rank-2 ground truth ``M`` (Gaussian
  factors, entries of RMS 1), ``m`` entries observed at random, loss ``l(P) = 1/(2m)
  sum_observed (P_ij - M_ij)^2``; depth 2 and depth 3 trained from ``P0 = 1e-3 I`` (layers
  ``1e-3^(1/N) I``, balanced) with ``lr = 400`` (= d_out d_in, so that ``grad l ~ (P - M) /
  (d_out d_in) * lr`` is of order one), to a training loss <= 1e-6 of its start; against the
  minimum-nuclear-norm interpolant (Douglas-Rachford splitting with singular value thresholding,
  certified by its duality gap, below 1e-9 relative). Relative error on all entries vs ``m``
  (mean +- std over seeds). What this run shows (3 seeds): depth 2 tracks the nuclear norm at every
  ``m``, as Arora et al. found; depth 3 recovers the ground truth exactly at ``m = 200`` (error
  ~2e-3 against ~0.1 for depth 2 and the nuclear norm) and on some seeds at ``m = 130-160``, but
  at the scarcest ``m`` (60, 80) it is WORSE than the nuclear norm (error ~1): at this small size
  and init the paper's advantage of depth holds only near ``m = 200``, not for the fewest entries.
* ``figures/deep_matrix_completion_greedy.png``: singular values of ``P(t)`` against time for
  depths 2, 3, 4, learned one at a time, each learning time (the crossing of half its target)
  marked. Top: whitened full observation (``Sxx = I``, ``Syx = U diag(4, 2, 1, 0.5) V^T``) from
  the small aligned init ``P0 = 1e-3 U V^T``, where every mode follows Saxe et al.'s law exactly
  and the learning times are ``exact.saxe_time(1e-3, s/2, s=s, depth=N)`` (dashed lines);
  bottom: completion of a 20 x 20 rank-4 matrix with singular values 40, 20, 10, 5 from half of
  its entries (``P0 = 1e-3 I``, ``lr = 400``), where no closed form applies: the times are
  reported.

Printed: the errors per ``m`` and method, the nuclear-norm duality gaps, the final training losses,
the learning times against the prediction.

References: Arora, Cohen & Hazan, "On the Optimization of Deep Networks: Implicit Acceleration by
Overparameterization", ICML 2018 (arXiv 1802.06509); Arora, Cohen, Hu & Luo, "Implicit
Regularization in Deep Matrix Factorization", NeurIPS 2019 (arXiv 1905.13655); Saxe, McClelland &
Ganguli 2014 (arXiv 1312.6120); Candes & Recht, "Exact Matrix Completion via Convex Optimization"
2009 (arXiv 0805.4471); Cai, Candes & Shen, "A Singular Value Thresholding Algorithm for Matrix
Completion" 2010 (arXiv 0810.3286).

Command: ``linsolve reproduce deep_matrix_completion [--smoke]`` (or ``python
experiments/deep_matrix_completion.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from linsolve.gallery import script_main

FIGURES = Path(__file__).resolve().parent.parent / "figures"

SIZE, RANK = 20, 2
INIT = 1e-3
OBSERVED = (60, 80, 100, 130, 160, 200)
SEEDS = 3
HORIZON = {2: 40.0, 3: 150.0}
TOLERANCES = dict(rtol=1e-6, atol=1e-8)
GREEDY_S = (4.0, 2.0, 1.0, 0.5)
GREEDY_COMPLETION_S = (40.0, 20.0, 10.0, 5.0)


def _check_mask(target, mask):
    target, mask = np.asarray(target, float), np.asarray(mask)
    if target.ndim != 2 or target.size == 0:
        raise ValueError(f"`target` must be a non-empty 2-D matrix; got shape {target.shape}.")
    if mask.shape != target.shape:
        raise ValueError(f"`mask` must have the shape of `target` {target.shape}; got {mask.shape}.")
    if not np.all((mask == 0) | (mask == 1)) or not np.any(mask):
        raise ValueError("`mask` must hold 0/1 (or booleans) with at least one observed entry.")
    if not np.all(np.isfinite(target)):
        raise ValueError("`target` must be finite.")
    return target, mask.astype(bool)


def gaussian_low_rank(n: int, rank: int, seed: int) -> np.ndarray:
    """(n, n) ``A B^T`` with (n, rank) standard Gaussian factors, scaled to entries of RMS 1."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, n))
    return M * (n / np.linalg.norm(M))


def low_rank_target(n: int, singular_values, seed: int) -> tuple:
    """``(M, U, V)``: (n, n) ``M = U diag(s) V^T`` with Haar-random (n, r) orthonormal U, V."""
    rng = np.random.default_rng(seed)
    s = np.asarray(singular_values, float)
    U = np.linalg.qr(rng.standard_normal((n, len(s))))[0]
    V = np.linalg.qr(rng.standard_normal((n, len(s))))[0]
    return (U * s) @ V.T, U, V


def observation_mask(n: int, m: int, seed: int) -> np.ndarray:
    """(n, n) float 0/1 mask with exactly m ones at uniformly random positions."""
    if not 1 <= m <= n * n:
        raise ValueError(f"`m` must be between 1 and n^2 = {n * n}; got {m}.")
    flat = np.zeros(n * n)
    flat[np.random.default_rng(seed).choice(n * n, m, replace=False)] = 1.0
    return flat.reshape(n, n)


def _completion_value(mask, target, P):
    r = mask * (P - target)
    return 0.5 * (r * r).sum() / mask.sum()


def completion_loss(target, mask):
    """``l(P) = 1/(2m) sum_{(i,j) observed} (P_ij - M_ij)^2`` (m = number of observed entries)
    as a ``jax.tree_util.Partial`` (arrays traced, so one compiled solve serves every mask)."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.Partial(
        _completion_value, jnp.asarray(mask, float), jnp.asarray(target, float)
    )


class NuclearNormCompletion(NamedTuple):
    """Minimum-nuclear-norm interpolant with its duality certificate.

    - `solution`: (n1, n2) X with ``X_ij = M_ij`` on the observed entries (exactly).
    - `dual`: (n1, n2) Y supported on the observed entries, ``|Y|_op <= 1``.
    - `primal`: ``|X|_*``; `dual_objective`: ``<Y, M>`` (a lower bound on the minimum).
    - `relative_gap`: ``(|X|_* - <Y, M>) / |X|_*`` >= 0, a bound on X's relative suboptimality.
    - `iterations`: Douglas-Rachford iterations of the winning step; `converged`: gap <= tol.
    """

    solution: np.ndarray
    dual: np.ndarray
    primal: float
    dual_objective: float
    relative_gap: float
    iterations: int
    converged: bool


def _shrink(Z, tau):
    """Singular value thresholding ``U max(s - tau, 0) V^T``: the prox of ``tau |.|_*``."""
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return (U * np.maximum(s - tau, 0.0)) @ Vt


def duality_certificate(X, Y, target, mask) -> tuple:
    """``(X_feasible, Y_feasible, |X_feasible|_*, <Y_feasible, M>)`` from any pair (X, Y).

    ``X_feasible`` copies the observed entries of M into X (primal feasible); ``Y_feasible``
    zeroes Y off the observed entries and divides by ``max(1, |Y|_op)`` (dual feasible). By weak
    duality ``<Y_feasible, M> <= min |X|_* <= |X_feasible|_*``.
    """
    Xf = np.where(mask, target, X)
    Yf = np.where(mask, Y, 0.0)
    Yf = Yf / max(1.0, float(np.linalg.norm(Yf, 2)))
    return Xf, Yf, float(np.linalg.svd(Xf, compute_uv=False).sum()), float(np.sum(Yf * target))


def nuclear_norm_completion(
    target, mask, *, tol: float = 1e-9, max_iter: int = 40_000, chunk: int = 100
) -> NuclearNormCompletion:
    r"""``min |X|_*`` subject to ``X_ij = M_ij`` on the observed entries, by Douglas-Rachford.

    With ``f = tau |.|_*`` (prox: singular value thresholding) and ``g`` the indicator of the
    interpolating affine set (prox: copy the observed entries of M), iterate

        X = shrink_tau(Z),   Z <- Z + proj(2X - Z) - X,

    whose fixed points give the minimiser X and the dual ``(Z - X)/tau`` (in the subdifferential
    of ``|X|_*``, supported on the observed entries). The rate depends strongly on the step tau, so
    steps ``tau = c |P_obs M|_op``, ``c`` in {0.02, 0.06, 0.2, 0.6, 2}, race in chunks; after 500
    iterations those with a gap 30x the best are dropped. Stops when the duality gap of
    :func:`duality_certificate` is below ``tol`` relative: a proof of near-optimality that does
    not rely on the iteration.

    **Arguments:** `target` M (n1, n2) finite (only observed entries are read); `mask` (n1, n2)
    0/1; `tol` relative duality gap; `max_iter` per step; `chunk` iterations between checks.
    **Returns:** a :class:`NuclearNormCompletion`.
    **References:** Candes & Recht 2009 (arXiv 0805.4471); Cai, Candes & Shen 2010
    (arXiv 0810.3286); Douglas-Rachford splitting (Lions & Mercier 1979).
    """
    target, mask = _check_mask(target, mask)
    if not (isinstance(tol, float | int) and tol > 0):
        raise ValueError(f"`tol` must be a positive number; got {tol!r}.")
    b = np.where(mask, target, 0.0)
    scale = float(np.linalg.norm(b, 2))
    if scale == 0:
        zero = np.zeros_like(b)
        return NuclearNormCompletion(zero, zero, 0.0, 0.0, 0.0, 0, True)
    lanes = [{"tau": c * scale, "Z": b.copy(), "gap": np.inf} for c in (0.02, 0.06, 0.2, 0.6, 2.0)]
    done = 0
    while done < max_iter:
        for lane in lanes:
            tau, Z = lane["tau"], lane["Z"]
            for _ in range(chunk):
                X = _shrink(Z, tau)
                Z = Z + np.where(mask, target, 2 * X - Z) - X
            X = _shrink(Z, tau)
            lane["Z"], lane["cert"] = Z, duality_certificate(X, (Z - X) / tau, target, mask)
            primal, dual = lane["cert"][2:]
            lane["gap"] = (primal - dual) / primal
            if lane["gap"] <= tol:
                return NuclearNormCompletion(*lane["cert"], lane["gap"], done + chunk, True)
        done += chunk
        best = min(lane["gap"] for lane in lanes)
        if done >= 500:
            lanes = [lane for lane in lanes if lane["gap"] <= 30 * best]
    lane = min(lanes, key=lambda lane: lane["gap"])
    return NuclearNormCompletion(*lane["cert"], lane["gap"], done, False)


def learning_times(ts, values, thresholds) -> np.ndarray:
    """First time each column of `values` (T, k) reaches its threshold (k,), by linear
    interpolation between the saves `ts` (T,); ``nan`` where it never does."""
    ts, values = np.asarray(ts, float), np.asarray(values, float)
    thresholds = np.broadcast_to(np.asarray(thresholds, float), values.shape[1:])
    if ts.ndim != 1 or values.ndim != 2 or values.shape[0] != ts.shape[0]:
        raise ValueError(f"`values` must be (T, k) with T = len(ts) = {ts.shape}; got {values.shape}.")
    out = np.full(values.shape[1], np.nan)
    for k in range(values.shape[1]):
        above = np.nonzero(values[:, k] >= thresholds[k])[0]
        if len(above) == 0:
            continue
        i = above[0]
        if i == 0:
            out[k] = ts[0]
            continue
        v0, v1 = values[i - 1, k], values[i, k]
        out[k] = ts[i - 1] + (thresholds[k] - v0) / (v1 - v0) * (ts[i] - ts[i - 1])
    return out


def _completion_errors(depth, targets, masks, T):
    """Relative errors (B,), final losses relative to the initial (B,) and statuses (B,)."""
    import diffrax
    import jax
    import jax.numpy as jnp

    from linsolve import simulate

    n = targets.shape[-1]

    def run(target, mask):
        loss = completion_loss(target, mask)
        traj = simulate.end_to_end_flow(
            INIT * jnp.eye(n), loss, jnp.array([0.0, T]), depth=depth, lr=float(n * n),
            solver=diffrax.Bosh3(), **TOLERANCES,
        )
        P = traj.product()[-1]
        error = jnp.linalg.norm(P - target) / jnp.linalg.norm(target)
        return error, traj.loss[-1] / traj.loss[0], traj.status

    out = jax.vmap(run)(jnp.asarray(targets), jnp.asarray(masks))
    return tuple(np.asarray(x) for x in out)


def _singular_values(depth, P0, loss, ts, lr, *, fast=True):
    import diffrax
    import jax.numpy as jnp

    from linsolve import simulate

    traj = simulate.end_to_end_flow(
        jnp.asarray(P0), loss, jnp.asarray(ts), depth=depth, lr=lr,
        **(dict(solver=diffrax.Bosh3(), **TOLERANCES) if fast else {}),
    )
    return ts, np.linalg.svd(np.asarray(traj.product()), compute_uv=False), int(traj.status)


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve import Task, exact

    start = time.perf_counter()
    FIGURES.mkdir(exist_ok=True)

    # (a) reconstruction error vs number of observed entries.
    ms = (80, 160) if smoke else OBSERVED
    seeds = range(1 if smoke else SEEDS)
    cases = [(m, seed) for m in ms for seed in seeds]
    targets = np.stack([gaussian_low_rank(SIZE, RANK, seed) for _, seed in cases])
    masks = np.stack([observation_mask(SIZE, m, 1000 + 7 * seed + m) for m, seed in cases])
    errors, final_loss = {}, {}
    for depth, T in HORIZON.items():
        err, rel_loss, status = _completion_errors(depth, targets, masks, T / (4 if smoke else 1))
        errors[f"depth {depth}"], final_loss[depth] = err, rel_loss
        print(f"depth {depth}: final training loss / initial <= {rel_loss.max():.1e}, "
              f"statuses {sorted(set(status.tolist()))}")
    nuclear = [nuclear_norm_completion(M, mask) for M, mask in zip(targets, masks)]
    errors["nuclear norm"] = np.array(
        [np.linalg.norm(r.solution - M) / np.linalg.norm(M) for r, M in zip(nuclear, targets)]
    )
    gaps = np.array([r.relative_gap for r in nuclear])
    print(f"nuclear norm: relative duality gap <= {gaps.max():.1e}, "
          f"{sum(r.converged for r in nuclear)}/{len(nuclear)} certified")
    table = {}
    for name, err in errors.items():
        e = err.reshape(len(ms), len(seeds))
        table[name] = (e.mean(axis=1), e.std(axis=1))
        cells = ", ".join(f"m={m}: {mu:.3f}+-{sd:.3f}" for m, mu, sd in zip(ms, *table[name]))
        print(f"relative error {name:12s} {cells}")

    fig, ax = plt.subplots(figsize=(5.4, 3.8), dpi=100)
    styles = {"depth 2": ("C0", "o"), "depth 3": ("C3", "s"), "nuclear norm": ("k", "^")}
    for name, (mu, sd) in table.items():
        color, marker = styles[name]
        ax.errorbar(ms, mu, yerr=sd, color=color, marker=marker, ms=4, capsize=3, label=name)
    dof = RANK * (2 * SIZE - RANK)
    ax.axvline(dof, color="gray", ls=":", lw=1.0, label=f"r(2n - r) = {dof} parameters")
    ax.set_xlabel("observed entries m")
    ax.set_ylabel("relative error |P - M|_F / |M|_F")
    ax.set_title(f"completion of a {SIZE} x {SIZE} rank-{RANK} matrix, P0 = {INIT:g} I", fontsize=9)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURES / "deep_matrix_completion_error.png")
    plt.close(fig)

    # (b) greedy low-rank learning: whitened full observation (exact times), then completion.
    s = np.array(GREEDY_S)
    d = len(s)
    _, U, V = low_rank_target(d, s, seed=5)
    task = Task(np.eye(d), (U * s) @ V.T, (U * s**2) @ U.T)
    Mc, _, _ = low_rank_target(SIZE, GREEDY_COMPLETION_S, seed=6)
    half = observation_mask(SIZE, SIZE * SIZE // 2, seed=7)
    depths = (2, 3, 4)
    n_save = 300 if smoke else 1500
    fig, axes = plt.subplots(2, 3, figsize=(11.0, 6.4), dpi=100)
    greedy = {}
    for col, depth in enumerate(depths):
        T = {2: 10.0, 3: 25.0, 4: 45.0}[depth]
        predicted = np.asarray(exact.saxe_time(INIT, s / 2, s=s, depth=depth))
        ts = np.union1d(np.linspace(0.0, T, n_save), predicted)
        ts, sv, status = _singular_values(depth, INIT * U @ V.T, task, ts, 1.0, fast=False)
        measured = learning_times(ts, sv[:, :d], s / 2)
        at_predicted = sv[np.searchsorted(ts, predicted), np.arange(d)]
        greedy[("whitened", depth)] = (measured, predicted, at_predicted)
        print(f"whitened depth {depth} (status {status}): learning times "
              + ", ".join(f"s={a:g}: {t:.3f} (theory {p:.3f})" for a, t, p in zip(s, measured, predicted))
              + f"; max |sigma_k(t_theory) - s_k/2| = {np.max(np.abs(at_predicted - s / 2)):.1e}")
        ax = axes[0, col]
        for k in range(d):
            ax.plot(ts, sv[:, k], color=f"C{k}", lw=1.5, label=f"s = {s[k]:g}")
            ax.axvline(predicted[k], color=f"C{k}", ls="--", lw=0.9)
            ax.plot(measured[k], s[k] / 2, "o", color=f"C{k}", ms=5, mfc="none")
        ax.set_title(f"whitened, depth {depth}: dashed = saxe_time", fontsize=9)

        sc = np.array(GREEDY_COMPLETION_S)
        T = {2: 4.0, 3: 10.0, 4: 20.0}[depth]
        loss = completion_loss(Mc, half)
        ts = np.geomspace(1e-2, T, n_save)
        ts, sv, status = _singular_values(depth, INIT * np.eye(SIZE), loss, ts, float(SIZE**2))
        measured = learning_times(ts, sv[:, : len(sc)], sc / 2)
        greedy[("completion", depth)] = (measured, sv[-1])
        print(f"completion depth {depth} (status {status}): learning times "
              + ", ".join(f"s={a:g}: {t:.3f}" for a, t in zip(sc, measured))
              + f"; singular values at T = {T:g}: {np.round(sv[-1, : len(sc) + 1], 3)}")
        ax = axes[1, col]
        for k in range(len(sc) + 1):
            ax.plot(ts, sv[:, k], color=f"C{k}", lw=1.5, label=f"s = {sc[k]:g}" if k < len(sc) else "5th")
            if k < len(sc):
                ax.plot(measured[k], sc[k] / 2, "o", color=f"C{k}", ms=5, mfc="none")
        ax.set_xscale("log")
        ax.set_title(f"completion, half observed, depth {depth}", fontsize=9)
    for ax in axes.ravel():
        ax.set_xlabel("time t")
        ax.grid(alpha=0.3, lw=0.5)
    for row in range(2):
        axes[row, 0].set_ylabel("singular values of P(t)")
        axes[row, 0].legend(fontsize=7)
    fig.suptitle("greedy low-rank learning from P0 small: one singular value at a time "
                 "(circles: half of the target reached)", fontsize=10)
    fig.tight_layout()
    fig.savefig(FIGURES / "deep_matrix_completion_greedy.png")
    plt.close(fig)
    seconds = time.perf_counter() - start
    print(f"figures: deep_matrix_completion_error.png, deep_matrix_completion_greedy.png "
          f"({seconds:.1f} s)")
    return {"errors": table, "final_loss": final_loss, "duality_gap": gaps, "greedy": greedy,
            "seconds": seconds}


if __name__ == "__main__":
    script_main(main, __doc__)
