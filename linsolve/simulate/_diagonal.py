r"""Diagonal linear networks ``beta = u*u - v*v`` trained on (u, v) by gradient flow or descent.

The model of Woodworth et al. (2020) and Pesme & Flammarion (2023): on a regression ``(X, y)``,
``X`` (n, d), the loss is ``L(u, v) = 1/(2n) |X (u*u - v*v) - y|^2`` and, with the residual
correlation ``r = X^T (X beta - y) / n``,

    dL/du = 2 u r,    dL/dv = -2 v r,

started at ``u0 = v0 = alpha`` (a scalar or one value per coordinate, > 0). These simulators work
on the original parameters (u, v) themselves, with no use of the reduced (mirror/dual) dynamics of
:mod:`linsolve.exact`: they are the independent reference for :func:`linsolve.exact.diagonal_flow`,
:func:`linsolve.exact.diagonal_implicit_bias` and :func:`linsolve.exact.saddle_to_saddle`.

References: Woodworth et al. (2020), "Kernel and rich regimes in overparametrized models",
arXiv:2002.09277; Pesme & Flammarion (2023), "Saddle-to-saddle dynamics in diagonal linear
networks", arXiv:2304.00488.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._validate import as_float, as_scalar, check_positive, float_dtype_of, is_concrete
from ._common import check_int, freeze_after_failure, status_code
from ._flow import _check_tolerances, check_solver

__all__ = ["DiagonalTrajectory", "diagonal_gradient_flow", "diagonal_gradient_descent"]


class DiagonalTrajectory(eqx.Module):
    """A simulated run of a diagonal linear network; every field but the scalars has time first.

    **Fields:**

    - `ts`: (T,) record times (gradient descent: step counts).
    - `u`, `v`: (T, d) the parameters; `beta`: (T, d) ``u*u - v*v``.
    - `loss`: (T,) ``1/(2n) |X beta - y|^2``; ``inf`` from the record where the run diverged on.
    - `status`: () int32 outcome code (``CONVERGED``, ``DIVERGED``, ``STEP_LIMIT``), as in
      :class:`~linsolve.simulate.Trajectory`; `diverged` () bool; `diverged_at` () time of the first
      bad record (``inf`` if none).
    - `stats`: dict of solver statistics.
    """

    ts: Float[Array, " T"]
    u: Float[Array, "T d"]
    v: Float[Array, "T d"]
    beta: Float[Array, "T d"]
    loss: Float[Array, " T"]
    status: Int[Array, ""]
    diverged: Bool[Array, ""]
    diverged_at: Float[Array, ""]
    stats: dict


def check_regression(X, y, alpha, *, allow_limits: bool = False):
    """Validate ``(X, y, alpha)``: ``X`` (n, d), ``y`` (n,), ``alpha`` scalar or (d,).

    Promotes all three to their widest float dtype. ``alpha`` must be > 0 and finite, or, with
    `allow_limits`, all 0 or all ``inf`` (the limits ``alpha -> 0`` and ``alpha -> inf``).
    Returns ``(X, y, alpha, dtype)`` with ``alpha`` broadcast to (d,).
    """
    dtype = float_dtype_of(X, y, alpha)
    X = as_float(X, "X", dtype, ndim=2)
    y = as_float(y, "y", dtype, ndim=1)
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"`X` must have at least one row and one column; got shape {(n, d)}.")
    if y.shape != (n,):
        raise ValueError(f"`y` must have shape (n,)=({n},) to match `X` {(n, d)}; got {y.shape}.")
    alpha = jnp.asarray(alpha) if allow_limits else alpha
    if allow_limits and is_concrete(alpha) and bool(np.all(np.isinf(np.asarray(alpha)))):
        alpha = jnp.full((d,), jnp.inf, dtype)
    else:
        alpha = as_float(alpha, "alpha", dtype)
    if alpha.ndim > 1 or (alpha.ndim == 1 and alpha.shape != (d,)):
        raise ValueError(
            f"`alpha` must be a scalar or have one entry per coordinate (d={d},); "
            f"got shape {tuple(alpha.shape)}."
        )
    if allow_limits and is_concrete(alpha):
        a = np.asarray(alpha)
        if np.any(a < 0) or np.isnan(a).any():
            raise ValueError(f"`alpha` must be >= 0 (0 and inf are limits); got {a.tolist()}.")
        if (np.any(a == 0) or np.any(np.isinf(a))) and not (np.all(a == 0) or np.all(np.isinf(a))):
            raise ValueError(
                "`alpha` must be all positive and finite, all 0 or all inf (the limits cannot be "
                f"mixed with finite scales); got {a.tolist()}."
            )
    else:
        check_positive("alpha", alpha)
    return X, y, jnp.broadcast_to(alpha, (d,)), dtype


def _loss(X, y, beta):
    res = X @ beta - y
    return 0.5 * jnp.dot(res, res) / X.shape[0]


def _vector_field(t, state, args):
    X, y = args
    u, v = state
    r = X.T @ (X @ (u * u - v * v) - y) / X.shape[0]
    return (-2 * u * r, 2 * v * r)


def _all_finite(u, v):
    return jnp.all(jnp.isfinite(u)) & jnp.all(jnp.isfinite(v))


@eqx.filter_jit
def _flow(X, y, alpha, ts, rtol, atol, max_steps, solver):
    dtype = ts.dtype
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        solver,
        t0=jnp.zeros((), dtype),
        t1=jnp.maximum(ts[-1], jnp.finfo(dtype).tiny),
        dt0=None,
        y0=(alpha, alpha),
        args=(X, y),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4),
        max_steps=max_steps,
        throw=False,
    )
    u, v = sol.ys
    beta = u * u - v * v
    losses = jax.vmap(lambda b: _loss(X, y, b))(beta)
    reached = jnp.isfinite(sol.ts)  # saves past a step limit or a solver failure hold inf
    finite = jax.vmap(_all_finite)(u, v) & jnp.isfinite(losses)
    (u, v, beta), losses, _, _ = freeze_after_failure(ts, (u, v, beta), losses, reached & finite)
    blew_up = jnp.any(reached & ~finite)
    step_limit = sol.result == diffrax.RESULTS.max_steps_reached
    failed = ~(step_limit | (sol.result == diffrax.RESULTS.successful))
    diverged = blew_up | failed
    first_bad = jnp.argmax(~(reached & finite))
    diverged_at = jnp.where(diverged, ts[first_bad], jnp.inf)
    stats = {
        "num_steps": sol.stats["num_steps"],
        "num_rejected_steps": sol.stats["num_rejected_steps"],
    }
    return DiagonalTrajectory(
        ts=ts, u=u, v=v, beta=beta, loss=losses, status=status_code(diverged, step_limit),
        diverged=diverged, diverged_at=diverged_at.astype(dtype), stats=stats,
    )


def _check_times(ts, dtype):
    ts = as_float(ts, "ts", dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"`ts` must be a non-empty 1-D array of times; got shape {ts.shape}.")
    if is_concrete(ts):
        host = np.asarray(ts)
        if bool(np.any(host < 0)) or bool(np.any(np.diff(host) < 0)):
            bad = int(np.argmax((host < 0) | np.r_[False, np.diff(host) < 0]))
            raise ValueError(
                f"`ts` must be non-negative and non-decreasing; got ts[{bad}] = {host[bad]!r}"
                + (f" after {host[bad - 1]!r}." if bad else ".")
            )
    return ts


def diagonal_gradient_flow(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    ts: Float[ArrayLike, " T"],
    *,
    alpha,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 200_000,
    solver=None,
) -> DiagonalTrajectory:
    r"""Gradient flow of a diagonal linear network on its parameters (u, v), by diffrax.

        du/dt = -2 u r,   dv/dt = 2 v r,   r = X^T (X (u*u - v*v) - y) / n,   u(0) = v(0) = alpha,

    the gradient flow of ``L = 1/(2n) |X beta - y|^2``, ``beta = u*u - v*v``. Adaptive Runge-Kutta
    with PID control: ``Dopri8`` in float64, ``Tsit5`` below (``simulate.default_solver``), with
    ``simulate.default_tolerances`` (float64: ``rtol = 1e-10``, ``atol = 1e-12``) unless given.

    **Arguments:**

    - `X`: (n, d) design; `y`: (n,) targets (any n, d).
    - `ts`: (T,) finite, non-negative, non-decreasing save times.
    - `alpha`: the initial scale, > 0: a scalar or (d,) (one per coordinate). Traced, so
      ``jax.vmap`` over it compiles once.
    - `rtol`, `atol`, `max_steps`, `solver`: as in :func:`linsolve.simulate.gradient_flow` (an
      implicit solver such as ``diffrax.Kvaerno5()`` is cheaper for very long horizons).

    **Returns:** a :class:`DiagonalTrajectory`. ``STEP_LIMIT`` when `max_steps` ran out (saves past
    that time have loss ``inf``), ``DIVERGED`` on non-finite values or a solver failure.

    References: Woodworth et al. (2020), arXiv:2002.09277; Pesme & Flammarion (2023),
    arXiv:2304.00488.
    """
    X, y, alpha, dtype = check_regression(X, y, alpha)
    ts = _check_times(ts, dtype)
    rtol, atol = _check_tolerances(rtol, atol, dtype)
    max_steps = check_int("max_steps", max_steps, 1)
    solver = check_solver(solver, dtype)
    return _flow(X, y, alpha, ts, rtol, atol, max_steps, solver)


@eqx.filter_jit
def _descend(X, y, alpha, lr, factor, n_records, record_every):
    n = X.shape[0]
    loss0 = _loss(X, y, jnp.zeros_like(alpha))
    threshold = factor * (loss0 + 1)

    def step(carry, _):
        u, v, diverged, div_step, k = carry
        res = X @ (u * u - v * v) - y
        value = 0.5 * jnp.dot(res, res) / n
        r = X.T @ res / n
        new_u, new_v = u - lr * 2 * u * r, v + lr * 2 * v * r
        bad = ~jnp.isfinite(value) | (value > threshold) | ~_all_finite(new_u, new_v)
        now = diverged | bad
        u, v = jnp.where(now, u, new_u), jnp.where(now, v, new_v)
        div_step = jnp.where(bad & ~diverged, k, div_step)
        return (u, v, now, div_step, k + 1), None

    def record(carry):
        u, v, diverged = carry[0], carry[1], carry[2]
        beta = u * u - v * v
        return u, v, beta, jnp.where(diverged, jnp.inf, _loss(X, y, beta))

    def chunk(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=record_every)
        return carry, record(carry)

    carry0 = (alpha, alpha, jnp.zeros((), bool), jnp.full((), -1), jnp.zeros((), int))
    carry, recs = jax.lax.scan(chunk, carry0, None, length=n_records)
    u, v, beta, losses = (jnp.concatenate([a[None], b]) for a, b in zip(record(carry0), recs))
    dtype = alpha.dtype
    diverged, div_step = carry[2], carry[3]
    return DiagonalTrajectory(
        ts=(jnp.arange(n_records + 1) * record_every).astype(dtype), u=u, v=v, beta=beta,
        loss=losses, status=status_code(diverged), diverged=diverged,
        diverged_at=jnp.where(diverged, div_step.astype(dtype), jnp.inf),
        stats={"steps": carry[4], "diverged_step": div_step},
    )


def diagonal_gradient_descent(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    *,
    alpha,
    lr,
    steps: int,
    record_every: int = 1,
    divergence_factor=1e8,
) -> DiagonalTrajectory:
    r"""Gradient descent of a diagonal linear network on its parameters (u, v), under ``lax.scan``.

        u <- u - 2 lr u r,   v <- v + 2 lr v r,   r = X^T (X (u*u - v*v) - y) / n,   u0 = v0 = alpha

    the forward-Euler discretisation of :func:`diagonal_gradient_flow` with unit step (``t = k``
    after ``k`` steps, rate `lr`). Unlike the flow, ``u v`` is not conserved:
    ``u' v' = u v (1 - 4 lr^2 r^2)`` (Even et al. 2023).

    **Arguments:**

    - `X`: (n, d); `y`: (n,).
    - `alpha`: initial scale, > 0, scalar or (d,); `lr`: learning rate > 0 (scalar). Both traced:
      ``jax.vmap`` over either compiles once.
    - `steps`, `record_every`: number of steps (a multiple of `record_every`) and record spacing;
      records at ``0, record_every, ..., steps``.
    - `divergence_factor`: the run is declared diverged when the loss is non-finite or exceeds
      ``divergence_factor * (L(0) + 1)`` (as :func:`linsolve.simulate.gradient_descent`); the
      parameters then freeze at the last good step, the recorded loss is ``inf`` and
      ``diverged_at`` is that step.

    **Returns:** a :class:`DiagonalTrajectory` (``stats``: ``steps``, ``diverged_step``).

    References: Even, Pesme, Gunasekar & Flammarion (2023), "(S)GD over diagonal linear networks:
    implicit regularisation, large stepsizes and edge of stability", arXiv:2302.08982.
    """
    X, y, alpha, dtype = check_regression(X, y, alpha)
    lr = as_scalar("lr", lr, dtype)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    if steps % record_every:
        raise ValueError(
            f"`steps` must be a multiple of `record_every`; got steps={steps}, "
            f"record_every={record_every}."
        )
    factor = as_scalar("divergence_factor", divergence_factor, dtype)
    return _descend(X, y, alpha, lr, factor, steps // record_every, record_every)
