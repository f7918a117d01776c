r"""The ``lazy-rich`` explorer: lazy vs rich learning of a two-layer net, tuned by the balance lambda.

A 3 -> 3 -> 3 linear network learns a whitened teacher (singular values 3, 2, 1) from a random
lambda-balanced init ``W2^T W2 - W1 W1^T = lam I`` of scale ``sigma`` (``init.lambda_balanced``).
The matrix Riccati solution ``exact.lambda_balanced`` gives the loss, the NTK

    K(t) = I (x) W1^T W1 + W2 W2^T (x) I

and the representations ``W1^T W1``, ``W2 W2^T`` at every time. Small ``|lam|`` and small
``sigma``: rich (sigmoidal loss, the kernel changes by orders of magnitude); ``|lam| >> s``: lazy
(exponential loss, the kernel barely moves; the sign of lam picks the layer that stays put).
"""

from __future__ import annotations

import numpy as np

from ._spec import Explorer, Panel, Slider

__all__ = ["LAZY_RICH", "lazy_rich_curves", "lazy_rich_simulation"]

SINGULAR_VALUES = (3.0, 2.0, 1.0)
SIZES = (3, 3, 3)
N_TIMES = 120
_LAMBDAS = (-10.0, -5.0, -2.0, -1.0, -0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _check(lam, scale) -> tuple[float, float]:
    lam, scale = float(lam), float(scale)
    if not np.isfinite(lam):
        raise ValueError(f"`lam` must be finite; got {lam!r}.")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"`scale` must be finite and > 0; got {scale!r}.")
    return lam, scale


def _setup(lam: float, scale: float):
    """Task, oriented init (``det(W2 W1)`` of the sign of ``det(Syx)``: no saddle to cross) and
    the times ``0 ... 16 (1 + ln(1 + s_min/(|lam| + sigma^2))) / (|lam| + 2 s_min)``."""
    import jax.numpy as jnp
    import jax.random as jr

    from .. import init, tasks

    dtype = jnp.result_type(float)
    task = tasks.teacher(jr.PRNGKey(0), SIZES[0], SIZES[-1], jnp.asarray(SINGULAR_VALUES, dtype))
    target = np.sign(np.linalg.det(np.asarray(task.Syx)))
    for seed in range(1, 40):
        W1, W2 = init.lambda_balanced(jr.PRNGKey(seed), SIZES, lam, scale, dtype=dtype)
        if np.sign(np.linalg.det(np.asarray(W2 @ W1))) == target:
            break
    s_min = min(SINGULAR_VALUES)
    T = 16 * (1 + np.log1p(s_min / (abs(lam) + scale**2))) / (abs(lam) + 2 * s_min)
    return task, W1, W2, np.linspace(0.0, T, N_TIMES)


def _relative_change(X) -> np.ndarray:
    """``|X(t) - X(0)|_F / |X(0)|_F`` for a (T, ...) trajectory."""
    X = np.asarray(X, np.float64)
    axes = tuple(range(1, X.ndim))
    return np.sqrt(np.sum((X - X[0]) ** 2, axis=axes) / np.sum(X[0] ** 2))


def lazy_rich_curves(*, lam, scale) -> dict:
    r"""Loss, NTK change and representation changes of a lambda-balanced two-layer net, exactly.

    From ``exact.lambda_balanced(t, W1, W2, task)`` (``tau = 1``): the loss, and the relative
    changes ``|K(t) - K(0)|_F / |K(0)|_F`` of the NTK ``K = I (x) W1^T W1 + W2 W2^T (x) I``, of the
    input representation ``W1^T W1`` and of the output representation ``W2 W2^T``.

    **Arguments:** `lam`: the balance ``W2^T W2 - W1 W1^T = lam I`` (finite, any sign); `scale`:
    the std ``sigma > 0`` of the Gaussian layer of ``init.lambda_balanced``.

    **Returns:** dict with ``"t"``, ``"loss"``, ``"ntk"``, ``"input"``, ``"output"``, each (T,).

    References: Dominé, Anguita, Proca, Braun, Kunin, Mediano & Saxe (ICLR 2025, arXiv:2409.14623);
    Braun, Dominé, Fitzgerald & Saxe (NeurIPS 2022, arXiv:2212.06860); Fukumizu (1998).
    """
    from .. import exact

    lam, scale = _check(lam, scale)
    task, W1, W2, t = _setup(lam, scale)
    sol = exact.lambda_balanced(t, W1, W2, task)
    return {
        "t": t,
        "loss": np.asarray(sol.loss, np.float64),
        "ntk": _relative_change(sol.ntk),
        "input": _relative_change(sol.input_gram),
        "output": _relative_change(sol.output_gram),
    }


def lazy_rich_simulation(*, lam, scale) -> dict:
    """Gradient flow of ``(W1, W2)`` at the setting of :func:`lazy_rich_curves`, same keys.

    ``simulate.gradient_flow((W1, W2), task, t)``; the NTK is ``models.ntk`` of the weights at each
    time, the representations ``W1^T W1`` and ``W2 W2^T``. Float64 when JAX runs with
    ``jax_enable_x64``. **Returns:** the keys of :func:`lazy_rich_curves` plus ``"diverged"``.
    """
    import jax
    import jax.numpy as jnp

    from .. import models, simulate

    lam, scale = _check(lam, scale)
    task, W1, W2, t = _setup(lam, scale)
    run = simulate.gradient_flow((W1, W2), task, jnp.asarray(t, W1.dtype))
    V1, V2 = run.params
    return {
        "t": np.asarray(run.ts),
        "loss": np.asarray(run.loss, np.float64),
        "ntk": _relative_change(jax.vmap(models.ntk)(run.params)),
        "input": _relative_change(jnp.einsum("tji,tjk->tik", V1, V1)),
        "output": _relative_change(jnp.einsum("tij,tkj->tik", V2, V2)),
        "diverged": np.asarray(float(run.diverged)),
    }


LAZY_RICH = Explorer(
    name="lazy-rich",
    title="Lazy vs rich learning, tuned by the balance lambda",
    description=(
        "A 3-3-3 linear network learns a teacher with singular values 3, 2, 1 from a random "
        "lambda-balanced init (W2^T W2 - W1 W1^T = lambda I, Gaussian layer of std sigma). The "
        "exact Riccati solution (Fukumizu 1998; Braun et al. 2022; Dominé et al. 2025) gives the "
        "loss and the neural tangent kernel K = I (x) W1^T W1 + W2 W2^T (x) I at all times. Near "
        "lambda = 0 with a small init, learning is rich: sigmoidal loss, the kernel changes by "
        "orders of magnitude. For |lambda| much larger than the singular values it is lazy: "
        "exponential loss, the kernel hardly moves, and the sign of lambda picks which "
        "representation (input W1^T W1 or output W2 W2^T) stays put."
    ),
    sliders=(
        Slider("lam", "balance lambda", _LAMBDAS, default=_LAMBDAS.index(0.0)),
        Slider("scale", "init scale sigma", (0.01, 0.03, 0.1, 0.3, 1.0), default=2),
    ),
    panels=(
        Panel("lines", "loss", "time t", "loss", "t", (("loss", "loss"),), log_y=True),
        Panel("lines", "relative change since t = 0", "time t", "|X(t) - X(0)| / |X(0)|", "t",
              (("ntk", "NTK"), ("input", "input W1^T W1"), ("output", "output W2 W2^T")),
              log_y=True),
    ),
    curves=lazy_rich_curves,
    simulate=lazy_rich_simulation,
)
