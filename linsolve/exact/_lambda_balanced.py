r"""Two-layer linear network from a lambda-balanced initialisation: the matrix Riccati solution.

The network ``f(x) = W2 W1 x`` (``W1`` (h, d_in), ``W2`` (d_out, h)) trains by gradient flow with
equal rates ``1/tau`` on a task with whitened inputs (``Sxx = I``). The layer-pair law
``W2^T W2 - W1 W1^T = lam I`` is conserved, and with ``Q = [W1^T; W2]`` ((d_in + d_out, h)) the
matrix ``X = Q Q^T = [[W1^T W1, W1^T W2^T], [W2 W1, W2 W2^T]]`` obeys the Riccati equation

    tau dX/dt = F X + X F - X^2,     F = [[-lam/2 I_in, Syx^T], [Syx, lam/2 I_out]],

whose solution from any ``X(0) = Q0 Q0^T`` is the Fukumizu-type formula (reference Sec. 5)

    X(t) = e^{F t/tau} Q0 [I + Q0^T (int_0^t e^{2 F s/tau} ds/tau) Q0]^{-1} Q0^T e^{F t/tau}.

**Long times.** Evaluated in one shot the formula loses float64 accuracy once
``e^{2 max|eig F| t/tau}`` exceeds ~1e10. We use its semigroup property instead: time is cut into
chunks ``delta`` with ``max|eig F| delta/tau <= max_step`` (default 1), and each chunk applies the
exact map to a factor of the current state,

    Q <- E Q L^{-T},   E = e^{F delta/tau},   K = int_0^delta e^{2 F s/tau} ds/tau,
    L L^T = I + Q^T K Q  (Cholesky),

which gives ``Q Q^T = X(t + delta)`` exactly (``Q`` is the current ``[W1^T; W2]`` up to an orthogonal
rotation of the hidden layer, so it is "refactored" every chunk without an eigendecomposition).
``E`` and ``K`` come from one matrix exponential of ``[[2F, I], [0, 0]] delta/tau`` and ``F delta/tau``,
so a singular ``F`` (``lam = 0`` with a rank-deficient task) needs no inverse, and every step is
differentiable. Requested times are sorted; a ``lax.scan`` walks through them, each interval
between consecutive times being covered by as many equal chunks as the bound needs (a dynamic
``fori_loop``), so the work is ``~ max(t) max|eig F| / (tau max_step)`` chunks in all.

**t = inf** is the limit of ``X(t)``, computed from the eigen-structure of ``F``: with
``q = U^T Q0`` in ``F``'s eigenbasis (eigenvalues descending, ties within ``sqrt(eps) max|eig|``
grouped), the column space of ``e^{Ft} Q0`` tends to ``S_1 + S_2 + ...``, ``S_g`` the range of the
group-``g`` rows of ``q`` restricted to the coefficients left unused by the groups above, and
``X(inf) = sum_{g: mu_g > 0} 2 mu_g P_{S_g}``. Directions with ``mu <= 0`` decay (those with
``mu = 0`` only algebraically, like ``1/t``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import expm, solve_triangular
from jaxtyping import Array, ArrayLike, Float

from .._misc import as_float, as_scalar, check_finite, is_concrete
from ..tasks import Task
from ._mode import mode

__all__ = ["LambdaBalancedSolution", "lambda_balanced", "lambda_balanced_mode"]


class LambdaBalancedSolution(NamedTuple):
    """Closed-form state of a lambda-balanced two-layer linear network; time axes first.

    **Fields:**
    - `product`: (*t, d_out, d_in) network function ``W2 W1``.
    - `input_gram`: (*t, d_in, d_in) input representation ``W1^T W1``.
    - `output_gram`: (*t, d_out, d_out) output representation ``W2 W2^T``.
    - `ntk`: (*t, d_out d_in, d_out d_in) matrix-form NTK on row-major ``vec(W2 W1)``,
      ``(1/tau) [I_out (x) W1^T W1 + W2 W2^T (x) I_in]`` (the convention of ``models.ntk``).
    - `loss`: (*t,) ``task.loss(W2 W1)``.
    - `lam`: (*t,) the (conserved) balance ``lam``, broadcast over the time axes.
    """

    product: Float[Array, "*t d_out d_in"]
    input_gram: Float[Array, "*t d_in d_in"]
    output_gram: Float[Array, "*t d_out d_out"]
    ntk: Float[Array, "*t dd dd"]
    loss: Float[Array, "*t"]
    lam: Float[Array, "*t"]


def _riccati_F(Syx, lam):
    d_out, d_in = Syx.shape
    dtype = Syx.dtype
    top = jnp.concatenate([-0.5 * lam * jnp.eye(d_in, dtype=dtype), Syx.T], axis=1)
    bottom = jnp.concatenate([Syx, 0.5 * lam * jnp.eye(d_out, dtype=dtype)], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


def _chunk_maps(F, delta):
    """``E = e^{F delta}`` and ``K = int_0^delta e^{2 F s} ds`` (symmetric), ``delta`` in units of tau."""
    N = F.shape[0]
    eye = jnp.eye(N, dtype=F.dtype)
    aug = jnp.block([[2 * F * delta, eye * delta], [jnp.zeros_like(F), jnp.zeros_like(F)]])
    K = expm(aug)[:N, N:]
    E = expm(F * delta)
    return E, 0.5 * (K + K.T)


def _step(Q, E, K):
    """Exact flow map over one chunk applied to a factor ``Q`` of ``X``."""
    h = Q.shape[1]
    M = jnp.eye(h, dtype=Q.dtype) + Q.T @ K @ Q
    L = jnp.linalg.cholesky(0.5 * (M + M.T))
    # Q' = E Q L^{-T}: solve L Y = (E Q)^T for Y = L^{-1} (E Q)^T, then Q' = Y^T.
    return solve_triangular(L, (E @ Q).T, lower=True).T


def _evolve(Q0, F, gaps, max_step, chunks):
    """``X`` after each cumulative gap (gaps in units of tau): (T, N, N)."""
    rho = jax.lax.stop_gradient(jnp.max(jnp.abs(jnp.linalg.eigvalsh(F))))

    def segment(Q, gap):
        if chunks is None:
            n = jnp.ceil(jax.lax.stop_gradient(gap) * rho / max_step)
            n = jnp.maximum(n, 1.0)
            delta = gap / n
            E, K = _chunk_maps(F, delta)
            Q = jax.lax.fori_loop(0, n.astype(jnp.int32), lambda i, Q: _step(Q, E, K), Q)
        else:
            E, K = _chunk_maps(F, gap / chunks)
            Q = jax.lax.fori_loop(0, chunks, lambda i, Q: _step(Q, E, K), Q)
        return Q, Q @ Q.T

    _, X = jax.lax.scan(segment, Q0, gaps)
    return X


def _fixed_point(Q0, F):
    """``lim_{t -> inf} X(t)`` from the eigen-structure of ``F`` (module docstring)."""
    N = F.shape[0]
    dtype = F.dtype
    eps = jnp.finfo(dtype).eps
    mu, U = jnp.linalg.eigh(F)
    mu, U = mu[::-1], U[:, ::-1]  # descending
    q = U.T @ Q0
    h = q.shape[1]
    tie = jnp.sqrt(eps) * jnp.maximum(jnp.max(jnp.abs(mu)), jnp.finfo(dtype).tiny)
    rank_tol = eps**0.75 * jnp.maximum(jnp.linalg.norm(q, 2), jnp.finfo(dtype).tiny)
    starts = jnp.concatenate([jnp.ones((1,), bool), (mu[:-1] - mu[1:]) > tie])
    gid = jnp.cumsum(starts) - 1
    # Group eigenvalue: mean over members, so exactly tied eigenvalues count once.
    counts = jnp.zeros((N,), dtype).at[gid].add(1.0)
    mu_g = jnp.zeros((N,), dtype).at[gid].add(mu) / jnp.maximum(counts, 1.0)

    def body(carry, g):
        P_rem, Y = carry
        member = gid == g
        B = jnp.where(member[:, None], q, 0.0) @ P_rem
        Ub, sb, Vbt = jnp.linalg.svd(B, full_matrices=False)
        keep = (sb > rank_tol).astype(dtype)
        Ur, Vr = Ub * keep, Vbt.T * keep
        weight = jnp.where(mu_g[g] > tie, 2 * mu_g[g], 0.0)
        Y = Y + weight * (Ur @ Ur.T)
        P_rem = P_rem - Vr @ Vr.T
        return (P_rem, Y), None

    init = (jnp.eye(h, dtype=dtype), jnp.zeros((N, N), dtype))
    (_, Y), _ = jax.lax.scan(body, init, jnp.arange(N))
    return U @ Y @ U.T


def _validate(W1, W2, task, tau, tol):
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    W1 = as_float(W1, "W1")
    dtype = W1.dtype
    W2 = as_float(W2, "W2", dtype)
    if W1.ndim != 2 or W2.ndim != 2:
        raise ValueError(
            f"`W1` must be (h, d_in) and `W2` (d_out, h); got shapes {tuple(W1.shape)} and "
            f"{tuple(W2.shape)}."
        )
    h, d_in = W1.shape
    d_out = W2.shape[0]
    if W2.shape[1] != h:
        raise ValueError(
            f"`W2` must have h={h} columns to follow `W1` of shape {tuple(W1.shape)}; got "
            f"shape {tuple(W2.shape)}."
        )
    if task.Syx.shape != (d_out, d_in):
        raise ValueError(
            f"the task maps d_in={task.d_in} -> d_out={task.d_out}, but the network maps "
            f"{d_in} -> {d_out} (`W1` {tuple(W1.shape)}, `W2` {tuple(W2.shape)})."
        )
    Syx = task.Syx.astype(dtype)
    check_finite("task.Syx", Syx)
    tau = as_scalar("tau", tau, dtype)
    eps = float(jnp.finfo(dtype).eps)
    tol = np.sqrt(eps) if tol is None else float(tol)
    if is_concrete(task.Sxx):
        err = float(task.whitening_error())
        if not err <= tol:
            raise ValueError(
                f"`task` must have whitened inputs (Sxx = I); got max |Sxx - I| = {err:.3g} "
                f"(tolerance {tol:.3g}). Whiten the inputs, e.g. tasks.teacher(..., whiten=True)."
            )
    C = W2.T @ W2 - W1 @ W1.T
    lam = jnp.trace(C) / h
    if is_concrete((W1, W2)):
        viol = float(jnp.max(jnp.abs(C - lam * jnp.eye(h, dtype=dtype))))
        scale = max(float(jnp.max(jnp.abs(W1 @ W1.T))), float(jnp.max(jnp.abs(W2.T @ W2))))
        if not viol <= tol * max(scale, np.finfo(np.float64).tiny) and viol > 0:
            raise ValueError(
                "`W1`, `W2` must be lambda-balanced (W2^T W2 - W1 W1^T = lam I); the closest "
                f"lam = {float(lam):.6g} (mean diagonal) leaves max |W2^T W2 - W1 W1^T - lam I| "
                f"= {viol:.3g}, i.e. {viol / scale:.3g} relative to the grams (tolerance "
                f"{tol:.3g}). Use linsolve.init.lambda_balanced to build such an init."
            )
    return W1, W2, Syx, tau, lam


def _times(t, dtype):
    t = jnp.asarray(t)
    t = t.astype(dtype if not jnp.issubdtype(t.dtype, jnp.floating) else t.dtype).astype(dtype)
    if is_concrete(t) and bool(jnp.any(jnp.isnan(t) | (t < 0))):
        raise ValueError(f"`t` must be non-negative (inf allowed); got {np.asarray(t)}.")
    return t


def lambda_balanced(
    t: Float[ArrayLike, "*t"],
    W1: Float[ArrayLike, "h d_in"],
    W2: Float[ArrayLike, "d_out h"],
    task: Task,
    *,
    tau=1.0,
    max_step: float = 1.0,
    chunks: int | None = None,
    tol: float | None = None,
) -> LambdaBalancedSolution:
    r"""Exact gradient flow of ``W2 W1`` from a lambda-balanced init, whitened inputs, rates 1/tau.

    Solves ``tau dW1/dt = -W2^T (W2 W1 - Syx)``, ``tau dW2/dt = -(W2 W1 - Syx) W1^T`` through the
    matrix Riccati equation of ``X = Q Q^T``, ``Q = [W1^T; W2]`` (module docstring):

        X(t) = e^{Ft/tau} Q0 [I + Q0^T (int_0^t e^{2Fs/tau} ds/tau) Q0]^{-1} Q0^T e^{Ft/tau},
        F = [[-lam/2 I, Syx^T], [Syx, lam/2 I]],

    applied chunk by chunk so that it stays accurate (and finite) at any time. Valid for every
    ``lam`` (including 0), ``d_in != d_out``, any hidden width (including h > d_in + d_out and
    rank-deficient inits) and singular ``F``; no alignment with the task is needed.

    **Arguments:**
    - `t`: times >= 0 of any shape (``inf`` allowed); the results gain these leading axes.
      ``t = 0`` returns the initial grams and product exactly, ``t = inf`` the limit of ``X(t)``.
    - `W1`: (h, d_in) first layer; `W2`: (d_out, h) second layer, with
      ``W2^T W2 - W1 W1^T = lam I`` (checked when concrete; ``lam`` is read off as the mean diagonal).
    - `task`: a :class:`~linsolve.Task` with ``Sxx = I`` (checked when concrete).
    - `tau`: time constant, rates ``eta = 1/tau`` on both layers (> 0).
    - `max_step`: bound on ``max|eig F| delta / tau`` per chunk (accuracy knob; the reference's
      bound is 4, the default 1 keeps each chunk's Cholesky factor well conditioned).
    - `chunks`: None (default) covers each interval between consecutive requested times with as
      many chunks as `max_step` needs (a dynamic loop: jit, vmap and forward-mode AD work, reverse
      mode does not). An int uses exactly that many chunks per interval (a static loop, so
      ``jax.grad`` works); it is then up to the caller that the intervals are short enough.
    - `tol`: relative tolerance of the whitening and balance checks (default ``sqrt(eps)``).

    **Returns:** a :class:`LambdaBalancedSolution` (``product``, ``input_gram``, ``output_gram``,
    ``ntk``, ``loss``, ``lam``).

    **Cost:** one scan step per requested time plus ``~ max(t) max|eig F| / (tau max_step)``
    chunk updates of size (d_in + d_out) x h; ``eig F = +-sqrt(s_a^2 + lam^2/4)`` and
    ``sgn(d_out - d_in) lam/2``. For times long after convergence use ``t = inf``.

    References: Fukumizu (1998); Braun, Dominé, Fitzgerald & Saxe (NeurIPS 2022); Dominé et al.
    (ICLR 2025, arXiv 2409.14623); reference/exact_solutions.md Sec. 5.
    """
    W1, W2, Syx, tau, lam = _validate(W1, W2, task, tau, tol)
    if chunks is not None and (int(chunks) != chunks or chunks < 1):
        raise ValueError(f"`chunks` must be None or a positive integer; got {chunks!r}.")
    if not max_step > 0:
        raise ValueError(f"`max_step` must be positive; got {max_step!r}.")
    dtype = W1.dtype
    t = _times(t, dtype)
    h, d_in = W1.shape
    d_out = W2.shape[0]
    N = d_in + d_out
    F = _riccati_F(Syx, lam)
    Q0 = jnp.concatenate([W1.T, W2], axis=0)
    if h > N:  # a factor with N columns carries the same X = Q0 Q0^T
        Q0 = jnp.linalg.qr(Q0.T, mode="r")[:N].T

    # Sort the times; inf entries are evolved by a zero gap and replaced by the limit below.
    flat = t.reshape(-1)
    order = jnp.argsort(flat)
    ts = flat[order]
    finite = jnp.where(jnp.isinf(ts), 0.0, ts)
    ts_fin = jnp.where(jnp.isinf(ts), jnp.max(finite, initial=0.0), ts)
    gaps = jnp.diff(ts_fin, prepend=jnp.zeros((1,), dtype)) / tau
    X = _evolve(Q0, F, gaps, float(max_step), None if chunks is None else int(chunks))
    X = X[jnp.argsort(order)]

    X0 = jnp.concatenate(
        [jnp.concatenate([W1.T @ W1, W1.T @ W2.T], axis=1),
         jnp.concatenate([W2 @ W1, W2 @ W2.T], axis=1)], axis=0)
    inf_mask = jnp.isinf(flat)
    if is_concrete(flat) and not bool(jnp.any(inf_mask)):
        X_inf = X0
    else:
        X_inf = jax.lax.cond(jnp.any(inf_mask), _fixed_point, lambda Q, F: jnp.zeros_like(F), Q0, F)
    X = jnp.where((flat == 0)[:, None, None], X0, X)
    X = jnp.where(inf_mask[:, None, None], X_inf, X)
    X = X.reshape(t.shape + (N, N))

    product = X[..., d_in:, :d_in]
    input_gram = X[..., :d_in, :d_in]
    output_gram = X[..., d_in:, d_in:]
    eye_in, eye_out = jnp.eye(d_in, dtype=dtype), jnp.eye(d_out, dtype=dtype)
    ntk = (_kron(jnp.broadcast_to(eye_out, output_gram.shape), input_gram)
           + _kron(output_gram, jnp.broadcast_to(eye_in, input_gram.shape))) / tau
    task = Task(jnp.eye(d_in, dtype=dtype), Syx, task.Syy.astype(dtype))
    loss = task.loss(product)
    return LambdaBalancedSolution(
        product, input_gram, output_gram, ntk, loss, jnp.broadcast_to(lam, t.shape)
    )


def _kron(A, B):
    """Batched Kronecker product over leading axes: (..., a, b) (x) (..., c, d) -> (..., ac, bd)."""
    a, b = A.shape[-2:]
    c, d = B.shape[-2:]
    out = A[..., :, None, :, None] * B[..., None, :, None, :]
    return out.reshape(A.shape[:-2] + (a * c, b * d))


def lambda_balanced_mode(
    t: Float[ArrayLike, "*t"], *, a0, s, lam, tau=1.0
) -> Float[Array, "*t"]:
    r"""Strength of one aligned lambda-balanced mode: ``tau da/dt = sqrt(lam^2 + 4 a^2) (s - a)``.

    With ``W1 = R diag(w1) V^T``, ``W2 = U diag(w2) R^T`` (``U``, ``V`` the task's singular vectors,
    ``w2^2 - w1^2 = lam``), each ``a = w1 w2`` obeys this law; it is :func:`mode` with
    ``k = 1/tau``, ``A = 2``, ``B = |lam|`` (reference Sec. 1 and 5), symmetric in ``lam``;
    ``lam = 0`` is Saxe's logistic law, ``|lam| -> inf`` the shallow law ``s + (a0 - s) e^{-|lam| t/tau}``.

    **Arguments:** `t` times >= 0 (any shape); `a0` initial strength; `s` the task's singular value;
    `lam` the balance; `tau` > 0. **Returns:** ``a(t)``, broadcast over the inputs.
    """
    return mode(t, F0=a0, s=s, k=1.0 / jnp.asarray(tau), A=2.0, B=jnp.abs(jnp.asarray(lam)))
