r"""Teacher-student ODEs of two-layer (committee) networks under online SGD.

Student ``phi(x) = sum_{k<K} v_k g(w_k.x / sqrt N)``, teacher ``phi*(x) = sum_{m<M} v*_m
g(w*_m.x / sqrt N)``, label ``y = phi*(x) + sigma z``, ``x ~ N(0, I_N)``. Online SGD on one fresh
sample a step,

    w_k <- w_k - (lr / sqrt N) v_k g'(lambda_k) Delta x,    v_k <- v_k - (lr / N) g(lambda_k) Delta,

``Delta = phi(x) - y``, ``lambda_k = w_k.x / sqrt N``, concentrates as ``N -> inf`` on the ODEs of
the order parameters ``Q = W W^T / N``, ``R = W W*^T / N``, ``v`` in ``alpha = steps / N``
(``T = W* W*^T / N`` and ``v*`` stay fixed). With the fields ``p < K + M`` (students, then
teachers), ``u = (v, -v*)`` (so ``Delta = sum_p u_p g(p) - sigma z``) and the averages of
:mod:`linsolve.exact._committee_integrals`,

    dR_in/da = lr v_i [sum_m v*_m I3(i,n,m) - sum_j v_j I3(i,n,j)]
    dQ_ik/da = lr v_i [sum_m v*_m I3(i,k,m) - sum_j v_j I3(i,k,j)] + (i <-> k)
               + lr^2 v_i v_k [sum_{pq} u_p u_q I4(i,k,p,q) + sigma^2 J2(i,k)]
    dv_i/da  = lr [sum_n v*_n I2(i,n) - sum_j v_j I2(i,j)]       (0 with a frozen readout)

and the generalisation error (without the label noise) is

    eps_g = 1/2 E[(phi - phi*)^2] = 1/2 sum_{pq} u_p u_q I2(p, q).

The ``lr^2`` terms (the variance of the single-sample gradient) set the asymptotic error floor
with noise and the largest learning rate that still learns.

References: Saad & Solla (1995), Phys. Rev. E 52:4225; Biehl & Schwarze (1995), J. Phys. A
28:643; Goldt, Advani, Saxe, Krzakala & Zdeborova (2019), arXiv 1906.08632.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._validate import as_float, as_scalar, float_dtype_of, is_concrete
from ..simulate._common import check_int, status_code
from ..simulate._flow import _check_tolerances, default_solver
from ._committee_integrals import (
    ACTIVATIONS,
    ODE_ACTIVATIONS,
    field_covariance,
    generalisation_error,
    i2_matrix,
    i3_tensor,
    i4_quadratic_form,
    j2_matrix,
)

__all__ = ["CommitteeODE", "committee_error", "committee_ode"]


class CommitteeODE(NamedTuple):
    """The solution of the committee-machine ODEs at the save times.

    **Fields:**

    - `t`: (T,) save times ``alpha = steps / N``.
    - `Q`: (T, K, K), `R`: (T, K, M), `v`: (T, K) order parameters at the saves (frozen at the
      last good save after a divergence).
    - `eps_g`: (T,) generalisation error ``1/2 E[(phi - phi*)^2]``; ``inf`` from the first save
      after a divergence.
    - `status`: () int32 :data:`~linsolve.simulate.CONVERGED` (reached ``t[-1]``),
      :data:`~linsolve.simulate.DIVERGED` or :data:`~linsolve.simulate.STEP_LIMIT`.
    - `diverged`: () bool, ``status == DIVERGED``.
    - `diverged_at`: () the time the state blew up (``inf`` when it did not).
    - `num_steps`: () int number of solver steps.
    """

    t: Float[Array, " T"]
    Q: Float[Array, "T K K"]
    R: Float[Array, "T K M"]
    v: Float[Array, "T K"]
    eps_g: Float[Array, " T"]
    status: Int[Array, ""]
    diverged: Bool[Array, ""]
    diverged_at: Float[Array, ""]
    num_steps: Int[Array, ""]


def _check_activation(activation, allowed) -> str:
    if activation not in allowed:
        extra = ""
        if activation == "relu":
            extra = (
                " (the ReLU ODE needs I4 = E[g'(a) g'(b) g(c) g(d)], which is not elementary; "
                "committee_error supports ReLU)"
            )
        raise ValueError(f"`activation` must be one of {allowed}{extra}; got {activation!r}.")
    return activation


def _check_symmetric(name: str, S) -> None:
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise ValueError(f"`{name}` must be a square matrix; got shape {tuple(S.shape)}.")
    if is_concrete(S):
        s = np.asarray(S)
        scale = max(1.0, float(np.max(np.abs(s)))) if s.size else 1.0
        tol = 1e3 * float(np.finfo(s.dtype).eps) * scale
        if not np.allclose(s, np.swapaxes(s, -1, -2), rtol=0, atol=tol):
            raise ValueError(f"`{name}` must be symmetric (within {tol:.2g}); got a non-symmetric matrix.")
        if np.any(np.diagonal(s, axis1=-2, axis2=-1) < -tol):
            raise ValueError(f"`{name}` must have a non-negative diagonal (a covariance); got {s}.")


def _prepare_order_parameters(Q, R, T, v, v_star, names=("Q", "R", "T", "v", "v_star")):
    """Validate shapes (Q (K,K), R (K,M), T (M,M), v (K,), v* (M,)); promote to one float dtype."""
    dtype = float_dtype_of(Q, R, T, v, v_star)
    nq, nr, nt, nv, nvs = names
    Q = as_float(Q, nq, dtype, ndim=2)
    R = as_float(R, nr, dtype, ndim=2)
    T = as_float(T, nt, dtype, ndim=2)
    v = as_float(v, nv, dtype, ndim=1)
    v_star = as_float(v_star, nvs, dtype, ndim=1)
    _check_symmetric(nq, Q)
    _check_symmetric(nt, T)
    K, M = Q.shape[0], T.shape[0]
    if K == 0 or M == 0:
        raise ValueError(f"`{nq}` and `{nt}` must be non-empty; got shapes {Q.shape} and {T.shape}.")
    if R.shape != (K, M):
        raise ValueError(f"`{nr}` must have shape (K, M) = ({K}, {M}) from `{nq}` and `{nt}`; got {R.shape}.")
    if v.shape != (K,):
        raise ValueError(f"`{nv}` must have shape (K,) = ({K},) like `{nq}`; got {v.shape}.")
    if v_star.shape != (M,):
        raise ValueError(f"`{nvs}` must have shape (M,) = ({M},) like `{nt}`; got {v_star.shape}.")
    return Q, R, T, v, v_star, dtype


def committee_error(
    Q: Float[ArrayLike, "K K"],
    R: Float[ArrayLike, "K M"],
    T: Float[ArrayLike, "M M"],
    v: Float[ArrayLike, " K"],
    v_star: Float[ArrayLike, " M"],
    *,
    activation: str = "erf",
) -> Float[Array, ""]:
    r"""Generalisation error of a committee student against a committee teacher.

    ``eps_g = 1/2 E[(phi(x) - phi*(x))^2] = 1/2 sum_{ik} v_i v_k I2(i,k) + 1/2 sum_{nm} v*_n v*_m
    I2(n,m) - sum_{in} v_i v*_n I2(i,n)`` with ``I2(a, b) = E[g(a) g(b)]`` over the Gaussian fields
    of covariance ``[[Q, R], [R^T, T]]`` (label noise excluded). ``erf``: ``I2 = (2/pi)
    arcsin(C12 / sqrt((1 + C11)(1 + C22)))``; ``linear``: ``I2 = C12``; ``relu``: ``I2 =
    sqrt(C11 C22) / (2 pi) (sin th + (pi - th) cos th)``, ``cos th = C12 / sqrt(C11 C22)``.

    **Arguments:**

    - `Q`: (K, K) student overlaps ``W W^T / N`` (symmetric).
    - `R`: (K, M) student-teacher overlaps ``W W*^T / N``.
    - `T`: (M, M) teacher overlaps ``W* W*^T / N`` (symmetric).
    - `v`: (K,) student readout; `v_star`: (M,) teacher readout.
    - `activation`: ``"erf"`` (``g(x) = erf(x / sqrt 2)``), ``"linear"`` or ``"relu"``.

    **Returns:** () the error, in the widest float dtype of the inputs. jit/vmap-able.

    References: Saad & Solla (1995), Phys. Rev. E 52:4225; Goldt et al. (2019), arXiv 1906.08632.
    """
    activation = _check_activation(activation, ACTIVATIONS)
    Q, R, T, v, v_star, _ = _prepare_order_parameters(Q, R, T, v, v_star)
    return generalisation_error(Q, R, T, v, v_star, activation)


def _vector_field(t, state, args):
    del t
    Q, R, v = state
    T, v_star, lr, noise, activation, train_readout = args
    K = Q.shape[0]
    omega = field_covariance(Q, R, T)
    u = jnp.concatenate([v, -v_star])
    # drift[i, b] = -lr v_i sum_c u_c I3(i, b, c) = lr v_i E[g'(lambda_i) b (phi* - phi)]
    drift = -lr * v[:, None] * jnp.einsum("ibc,c->ib", i3_tensor(omega, K, activation), u)
    dR = drift[:, K:]
    second = i4_quadratic_form(omega, v, v_star, activation)
    second = second + noise**2 * j2_matrix(omega, K, activation)
    dQ = drift[:, :K] + drift[:, :K].T + lr**2 * v[:, None] * v[None, :] * second
    dQ = 0.5 * (dQ + dQ.T)
    if train_readout:
        dv = -lr * i2_matrix(omega, activation)[:K] @ u
    else:
        dv = jnp.zeros_like(v)
    return dQ, dR, dv


def _size(state):
    """The largest of ``Q_ii`` and ``v_i^2``: what grows when the dynamics blow up."""
    Q, _, v = state
    return jnp.maximum(jnp.max(jnp.abs(jnp.diagonal(Q))), jnp.max(v**2))


@eqx.filter_jit
def _solve(t, state0, T, v_star, lr, noise, limit, rtol, atol, max_steps, solver, activation, train_readout):
    dtype = t.dtype
    args = (T, v_star, lr, noise, activation, train_readout)

    def blew_up(t, y, args, **kwargs):
        del t, args, kwargs
        size = _size(y)
        return ~jnp.isfinite(size) | (size > limit)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        solver,
        t0=jnp.zeros((), dtype),
        t1=jnp.maximum(t[-1], jnp.finfo(dtype).tiny),
        dt0=None,
        y0=state0,
        args=args,
        saveat=diffrax.SaveAt(ts=t, t1=True),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=0.3, icoeff=0.4),
        max_steps=max_steps,
        event=diffrax.Event(blew_up),
        throw=False,
    )
    n_saves = t.shape[0]
    # `sol.ts`: the saves reached, then the end of the solve, then inf for saves never reached.
    n_reached = jnp.sum(jnp.isfinite(sol.ts)) - 1
    reached = jnp.arange(n_saves) < n_reached
    t_end = sol.ts[n_reached]
    Q, R, v = (y[:-1] for y in sol.ys)
    eps = jax.vmap(lambda q, r, w: generalisation_error(q, r, T, w, v_star, activation))(Q, R, v)
    sizes = jax.vmap(_size)((Q, R, v))
    fine = jnp.isfinite(eps) & jnp.isfinite(sizes) & (sizes <= limit)
    good = jnp.cumprod((reached & fine).astype(jnp.int32)).astype(bool)
    last = jnp.maximum(jnp.sum(good) - 1, 0)

    def freeze(y):
        return jnp.where(good.reshape((-1,) + (1,) * (y.ndim - 1)), y, y[last])

    Q, R, v = freeze(Q), freeze(R), freeze(v)
    event = sol.result == diffrax.RESULTS.event_occurred
    step_limit = sol.result == diffrax.RESULTS.max_steps_reached
    failed = ~(event | step_limit | (sol.result == diffrax.RESULTS.successful))
    bad_save = jnp.any(reached & ~fine)
    diverged = event | failed | bad_save
    first_bad = t[jnp.argmin(good)]
    diverged_at = jnp.where(event | failed, t_end, jnp.where(bad_save, first_bad, jnp.inf))
    eps = jnp.where(good, eps, jnp.where(diverged, jnp.inf, eps[last]))
    return CommitteeODE(
        t=t,
        Q=Q,
        R=R,
        v=v,
        eps_g=eps,
        status=status_code(diverged, step_limit),
        diverged=diverged,
        diverged_at=diverged_at.astype(dtype),
        num_steps=sol.stats["num_steps"],
    )


def committee_ode(
    t: Float[ArrayLike, " T"],
    *,
    Q0: Float[ArrayLike, "K K"],
    R0: Float[ArrayLike, "K M"],
    T: Float[ArrayLike, "M M"],
    v0: Float[ArrayLike, " K"],
    v_star: Float[ArrayLike, " M"],
    lr,
    noise=0.0,
    train_readout: bool = True,
    activation: str = "erf",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 100_000,
    divergence_factor=1e6,
) -> CommitteeODE:
    r"""Integrate the online-SGD ODEs of a committee machine from ``(Q0, R0, v0)`` at ``alpha = 0``.

    Solves (module docstring)

        dR_in/da = lr v_i [sum_m v*_m I3(i,n,m) - sum_j v_j I3(i,n,j)]
        dQ_ik/da = lr v_i [sum_m v*_m I3(i,k,m) - sum_j v_j I3(i,k,j)] + (i <-> k)
                   + lr^2 v_i v_k [sum_{jl} v_j v_l I4(i,k,j,l) - 2 sum_{jn} v_j v*_n I4(i,k,j,n)
                                   + sum_{nm} v*_n v*_m I4(i,k,n,m) + sigma^2 J2(i,k)]
        dv_i/da  = lr [sum_n v*_n I2(i,n) - sum_j v_j I2(i,j)]     (0 if not `train_readout`)

    by adaptive Runge-Kutta with PID step control (``diffrax.Dopri8`` in float64, ``Tsit5``
    below; tolerances from the dtype as :func:`linsolve.simulate.default_tolerances`), saving at
    `t`. Above the largest stable learning rate the norms grow without bound; the run is declared
    ``DIVERGED`` once ``max_i max(Q_ii, v_i^2)`` exceeds ``divergence_factor * (1 + max_i
    max(Q0_ii, v0_i^2) + max_n T_nn)`` or turns non-finite (the solve stops there). With ``erf``
    and a frozen readout the growth is only algebraic (``g'`` saturates), so reaching the bound
    can take long; the linear activation blows up exponentially.

    **Arguments:**

    - `t`: (T,) finite, non-negative, non-decreasing save times in ``alpha = steps / N``.
    - `Q0`: (K, K) symmetric, `R0`: (K, M), `v0`: (K,) the initial order parameters (e.g.
      ``OnlineCommitteeRun.Q[0]`` of :func:`linsolve.simulate.online_sgd_committee`).
    - `T`: (M, M) symmetric teacher overlaps; `v_star`: (M,) teacher readout.
    - `lr`: learning rate > 0; `noise`: label-noise standard deviation ``sigma >= 0``.
    - `train_readout`: train the second layer (static); False freezes ``v = v0``.
    - `activation`: ``"erf"`` or ``"linear"`` (static). ``"relu"`` raises: its ``I4`` is not
      elementary.
    - `rtol`, `atol`: step control; None picks them from the dtype (float64: 1e-10, 1e-12).
    - `max_steps`: solver step budget (``STEP_LIMIT`` when it runs out).
    - `divergence_factor`: > 0, the blow-up bound above.

    **Returns:** :class:`CommitteeODE` (``t, Q, R, v, eps_g, status, diverged, diverged_at,
    num_steps``). jit/vmap-able over `lr`, `noise`, `Q0`, `R0`, `v0`, `T`, `v_star` with one
    compilation; bad arguments raise a ``ValueError`` naming them before any work.

    References: Saad & Solla (1995), Phys. Rev. E 52:4225; Biehl & Schwarze (1995), J. Phys. A
    28:643; Goldt, Advani, Saxe, Krzakala & Zdeborova (2019), arXiv 1906.08632.
    """
    activation = _check_activation(activation, ODE_ACTIVATIONS)
    if not isinstance(train_readout, bool | np.bool_):
        raise ValueError(f"`train_readout` must be True or False; got {train_readout!r}.")
    Q0, R0, T, v0, v_star, dtype = _prepare_order_parameters(
        Q0, R0, T, v0, v_star, names=("Q0", "R0", "T", "v0", "v_star")
    )
    dtype = jnp.result_type(dtype, float_dtype_of(t, lr, noise))
    Q0, R0, T, v0, v_star = (x.astype(dtype) for x in (Q0, R0, T, v0, v_star))
    t = as_float(t, "t", dtype)
    if t.ndim != 1 or t.shape[0] == 0:
        raise ValueError(f"`t` must be a non-empty 1-D array of times; got shape {tuple(t.shape)}.")
    if is_concrete(t):
        host = np.asarray(t)
        if bool(np.any(host < 0)) or bool(np.any(np.diff(host) < 0)):
            raise ValueError(f"`t` must be non-negative and non-decreasing; got {host.tolist()}.")
    lr = as_scalar("lr", lr, dtype)
    noise = as_scalar("noise", noise, dtype, strict=False)
    factor = as_scalar("divergence_factor", divergence_factor, dtype)
    rtol, atol = _check_tolerances(rtol, atol, dtype)
    max_steps = check_int("max_steps", max_steps, 1)
    scale = 1 + jnp.maximum(_size((Q0, R0, v0)), jnp.max(jnp.abs(jnp.diagonal(T))))
    return _solve(
        t, (Q0, R0, v0), T, v_star, lr, noise, factor * scale, rtol, atol, max_steps,
        default_solver(dtype), activation, bool(train_readout),
    )
