r"""Built-in study ``committee``: online SGD of a committee machine beside its teacher-student ODEs.

Teacher ``phi*(x) = sum_{m<M} g(w*_m.x / sqrt N)`` (``v* = 1``, ``T = W* W*^T / N = I`` exactly),
student ``phi(x) = sum_{k<K} v_k g(w_k.x / sqrt N)`` with ``g(x) = erf(x / sqrt 2)``, labels
``y = phi*(x) + sigma z``, one fresh Gaussian sample a step (Saad & Solla 1995; Goldt et al. 2019,
arXiv 1906.08632). At every grid point (``lr``, ``K``, ``init_overlap``, ``seed``) one run of
``simulate.online_sgd_committee`` at input dimension ``N`` goes to ``alpha = steps / N`` and
``exact.committee_ode`` is integrated from the SAME initial order parameters (those of the
simulation's weights), so the two differ only by the finite-N fluctuations of SGD.

The start is built on orthonormal directions ``e_0 .. e_{K_max + M - 1}`` (from `init_seed`, fixed
across seeds): ``w*_m = sqrt N e_m``, ``w_k = sum_m R0_km w*_m + init_norm sqrt N e_{M+k}``, with
``R0 = init_overlap G`` (``G`` a fixed (K_max, M) standard Gaussian draw), so ``R(0) = R0`` and
``Q(0) = R0 R0^T + init_norm^2 I`` exactly. Small `init_overlap` gives the symmetric plateau, whose
length grows like ``log(1 / init_overlap)`` (``plateau_length``); `seed` only changes the samples
(``SweepResult.over_seeds`` averages them).

Widths are swept without recompilation by zero-padding the student to the largest ``K`` of the
grid: a unit with ``w_k = 0`` and ``v_k = 0`` stays zero under SGD (``dw_k ~ v_k = 0``, ``dv_k ~
g(0) = erf(0) = 0``) and contributes nothing to ``phi``; in the ODE its row of ``Q``, ``R`` and its
``v_k`` have zero derivative (every term carries ``v_k`` or ``I2(k, .) = E[g(0) .] = 0``). The
padded simulation is the unpadded one to rounding; the padded ODE to the solver's tolerance (the
step-size control norms over the padded state).

Outputs: ``eps_g`` (simulated final ``1/2 E[(phi - phi*)^2]``, label noise excluded; ``inf`` once
diverged), ``theory_eps_g`` (the ODE's), ``eps_g0`` (initial), ``plateau_length`` /
``theory_plateau_length`` (the first ``alpha`` at which ``eps_g`` falls below `learned_fraction`
times its initial value, log-linear interpolation; ``inf`` if never: with a small start this is the
time spent on the plateau plus an O(1) first phase), ``error`` (``max_t |eps_sim - eps_ode| /
max_t eps_ode`` over the records: one run's relative gap, dominated by the ``O(1/sqrt N)``
fluctuation of its plateau escape), ``status`` and ``diverged`` (of the simulation; erf units
saturate, so above the largest useful rate the error stays high while the norms grow only
algebraically: see ``exact.committee_ode``), ``theory_status``.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import exact, simulate
from ..plot import Label
from ._rules import POSITIVE, POSITIVE_INT, SEED, Rule, integer

__all__ = [
    "COMMITTEE_LABELS",
    "COMMITTEE_RULES",
    "COMMITTEE_STUDY_KWARGS",
    "committee_make",
    "committee_start",
]

NON_NEGATIVE = Rule("non-negative", lambda v: v >= 0)
_FRACTION = Rule("in (0, 1)", lambda v: (v > 0) & (v < 1))
COMMITTEE_RULES = {
    "lr": POSITIVE,
    "K": POSITIVE_INT,
    "init_overlap": NON_NEGATIVE,
    "seed": integer(0, text="an integer >= 0 (independent repetitions: use {range = n})"),
    "N": integer(2, text="an integer >= 2 (the input dimension)"),
    "M": POSITIVE_INT,
    "init_norm": NON_NEGATIVE,
    "init_seed": SEED,
    "noise": NON_NEGATIVE,
    "alpha": POSITIVE,
    "n_records": integer(1, text="an integer >= 1 (records after the start)"),
    "learned_fraction": _FRACTION,
}


def committee_start(key, *, N: int, K: int, M: int, init_overlap, init_norm, dtype):
    r"""Teacher and student weights with exact initial order parameters (module docstring).

    ``W* = sqrt N E[:M]``, ``W0 = R0 W* + init_norm sqrt N E[M:M+K]`` with ``E`` (K + M, N)
    orthonormal rows and ``R0 = init_overlap G``, ``G ~ N(0, 1)`` (K, M): ``T = I``, ``R(0) = R0``,
    ``Q(0) = R0 R0^T + init_norm^2 I``. Needs ``N >= K + M``.

    **Arguments:**

    - `key`: PRNG key of the directions and of ``G``.
    - `N`, `K`, `M`: input dimension, student and teacher widths (static ints).
    - `init_overlap`, `init_norm`: scalars (traced allowed); `dtype`: float dtype.

    **Returns:** ``(W_star, W0)`` of shapes (M, N) and (K, N).
    """
    k_dirs, k_overlap = jr.split(key)
    E = jnp.linalg.qr(jr.normal(k_dirs, (N, K + M), dtype))[0].T  # (K + M, N) orthonormal rows
    sqrt_n = jnp.sqrt(jnp.asarray(N, dtype))
    W_star = sqrt_n * E[:M]
    R0 = jnp.asarray(init_overlap, dtype) * jr.normal(k_overlap, (K, M), dtype)
    W0 = R0 @ W_star + jnp.asarray(init_norm, dtype) * sqrt_n * E[M:]
    return W_star, W0


def _point(*, lr, K, init_overlap, key, max_K, params):
    from ._studies import time_to_learn  # (lazily: _studies imports this module)

    dtype = jnp.result_type(float)  # the sweep's float dtype (axes may come as integers)
    N, M = int(params["N"]), int(params["M"])
    n_records = int(params["n_records"])
    every = max(1, int(round(params["alpha"] * N / n_records)))
    lr = jnp.asarray(lr, dtype)
    noise = jnp.asarray(params["noise"], dtype)
    train_readout = bool(params["train_readout"])
    W_star, W0 = committee_start(
        jr.PRNGKey(int(params["init_seed"])), N=N, K=max_K, M=M, init_overlap=init_overlap,
        init_norm=params["init_norm"], dtype=dtype,
    )
    mask = (jnp.arange(max_K) < K).astype(dtype)  # zero-padded units: w = 0, v = 0 (exact)
    W0, v0, v_star = W0 * mask[:, None], mask, jnp.ones((M,), dtype)
    run = simulate.online_sgd_committee(
        key, N=N, K=max_K, M=M, lr=lr, steps=every * n_records, record_every=every, noise=noise,
        train_readout=train_readout, teacher=(W_star, v_star), student=(W0, v0),
    )
    Q0, R0, T, _, _ = simulate.committee_order_parameters(W0, v0, W_star, v_star)
    ode = exact.committee_ode(
        run.alpha, Q0=Q0, R0=R0, T=T, v0=v0, v_star=v_star, lr=lr, noise=noise,
        train_readout=train_readout,
    )
    fraction = params["learned_fraction"]
    live = jnp.isfinite(run.eps_g) & jnp.isfinite(ode.eps_g)
    gap = jnp.max(jnp.where(live, jnp.abs(run.eps_g - ode.eps_g), 0.0))
    scale = jnp.max(jnp.where(jnp.isfinite(ode.eps_g), ode.eps_g, 0.0))
    return {
        "eps_g": run.eps_g[-1],
        "theory_eps_g": ode.eps_g[-1],
        "eps_g0": run.eps_g[0],
        "plateau_length": time_to_learn(run.alpha, run.eps_g, fraction),
        "theory_plateau_length": time_to_learn(run.alpha, ode.eps_g, fraction),
        "error": gap / jnp.maximum(scale, jnp.finfo(dtype).tiny),
        "status": run.status,
        "diverged": run.diverged,
        "theory_status": ode.status,
    }


def committee_make(params, axes):
    """Point function of the ``committee`` study (see the module docstring).

    **Arguments:** `params` (the study's fixed parameters), `axes` (the grid's axes: the largest
    ``K`` sets the padded width). **Returns:** ``point(lr, K, init_overlap, seed, key) -> dict``.
    """
    max_K = int(np.max(np.asarray(axes["K"])))
    if int(params["N"]) < max_K + int(params["M"]):
        from ._config import ConfigError

        raise ConfigError(
            f"`params.N` must be >= the largest K plus M = {max_K + int(params['M'])} (orthonormal "
            f"start directions); got {params['N']!r}."
        )
    if not isinstance(params["train_readout"], bool):
        from ._config import ConfigError

        raise ConfigError(f"`params.train_readout` must be true or false; got {params['train_readout']!r}.")

    def point(lr, K, init_overlap, seed, key):
        del seed  # the repetition index: the point's own key draws independent samples
        return _point(lr=lr, K=K, init_overlap=init_overlap, key=key, max_K=max_K, params=params)

    return point


COMMITTEE_LABELS = {
    "status": Label("outcome", ticks=("converged", "diverged", "step_limit")),
    "theory_status": Label("ODE outcome", ticks=("converged", "diverged", "step_limit")),
    "diverged": Label("diverged"),
    "lr": Label(r"learning rate $\eta$", log=True),
    "K": Label("student width K"),
    "init_overlap": Label(r"initial overlap scale $R_0$", log=True),
    "seed": Label("seed"),
    "eps_g": Label(r"final $\epsilon_g$ (SGD, mean over seeds)", log=True),
    "theory_eps_g": Label(r"final $\epsilon_g$ (ODE)", log=True),
    "eps_g0": Label(r"initial $\epsilon_g$", log=True),
    "plateau_length": Label(r"time to learn $\alpha$ (SGD; mostly the plateau)", log=True),
    "theory_plateau_length": Label(r"time to learn $\alpha$ (ODE; mostly the plateau)", log=True),
    "error": Label(r"max $|\epsilon_{sim} - \epsilon_{ODE}|\,/\,\max \epsilon_{ODE}$", log=True),
}

COMMITTEE_STUDY_KWARGS = dict(
    name="committee",
    description=(
        "Soft committee machine / two-layer erf network learning a committee teacher by online "
        "SGD (Saad & Solla 1995; Goldt et al. 2019): learning rate x student width K (x initial "
        "overlap, seed); final generalisation error and plateau length from SGD at input "
        "dimension N beside the teacher-student ODEs started from the same order parameters."
    ),
    axes={"lr": 1.0, "K": 2, "init_overlap": 0.05, "seed": 0},
    params={
        "N": 1000,
        "M": 2,
        "init_norm": 0.1,
        "init_seed": 0,
        "noise": 0.0,
        "train_readout": False,
        "alpha": 100.0,
        "n_records": 50,
        "learned_fraction": 0.01,
    },
    make=committee_make,
    plot={"x": "lr", "y": "K", "value": "eps_g", "theory": "theory_eps_g"},
    labels=COMMITTEE_LABELS,
    rules=COMMITTEE_RULES,
)
