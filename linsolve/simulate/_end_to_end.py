r"""The reduced end-to-end ODE of balanced deep linear networks (Arora, Cohen & Hazan 2018).

A depth-N linear net ``P = W_N ... W_1`` trained by gradient flow ``dW_j/dt = -eta dl/dW_j`` from a
balanced init (``W_{j+1}^T W_{j+1} = W_j W_j^T``) stays balanced, and its end-to-end matrix obeys,
for any differentiable loss ``l(P)``,

    dP/dt = -eta sum_{j=1}^{N} (P P^T)^{(j-1)/N} grad l(P) (P^T P)^{(N-j)/N},

a closed ODE in ``P`` alone: its cost does not depend on the hidden widths. With the SVD
``P = U diag(s) V^T`` (U (d_out, d_out), V (d_in, d_in), ``s`` padded with zeros to both sizes)
the sum is ``U [(U^T grad l V) o K] V^T`` with ``K_kl = sum_j s_k^{2(j-1)/N} s_l^{2(N-j)/N}``
(``0^0 = 1``): one SVD per evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._validate import as_float, as_scalar, check_size, float_dtype_of
from ..init import decoupled
from ..tasks import Task
from ._common import Trajectory, check_int, freeze_after_failure, status_code
from ._flow import _check_tolerances, _states_at_saves, check_solver

__all__ = ["end_to_end_flow", "end_to_end_velocity", "balanced_factorization"]

# The smallest step, in units of eps * ts[-1]: far below any step a finite horizon needs (a
# float32 run would need > 5e5 steps of this size), well above the spacing of the floats near t.
_DTMIN_EPS = 16.0
# Singular values of P0 below this many eps times the largest are rounding noise (numerical rank).
_RANK_RTOL_EPS = 1e3


def _check_depth(depth) -> int:
    if isinstance(depth, bool | np.bool_):
        raise ValueError(f"`depth` must be an integer >= 1 (number of weight matrices); got {depth!r}.")
    return check_int("depth", depth, 1)


def _padded(s, n: int):
    """The singular values `s` (r,) padded with zeros to length n >= r."""
    return jnp.zeros((n,), s.dtype).at[: s.shape[0]].set(s)


def _power(x, exponent: float):
    """``x^exponent`` for x >= 0 with ``0^0 = 1`` (the identity term of a Gram power)."""
    return jnp.ones_like(x) if exponent == 0 else x**exponent


def end_to_end_velocity(
    P: Float[Array, "d_out d_in"], grad: Float[Array, "d_out d_in"], depth: int
) -> Float[Array, "d_out d_in"]:
    r"""``sum_{j=1}^{N} (P P^T)^{(j-1)/N} G (P^T P)^{(N-j)/N}`` for ``G`` = `grad`, ``N`` = `depth`.

    The fractional powers of the PSD Grams come from the full SVD ``P = U diag(s) V^T``: the
    eigenpairs of ``P P^T`` are ``(U, s^2)`` and those of ``P^T P`` are ``(V, s^2)`` (zeros padded),
    exact and non-negative, with ``s`` accurate to ``eps |P|`` (eigenvalues of the formed Grams
    carry ``eps |P|^2``, which swamps small singular values). ``x^0 = 1`` also for ``x = 0``, so the
    ``j = 1`` and ``j = N`` terms hold the identity on the null spaces. Singular values below
    ``max(d_out, d_in) eps s_1`` (the numerical rank of ``numpy.linalg.matrix_rank``) count as
    zero: they are rounding noise, and their powers ``s^{2/N}`` (``eps^{2/N}``, 1e-8 at N = 4)
    would not be small, so an exactly rank-deficient ``P`` gets its exact velocity. The sum is
    continuous in ``P`` but not differentiable at rank-deficient ``P`` (the powers ``s^{2a}``,
    ``0 < a < 1/2``): use it as a vector field, do not differentiate through it there.
    ``depth = 1`` gives ``G``.

    **Arguments:** `P`, `grad` (d_out, d_in), finite; `depth` N >= 1 (int).
    **Returns:** (d_out, d_in) the sum (``-dP/dt / eta``).
    """
    depth = _check_depth(depth)
    dtype = float_dtype_of(P, grad)
    P = as_float(P, "P", dtype)
    grad = as_float(grad, "grad", dtype)
    if P.ndim != 2 or P.size == 0 or grad.shape != P.shape:
        raise ValueError(
            f"`P` and `grad` must be non-empty 2-D matrices of the same shape; got "
            f"{tuple(P.shape)} and {tuple(grad.shape)}."
        )
    return _velocity(P, grad, depth)


def _velocity(P, grad, depth: int):
    if depth == 1:
        return grad
    d_out, d_in = P.shape
    U, s, Vt = jnp.linalg.svd(P, full_matrices=True)
    s = jnp.where(s > max(d_out, d_in) * jnp.finfo(s.dtype).eps * s[0], s, 0.0)  # numerical rank
    s2_out, s2_in = _padded(s * s, d_out), _padded(s * s, d_in)
    K = sum(
        _power(s2_out, (j - 1) / depth)[:, None] * _power(s2_in, (depth - j) / depth)[None, :]
        for j in range(1, depth + 1)
    )
    return U @ ((U.T @ grad @ Vt.T) * K) @ Vt


def _task_loss(P, task: Task):
    """``1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)`` (no input checks: runs traced)."""
    return 0.5 * jnp.trace(task.Syy) - jnp.sum(P * task.Syx) + 0.5 * jnp.sum((P @ task.Sxx) * P)


def _loss_and_grad(P, loss):
    if isinstance(loss, Task):
        return _task_loss(P, loss), P @ loss.Sxx - loss.Syx
    return jax.value_and_grad(loss)(P)


def _vector_field(t, P, args):
    loss, lr, depth = args
    _, grad = _loss_and_grad(P, loss)
    return -lr * _velocity(P, grad, depth)


def _check_loss(loss, P0):
    """`loss` as a Task of P0's shape (cast to its dtype) or a callable P -> scalar."""
    if isinstance(loss, Task):
        if loss.Syx.shape != P0.shape:
            raise ValueError(
                f"`loss` is a task {loss.d_in} -> {loss.d_out}, so `P0` must have shape "
                f"(d_out, d_in)=({loss.d_out}, {loss.d_in}); got {tuple(P0.shape)}."
            )
        return jax.tree_util.tree_map(
            lambda x: x.astype(P0.dtype) if eqx.is_inexact_array(x) else x, loss
        )
    if not callable(loss):
        raise ValueError(
            f"`loss` must be a linsolve.Task or a callable P -> scalar; got {type(loss).__name__}."
        )
    try:
        out = jax.eval_shape(loss, jax.ShapeDtypeStruct(P0.shape, P0.dtype))
    except Exception as e:  # noqa: BLE001 -- any failure to trace means a bad `loss`
        raise ValueError(
            f"`loss` must be a JAX-traceable callable P -> scalar for P of shape {tuple(P0.shape)}; "
            f"calling it failed: {type(e).__name__}: {e}"
        ) from None
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(
            f"`loss` must return a real floating scalar for P of shape {tuple(P0.shape)}; got "
            f"{getattr(out, 'shape', out)} of dtype {getattr(out, 'dtype', type(out).__name__)}."
        )
    return loss


def _check_ts(ts, dtype):
    ts = as_float(ts, "ts", dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"`ts` must be a non-empty 1-D array of times; got shape {tuple(ts.shape)}.")
    if not isinstance(ts, jax.core.Tracer):
        host = np.asarray(ts)
        if bool(np.any(host < 0)) or bool(np.any(np.diff(host) < 0)):
            raise ValueError(f"`ts` must be non-negative and non-decreasing; got {ts.tolist()}.")
    return ts


@eqx.filter_jit
def _solve(P0, loss, ts, lr, depth, rtol, atol, max_steps, solver, observe):
    dtype = ts.dtype
    t1 = jnp.maximum(ts[-1], jnp.finfo(dtype).tiny)
    # A step below this no longer advances t: the solution blows up in finite time (a callable
    # loss can do that), so the solve fails (DIVERGED) instead of grinding to `max_steps`.
    dtmin = _DTMIN_EPS * jnp.finfo(dtype).eps * t1
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        solver,
        t0=jnp.zeros((), dtype),
        t1=t1,
        dt0=None,
        y0=P0,
        args=(loss, lr, depth),
        saveat=diffrax.SaveAt(ts=ts, t1=True),
        stepsize_controller=diffrax.PIDController(
            rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4, dtmin=dtmin, force_dtmin=False
        ),
        max_steps=max_steps,
        throw=False,
    )
    P, t_final, _ = _states_at_saves(sol, ts.shape[0])
    losses = jax.vmap(lambda p: _loss_and_grad(p, loss)[0])(P).astype(dtype)
    step_limit = sol.result == diffrax.RESULTS.max_steps_reached
    solver_failed = ~(step_limit | (sol.result == diffrax.RESULTS.successful))
    ok = jnp.all(jnp.isfinite(P), axis=(1, 2)) & jnp.isfinite(losses)
    (P,), losses, blew_up, diverged_at = freeze_after_failure(
        ts, (P,), losses, ok & ~(solver_failed & (ts > t_final))
    )
    diverged = blew_up | solver_failed
    diverged_at = jnp.where(blew_up, diverged_at, jnp.where(solver_failed, t_final, jnp.inf))
    return Trajectory(
        ts=ts,
        params=(P,),
        loss=losses,
        status=status_code(diverged, step_limit),
        diverged=diverged,
        diverged_at=diverged_at.astype(dtype),
        observables={} if observe is None else jax.vmap(observe)(P),
        output_scale=jnp.ones((), dtype),
        stats={
            "num_steps": sol.stats["num_steps"],
            "num_rejected_steps": sol.stats["num_rejected_steps"],
            "t_final": t_final.astype(dtype),
        },
    )


def end_to_end_flow(
    P0: Float[ArrayLike, "d_out d_in"],
    loss: Task | Callable[[Array], Array],
    ts: Float[ArrayLike, " T"],
    *,
    depth: int,
    lr=1.0,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 200_000,
    solver=None,
    observe=None,
) -> Trajectory:
    r"""Integrate the end-to-end ODE of a balanced depth-N linear net from ``P(0) = P0``:

        dP/dt = -eta sum_{j=1}^{N} (P P^T)^{(j-1)/N} grad l(P) (P^T P)^{(N-j)/N}.

    This is exactly the path of ``P = W_N...W_1`` under gradient flow ``dW_j/dt = -eta dl/dW_j``
    (equal rates) from any balanced factorisation of ``P0`` (:func:`balanced_factorization`), at a
    cost independent of the hidden widths (one SVD of P per evaluation,
    :func:`end_to_end_velocity`). ``depth = 1`` is plain gradient flow ``dP/dt = -eta grad l``.
    For ``N >= 2`` the rank of P never grows (a zero singular value has zero velocity): ``P0 = 0``
    is a fixed point and a rank-r ``P0`` stays of rank <= r. The right-hand side is continuous but
    not differentiable at rank-deficient P (fractional powers of zero singular values), so do not
    differentiate the solve through such points. Integration and accuracy control are those of
    :func:`~linsolve.simulate.gradient_flow` (``Dopri8`` in float64, ``Tsit5`` below; tolerances
    from the dtype); there is no steady-state stop: the solve always runs to ``ts[-1]``.

    **Arguments:**

    - `P0`: (d_out, d_in) finite initial end-to-end matrix.
    - `loss`: a :class:`~linsolve.Task`, for ``l(P) = 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)``
      (``grad l = P Sxx - Syx``, any ``Sxx``), or a JAX-differentiable callable ``P -> scalar``
      (matrix sensing, completion, ...; differentiated by ``jax.grad``; a Python function is a
      static argument of the compiled solve, an ``eqx.Module`` has its arrays traced).
    - `ts`: (T,) finite, non-negative, non-decreasing save times (``P(0) = P0``).
    - `depth`: N >= 1, the number of weight matrices.
    - `lr`: eta > 0, the rate shared by every layer (traced).
    - `rtol`, `atol`, `max_steps`, `solver`: as for :func:`~linsolve.simulate.gradient_flow`.
    - `observe`: optional ``P -> dict of arrays``, recorded at every save.

    Inputs are promoted to the widest floating dtype of `P0` and the task (else the default float).

    **Returns:** a :class:`~linsolve.simulate.Trajectory` with ``params = (P,)``, P (T, d_out, d_in)
    (so ``traj.product()`` is P), ``loss`` (T,) ``l(P)``, ``output_scale = 1`` and ``status``
    ``CONVERGED`` (reached ``ts[-1]``), ``STEP_LIMIT`` (`max_steps` ran out at
    ``stats["t_final"]``; later saves hold the last state) or ``DIVERGED`` (non-finite values, a
    solver failure, or a blow-up in finite time: a step below ``16 eps ts[-1]``; P frozen at the
    last good save, loss ``inf`` from ``diverged_at`` on).

    **References:** Arora, Cohen & Hazan, "On the Optimization of Deep Networks: Implicit
    Acceleration by Overparameterization", ICML 2018 (arXiv:1802.06509), Theorem 1; Arora, Cohen,
    Hu & Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019
    (arXiv:1905.13655), Lemma 3 and Theorem 3 (singular-value dynamics).
    """
    depth = _check_depth(depth)
    dtype = float_dtype_of(P0, *((loss.Sxx, loss.Syx, loss.Syy) if isinstance(loss, Task) else ()))
    P0 = as_float(P0, "P0", dtype)
    if P0.ndim != 2 or P0.size == 0:
        raise ValueError(f"`P0` must be a non-empty 2-D matrix (d_out, d_in); got shape {tuple(P0.shape)}.")
    loss = _check_loss(loss, P0)
    ts = _check_ts(ts, dtype)
    lr = as_scalar("lr", lr, dtype)
    rtol, atol = _check_tolerances(rtol, atol, dtype)
    max_steps = check_int("max_steps", max_steps, 1)
    solver = check_solver(solver, dtype)
    if observe is not None and not callable(observe):
        raise ValueError(f"`observe` must be a callable P -> dict or None; got {observe!r}.")
    return _solve(P0, loss, ts, lr, depth, rtol, atol, max_steps, solver, observe)


def balanced_factorization(
    P0: Float[ArrayLike, "d_out d_in"], depth: int, *, widths: Sequence[int] | None = None, key=None
) -> tuple:
    r"""A balanced factorisation ``W_N ... W_1 = P0`` shared equally by the layers.

    From the SVD ``P0 = U diag(s) V^T``: ``W_1 = R_1 S^{1/N} V^T``, ``W_j = R_j S^{1/N} R_{j-1}^T``,
    ``W_N = U S^{1/N} R_{N-1}^T`` (:func:`linsolve.init.decoupled`), with ``R_j`` (n_j, r)
    orthonormal columns (the first r basis vectors, or Haar-random with `key`), so
    ``W_{j+1}^T W_{j+1} = W_j W_j^T``: the start of the factorised flow that
    :func:`end_to_end_flow` reduces.

    **Arguments:** `P0` (d_out, d_in) finite; `depth` N >= 1; `widths` the N - 1 hidden widths
    (default all ``min(d_out, d_in)``); a width below ``min(d_out, d_in)`` needs ``rank P0 <=``
    that width; `key` optional PRNG key. Singular values below ``1e3 eps s_1`` count as zero, so a
    rank-deficient `P0` gives exactly rank-deficient layers (``s^{1/N}`` of rounding noise would
    not be small).
    **Returns:** ``(W1, ..., WN)``, ``W_j`` of shape (n_j, n_{j-1}), ``n_0 = d_in``, ``n_N = d_out``.
    """
    depth = _check_depth(depth)
    P0 = as_float(P0, "P0", float_dtype_of(P0))
    if P0.ndim != 2 or P0.size == 0:
        raise ValueError(f"`P0` must be a non-empty 2-D matrix (d_out, d_in); got shape {tuple(P0.shape)}.")
    d_out, d_in = P0.shape
    if widths is None:
        widths = (min(d_out, d_in),) * (depth - 1)
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence) or len(widths) != depth - 1:
        raise ValueError(f"`widths` must be a sequence of depth - 1 = {depth - 1} ints; got {widths!r}.")
    widths = tuple(check_size("widths", n) for n in widths)
    U, s, Vt = jnp.linalg.svd(P0, full_matrices=False)
    cutoff = _RANK_RTOL_EPS * float(jnp.finfo(P0.dtype).eps) * float(s[0])
    s = jnp.where(s > cutoff, s, 0.0)  # rounding noise of a rank-deficient P0 is no mode
    r = min(d_out, d_in, *widths)
    dropped = float(jnp.max(s[r:], initial=0.0))
    if dropped > 0:
        raise ValueError(
            f"`widths` {widths} cannot carry `P0`: its rank exceeds the narrowest width {r} "
            f"(singular value {dropped:.3g} beyond it)."
        )
    return decoupled(U[:, :r], s[:r], Vt[:r].T, (d_in, *widths, d_out), key=key)
