r"""Two-layer linear network from a lambda-balanced initialisation: the matrix Riccati solution.

Supported: whitened inputs ``Sxx = I`` (below) for any init, and ``Sxx != I`` for inits aligned
with the task (decoupled master modes with input variances, :mod:`._lambda_balanced_aligned`).
Isotropic inputs ``Sxx = c I`` (``c > 0``) are exact for any init too: ``tau dW1/dt =
-c W2^T (W2 W1 - Syx/c) - gamma W1`` is the whitened flow of ``Syx/c`` with time constant
``tau/c`` and decay ``gamma/c`` (the balance ``lam`` is unchanged).

**Why no closed form for anisotropic Sxx and a generic init.** The flow of ``(P, A, B) =
(W2 W1, W1^T W1, W2 W2^T)`` is still closed, but e.g. ``tau dA/dt = Syx^T P + P^T Syx - Sxx P^T P -
P^T P Sxx`` and, with the balance ``P^T P = A^2 + lam A``, its quadratic part is
``-(Sxx A^2 + A^2 Sxx)``; likewise ``tau dP/dt`` contains ``-(B P Sxx + P Sxx A)``. A Riccati
equation ``dX/dt = F X + X F^T - X M X`` (the form of Braun et al. 2022 / Dominé et al. 2025,
linearised by ``X = Q Q^T`` with the Fukumizu solution for ``Q``) needs the quadratic term in the
congruence form ``X M X``; ``Sxx A^2 + A^2 Sxx`` has it only when ``Sxx`` commutes with ``A``
(``Sxx = c I``, or the aligned case where everything is diagonal in one basis), so for a generic
init the equation is not Riccati and the linearisation fails.

**Weight decay** ``gamma``: ``d(W2^T W2 - W1 W1^T)/dt = -(2 gamma/tau)(W2^T W2 - W1 W1^T)``, so the
balance is not conserved (``lam(t) = lam e^{-2 gamma t/tau}``) and ``F`` below becomes
time-dependent: no closed form for ``lam != 0`` (ValueError). For ``lam = 0`` it stays 0 and the
decay only adds ``-2 gamma X`` to the right-hand side, ``tau dX/dt = (F - gamma I) X +
X (F - gamma I) - X^2``: the same solution with ``F - gamma I``.

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
from ._lambda_balanced_aligned import aligned_basis, aligned_state
from ._lambda_balanced_riccati import (
    _check_work,
    _eigenbasis,
    _evolve,
    _fixed_point,
    _kron,
    _riccati_F,
)
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


def _validate(W1, W2, task, tau, tol, t, weight_decay=0.0):
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    dtype = float_dtype_of(W1, W2, task.Syx, tau, t, weight_decay)
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
    if not is_concrete(weight_decay):
        raise ValueError("`weight_decay` must be concrete (it selects the supported case).")
    gamma = np.asarray(weight_decay)
    if gamma.dtype == np.bool_ or not np.issubdtype(gamma.dtype, np.number) or np.iscomplexobj(
        gamma
    ):
        raise ValueError(f"`weight_decay` must be a real number; got dtype {gamma.dtype}.")
    if gamma.ndim != 0:
        raise ValueError(f"`weight_decay` must be a scalar; got shape {tuple(gamma.shape)}.")
    gamma = float(gamma)
    if not (np.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"`weight_decay` must be finite and non-negative; got {gamma}.")
    iso = 1.0  # Sxx = iso I; a traced Sxx is taken to be I (unchecked)
    if is_concrete(task.Sxx):
        Sxx = np.asarray(task.Sxx, dtype=np.float64)
        c = float(np.mean(np.diag(Sxx)))
        isotropic = c > 0 and float(np.max(np.abs(Sxx - c * np.eye(d_in)))) <= tol * c
        iso = c if isotropic else None  # None: anisotropic, aligned inits only
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
    if gamma > 0:
        if not is_concrete((W1, W2)):
            raise ValueError("`weight_decay` > 0 needs concrete `W1`, `W2` (to check lam = 0).")
        G1, G2 = np.asarray(W1 @ W1.T, np.float64), np.asarray(W2.T @ W2, np.float64)
        scale = max(float(np.max(np.abs(G1))), float(np.max(np.abs(G2))), np.finfo(float).tiny)
        if not abs(float(lam)) <= tol * scale:
            raise ValueError(
                f"`weight_decay` > 0 is only supported for balanced inits (lam = 0); got lam = "
                f"{float(lam):.6g}. With weight decay the balance is not conserved "
                "(W2^T W2 - W1 W1^T = lam e^{-2 gamma t/tau} I), so the Riccati matrix F(t) is "
                "time-dependent and the flow has no closed form."
            )
        lam = jnp.zeros((), dtype)
    return W1, W2, Syx, tau, lam, gamma, iso, tol


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
    weight_decay=0.0,
) -> LambdaBalancedSolution:
    r"""Exact gradient flow of ``W2 W1`` from a lambda-balanced init, rates 1/tau.

    Solves ``tau dW1/dt = -W2^T (W2 W1 - Syx)``, ``tau dW2/dt = -(W2 W1 - Syx) W1^T`` through the
    matrix Riccati equation of ``X = Q Q^T``, ``Q = [W1^T; W2]`` (module docstring):

        X(t) = e^{Ft/tau} Q0 [I + Q0^T (int_0^t e^{2Fs/tau} ds/tau) Q0]^{-1} Q0^T e^{Ft/tau},
        F = [[-lam/2 I, Syx^T], [Syx, lam/2 I]],

    applied chunk by chunk so that it stays accurate (and finite) at any time. Valid for every
    ``lam`` (including 0), ``d_in != d_out``, any hidden width (including h > d_in + d_out and
    rank-deficient inits) and singular ``F``; no alignment with the task is needed.

    Isotropic inputs ``Sxx = c I`` (any init): the flow of ``Syx/c`` with ``tau/c`` and
    ``gamma/c``. Anisotropic ``Sxx = V diag(v) V^T`` sharing its eigenvectors with the right
    singular vectors of ``Syx = U diag(s) V^T``: only for inits decoupled in that basis
    (``W1 = R diag(w1) V^T``, ``W2 = U diag(w2) R^T``, detected within `tol`), where each mode
    ``a = w1 w2`` is
    ``exact.mode(t, F0=a0, s=s_a, k=1/tau, A=2, B=|lam|, variance=v_a, weight_decay=gamma)``;
    other inits with anisotropic ``Sxx`` raise ValueError (no closed form: module docstring).
    Weight decay ``gamma``: only for ``lam = 0`` (the balance decays otherwise; ValueError), via
    ``F - gamma I``.

    **Arguments:**

    - `t`: times >= 0 of any shape (``inf`` allowed); the results gain these leading axes.
      ``t = 0`` returns the initial grams and product exactly, ``t = inf`` the limit of ``X(t)``.
    - `W1`: (h, d_in) first layer; `W2`: (d_out, h) second layer, with
      ``W2^T W2 - W1 W1^T = lam I`` (checked when concrete; ``lam`` is read off as the mean diagonal).
    - `task`: a :class:`~linsolve.Task` with ``Sxx = c I``, or any ``Sxx`` aligned with the init
      (checked when concrete; a traced ``Sxx`` is taken to be ``I``).
    - `tau`: time constant, rates ``eta = 1/tau`` on both layers (> 0).
    - `max_step`: bound on ``max|eig F| delta / tau`` per chunk (accuracy knob; the usual
      bound is 4, the default 1 keeps each chunk's Cholesky factor well conditioned).
    - `chunks`: None (default) covers each interval between consecutive requested times with as
      many chunks as `max_step` needs (a dynamic loop: jit, vmap and forward-mode AD work, reverse
      mode does not). An int uses exactly that many chunks per interval (a static loop, so
      ``jax.grad`` works); it is then up to the caller that the intervals are short enough.
    - `tol`: relative tolerance of the whitening, alignment and balance checks (default
      ``sqrt(eps)``).
    - `weight_decay`: ``gamma >= 0`` on both layers (concrete scalar); ``> 0`` needs ``lam = 0``.
      The returned `loss` is ``task.loss(W2 W1)`` (without the penalty).

    **Returns:** a :class:`LambdaBalancedSolution` (``product``, ``input_gram``, ``output_gram``,
    ``ntk``, ``loss``, ``lam``).

    **Cost:** one scan step per requested time plus ``~ max(t) max|eig F| / (tau max_step)``
    chunk updates of size (d_in + d_out) x h; ``eig F = +-sqrt(s_a^2 + lam^2/4)`` and
    ``sgn(d_out - d_in) lam/2``. For times long after convergence use ``t = inf``.

    References: Fukumizu (1998); Braun, Dominé, Fitzgerald & Saxe (NeurIPS 2022); Dominé et al.
    (ICLR 2025, arXiv 2409.14623); Saxe, McClelland & Ganguli (2014) for the decoupled modes.
    """
    W1, W2, Syx, tau, lam, gamma, iso, tol = _validate(W1, W2, task, tau, tol, t, weight_decay)
    if chunks is not None and (
        isinstance(chunks, bool) or not isinstance(chunks, int | np.integer) or chunks < 1
    ):
        raise ValueError(f"`chunks` must be None or a positive integer; got {chunks!r}.")
    if isinstance(max_step, bool) or not isinstance(max_step, int | float | np.number) or not (
        np.isfinite(max_step) and max_step > 0
    ):
        raise ValueError(f"`max_step` must be a finite positive number; got {max_step!r}.")
    t = check_times(t, "t", W1.dtype)
    Syy = task.Syy.astype(W1.dtype)
    if iso is None:
        return _aligned(t, W1, W2, task, tau, lam, gamma, tol)
    need_inf = (not is_concrete(t)) or bool(np.any(np.isinf(np.asarray(t))))
    # Sxx = c I: the whitened flow of Syx/c with tau/c and gamma/c (module docstring).
    Syx_c, tau_c = Syx / iso, tau / iso
    if chunks is None and is_concrete((t, Syx, lam, tau)):
        _check_work(np.asarray(t, np.float64), np.asarray(Syx_c, np.float64), float(lam),
                    float(tau_c), max_step)
    out = _solve(t.reshape(-1), W1, W2, Syx_c, Syy, tau_c, lam,
                 float(max_step), None if chunks is None else int(chunks), need_inf, gamma / iso)
    if iso != 1.0:  # the loss and NTK of the original task and time constant
        out = _assemble(out.product, out.input_gram, out.output_gram, tau, Syx,
                        iso * jnp.eye(Syx.shape[1], dtype=W1.dtype), Syy, lam, t.reshape(-1).shape)
    out = jax.tree_util.tree_map(lambda x: x.reshape(t.shape + x.shape[1:]), out)
    return out


def _aligned(t, W1, W2, task, tau, lam, gamma, tol):
    """Anisotropic ``Sxx``: the decoupled master modes (``_lambda_balanced_aligned``)."""
    if not is_concrete((W1, W2, task.Syx, lam)):
        raise ValueError(
            "`task` has non-whitened inputs (Sxx != I): this needs concrete `W1`, `W2` and "
            "`task` (the alignment of the init with the task is checked on the host)."
        )
    basis, residual = aligned_basis(task.Syx, task.Sxx, W1, W2, tol)
    if basis is None:
        raise ValueError(
            "`task` must have isotropic inputs (Sxx = c I) for a general lambda-balanced init; "
            "with anisotropic Sxx only aligned inits are supported "
            "(Sxx sharing its eigenvectors with the right singular vectors V of Syx = U S V^T, and "
            "W1 = R diag(w1) V^T, W2 = U diag(w2) R^T decoupled in that basis). Got a "
            f"misalignment of {residual:.3g} (relative; tolerance {tol:.3g}). Whiten the inputs "
            "(e.g. tasks.teacher(..., whiten=True)) or use an aligned init."
        )
    if bool(np.any(basis["live"] & (basis["var"] <= 0))):
        raise ValueError("`task.Sxx` must be positive on the directions of the network's modes.")
    dtype = W1.dtype
    flat = t.reshape(-1)
    P, A, B = aligned_state(flat, basis, float(lam), tau, gamma, dtype)
    zero = (flat == 0)[:, None, None]
    P = jnp.where(zero, W2 @ W1, P)
    A = jnp.where(zero, W1.T @ W1, A)
    B = jnp.where(zero, W2 @ W2.T, B)
    out = _assemble(P, A, B, tau, task.Syx.astype(dtype), task.Sxx.astype(dtype),
                    task.Syy.astype(dtype), lam, flat.shape)
    return jax.tree_util.tree_map(lambda x: x.reshape(t.shape + x.shape[1:]), out)


def _assemble(product, input_gram, output_gram, tau, Syx, Sxx, Syy, lam, shape):
    """The solution tuple from ``(W2 W1, W1^T W1, W2 W2^T)`` (time axis first)."""
    dtype = product.dtype
    d_out, d_in = product.shape[-2:]
    eye_in, eye_out = jnp.eye(d_in, dtype=dtype), jnp.eye(d_out, dtype=dtype)
    ntk = (_kron(jnp.broadcast_to(eye_out, output_gram.shape), input_gram)
           + _kron(output_gram, jnp.broadcast_to(eye_in, input_gram.shape))) / tau
    if Sxx is None:  # task.loss(P) with Sxx = I: 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P P^T).
        loss = 0.5 * jnp.trace(Syy) + jnp.sum(product * (0.5 * product - Syx), axis=(-2, -1))
    else:
        loss = (0.5 * jnp.trace(Syy) - jnp.sum(product * Syx, axis=(-2, -1))
                + 0.5 * jnp.sum((product @ Sxx) * product, axis=(-2, -1)))
    return LambdaBalancedSolution(
        product, input_gram, output_gram, ntk, loss, jnp.broadcast_to(lam, shape)
    )


@partial(jax.jit, static_argnums=(7, 8, 9))
def _solve(flat, W1, W2, Syx, Syy, tau, lam, max_step, chunks, need_inf, gamma):
    dtype = W1.dtype
    h, d_in = W1.shape
    d_out = W2.shape[0]
    N = d_in + d_out
    # Weight decay (lam = 0 only): tau dX/dt = (F - gamma I) X + X (F - gamma I) - X^2.
    F = _riccati_F(Syx, lam) - gamma * jnp.eye(N, dtype=dtype)
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
    return _assemble(product, input_gram, output_gram, tau, Syx, None, Syy, lam, flat.shape)


def lambda_balanced_mode(
    t: Float[ArrayLike, "*t"], *, a0, s, lam, tau=1.0, variance=1.0, weight_decay=0.0
) -> Float[Array, "*t"]:
    r"""Strength of one aligned lambda-balanced mode: ``tau da/dt = sqrt(lam^2 + 4 a^2) (s - a)``.

    With ``W1 = R diag(w1) V^T``, ``W2 = U diag(w2) R^T`` (``U``, ``V`` the task's singular vectors,
    ``w2^2 - w1^2 = lam``), each ``a = w1 w2`` obeys this law; it is :func:`mode` with
    ``k = 1/tau``, ``A = 2``, ``B = |lam|`` (Braun et al. 2022), symmetric in ``lam``;
    ``lam = 0`` is Saxe's logistic law, ``|lam| -> inf`` the shallow law ``s + (a0 - s) e^{-|lam| t/tau}``.

    **Arguments:** `t` times >= 0 (any shape); `a0` initial strength; `s` the task's singular value;
    `lam` the balance (finite, any sign); `tau` > 0; `variance` > 0 the mode's input variance
    (``tau da/dt = sqrt(lam^2 + 4a^2)(s - variance a)``); `weight_decay` ``gamma >= 0``, only with
    ``lam = 0`` (``tau da/dt = 2|a|(s - variance a) - 2 gamma a``; see :func:`mode`). Inputs are
    promoted to their widest
    floating dtype. **Returns:** ``a(t)``, broadcast over the inputs.
    """
    dtype = float_dtype_of(t, a0, s, lam, tau, variance, weight_decay)
    tau = as_float(tau, "tau", dtype)
    check_positive("tau", tau)
    k = 1.0 / tau
    check_overflow(f"`tau` is too small for {dtype}: 1/tau overflows.", k)
    B = jnp.abs(as_float(lam, "lam", dtype))
    names = {"F0": "a0", "k": "tau", "B": "lam"}
    t, p = _prepare(t, a0, s, k, jnp.asarray(2.0, dtype), B, names=names, variance=variance,
                    weight_decay=weight_decay)
    return _mode_solve(t, **p)[0]
