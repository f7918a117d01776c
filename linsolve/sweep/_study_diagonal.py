r"""Built-in study ``diagonal``: sparse recovery by a diagonal linear network, GD beside its bias.

The model ``beta = u*u - v*v``, ``u0 = v0 = alpha``, trained by gradient descent on (u, v)
(``simulate.diagonal_gradient_descent``) with loss ``1/(2n) |X beta - y|^2`` on a noise-free
sparse regression (:func:`sparse_regression`: ``X`` (n, d) standard Gaussian, ``n < d``,
``y = X beta*`` with ``beta*`` k-sparse of entries ``+-(1 + U[0, 1])``). At every grid point
(``alpha``, ``lr``) one run of `steps` steps is compared with the limit of gradient FLOW
(``exact.diagonal_implicit_bias``, Woodworth et al. 2020, arXiv 2002.09277)

    beta_inf(alpha) = argmin_{X beta = y} Q_alpha(beta):

the minimum-l2 interpolator for large ``alpha`` (kernel regime, poor recovery), the minimum-l1
one for ``alpha -> 0`` (rich regime, exact recovery when k is small enough). The dual solve runs on
the host, so it is done once per ``alpha`` of the grid in the make function and looked up by grid
index in the point function (as the ``sgd`` study does for ``exact.sgd_risk``).

Gradient descent approaches the flow's limit as ``lr -> 0``, but not uniformly: ``u v`` shrinks by
``1 - 4 lr^2 r^2`` each step (Even et al. 2023, arXiv 2302.08982), an effective smaller ``alpha``,
so the gap is ``O(lr)`` (measured below). **Stability edge at the limit.** At an interpolator the
residual vanishes and the Hessian of ``L`` in (u, v) is ``J^T J / n`` with
``J = X [2 diag(u), -2 diag(v)]``; its nonzero eigenvalues are those of

    J J^T / n = (4/n) X diag(u^2 + v^2) X^T,     u^2 + v^2 = sqrt(beta^2 + 4 alpha^4)

(``u v = alpha^2`` along the flow), so the flow's limit is a stable fixed point of GD only for
``lr * S_inf(alpha) < 2``, ``S_inf = lambda_max((4/n) X diag(sqrt(beta_inf^2 + 4 alpha^4)) X^T)``.
``edge_ratio = lr S_inf / 2`` (level 1: the contour drawn by ``linsolve plot``). Beyond it GD
cannot settle at ``beta_inf``: measured (n = 20, d = 50, k = 3), for ``alpha <~ 0.3`` it converges
to another, flatter interpolator (recovery error ~0.65 instead of ~0), for large ``alpha`` (where
``S_inf ~ 8 alpha^2 lambda_max(X X^T / n)``) it diverges.

Outputs: ``recovery_error`` ``|beta_T - beta*| / |beta*|`` (``inf`` once diverged) and
``theory_recovery_error`` (of ``beta_inf``); ``error`` ``|beta_T - beta_inf| / |beta_inf|``
(simulation vs theory; ``inf`` once diverged); ``residual`` ``|X beta_T - y| / |y|``; ``l1_norm``,
``theory_l1_norm``; ``sharpness`` ``S_inf``; ``edge_ratio``; ``loss``; ``status`` (``DIVERGED``;
``STEP_LIMIT`` when the residual is still above `tol` after `steps`; else ``CONVERGED``) and
``diverged``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import exact, simulate
from ..plot import Label
from ..simulate._common import status_code
from ._config import ConfigError
from ._rules import POSITIVE, POSITIVE_INT, SEED, Rule

__all__ = [
    "DIAGONAL_LABELS",
    "DIAGONAL_RULES",
    "DIAGONAL_STUDY_KWARGS",
    "diagonal_make",
    "limit_sharpness",
    "sparse_regression",
]


def sparse_regression(seed: int, n: int, d: int, k: int):
    r"""A noise-free sparse regression ``(X, y, beta*)`` in float64 numpy.

    ``X`` (n, d) i.i.d. standard Gaussian (isotropic inputs: the population excess risk of
    ``beta`` is ``|beta - beta*|^2 / 2``); ``beta*`` (d,) nonzero on k coordinates drawn without
    replacement, with entries ``s (1 + U[0, 1])``, random signs ``s``; ``y = X beta*`` (n,).

    **Arguments:** `seed` (numpy ``default_rng`` seed), `n`, `d`, `k` (``1 <= k <= d``).

    **Returns:** ``(X, y, beta_star)``.
    """
    if not 1 <= k <= d:
        raise ValueError(f"`k` must be in 1..d={d}; got {k!r}.")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    beta_star = np.zeros(d)
    support = rng.choice(d, size=k, replace=False)
    beta_star[support] = rng.choice([-1.0, 1.0], size=k) * (1.0 + rng.random(k))
    return X, X @ beta_star, beta_star


def limit_sharpness(X, beta, alpha) -> float:
    r"""``lambda_max((4/n) X diag(sqrt(beta^2 + 4 alpha^4)) X^T)``: the top Hessian eigenvalue of
    ``L(u, v)`` at an interpolator ``beta`` reached along the flow (``u v = alpha^2``; module
    docstring). Host float64. **Arguments:** `X` (n, d), `beta` (d,), `alpha` scalar > 0.
    """
    X, beta = np.asarray(X, np.float64), np.asarray(beta, np.float64)
    weights = np.sqrt(beta * beta + 4.0 * float(alpha) ** 4)
    return float(np.linalg.eigvalsh(4.0 / X.shape[0] * (X * weights) @ X.T)[-1])


def _theory_table(X, y, alphas):
    """``(beta_inf, sharpness)`` for every alpha of the grid: (n_alpha, d) and (n_alpha,)."""
    betas, sharpness = [], []
    for alpha in alphas:
        bias = exact.diagonal_implicit_bias(X, y, alpha=float(alpha))
        beta = np.asarray(bias.beta, np.float64)
        betas.append(beta)
        sharpness.append(limit_sharpness(X, beta, alpha))
    return np.stack(betas), np.asarray(sharpness)


def _norm(x):
    return jnp.sqrt(jnp.sum(x * x))


def diagonal_make(params, axes):
    """Point function of the ``diagonal`` study (see the module docstring).

    **Arguments:** `params` (``n``, ``d``, ``k``, ``task_seed``, ``steps``, ``tol``), `axes` (the
    grid's axes: the ``alpha`` values set the theory table). **Returns:** ``point(alpha, lr)``.
    """
    n, d, k = int(params["n"]), int(params["d"]), int(params["k"])
    if k > d:
        raise ConfigError(f"`params.k` must be <= params.d = {d} (a k-sparse target); got {k!r}.")
    steps, tol = int(params["steps"]), float(params["tol"])
    dtype = jnp.result_type(float)  # the sweep's float dtype
    X, y, beta_star = sparse_regression(int(params["task_seed"]), n, d, k)
    # The theory sees the data the simulation sees: rounded to the sweep's dtype.
    X, y = (np.asarray(np.asarray(v, dtype), np.float64) for v in (X, y))
    alpha_axis = np.asarray(axes["alpha"], np.float64).ravel()
    beta_table, sharpness_table = _theory_table(X, y, alpha_axis)

    def point(alpha, lr):
        dt = jnp.result_type(float)
        Xd, yd, target = (jnp.asarray(v, dt) for v in (X, y, beta_star))
        alpha, lr = jnp.asarray(alpha, dt), jnp.asarray(lr, dt)
        # This point's row of the theory table: the grid alpha nearest in log (an exact match).
        i = jnp.argmin(jnp.abs(jnp.log(jnp.asarray(alpha_axis, dt)) - jnp.log(alpha)))
        theory = jnp.asarray(beta_table, dt)[i]
        sharpness = jnp.asarray(sharpness_table, dt)[i]
        run = simulate.diagonal_gradient_descent(
            Xd, yd, alpha=alpha, lr=lr, steps=steps, record_every=steps
        )
        beta = run.beta[-1]
        inf = jnp.asarray(jnp.inf, dt)
        residual = _norm(Xd @ beta - yd) / _norm(yd)
        not_converged = ~(residual <= tol)
        return {
            "recovery_error": jnp.where(run.diverged, inf, _norm(beta - target) / _norm(target)),
            "theory_recovery_error": _norm(theory - target) / _norm(target),
            "error": jnp.where(run.diverged, inf, _norm(beta - theory) / _norm(theory)),
            "residual": jnp.where(run.diverged, inf, residual),
            "l1_norm": jnp.where(run.diverged, inf, jnp.sum(jnp.abs(beta))),
            "theory_l1_norm": jnp.sum(jnp.abs(theory)),
            "sharpness": sharpness,
            "edge_ratio": lr * sharpness / 2,
            "loss": run.loss[-1],
            "status": status_code(run.diverged, not_converged),
            "diverged": run.diverged,
        }

    return point


_FRACTION = Rule("in (0, 1)", lambda v: (v > 0) & (v < 1))
DIAGONAL_RULES = {
    "alpha": POSITIVE,
    "lr": POSITIVE,
    "n": POSITIVE_INT,
    "d": POSITIVE_INT,
    "k": POSITIVE_INT,
    "task_seed": SEED,
    "steps": POSITIVE_INT,
    "tol": _FRACTION,
}

DIAGONAL_LABELS = {
    "status": Label("outcome", ticks=("converged", "diverged", "step_limit")),
    "diverged": Label("diverged"),
    "alpha": Label(r"initial scale $\alpha$  ($u_0 = v_0 = \alpha$)", log=True),
    "lr": Label(r"learning rate $\eta$", log=True),
    "recovery_error": Label(r"recovery error $|\beta_T - \beta^*|\,/\,|\beta^*|$ (GD)", log=True),
    "theory_recovery_error": Label(
        r"recovery error $|\beta_\infty - \beta^*|\,/\,|\beta^*|$ (flow's implicit bias)", log=True
    ),
    "error": Label(r"$|\beta_T - \beta_\infty|\,/\,|\beta_\infty|$, GD vs flow limit", log=True),
    "residual": Label(r"residual $|X\beta_T - y|\,/\,|y|$", log=True),
    "l1_norm": Label(r"$|\beta_T|_1$ (GD)"),
    "theory_l1_norm": Label(r"$|\beta_\infty|_1$ (flow's implicit bias)"),
    "sharpness": Label(r"sharpness at the flow's limit $S_\infty$", log=True),
    "edge_ratio": Label(r"$\eta S_\infty / 2$ (stability edge at 1)", log=True),
    "loss": Label("final loss", log=True),
}

DIAGONAL_STUDY_KWARGS = dict(
    name="diagonal",
    description=(
        "Diagonal linear network beta = u*u - v*v (u0 = v0 = alpha) trained by gradient descent on "
        "a sparse regression (Woodworth et al. 2020; Even et al. 2023): alpha x learning rate; "
        "recovery error of the k-sparse target beside the flow's implicit bias (min Q_alpha "
        "interpolator: l2 for large alpha, l1 as alpha -> 0) and the GD stability edge at it."
    ),
    axes={"alpha": 0.01, "lr": 0.01},
    params={"n": 20, "d": 50, "k": 3, "task_seed": 0, "steps": 20000, "tol": 1e-3},
    make=diagonal_make,
    plot={
        "x": "alpha",
        "y": "lr",
        "value": "recovery_error",
        "theory": "theory_recovery_error",
        "boundary": "edge_ratio",
        "boundary_label": r"theory: $\eta S_\infty = 2$ (GD edge)",
    },
    labels=DIAGONAL_LABELS,
    rules=DIAGONAL_RULES,
)
