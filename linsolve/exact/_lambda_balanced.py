r"""Two-layer linear network from a lambda-balanced initialisation: the matrix Riccati solution.

The network ``f(x) = W2 W1 x`` (``W1`` (h, d_in), ``W2`` (d_out, h)) trains by gradient flow with
equal rates ``1/tau`` on a task with whitened inputs (``Sxx = I``). The layer-pair law
``W2^T W2 - W1 W1^T = lam I`` is conserved, and with ``Q = [W1^T; W2]`` ((d_in + d_out, h)) the
matrix ``X = Q Q^T = [[W1^T W1, W1^T W2^T], [W2 W1, W2 W2^T]]`` obeys the Riccati equation

    tau dX/dt = F X + X F - X^2,     F = [[-lam/2 I_in, Syx^T], [Syx, lam/2 I_out]],

whose solution from any ``X(0) = Q0 Q0^T`` is the Fukumizu-type formula (Fukumizu 1998)

    X(t) = e^{F t/tau} Q0 [I + Q0^T (int_0^t e^{2 F s/tau} ds/tau) Q0]^{-1} Q0^T e^{F t/tau}.

**Long times.** Evaluated in one shot the formula loses float64 accuracy once
``e^{2 max|eig F| t/tau}`` exceeds ~1e10. We use its semigroup property instead: time is cut into
chunks ``delta`` with ``max|eig F| delta/tau <= max_step`` (default 1), and each chunk applies the
exact map to a factor of the current state,

    q <- E q L^{-T},   E = e^{F delta/tau},   K = int_0^delta e^{2 F s/tau} ds/tau,
    L L^T = I + q^T K q  (Cholesky),

which gives ``q q^T = X(t + delta)`` exactly: ``q`` is ``[W1^T; W2]`` up to an orthogonal rotation
of the hidden layer, i.e. ``X`` is refactored every chunk (through the Cholesky factor of an
``h x h`` matrix ``>= I`` rather than the top-h eigenpairs of ``X``; the same ``q q^T``). All of
this runs in ``F``'s eigenbasis (``F = U diag(mu) U^T``, tied eigenvalues averaged), where ``E``
and ``K`` are diagonal: ``e^{mu delta}`` and ``expm1(2 mu delta)/(2 mu)`` (``= delta`` at
``mu = 0``, so a singular ``F`` needs no inverse). They are evaluated as the matrix functions of
``U^T F U`` (Taylor series and doublings, :func:`_chunk_maps`) whose value is that diagonal and
whose derivative is the exact one, without eigenvector derivatives. Requested times are sorted;
a ``lax.scan`` walks through them, each interval between consecutive times being covered by as
many equal chunks as the bound needs (a dynamic ``fori_loop``), so the work is
``~ max(t) max|eig F| / (tau max_step)`` chunk updates in all, plus one per requested time.

**Saddles.** Structural zeros are kept exactly: eigen-components of ``q = U^T Q0`` (rows) and
directions of its null space (columns, after rotating the hidden coordinates) below
``eps^(3/4) |q|`` are set to zero, and the flow keeps zeros exactly (``E`` diagonal). So a mode
started exactly on Saxe's saddle (``lam = 0``, aligned with ``a0 <= 0 < s``; a dead hidden unit)
stays there, as the parameter-space flow does. A saddle that is exact only up to rounding in a
non-structural way (e.g. a square balanced init whose orientation relative to the task has an
eigenvalue -1) is left after ``t ~ 40 tau / gap`` by this evaluation, as by any simulation.

**t = inf** is the limit of ``X(t)``, computed from the eigen-structure of ``F``: with the rows of
``q`` in descending order of ``mu`` and grouped by ties, the column space of ``e^{Ft} Q0`` tends to
``S_1 + S_2 + ...``, ``S_g`` the range of the group-``g`` rows of ``q`` restricted to the
coefficients left unused by the groups above (generic ranks: ``min(#nonzero rows, coefficients
left)``, consistent with the finite-t evaluation), and ``X(inf) = sum_{g: mu_g > 0} 2 mu_g P_{S_g}``.
Directions with ``mu <= 0`` decay (those with ``mu = 0`` only algebraically, like ``1/t``, so
``X(1e3)`` can then differ from ``X(inf)`` by ~1e-3).

**Derivatives.** jit and vmap work everywhere. With the default dynamic chunk count, forward mode
(``jax.jvp``, ``jax.jacfwd``) works; reverse mode needs a static loop: pass ``chunks=k``. The
``t = inf`` limit involves rank decisions and is not meant to be differentiated.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, ArrayLike, Float

from .._validate import (
    as_float,
    as_scalar,
    check_overflow,
    check_positive,
    float_dtype_of,
    is_concrete,
)
from ..tasks import Task
from ._mode import _prepare, check_times
from ._mode import _solve as _mode_solve

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


def _chunk_maps(F, delta, max_step):
    """``E = e^{F delta}`` and ``K = int_0^delta e^{2 F s} ds``, for ``|F| delta <= max_step``.

    Taylor series of ``e^y`` and ``phi1(y) = (e^y - 1)/y`` at ``y = 2 F delta / 2^j`` (``|y| <= 1/2``,
    degree 16: truncation < 1e-19), then ``j`` doublings ``phi1(2y) = phi1(y) (e^y + 1)/2``,
    ``e^{2y} = (e^y)^2``; ``K = delta phi1(2 F delta)``. ``j`` is static (from `max_step`), so the
    map is a fixed sequence of matrix products: cheap to compile and differentiable in both modes.
    """
    j = max(1, int(np.ceil(np.log2(4.0 * max_step))))
    N = F.shape[0]
    eye = jnp.eye(N, dtype=F.dtype)
    y = (2.0 * delta / 2.0**j) * F
    two_eye = jnp.concatenate([eye, eye], axis=1)

    def horner(i, ep):  # ep = [e | phi], k = degree, ..., 1
        k = (_TAYLOR_DEGREE - i).astype(F.dtype)
        scale = jnp.concatenate([jnp.full((N,), 1 / k), jnp.full((N,), 1 / (k + 1))])
        return two_eye + (y @ ep) * scale.astype(F.dtype)

    ep = jax.lax.fori_loop(0, _TAYLOR_DEGREE, horner, two_eye)

    def double(i, ep):  # phi(2y) = phi(y) (e^y + 1)/2, e^{2y} = (e^y)^2
        e, phi = ep[:, :N], ep[:, N:]
        return jnp.concatenate([e @ e, phi @ (e + eye) / 2], axis=1)

    ep = jax.lax.fori_loop(0, j - 1, double, ep)
    E, phi = ep[:, :N], ep[:, N:]
    phi = phi @ (E + eye) / 2
    K = delta * phi
    return 0.5 * (E + E.T), 0.5 * (K + K.T)


_TAYLOR_DEGREE = 16


def _step(Q, E, K):
    """Exact flow map over one chunk applied to a factor ``Q`` of ``X``."""
    h = Q.shape[1]
    M = jnp.eye(h, dtype=Q.dtype) + Q.T @ K @ Q
    L = jnp.linalg.cholesky(0.5 * (M + M.T))
    # Q' = E Q L^{-T}: solve L Y = (E Q)^T for Y = L^{-1} (E Q)^T, then Q' = Y^T.
    return solve_triangular(L, (E @ Q).T, lower=True).T


def _evolve(q, Ft, rho, gaps, max_step, chunks):
    """``q q^T`` after each cumulative gap (gaps in units of tau): (T, N, N), eigenbasis of F."""

    def segment(q, gap):
        if chunks is None:
            n = jnp.maximum(jnp.ceil(jax.lax.stop_gradient(gap) * rho / max_step), 1.0)
            E, K = _chunk_maps(Ft, gap / n, max_step)
            q = jax.lax.fori_loop(0, n.astype(jnp.int32), lambda i, q: _step(q, E, K), q)
        else:
            delta = gap / chunks
            E, K = _chunk_maps(Ft, delta, max_step)
            # The static map is only accurate for rho delta <= max_step: flag violations as NaN.
            E = jnp.where(rho * delta <= max_step * (1 + 1e-6), E, jnp.nan)
            q = jax.lax.fori_loop(0, chunks, lambda i, q: _step(q, E, K), q)
        return q, q @ q.T

    _, X = jax.lax.scan(segment, q, gaps)
    return X


def _eigenbasis(F, Q0):
    """F's eigenbasis (descending, ties grouped) and a cleaned factor ``q`` of ``U^T X0 U``.

    Returns ``(U, mu, gid, tie, q, Ft, rank)``: ``mu`` the group-mean eigenvalues (exact ties, so
    ``E`` and ``K`` act as scalars within a group), ``gid`` group ids, ``q`` (N, min(N, h)) with
    ``q q^T = U^T Q0 Q0^T U`` up to the zeroed parts below, ``Ft = U^T F U`` whose primal is exactly
    ``diag(mu)`` (so zero rows of ``q`` stay exactly zero: exact saddles are kept) and whose tangent
    is ``U^T dF U`` (derivatives need no eigenvector derivative), and ``rank`` the number of
    nonzero columns. Structural zeros, kept exactly by the flow: columns of ``q`` (rotated to the
    right singular vectors) and rows (eigen-components) below ``eps^(3/4) |q|`` are set to 0.
    """
    dtype = F.dtype
    eps = jnp.finfo(dtype).eps
    N, h = Q0.shape
    mu, U = jnp.linalg.eigh(jax.lax.stop_gradient(F))
    mu, U = mu[::-1], U[:, ::-1]
    tie = jnp.sqrt(eps) * jnp.maximum(jnp.max(jnp.abs(mu)), jnp.finfo(dtype).tiny)
    starts = jnp.concatenate([jnp.ones((1,), bool), (mu[:-1] - mu[1:]) > tie])
    gid = jnp.cumsum(starts) - 1
    same = gid[:, None] == gid[None, :]
    mu = jnp.sum(jnp.where(same, mu[None, :], 0.0), axis=1) / jnp.sum(same, axis=1)
    q = U.T @ Q0
    tol = _rank_tol(q)
    # Rotate the (gauge) hidden coordinates to q's right singular vectors; keep min(N, h) columns.
    _, sq, Vt = jnp.linalg.svd(jax.lax.stop_gradient(q), full_matrices=True)
    k = min(N, h)
    col = sq[:k] > tol
    q = jnp.where(col[None, :], (q @ Vt.T)[:, :k], 0.0)
    row = jnp.sqrt(jnp.sum(q * q, axis=1, keepdims=True)) > tol
    q = jnp.where(row, q, 0.0)
    A = U.T @ F @ U
    Ft = jnp.diag(mu) + (A - jax.lax.stop_gradient(A))
    return U, mu, gid, tie, q, Ft, jnp.sum(col)


def _rank_tol(q):
    """Components below ``eps^(3/4) |q|`` count as zero (rounding of an exact saddle)."""
    eps = jnp.finfo(q.dtype).eps
    return eps**0.75 * jnp.maximum(jnp.sqrt(jnp.sum(q * q)), jnp.finfo(q.dtype).tiny)


def _fixed_point(q, mu, gid, tie, rank):
    """``lim_{t -> inf} q q^T`` in F's eigenbasis (module docstring): group-wise echelon.

    Group ``g`` (descending) takes ``r_g = min(#nonzero rows in g, coefficient dims left)``
    directions: the top ``r_g`` left singular vectors of its rows restricted to the coefficients
    left over. Besides the structural zeros of :func:`_eigenbasis` (which the flow keeps exactly),
    ``q`` is treated as generic: a saddle that is exact only up to rounding is left (as the
    floating-point flow, and any simulation, leaves it).
    """
    N, k = q.shape
    dtype = q.dtype
    nonzero = jnp.any(q != 0, axis=1)
    idx = jnp.arange(min(N, k))

    def body(carry, g):
        P_rem, Y, rem = carry
        member = gid == g
        mu_g = jnp.max(jnp.where(member, mu, -jnp.inf))
        r_g = jnp.minimum(jnp.sum(member & nonzero), rem)
        B = jnp.where(member[:, None], q, 0.0) @ P_rem
        Ub, sb, Vbt = jnp.linalg.svd(B, full_matrices=False)
        keep = ((idx < r_g) & (sb > 0)).astype(dtype)
        Ur, Vr = Ub * keep, Vbt.T * keep
        Y = Y + jnp.where(mu_g > tie, 2 * mu_g, 0.0) * (Ur @ Ur.T)
        P_rem = P_rem - Vr @ Vr.T
        return (P_rem, Y, rem - r_g), None

    P0 = jnp.diag(jnp.any(q != 0, axis=0).astype(dtype))
    init = (P0, jnp.zeros((N, N), dtype), rank)
    (_, Y, _), _ = jax.lax.scan(body, init, jnp.arange(N))
    return Y


def _validate(W1, W2, task, tau, tol, t):
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    dtype = float_dtype_of(W1, W2, task.Syx, tau, t)
    W1 = as_float(W1, "W1", dtype)
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
            f"`task` maps d_in={task.d_in} -> d_out={task.d_out}, but the network maps "
            f"{d_in} -> {d_out} (`W1` {tuple(W1.shape)}, `W2` {tuple(W2.shape)})."
        )
    Syx = as_float(task.Syx, "task.Syx", dtype)
    tau = as_scalar("tau", tau, dtype)
    eps = float(jnp.finfo(dtype).eps)
    if tol is not None:
        as_scalar("tol", tol, dtype)
    tol = np.sqrt(eps) if tol is None else float(tol)
    if is_concrete(task.Sxx):
        Sxx = np.asarray(task.Sxx, dtype=np.float64)
        err = float(np.max(np.abs(Sxx - np.eye(d_in))))
        if not err <= tol:
            raise ValueError(
                f"`task` must have whitened inputs (Sxx = I); got max |Sxx - I| = {err:.3g} "
                f"(tolerance {tol:.3g}). Whiten the inputs, e.g. tasks.teacher(..., whiten=True)."
            )
    if is_concrete((W1, W2)):
        A, B = np.asarray(W1, np.float64), np.asarray(W2, np.float64)
        G1, G2 = A @ A.T, B.T @ B
        lam0 = float(np.trace(G2 - G1)) / h
        viol = float(np.max(np.abs(G2 - G1 - lam0 * np.eye(h))))
        scale = max(float(np.max(np.abs(G1))), float(np.max(np.abs(G2))))
        if viol > tol * scale:
            raise ValueError(
                "`W1`, `W2` must be lambda-balanced (W2^T W2 - W1 W1^T = lam I); the closest "
                f"lam = {lam0:.6g} (mean diagonal) leaves max |W2^T W2 - W1 W1^T - lam I| "
                f"= {viol:.3g}, i.e. {viol / scale:.3g} relative to the grams (tolerance "
                f"{tol:.3g}). Use linsolve.init.lambda_balanced to build such an init."
            )
    lam = jnp.trace(W2.T @ W2 - W1 @ W1.T) / h
    return W1, W2, Syx, tau, lam


_MAX_CHUNKS = 20_000_000


def _check_work(t, Syx, lam, tau, max_step):
    """Refuse requests whose chunk count (``~ max(t) max|eig F| / (tau max_step)``) is absurd."""
    finite = t[np.isfinite(t)]
    if finite.size == 0:
        return
    d_out, d_in = Syx.shape
    F = np.block([[-lam / 2 * np.eye(d_in), Syx.T], [Syx, lam / 2 * np.eye(d_out)]])
    rho = float(np.max(np.abs(np.linalg.eigvalsh(F))))
    work = float(np.max(finite)) * rho / (tau * max_step)
    if work > _MAX_CHUNKS:
        raise ValueError(
            f"`t` up to {np.max(finite):.3g} with `tau` = {tau:.3g} needs ~{work:.3g} chunk updates "
            f"(max|eig F| = {rho:.3g}); the limit {_MAX_CHUNKS:.0e} guards against hours of "
            "work. Use t = inf for the fixed point, or a larger `max_step`."
        )


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
    - `max_step`: bound on ``max|eig F| delta / tau`` per chunk (accuracy knob; the usual
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
    (ICLR 2025, arXiv 2409.14623).
    """
    W1, W2, Syx, tau, lam = _validate(W1, W2, task, tau, tol, t)
    if chunks is not None and (
        isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks < 1
    ):
        raise ValueError(f"`chunks` must be None or a positive integer; got {chunks!r}.")
    if isinstance(max_step, bool) or not isinstance(max_step, int | float | np.number) or not (
        np.isfinite(max_step) and max_step > 0
    ):
        raise ValueError(f"`max_step` must be a finite positive number; got {max_step!r}.")
    t = check_times(t, "t", W1.dtype)
    need_inf = (not is_concrete(t)) or bool(np.any(np.isinf(np.asarray(t))))
    if chunks is None and is_concrete((t, Syx, lam, tau)):
        _check_work(np.asarray(t, np.float64), np.asarray(Syx, np.float64), float(lam),
                    float(tau), max_step)
    out = _solve(t.reshape(-1), W1, W2, Syx, task.Syy.astype(W1.dtype), tau, lam,
                 float(max_step), None if chunks is None else int(chunks), need_inf)
    out = jax.tree_util.tree_map(lambda x: x.reshape(t.shape + x.shape[1:]), out)
    return out


@partial(jax.jit, static_argnums=(7, 8, 9))
def _solve(flat, W1, W2, Syx, Syy, tau, lam, max_step, chunks, need_inf):
    dtype = W1.dtype
    h, d_in = W1.shape
    d_out = W2.shape[0]
    N = d_in + d_out
    F = _riccati_F(Syx, lam)
    Q0 = jnp.concatenate([W1.T, W2], axis=0)
    U, mu, gid, tie, q, Ft, rank = _eigenbasis(F, Q0)
    rho = jax.lax.stop_gradient(jnp.max(jnp.abs(mu)))

    # Sort the times; inf entries are evolved by a zero gap and replaced by the limit below.
    order = jnp.argsort(flat)
    ts = flat[order]
    finite = jnp.where(jnp.isinf(ts), 0.0, ts)
    ts_fin = jnp.where(jnp.isinf(ts), jnp.max(finite, initial=0.0), ts)
    gaps = jnp.diff(ts_fin, prepend=jnp.zeros((1,), dtype)) / tau
    Y = _evolve(q, Ft, rho, gaps, max_step, chunks)[jnp.argsort(order)]

    X0 = jnp.concatenate(
        [jnp.concatenate([W1.T @ W1, W1.T @ W2.T], axis=1),
         jnp.concatenate([W2 @ W1, W2 @ W2.T], axis=1)], axis=0)
    inf_mask = jnp.isinf(flat)
    if need_inf:
        Y_inf = jax.lax.cond(jnp.any(inf_mask), _fixed_point,
                             lambda q, *_: jnp.zeros((N, N), dtype), q, mu, gid, tie, rank)
        Y = jnp.where(inf_mask[:, None, None], Y_inf, Y)
    X = jnp.einsum("ia,tab,jb->tij", U, Y, U)
    X = jnp.where((flat == 0)[:, None, None], X0, X)

    product = X[:, d_in:, :d_in]
    input_gram = X[:, :d_in, :d_in]
    output_gram = X[:, d_in:, d_in:]
    eye_in, eye_out = jnp.eye(d_in, dtype=dtype), jnp.eye(d_out, dtype=dtype)
    ntk = (_kron(jnp.broadcast_to(eye_out, output_gram.shape), input_gram)
           + _kron(output_gram, jnp.broadcast_to(eye_in, input_gram.shape))) / tau
    # task.loss(P) with Sxx = I: 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P P^T).
    loss = 0.5 * jnp.trace(Syy) + jnp.sum(product * (0.5 * product - Syx), axis=(-2, -1))
    return LambdaBalancedSolution(
        product, input_gram, output_gram, ntk, loss, jnp.broadcast_to(lam, flat.shape)
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
    ``k = 1/tau``, ``A = 2``, ``B = |lam|`` (Braun et al. 2022), symmetric in ``lam``;
    ``lam = 0`` is Saxe's logistic law, ``|lam| -> inf`` the shallow law ``s + (a0 - s) e^{-|lam| t/tau}``.

    **Arguments:** `t` times >= 0 (any shape); `a0` initial strength; `s` the task's singular value;
    `lam` the balance (finite, any sign); `tau` > 0. Inputs are promoted to their widest
    floating dtype. **Returns:** ``a(t)``, broadcast over the inputs.
    """
    dtype = float_dtype_of(t, a0, s, lam, tau)
    tau = as_float(tau, "tau", dtype)
    check_positive("tau", tau)
    k = 1.0 / tau
    check_overflow(f"`tau` is too small for {dtype}: 1/tau overflows.", k)
    B = jnp.abs(as_float(lam, "lam", dtype))
    names = {"F0": "a0", "k": "tau", "B": "lam"}
    t, p = _prepare(t, a0, s, k, jnp.asarray(2.0, dtype), B, names=names)
    return _mode_solve(t, **p)[0]
