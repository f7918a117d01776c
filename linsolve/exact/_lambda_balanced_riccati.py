"""Matrix Riccati machinery of :func:`~linsolve.exact.lambda_balanced`.

The chunked Fukumizu solution, the eigenbasis of ``F`` with its structural zeros, and the
``t = inf`` limit; the formulas are written out in the docstring of ``_lambda_balanced``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular


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


def _kron(A, B):
    """Batched Kronecker product over leading axes: (..., a, b) (x) (..., c, d) -> (..., ac, bd)."""
    a, b = A.shape[-2:]
    c, d = B.shape[-2:]
    out = A[..., :, None, :, None] * B[..., None, :, None, :]
    return out.reshape(A.shape[:-2] + (a * c, b * d))
