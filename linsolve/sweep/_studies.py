"""Built-in studies: phase diagrams with the closed form beside the simulation at every point.

Each study maps grid axes (width, exponents, ratios, ...) to a point function returning order
parameters: simulated and exact final values, the NTK change ``|K_T - K_0| / |K_0|``, relative
weight change, alignment, time to learn, the theory-vs-simulation error (max over the save times,
relative to the scale of each record), and the simulation's outcome: ``status`` (int32,
``linsolve.simulate.STATUS_NAMES[status]`` is "converged", "diverged" or "step_limit") and
``diverged`` (divergence only). Widths are swept without recompilation by zero-padding hidden units
up to the largest width of the grid, which is exact for these linear networks (a zero unit receives
zero gradient under GD and GF).

Every study runs in the dtype of the sweep. Gradient flow integrates to every save time (no early
stop) with the simulator's float32 tolerances or ``rtol = 1e-12`` in float64; measured over the
shipped grids, theory and simulation agree to about 1e-4 in float32 (where the closed forms lose
``~eps / r`` deep in the kernel regime, ``r`` the phase ratio) and 1e-8 in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import exact, simulate, tasks
from ..models import PARAMETRIZATIONS
from ..plot import Label
from ._rules import NONZERO, POSITIVE, POSITIVE_INT, REAL, SEED, Rule, check, integer
from ._study_committee import COMMITTEE_STUDY_KWARGS
from ._study_diagonal import DIAGONAL_STUDY_KWARGS
from ._study_learning_rate import learning_rate_make
from ._study_sgd import SGD_RULES, sgd_make

__all__ = ["Study", "STUDIES", "time_to_learn", "REGIMES"]

REGIMES = exact.MECHANISMS  # codes of the `regime` output


def time_to_learn(ts, loss, fraction=0.01):
    """First time the loss falls to `fraction` of its initial value (log-linear interpolation).

    **Arguments:**

    - `ts`: (T,) save times; `loss`: (T,) the loss at them; `fraction`: in (0, 1).

    **Returns:** () the time, ``ts[0]`` if the loss starts at or below the target, ``inf`` if it
    never gets there. Logarithms are clamped at the dtype's smallest normal number (a loss of
    exactly 0 happens in float32).
    """
    log = lambda x: jnp.log(jnp.maximum(x, jnp.finfo(loss.dtype).tiny))
    target = fraction * loss[0]
    below = loss <= target
    j = jnp.argmax(below)
    jm = jnp.maximum(j - 1, 0)
    l0, l1 = log(loss[jm]), log(loss[j])
    frac = jnp.where(l1 < l0, (l0 - log(target)) / (l0 - l1), 0.0)
    t = ts[jm] + jnp.clip(frac, 0.0, 1.0) * (ts[j] - ts[jm])
    return jnp.where(jnp.any(below), jnp.where(j == 0, ts[0], t), jnp.inf)


def _rel(a, b):
    """``max |a - b| / max |b|`` (relative to the scale of the whole record `b`, which may pass 0)."""
    return jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), jnp.finfo(b.dtype).tiny)


def _cos(a, b, axis=-1):
    """Cosine of the angle between `a` and `b` along `axis`; norms taken apart (no underflow of
    their product for tiny vectors)."""
    norm = lambda x: jnp.sqrt(jnp.sum(x * x, axis))
    return jnp.sum(a * b, axis) / norm(a) / norm(b)


def _flow(params0, task, ts, **kwargs):
    """Gradient flow to every save time, tolerances for a theory-vs-simulation check in the dtype."""
    tight = jnp.result_type(*jax.tree_util.tree_leaves(params0)) == jnp.float64
    return simulate.gradient_flow(
        params0,
        task,
        ts,
        rtol=1e-12 if tight else None,
        atol=1e-14 if tight else None,
        steady_state=False,
        **kwargs,
    )


@dataclass(frozen=True)
class Study:
    """A built-in study: its axes (with defaults), parameters, point function and plot layout.

    `plot` is the layout of `linsolve plot` (see `linsolve.plot.phase_figures`): ``x``, ``y``,
    ``value``, optional ``theory``, ``boundary``, ``boundary_label``. `labels` maps axis and output
    names to a `linsolve.plot.Label` (human-readable text, unit, log scale, category names) used on
    axes, colour bars and slice titles.
    """

    name: str
    description: str
    axes: dict
    params: dict
    make: Callable  # (params dict, grid axes dict) -> point function
    plot: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)  # axis or output name -> linsolve.plot.Label
    rules: dict = field(default_factory=dict)  # axis or parameter name -> Rule (default: REAL)

    def check_axis(self, name, values) -> None:
        """Raise ``ConfigError`` unless the values of axis `name` are finite and follow its rule."""
        check(f"axes.{name}", np.asarray(values), self.rules.get(name, REAL))

    def check_params(self, params) -> None:
        """Raise ``ConfigError`` unless every fixed parameter is finite and follows its rule."""
        for key, value in params.items():
            check(f"params.{key}", value, self.rules.get(key, REAL))

    def default_config(self) -> dict:
        """The shipped configuration file ``linsolve/sweep/configs/<name>.toml``."""
        import tomllib
        from importlib.resources import files

        text = files("linsolve.sweep").joinpath("configs", f"{self.name}.toml").read_text()
        return tomllib.loads(text)


# --- the width-d one-dimensional network ----------------------------------------------------------


def _one_d_point(*, width, max_width, a_u, a_w, b_u, b_w, c, ratio, s, m2, lr, horizon, n_times, key):
    """Simulated and exact training of ``f(x) = kappa (u.w) x`` at one grid point."""
    dtype = jnp.result_type(float)  # the sweep's float dtype (axes may come as integers)
    a_u, a_w, b_u, b_w, c, ratio = (jnp.asarray(x, dtype) for x in (a_u, a_w, b_u, b_w, c, ratio))
    d = jnp.asarray(width, dtype)
    mask = (jnp.arange(max_width) < width).astype(d.dtype)
    ku, kw = jr.split(key)
    u0 = d ** (-a_u / 2) * jr.normal(ku, (max_width,), d.dtype) * mask
    w0 = d ** (-a_w / 2) * jr.normal(kw, (max_width,), d.dtype) * mask
    kappa = d ** (-c)
    eta_u = lr * d**b_u / jnp.sqrt(ratio)
    eta_w = lr * d**b_w * jnp.sqrt(ratio)
    k, A = kappa**2 * m2, 2 * jnp.sqrt(eta_u * eta_w) / kappa
    c1 = eta_w * u0 @ u0 - eta_u * w0 @ w0
    D = (u0 @ u0) * (w0 @ w0) - (u0 @ w0) ** 2
    B = jnp.sqrt(c1**2 + 4 * eta_u * eta_w * jnp.maximum(D, 0.0))
    F0 = kappa * u0 @ w0
    r = A * jnp.abs(s) / B
    # Horizon: `horizon` time constants of the slower of the kernel and rich rates, plus the plateau.
    T = horizon * (1 + jnp.log1p(r)) / (k * (B + A * jnp.abs(s)))
    ts = T * jnp.linspace(0.0, 1.0, n_times, dtype=d.dtype)
    theory = exact.one_hidden_layer(ts, u0, w0, s=s, m2=m2, kappa=kappa, eta_u=eta_u, eta_w=eta_w)
    task = tasks.scalar(s=s, m2=m2)
    traj = _flow((w0[:, None], u0[None, :]), task, ts, lrs=(eta_w, eta_u), output_scale=kappa)
    w_sim, u_sim = traj.params[0][:, :, 0], traj.params[1][:, 0, :]
    F_sim = kappa * jnp.sum(u_sim * w_sim, -1)
    ntk_sim = kappa**2 * (eta_u * jnp.sum(w_sim**2, -1) + eta_w * jnp.sum(u_sim**2, -1))
    cos_sim = _cos(u_sim, w_sim)
    weights0 = jnp.sqrt(u0 @ u0 + w0 @ w0)
    # K_T - K_0 from the weight changes, |x_T|^2 - |x_0|^2 = (x_T - x_0).(x_T + x_0): no cancellation.
    du, dw = u_sim[-1] - u_sim[0], w_sim[-1] - w_sim[0]
    ntk_delta = kappa**2 * (eta_u * dw @ (w_sim[-1] + w_sim[0]) + eta_w * du @ (u_sim[-1] + u_sim[0]))
    moved = jnp.sqrt(jnp.sum((u_sim[-1] - u0) ** 2) + jnp.sum((w_sim[-1] - w0) ** 2))
    error = jnp.maximum(
        jnp.maximum(_rel(theory.F, F_sim), _rel(theory.ntk, ntk_sim)), _rel(theory.cos, cos_sim)
    )
    F_learned = s + 0.1 * (F0 - s)
    return {
        "loss": traj.loss[-1],
        "F": F_sim[-1],
        "ntk_change": jnp.abs(ntk_delta) / ntk_sim[0],
        "weight_change": moved / weights0,
        "cos_initial": cos_sim[0],
        "cos": cos_sim[-1],
        "time_to_learn": time_to_learn(ts, traj.loss),
        "status": traj.status,
        "diverged": traj.diverged,
        "theory_F": theory.F[-1],
        "theory_ntk_change": jnp.abs(theory.ntk[-1] - theory.ntk[0]) / theory.ntk[0],
        "theory_cos": theory.cos[-1],
        "theory_time_to_learn": exact.mode_time(F0, F_learned, s=s, k=k, A=A, B=B),
        "theory_final_ntk_ratio": jnp.sqrt(1 + r**2) / jnp.sqrt(1 + (A * F0 / B) ** 2),
        "r": r,
        "rho": (b_u + b_w) / 2 + c - 1 - jnp.maximum(b_w - a_u, b_u - a_w),
        "regime": exact.regime(u0, w0, s=s, m2=m2, kappa=kappa, eta_u=eta_u, eta_w=eta_w).code,
        "error": error,
        "horizon": T,
    }


def _one_d_make(params, axes):
    max_width = int(np.max(axes["width"]))
    fixed = {k: params[k] for k in ("s", "m2", "lr", "horizon")}
    n_times = int(params["n_times"])

    def point(width, output_exponent, init_exponent, lr_ratio, key):
        return _one_d_point(
            width=width,
            max_width=max_width,
            a_u=init_exponent,
            a_w=init_exponent,
            b_u=0.0,
            b_w=0.0,
            c=output_exponent,
            ratio=lr_ratio,
            n_times=n_times,
            key=key,
            **fixed,
        )

    return point


_PRESETS = tuple(sorted(PARAMETRIZATIONS))


def _presets_make(params, axes):
    max_width = int(np.max(axes["width"]))
    fixed = {k: params[k] for k in ("s", "m2", "lr", "horizon")}
    n_times = int(params["n_times"])
    table = np.asarray([PARAMETRIZATIONS[name] for name in _PRESETS])  # (a_w, a_u, b_w, b_u, c)

    def point(parametrization, width, key):
        a_w, a_u, b_w, b_u, c = (jnp.asarray(table)[jnp.asarray(parametrization, int), i] for i in range(5))
        return _one_d_point(
            width=width,
            max_width=max_width,
            a_u=a_u,
            a_w=a_w,
            b_u=b_u,
            b_w=b_w,
            c=c,
            ratio=1.0,
            n_times=n_times,
            key=key,
            **fixed,
        )

    return point


_ONE_D_PARAMS = {"s": 1.0, "m2": 1.0, "lr": 1.0, "horizon": 12.0, "n_times": 64}
_N_TIMES = integer(2, text="an integer >= 2 (save times from t = 0 to the horizon)")
_ONE_D_RULES = {"m2": POSITIVE, "lr": POSITIVE, "horizon": POSITIVE, "n_times": _N_TIMES}
_PRESET_RULE = integer(
    0,
    len(_PRESETS) - 1,
    text=f"integer indices 0..{len(_PRESETS) - 1} ("
    + ", ".join(f"{i} = {name}" for i, name in enumerate(_PRESETS))
    + ")",
)


# --- the unbalanced single neuron -----------------------------------------------------------------


_TARGET_RULE = Rule(
    "non-zero: the neuron learns beta* = (0, target), and target = 0 leaves nothing to learn "
    "(no time scale, no direction)",
    NONZERO.accepts,
)


def _neuron_make(params, axes):
    n_times = int(params["n_times"])
    horizon = params["horizon"]
    beta_star = jnp.array([0.0, params["target"]])
    direction = jnp.array([-1.0, 0.0])  # beta0 orthogonal to beta* (Kunin et al. 2024, Fig. 2)

    def point(init_scale, delta):
        dtype = jnp.result_type(float)  # the sweep's float dtype (axes may come as integers)
        init_scale, delta = jnp.asarray(init_scale, dtype), jnp.asarray(delta, dtype)
        bs, dirn = beta_star.astype(dtype), direction.astype(dtype)
        # a0^2 - |w0|^2 = delta and a0 |w0| = init_scale, without cancellation for delta << 0.
        root = jnp.sqrt(delta**2 + 4 * init_scale**2)
        a0 = jnp.sqrt(jnp.where(delta >= 0, (delta + root) / 2, 2 * init_scale**2 / (root - delta)))
        w0 = (init_scale / a0) * dirn
        s_norm = jnp.linalg.norm(bs)
        # The growing rate p = (delta + Omega)/2 sets the escape time (long for delta << 0).
        omega = jnp.sqrt(delta**2 + 4 * s_norm**2)
        p = jnp.where(delta >= 0, (delta + omega) / 2, 2 * s_norm**2 / (omega - delta))
        T = horizon * (1 + jnp.log1p(s_norm / init_scale)) / p
        ts = T * jnp.linspace(0.0, 1.0, n_times, dtype=dtype)
        theory = exact.single_neuron(ts, a0, w0, bs)
        task = tasks.Task(jnp.eye(2, dtype=dtype), bs[None, :], (bs @ bs).reshape(1, 1))
        traj = _flow((w0[None, :], a0.reshape(1, 1)), task, ts)
        beta = traj.product()[:, 0, :]
        a, w = traj.params[1][:, 0, 0], traj.params[0][:, 0, :]
        M = a[:, None, None] ** 2 * jnp.eye(2, dtype=dtype) + w[:, :, None] * w[:, None, :]
        # 1 - cos(M_0, M_T) = |M_0/|M_0| - M_T/|M_T||^2 / 2: no cancellation when M barely moves.
        unit0, unit1 = M[0] / jnp.linalg.norm(M[0]), M[-1] / jnp.linalg.norm(M[-1])
        return {
            "loss": traj.loss[-1],
            "time_to_learn": time_to_learn(ts, traj.loss),
            "kernel_distance": 0.5 * jnp.sum((unit0 - unit1) ** 2),
            "min_beta_norm": jnp.min(jnp.linalg.norm(beta, axis=-1)),
            "cos_target": beta[-1] @ bs / (jnp.linalg.norm(beta[-1]) * s_norm),
            "status": traj.status,
            "diverged": traj.diverged,
            "error": _rel(theory.beta, beta),
        }

    return point


# --- lambda-balanced two-layer networks -----------------------------------------------------------


def _lambda_init(key, d, lam, scale, dtype):
    """Lambda-balanced init ``W2^T W2 - W1 W1^T = lam I`` for sizes (d + 1, d, d + 1), traced in lam.

    ``lam >= 0``: ``W1 = G``, ``W2 = O (G G^T + lam I)^{1/2}``; ``lam < 0``: ``W2 = G'``,
    ``W1 = (G'^T G' + |lam| I)^{1/2} O'^T`` (``O``, ``O'`` (d + 1, d) orthonormal columns). Input and
    output wider than the hidden layer keep random inits off the saddles that square layers meet
    half the time (an orientation of determinant -1 relative to the task).
    """
    k1, k2, k3, k4 = jr.split(key, 4)
    eye = jnp.eye(d, dtype=dtype)

    def sqrtm(M):
        e, V = jnp.linalg.eigh(M)
        return (V * jnp.sqrt(jnp.clip(e, 0.0))) @ V.T

    G = scale * jr.normal(k1, (d, d + 1), dtype)
    O, _ = jnp.linalg.qr(jr.normal(k2, (d + 1, d), dtype))
    W1_pos, W2_pos = G, O @ sqrtm(G @ G.T + jnp.abs(lam) * eye)
    G2 = scale * jr.normal(k3, (d + 1, d), dtype)
    O2, _ = jnp.linalg.qr(jr.normal(k4, (d + 1, d), dtype))
    W1_neg, W2_neg = sqrtm(G2.T @ G2 + jnp.abs(lam) * eye) @ O2.T, G2
    return jnp.where(lam >= 0, W1_pos, W1_neg), jnp.where(lam >= 0, W2_pos, W2_neg)


def _lambda_make(params, axes):
    n_times, d = int(params["n_times"]), int(params["size"])
    horizon = params["horizon"]
    svals = np.linspace(params["s_max"], params["s_max"] / d, d)

    def point(lam, init_scale, key):
        dtype = jnp.result_type(float)  # the sweep's float dtype (axes may come as integers)
        lam, init_scale = jnp.asarray(lam, dtype), jnp.asarray(init_scale, dtype)
        task = tasks.teacher(
            jr.PRNGKey(params["task_seed"]), d + 1, d + 1, jnp.asarray(svals, dtype), dtype=dtype
        )
        W1, W2 = _lambda_init(key, d, lam, init_scale, dtype)
        s_min = float(svals[-1])
        # `horizon` time constants of the slowest relaxation at the minimum, plus the plateau. With
        # hidden width d < d + 1 one direction is reached through the smaller layer only, whose
        # squared singular values are (sqrt(lam^2 + 4 s^2) - |lam|) / 2 ~ s^2 / |lam| for large |lam|.
        slowest = 2 * s_min**2 / (jnp.sqrt(lam**2 + 4 * s_min**2) + jnp.abs(lam))
        T = horizon * (1 + jnp.log1p(s_min / (jnp.abs(lam) + init_scale**2))) / slowest
        ts = T * jnp.linspace(0.0, 1.0, n_times, dtype=dtype)
        theory = exact.lambda_balanced(ts, W1, W2, task)
        traj = _flow((W1, W2), task, ts)
        from ..models import ntk as ntk_of

        K = jax.vmap(ntk_of)(traj.params)
        change = jnp.linalg.norm(K[-1] - K[0]) / jnp.linalg.norm(K[0])
        K_t = theory.ntk
        alignment = jnp.sum(K[0] * K[-1]) / (jnp.linalg.norm(K[0]) * jnp.linalg.norm(K[-1]))
        return {
            "loss": traj.loss[-1],
            "time_to_learn": time_to_learn(ts, traj.loss),
            "ntk_change": change,
            "kernel_alignment": alignment,
            "theory_ntk_change": jnp.linalg.norm(K_t[-1] - K_t[0]) / jnp.linalg.norm(K_t[0]),
            "status": traj.status,
            "diverged": traj.diverged,
            "error": jnp.maximum(_rel(theory.product, traj.product()), _rel(K_t, K)),
        }

    return point


# --- display labels (axes, colour bars and slice titles of `linsolve plot`) ------------------------

_OUTCOME_LABELS = {
    "status": Label("outcome", ticks=("converged", "diverged", "step_limit")),
    "diverged": Label("diverged"),
    "loss": Label("final loss", log=True),
    "time_to_learn": Label("time to learn (loss down to 1%)", log=True),
    "error": Label("max relative error, exact vs simulation", log=True),
}
_ONE_D_LABELS = {
    **_OUTCOME_LABELS,
    "width": Label("width d", log=True),
    "output_exponent": Label(r"output exponent c  ($\kappa = d^{-c}$)"),
    "init_exponent": Label(r"init exponent a  ($\sigma^2 = d^{-a}$)"),
    "lr_ratio": Label(r"lr ratio $\eta_w/\eta_u$", log=True),
    "parametrization": Label("parametrization", ticks=_PRESETS),
    "F": Label(r"final output $F = \kappa\, u \cdot w$"),
    "theory_F": Label(r"final output $F = \kappa\, u \cdot w$ (exact)"),
    "ntk_change": Label(r"NTK change $|K_T - K_0|\,/\,|K_0|$", log=True),
    "theory_ntk_change": Label(r"NTK change $|K_T - K_0|\,/\,|K_0|$ (exact)", log=True),
    "weight_change": Label(r"relative weight change $|\theta_T - \theta_0|\,/\,|\theta_0|$", log=True),
    "cos_initial": Label(r"initial alignment $\cos(u_0, w_0)$"),
    "cos": Label(r"final alignment $\cos(u_T, w_T)$"),
    "theory_cos": Label(r"final alignment $\cos(u_T, w_T)$ (exact)"),
    "theory_time_to_learn": Label("time for F to go 90% of the way (exact)", log=True),
    "theory_final_ntk_ratio": Label(r"NTK ratio $K_\infty / K_0$ (exact)", log=True),
    "r": Label(r"phase ratio $r = A|s|/B$  (kernel $r \ll 1$, rich $r \gg 1$)", log=True),
    "rho": Label(r"width exponent $\rho$  ($r \sim d^{\rho}$)"),
    "regime": Label("regime", ticks=REGIMES),
    "horizon": Label("horizon T", log=True),
}
_NEURON_LABELS = {
    **_OUTCOME_LABELS,
    "init_scale": Label(r"init scale $|a_0|\,|w_0|$", log=True),
    "delta": Label(r"relative scale $\delta = a_0^2 - |w_0|^2$"),
    "kernel_distance": Label(r"kernel distance $1 - \cos(M_0, M_T)$", log=True),
    "min_beta_norm": Label(r"smallest $|\beta(t)|$ on the way", log=True),
    "cos_target": Label(r"final $\cos(\beta_T, \beta^*)$"),
}
_LAMBDA_LABELS = {
    **_OUTCOME_LABELS,
    "lam": Label(r"relative scale $\lambda$  ($W_2^\top W_2 - W_1 W_1^\top = \lambda I$)"),
    "init_scale": Label(r"init scale $\sigma$ (weight std)", log=True),
    "ntk_change": Label(r"NTK change $\|K_T - K_0\|_F\,/\,\|K_0\|_F$", log=True),
    "theory_ntk_change": Label(r"NTK change $\|K_T - K_0\|_F\,/\,\|K_0\|_F$ (exact)", log=True),
    "kernel_alignment": Label(r"kernel alignment $\cos(K_0, K_T)$"),
}
_GD_PHASE_NAMES = tuple(exact.GD_PHASES)
_LEARNING_RATE_LABELS = {
    **_OUTCOME_LABELS,
    "width": Label("width d", log=True),
    "lr_lambda0": Label(r"learning rate $\eta\lambda_0$ (units of the initial curvature)"),
    "lr_ratio": Label(r"lr ratio $\eta_w/\eta_u$", log=True),
    "init_scale": Label(r"init scale $\sigma$ (weight std)", log=True),
    "phase": Label("GD phase (simulation)", ticks=_GD_PHASE_NAMES),
    "theory_phase": Label("GD phase (exact map)", ticks=_GD_PHASE_NAMES),
    "lr_lambda_final": Label(r"final $\eta\lambda$ (stable minimum: < 2)"),
    "theory_lr_lambda_final": Label(r"final $\eta\lambda$ (exact map)"),
    "peak_loss_ratio": Label("peak loss / initial loss", log=True),
    "theory_peak_loss_ratio": Label("peak loss / initial loss (exact map)", log=True),
    "ntk_change": Label(r"NTK change $|K_T - K_0|\,/\,K_0$", log=True),
    "x_catapult": Label(r"catapult boundary $\eta\lambda_0$ (exact map)"),
    "x_diverge": Label(r"divergence boundary $\eta\lambda_0$ (exact map)"),
    "catapult_window": Label("catapult window min(x / x_catapult, x_diverge / x)", log=True),
    "error": Label("max relative error of F, exact map vs simulation", log=True),
}
_SGD_LABELS = {
    **_OUTCOME_LABELS,
    "lr_fraction": Label(r"learning rate $\eta\lambda_{max}/2$ (units of the GD edge)", log=True),
    "batch_size": Label("batch size B", log=True),
    "seed": Label("seed"),
    "risk": Label("final risk", log=True),
    "theory_risk": Label("final risk (exact expectation)", log=True),
    "risk0": Label("initial risk", log=True),
    "edge": Label(r"SGD edge $\eta^*(B)$", log=True),
    "lr": Label(r"learning rate $\eta$", log=True),
    "edge_ratio": Label(r"$\eta / \eta^*(B)$ (divergence edge at 1)", log=True),
    "spectral_radius": Label("spectral radius of the exact recursion", log=True),
}


STUDIES = {
    "one-hidden-layer": Study(
        name="one-hidden-layer",
        description=(
            "Width-d one-hidden-layer linear net on 1-D data (Xu & Ziyin): width x output-scale "
            "exponent (kappa = d^-c) x init exponent (sigma^2 = d^-a) x learning-rate ratio; "
            "exact solution and gradient flow at every point; phase boundary rho = c + a - 1 = 0."
        ),
        axes={"width": 64, "output_exponent": 0.5, "init_exponent": 0.0, "lr_ratio": 1.0},
        params=dict(_ONE_D_PARAMS),
        make=_one_d_make,
        plot={
            "x": "width",
            "y": "output_exponent",
            "value": "ntk_change",
            "boundary": "r",
            "boundary_label": "theory: r = 1 (kernel ↔ rich)",
            "theory": "theory_ntk_change",
        },
        labels=_ONE_D_LABELS,
        rules={"width": POSITIVE_INT, "lr_ratio": POSITIVE, **_ONE_D_RULES},
    ),
    "parametrizations": Study(
        name="parametrizations",
        description=(
            "Standard / NTK / mean-field / muP / small-init parametrisations of the 1-D model across "
            "widths: NTK change -> 0 in the kernel limit, O(1) under mean-field and muP. "
            f"`parametrization` indexes {list(_PRESETS)}."
        ),
        axes={"parametrization": 0, "width": 64},
        params=dict(_ONE_D_PARAMS),
        make=_presets_make,
        plot={
            "x": "width",
            "y": "parametrization",
            "value": "ntk_change",
            "theory": "theory_ntk_change",
            "labels": {"parametrization": list(_PRESETS)},
        },
        labels=_ONE_D_LABELS,
        rules={"parametrization": _PRESET_RULE, "width": POSITIVE_INT, **_ONE_D_RULES},
    ),
    "unbalanced": Study(
        name="unbalanced",
        description=(
            "Single neuron f(x) = a w.x (Kunin et al. 2024): init scale x delta = a^2 - |w|^2; lazy "
            "(delta >> 0), rich (delta ~ 0), delayed rich (delta << 0); exact solution vs flow."
        ),
        axes={"init_scale": 0.1, "delta": 0.0},
        params={"target": 1.0, "horizon": 12.0, "n_times": 64},
        make=_neuron_make,
        plot={"x": "init_scale", "y": "delta", "value": "kernel_distance"},
        labels=_NEURON_LABELS,
        rules={"init_scale": POSITIVE, "target": _TARGET_RULE, "horizon": POSITIVE, "n_times": _N_TIMES},
    ),
    "learning-rate": Study(
        name="learning-rate",
        description=(
            "Width-d network f(x) = kappa (u.w) x trained by gradient descent at a finite learning "
            "rate (Lewkowycz et al. 2020): width x lr lambda_0 (x lr ratio, init scale); lazy / "
            "catapult / divergent phases from GD of the full vectors beside the exact 3-D map and "
            "its boundaries (2 and 4 for wide nets at s = 0)."
        ),
        axes={"width": 256, "lr_lambda0": 1.0, "lr_ratio": 1.0, "init_scale": 1.0},
        params={"s": 0.0, "m2": 1.0, "output_exponent": 0.5, "steps": 1000},
        make=learning_rate_make,
        plot={
            "x": "lr_lambda0",
            "y": "width",
            "value": "lr_lambda_final",
            "theory": "theory_lr_lambda_final",
            "boundary": "catapult_window",
            "boundary_label": "theory: lazy | catapult | divergent boundaries",
        },
        labels=_LEARNING_RATE_LABELS,
        rules={
            "width": POSITIVE_INT,
            "lr_lambda0": POSITIVE,
            "lr_ratio": POSITIVE,
            "init_scale": POSITIVE,
            "m2": POSITIVE,
            "steps": POSITIVE_INT,
        },
    ),
    "sgd": Study(
        name="sgd",
        description=(
            "Online minibatch SGD on Gaussian linear regression with a power-law spectrum "
            "(lam_k = k^-a, lam_k w*_k^2 ~ k^-b): learning rate (units of the GD edge 2/lam_max) x "
            "batch size x seed; simulated final risk beside its exact expectation and SGD's "
            "divergence edge (Bordelon & Pehlevan 2021; Paquette et al. 2024)."
        ),
        axes={"lr_fraction": 0.1, "batch_size": 1, "seed": 0},
        params={"d": 64, "spectrum_exponent": 1.5, "target_exponent": 1.0, "noise": 0.1, "steps": 200},
        make=sgd_make,
        plot={
            "x": "lr_fraction",
            "y": "batch_size",
            "value": "risk",
            "theory": "theory_risk",
            "boundary": "edge_ratio",
            "boundary_label": "theory: SGD divergence edge",
        },
        labels=_SGD_LABELS,
        rules=SGD_RULES,
    ),
    "lambda": Study(
        name="lambda",
        description=(
            "Two-layer linear nets from lambda-balanced inits (Dominé et al. 2025): lambda x init "
            "scale; NTK change from the matrix Riccati solution and from gradient flow."
        ),
        axes={"lam": 0.0, "init_scale": 0.1},
        params={"size": 3, "s_max": 3.0, "task_seed": 0, "horizon": 24.0, "n_times": 48},
        make=_lambda_make,
        plot={"x": "init_scale", "y": "lam", "value": "ntk_change", "theory": "theory_ntk_change"},
        labels=_LAMBDA_LABELS,
        rules={
            "init_scale": POSITIVE,
            "size": POSITIVE_INT,
            "s_max": POSITIVE,
            "task_seed": SEED,
            "horizon": POSITIVE,
            "n_times": _N_TIMES,
        },
    ),
}
STUDIES["committee"] = Study(**COMMITTEE_STUDY_KWARGS)
STUDIES["diagonal"] = Study(**DIAGONAL_STUDY_KWARGS)
