r"""The ``saxe-stages`` explorer: stage-like learning of the Saxe modes vs init scale and depth.

A deep linear network ``W_L ... W_1`` (``L = depth`` weight matrices) learns a whitened teacher with
singular values ``s = 3, 2, 1, 0.5`` from a balanced, decoupled init of strength ``u0`` on every
mode. Each mode strength obeys

    du/dt = L [|u|^{2 - 2/L} (s - u) - gamma u]

(``exact.saxe_mode``, weight decay ``gamma``): small inits learn the modes one after another,
strongest first, each after a plateau of length ``~ ln(s/u0)/(2s)`` (``L = 2``) or
``~ u0^{-(L-2)/L}/((L-2) s)`` (``L >= 3``). With decay and ``L >= 3`` a weak mode started below the
separatrix is never learned (Ziyin et al. 2022).
"""

from __future__ import annotations

import numpy as np

from ._spec import Explorer, Panel, Slider

__all__ = ["SAXE_STAGES", "stage_curves", "stage_simulation"]

SINGULAR_VALUES = (3.0, 2.0, 1.0, 0.5)
N_TIMES = 150
_HORIZON = 1.25  # times the time the weakest mode needs (without decay) to reach 99 % of s


def _check(u0, depth, weight_decay) -> tuple[float, int, float]:
    """The setting as Python numbers; ValueError naming the argument otherwise."""
    u0, weight_decay = float(u0), float(weight_decay)
    if not (np.isfinite(u0) and 0 < u0 < min(SINGULAR_VALUES)):
        raise ValueError(f"`u0` must be in (0, {min(SINGULAR_VALUES)}); got {u0!r}.")
    if isinstance(depth, bool) or int(depth) != depth or int(depth) < 1:
        raise ValueError(f"`depth` must be an integer >= 1; got {depth!r}.")
    if not (np.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"`weight_decay` must be finite and >= 0; got {weight_decay!r}.")
    return u0, int(depth), weight_decay


def stage_times(u0: float, depth: int) -> np.ndarray:
    """(N_TIMES,) times from 0 to 1.25 x the decay-free time for the weakest mode to reach 99 %.

    That time is ``T = (1/L) int_{u0}^{0.99 s} du / (u^{2-2/L} (s - u))`` (``s`` the weakest
    singular value; ``exact.saxe_time`` gives it exactly), here by the trapezoidal rule in
    ``ln u`` on the host: the horizon only has to fit every plateau, not be exact, and the host
    sum spares one compilation per depth.
    """
    s = min(SINGULAR_VALUES)
    p = 2 - 2 / depth
    x = np.linspace(np.log(u0), np.log(0.99 * s), 2001)
    u = np.exp(x)
    f = u ** (1 - p) / (s - u)  # du = u dx
    T = float(np.sum((f[1:] + f[:-1]) * np.diff(x)) / 2) / depth
    return np.linspace(0.0, _HORIZON * T, N_TIMES)


def stage_curves(*, u0, depth, weight_decay=0.0) -> dict:
    r"""Mode strengths ``u_alpha(t)/s_alpha`` and the loss of a depth-L linear net, exactly.

    ``u_alpha(t) = exact.saxe_mode(t, s=s_alpha, u0=u0, depth=L, weight_decay=gamma)`` for the
    teacher ``s = (3, 2, 1, 0.5)`` (whitened, ``tau = 1``), and the loss
    ``1/2 sum_alpha (s_alpha - u_alpha)^2`` of the decoupled network.

    **Arguments:** `u0` in ``(0, 0.5)``: initial strength of every mode; `depth`: number of weight
    matrices ``L >= 1``; `weight_decay`: ``gamma >= 0`` on every layer.

    **Returns:** dict with ``"t"`` (T,), ``"mode0"`` ... ``"mode3"`` (T,) the ratios
    ``u_alpha/s_alpha``, and ``"loss"`` (T,).

    References: Saxe, McClelland & Ganguli (2014), arXiv:1312.6120; Ziyin, Li & Meng (2022),
    arXiv:2202.04777 (weight decay).
    """
    from .. import exact

    u0, depth, gamma = _check(u0, depth, weight_decay)
    t = stage_times(u0, depth)
    s = np.asarray(SINGULAR_VALUES)
    u = np.asarray(exact.saxe_mode(t[:, None], s=s, u0=u0, depth=depth, weight_decay=gamma))
    out = {"t": t, **{f"mode{a}": u[:, a] / s[a] for a in range(len(s))}}
    out["loss"] = 0.5 * np.sum((s - u) ** 2, axis=1)
    return out


def stage_simulation(*, u0, depth, weight_decay=0.0) -> dict:
    """Gradient flow of the full weights at the setting of :func:`stage_curves`, same keys.

    The teacher is ``tasks.teacher`` (4 -> 4, whitened, seed 0) with the singular values above, the
    init ``init.aligned(task, (4,) * (L + 1), u0)`` (balanced and decoupled), the run
    ``simulate.gradient_flow(..., weight_decay=gamma)`` at the times of :func:`stage_times`; the
    mode strengths are read off as ``diag(U^T W_L ... W_1 V)``. Float64 when JAX runs with
    ``jax_enable_x64``.

    **Returns:** dict with ``"t"``, ``"mode0"`` ... ``"mode3"`` and ``"loss"`` as in
    :func:`stage_curves`, plus ``"diverged"`` (a 0/1 flag of the run).
    """
    import jax.numpy as jnp
    import jax.random as jr

    from .. import init, simulate, tasks

    u0, depth, gamma = _check(u0, depth, weight_decay)
    t = stage_times(u0, depth)
    s = jnp.asarray(SINGULAR_VALUES, dtype=jnp.result_type(float))
    n = len(SINGULAR_VALUES)
    task = tasks.teacher(jr.PRNGKey(0), n, n, s)
    params = init.aligned(task, (n,) * (depth + 1), u0)
    run = simulate.gradient_flow(params, task, jnp.asarray(t, s.dtype), weight_decay=gamma)
    U, _, Vt = task.svd()
    u = np.asarray(jnp.einsum("ia,tij,aj->ta", U, run.product(), Vt))
    out = {"t": np.asarray(run.ts), **{f"mode{a}": u[:, a] / SINGULAR_VALUES[a] for a in range(n)}}
    out["loss"] = np.asarray(run.loss)
    out["diverged"] = np.asarray(float(run.diverged))
    return out


SAXE_STAGES = Explorer(
    name="saxe-stages",
    title="Stage-like learning of the Saxe modes",
    description=(
        "A deep linear network (depth L weight matrices) learns a teacher with singular values "
        "3, 2, 1, 0.5 from a small balanced init u0 on every mode. Each mode strength follows "
        "du/dt = L [u^(2-2/L) (s - u) - gamma u] exactly (Saxe, McClelland & Ganguli 2014): the "
        "smaller u0, the longer the plateaus, and the modes are learned one at a time, strongest "
        "first. Depth sharpens the stages; weight decay gamma lowers every plateau's end point "
        "and, for L >= 3, can stop a weak mode from ever being learned (Ziyin et al. 2022). "
        "The time axis spans 1.25 times the time the weakest mode needs without decay."
    ),
    sliders=(
        Slider("u0", "init scale u0", tuple(float(f"{x:.3g}") for x in np.logspace(-6, -1, 11)),
               default=6),
        Slider("depth", "depth L", (2, 3, 4, 5), default=0),
        Slider("weight_decay", "weight decay gamma", (0.0, 0.05, 0.1, 0.2), default=0),
    ),
    panels=(
        Panel("lines", "mode strengths u_a(t) / s_a", "time t", "u / s", "t",
              tuple((f"mode{a}", f"s = {s:g}") for a, s in enumerate(SINGULAR_VALUES))),
        Panel("lines", "loss (a staircase: one drop per mode)", "time t", "loss", "t",
              (("loss", "loss"),)),
    ),
    curves=stage_curves,
    simulate=stage_simulation,
)
