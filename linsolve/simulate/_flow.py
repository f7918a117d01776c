"""High-accuracy gradient flow ``dW_l/dt = -eta_l dL/dW_l`` by adaptive Runge-Kutta (diffrax)."""

from __future__ import annotations

import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from .._validate import as_float, is_concrete
from ..models import Network, gradients, layer_rates, loss
from ..tasks import Task
from ._common import (
    Trajectory,
    check_int,
    check_weight_decay,
    freeze_after_failure,
    prepare,
    status_code,
    with_weight_decay,
)
from ._steady import steady_state_test

__all__ = ["gradient_flow", "default_tolerances", "default_solver"]

# The tightest relative tolerance a dtype can honour, in units of its machine epsilon: below it
# the embedded error estimate is rounding noise and the step-size controller grinds.
_RTOL_FLOOR_EPS = 4.0


def default_tolerances(dtype) -> tuple[float, float]:
    """``(rtol, atol)`` of :func:`gradient_flow` for a floating dtype.

    ``rtol = max(1e-10, 10 eps)`` and ``atol = rtol / 100``: float64 gets ``(1e-10, 1e-12)``,
    float32 ``(1.2e-6, 1.2e-8)``.
    """
    eps = float(jnp.finfo(dtype).eps)
    rtol = max(1e-10, 10 * eps)
    return rtol, rtol / 100


def default_solver(dtype):
    """The diffrax solver :func:`gradient_flow` uses by default for a floating dtype.

    ``Dopri8`` (8th order) in float64, where its tight tolerance favours high order; ``Tsit5``
    (5th order) below float64, where at ``rtol ~ 1e-6`` the steps are set by stability rather
    than accuracy and the cheaper step wins (measured on the built-in lambda and one-hidden-layer
    studies: about as many steps, half the vector-field evaluations).
    """
    return diffrax.Dopri8() if jnp.finfo(dtype).bits >= 64 else diffrax.Tsit5()


def check_solver(solver, dtype):
    """`solver`, or :func:`default_solver` for None; anything but an adaptive diffrax solver raises."""
    if solver is None:
        return default_solver(dtype)
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(
            f"`solver` must be an adaptive diffrax solver (e.g. diffrax.Dopri8()); got {solver!r}."
        )
    return solver


def _check_tolerances(rtol, atol, dtype) -> tuple[float, float]:
    default_rtol, default_atol = default_tolerances(dtype)
    out = []
    for name, value, default in (("rtol", rtol, default_rtol), ("atol", atol, default_atol)):
        if value is None:
            out.append(default)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
            raise ValueError(f"`{name}` must be a positive number or None; got {value!r}.") from None
        if isinstance(value, bool) or not np.isfinite(number) or number <= 0:
            raise ValueError(f"`{name}` must be a positive number or None; got {value!r}.")
        out.append(number)
    rtol, atol = out
    floor = _RTOL_FLOOR_EPS * float(jnp.finfo(dtype).eps)
    if rtol < floor:
        warnings.warn(
            f"`rtol`={rtol:g} is tighter than {jnp.dtype(dtype).name} can deliver "
            f"({_RTOL_FLOOR_EPS:g} eps = {floor:.2g}); using rtol={floor:.2g}. Pass rtol=None for the "
            f"dtype's default, or use float64 for tighter tolerances.",
            stacklevel=3,
        )
        rtol = floor
    return rtol, atol


def _check_steady_state(steady_state, rtol: float, dtype) -> float | None:
    """The relative vector-field tolerance of the steady-state test, or None for no test."""
    if isinstance(steady_state, bool | np.bool_):
        return max(rtol, 32 * float(jnp.finfo(dtype).eps)) if steady_state else None
    if isinstance(steady_state, int | float | np.number) and np.isfinite(steady_state) and steady_state > 0:
        return float(steady_state)
    raise ValueError(
        f"`steady_state` must be True, False or a positive relative tolerance; got {steady_state!r}."
    )


def _vector_field(t, params, args):
    task, lrs, kappa, weight_decay = args
    grads = with_weight_decay(gradients(params, task, kappa), params, weight_decay)
    rates = layer_rates(params, lrs)
    return jax.tree_util.tree_map(lambda g, r: -r * g, grads, rates)


def _all_finite(p):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(p)]))


# In float64, deep linear nets up to this many parameters finish a long horizon with an implicit
# solver (the Newton steps of ``diffrax.Kvaerno5`` form the dense Jacobian, O(p^3) per step). In
# float32 the steady-state test itself fires soon after convergence (its tolerance is 32 eps) and
# an implicit solver at rtol ~ 1e-6 takes more steps than Tsit5, so there is no tail.
_IMPLICIT_TAIL_MAX_PARAMS = 4096
# ... and only for horizons long against the fastest relaxation, ``T eta kappa^2 sigma_1`` above
# this: shorter ones cost the explicit solver at most a few thousand steps after convergence, less
# than compiling the implicit one (a few seconds).
_IMPLICIT_TAIL_MIN_HORIZON = 2000.0


def _concrete_max(x, default: float) -> float:
    """The largest entry of `x` on the host, or `default` when `x` is traced."""
    try:
        return float(np.max(np.asarray(x)))
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return default


def _long_horizon(ts, task, lrs, kappa) -> bool:
    """Whether ``T * max(eta) * kappa^2 * sigma_1`` exceeds the tail's horizon.

    Traced `ts` or task count as long; traced rates or scale (a vmap over them) count as 1.
    """
    try:
        T = float(np.asarray(ts)[-1])
        sigma = float(np.linalg.norm(np.asarray(task.Syx), 2)) / max(
            float(np.sqrt(np.linalg.norm(np.asarray(task.Sxx), 2))), 1e-300
        )
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, TypeError):
        return True
    rate = _concrete_max(lrs, 1.0) * _concrete_max(kappa, 1.0) ** 2
    return T * rate * sigma > _IMPLICIT_TAIL_MIN_HORIZON


def _n_params(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


def _diffeqsolve(solver, t0, t1, y0, saves, args, controller, max_steps, event):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        solver,
        t0=t0,
        t1=t1,
        dt0=None,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=saves, t1=True),
        stepsize_controller=controller,
        max_steps=max_steps,
        event=event,
        throw=False,
    )


def _states_at_saves(sol, n_saves: int):
    """``(states at the saves, time the solve ended, state then)``; saves never reached hold the end."""
    # `sol.ts` holds the save times reached, then the time the solve ended (its state is the last
    # entry of `sol.ys` that is filled in), then ``inf`` for saves never reached.
    n_reached = jnp.sum(jnp.isfinite(sol.ts)) - 1
    reached = jnp.arange(n_saves) < n_reached
    states = jax.tree_util.tree_map(
        lambda y: jnp.where(reached.reshape((-1,) + (1,) * (y.ndim - 1)), y[:-1], y[n_reached]),
        sol.ys,
    )
    final = jax.tree_util.tree_map(lambda y: y[n_reached], sol.ys)
    return states, sol.ts[n_reached], final


def _select(mask, a, b):
    return jax.tree_util.tree_map(
        lambda x, y: jnp.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x, y), a, b
    )


@eqx.filter_jit
def _solve(
    params0, task, ts, lrs, kappa, weight_decay, rtol, atol, max_steps, solver, observe, steady_state, long
):
    dtype = ts.dtype
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4)
    args = (task, lrs, kappa, weight_decay)
    t0 = jnp.zeros((), dtype)
    t1 = jnp.maximum(ts[-1], jnp.finfo(dtype).tiny)
    linear = steady_state is not None and not isinstance(params0, Network)
    tail = (
        linear and long and jnp.finfo(dtype).bits >= 64 and _n_params(params0) <= _IMPLICIT_TAIL_MAX_PARAMS
    )
    event = None
    if linear:
        rates = layer_rates(params0, lrs)
        stop = diffrax.Event(steady_state_test(params0, task, kappa, rates, steady_state, atol))
        # With an implicit tail the explicit solve hands over once the flow is near its minimum,
        # where the explicit steps are bounded by stability, not accuracy; without one it stops.
        switch_tol = max(steady_state, float(np.sqrt(rtol)))
        event = (
            diffrax.Event(steady_state_test(params0, task, kappa, rates, switch_tol, atol)) if tail else stop
        )
    sol = _diffeqsolve(solver, t0, t1, params0, ts, args, controller, max_steps, event)
    params, t_final, final = _states_at_saves(sol, ts.shape[0])
    results = [sol.result]
    num_steps, num_rejected = sol.stats["num_steps"], sol.stats["num_rejected_steps"]
    stopped = sol.result == diffrax.RESULTS.event_occurred
    if tail:
        switched = stopped
        t_switch = jnp.where(switched, t_final, t1)
        sol2 = _diffeqsolve(
            diffrax.Kvaerno5(), t_switch, t1, final, jnp.clip(ts, t_switch, t1), args, controller,
            max_steps, stop,
        )
        params2, t_final2, _ = _states_at_saves(sol2, ts.shape[0])
        params = _select(ts <= t_switch, params, params2)
        t_final = jnp.where(switched, t_final2, t_final)
        stopped = switched & (sol2.result == diffrax.RESULTS.event_occurred)
        results.append(diffrax.RESULTS.where(switched, sol2.result, diffrax.RESULTS.successful))
        num_steps = num_steps + sol2.stats["num_steps"]
        num_rejected = num_rejected + sol2.stats["num_rejected_steps"]
    losses = jax.vmap(lambda p: loss(p, task, kappa))(params)
    ok = jax.vmap(_all_finite)(params) & jnp.isfinite(losses)
    params, losses, blew_up, diverged_at = freeze_after_failure(ts, params, losses, ok)
    step_limit, solver_failed = jnp.zeros((), bool), jnp.zeros((), bool)
    for result in results:
        limit = result == diffrax.RESULTS.max_steps_reached
        normal = (result == diffrax.RESULTS.successful) | (result == diffrax.RESULTS.event_occurred)
        step_limit = step_limit | limit
        solver_failed = solver_failed | ~(normal | limit)
    diverged = blew_up | solver_failed
    diverged_at = jnp.where(blew_up, diverged_at, jnp.where(solver_failed, t_final, jnp.inf))
    observables = {} if observe is None else jax.vmap(observe)(params)
    stats = {
        "num_steps": num_steps,
        "num_rejected_steps": num_rejected,
        "t_final": t_final.astype(dtype),
        "steady_state": stopped,
    }
    return Trajectory(
        ts=ts,
        params=params,
        loss=losses,
        status=status_code(diverged, step_limit),
        diverged=diverged,
        diverged_at=diverged_at.astype(dtype),
        observables=observables,
        output_scale=kappa,
        stats=stats,
    )


def gradient_flow(
    params0,
    task: Task,
    ts: Float[ArrayLike, " T"],
    *,
    lrs=1.0,
    output_scale=1.0,
    weight_decay=0.0,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 200_000,
    solver=None,
    observe=None,
    steady_state: bool | float = True,
) -> Trajectory:
    """Integrate gradient flow ``dW_l/dt = -eta_l (dL/dW_l + gamma W_l)`` from ``params0`` at ``t = 0``.

    The vector field is the exact gradient of the covariance-form loss
    ``L = 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)``, ``P = kappa W_L...W_1`` (deep linear nets of
    any depth), or of the data loss for a :class:`~linsolve.models.Network` (ShallowNet, MLP), plus
    the weight-decay penalty ``(gamma/2) sum_l ||W_l||_F^2`` (every floating parameter of a
    Network).
    Integration is adaptive Runge-Kutta with PID step control: 8th-order Dormand-Prince
    (``diffrax.Dopri8``) in float64, Tsitouras' 5th-order method (``diffrax.Tsit5``) in float32
    (:func:`default_solver`).

    Accuracy by dtype, with the default tolerances and solver, measured against the closed forms
    (maximum error over all saves, relative to the largest value):

    - float64 (``Dopri8``, ``rtol=1e-10, atol=1e-12``): about 1e-9. Saxe modes of depth 2 and 3
      from ``u0 = 1e-3`` and ``1e-6`` (``exact.saxe_mode``): 1.2e-9; the built-in lambda study
      (54 lambda-balanced inits, ``exact.lambda_balanced``): 1e-9. The conserved quantities
      ``eta_l W_{l+1}^T W_{l+1} - eta_{l+1} W_l W_l^T`` drift by < 1e-9.
    - float32 (``Tsit5``, ``rtol=1.2e-6, atol=1.2e-8``): about 1e-5. Saxe modes as above: 1.6e-5;
      lambda study: 6e-6; in fewer steps than float64.

    **Arguments:**

    - `params0`: tuple ``(W1, ..., WL)``, ``W_l`` (n_l, n_{l-1}), or a Network (ShallowNet, MLP).
    - `task`: the :class:`~linsolve.Task`. Parameters and task of different floating dtypes are
      promoted to the wider one (as NumPy would); `ts`, `lrs` and `output_scale` follow it.
    - `ts`: (T,) finite, non-negative, non-decreasing save times.
    - `lrs`: layer-wise rates ``eta_l`` (scalar or (L,)), > 0; traced, so sweeping them does not
      recompile.
    - `output_scale`: kappa > 0.
    - `weight_decay`: gamma >= 0 (default 0), traced. ``Trajectory.loss`` stays the task loss
      ``L`` (without the penalty). With ``gamma != 0`` (or traced) there is no steady-state stop:
      the flow runs to ``ts[-1]``.
    - `rtol`, `atol`: error control of the adaptive steps; None (default) picks them from the dtype
      (:func:`default_tolerances`: ``rtol = max(1e-10, 10 eps)``, ``atol = rtol / 100``). An `rtol`
      below ``4 eps`` of the dtype (float32: 4.8e-7) cannot be met: it is raised to ``4 eps`` with
      a ``UserWarning``.
    - `max_steps`: step budget (accepted and rejected steps); when it runs out the status is
      ``STEP_LIMIT``.
    - `solver`: a diffrax adaptive solver (default :func:`default_solver` of the dtype).
    - `observe`: optional ``params -> dict of arrays``, recorded at every save time.
    - `steady_state`: stop integrating once the flow has reached its minimum (deep linear nets; a
      Network always runs to ``ts[-1]``); later saves then hold the final state, so a long horizon
      (``t = 1e6``) costs no steps after convergence. The test needs both a vector field
      ``|f|_rms <= tol |W|_rms + atol`` and a loss closer to the rank-limited minimum than any saddle
      (so it never fires on the plateau of a small initialisation). ``True``: ``tol = max(rtol,
      32 eps)``, which keeps the accuracy above; a float sets ``tol`` (looser: cheaper, the state
      may still move by about ``tol |W| / rate`` after the stop); ``False`` integrates to ``ts[-1]``.
      A direction the task does not reward (e.g. a mode of zero singular value started at
      ``u0 != 0``) decays only algebraically, ``u0 / (1 + 2 u0 t)`` at depth 2, and keeps the
      test from firing for a long time while explicit steps are capped by stability (about
      ``1 / (rate * sigma_max)``). In float64, deep linear nets of at most 4096 parameters on a
      long horizon (``ts[-1] * max(lrs) * kappa^2 * sigma_1 > 2000``; traced rates count as 1, a traced
      ``ts`` as long) therefore
      hand over to the implicit ``diffrax.Kvaerno5`` once ``|f|_rms <= sqrt(rtol) |W|_rms`` past
      every saddle: its steps grow with ``t``, so the README task to ``t = 1e6``
      takes 314 steps (0.1 s) and matches ``saxe_mode`` to 1e-8 at every save (explicit only:
      200,000 steps ran out at ``t = 1.6e5``). A looser float (e.g. ``1e-6``) freezes such a drift
      instead; float32 needs no tail (its test, at 32 eps, fires soon after convergence).

    **Returns:** a :class:`Trajectory` whose ``status`` is

    - ``CONVERGED``: the solve reached ``ts[-1]`` or stopped at a steady state
      (``stats["steady_state"]``); saves after the stop hold the final state.
    - ``STEP_LIMIT``: `max_steps` ran out at time ``stats["t_final"] < ts[-1]``. Saves up to that
      time are exact; later saves hold the last state reached (finite, with its finite loss). Not
      ``diverged``.
    - ``DIVERGED``: non-finite values or a solver failure; parameters are frozen at the last good
      save, the loss is ``inf`` from ``diverged_at`` on.

    ``stats`` holds ``num_steps`` (both solvers), ``num_rejected_steps``, ``t_final`` and
    ``steady_state``; `max_steps` bounds each solver. Works
    under ``jax.vmap`` over ``params0``, ``lrs`` and ``output_scale`` with a single compilation.
    """
    params0, task, lrs, kappa, dtype = prepare(params0, task, lrs, output_scale)
    ts = as_float(ts, "ts", dtype)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"`ts` must be a non-empty 1-D array of times; got shape {ts.shape}.")
    if not isinstance(ts, jax.core.Tracer):
        host = np.asarray(ts)
        if bool(np.any(host < 0)) or bool(np.any(np.diff(host) < 0)):
            raise ValueError(f"`ts` must be non-negative and non-decreasing; got {ts.tolist()}.")
    rtol, atol = _check_tolerances(rtol, atol, dtype)
    steady_state = _check_steady_state(steady_state, rtol, dtype)
    max_steps = check_int("max_steps", max_steps, 1)
    solver = check_solver(solver, dtype)
    if observe is not None and not callable(observe):
        raise ValueError(f"`observe` must be a callable params -> dict or None; got {observe!r}.")
    weight_decay = check_weight_decay(weight_decay, dtype)
    if not is_concrete(weight_decay) or float(weight_decay) != 0:
        steady_state = None  # the saddle certificate of the test assumes no decay
    long = steady_state is not None and _long_horizon(ts, task, lrs, kappa)
    return _solve(
        params0, task, ts, lrs, kappa, weight_decay, rtol, atol, max_steps, solver, observe,
        steady_state, long,
    )
