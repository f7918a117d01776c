r"""Built-in study ``sgd``: online minibatch SGD on power-law linear regression, simulation vs theory.

Inputs ``x ~ N(0, diag(lam))`` in dimension d with ``lam_k = k^-a`` (``a`` = `spectrum_exponent`,
so ``lam_max = 1``), teacher ``w*`` with ``lam_k w*_k^2 = k^-b / sum_j j^-b`` (``b`` =
`target_exponent`: the initial excess risk from ``w_0 = 0`` is 1/2), label noise ``sigma``
(`noise`). At every grid point (``lr_fraction``, ``batch_size``, ``seed``) one run of
``simulate.online_linear_sgd`` (B fresh samples a step) gives the final population risk, and
``exact.sgd_risk`` gives its expectation (Bordelon & Pehlevan 2021, arXiv 2106.02713; Paquette et
al. 2024, arXiv 2405.15074).

The learning rate is in units of gradient descent's edge: ``lr = lr_fraction * 2 / lam_max``. SGD's
own edge ``lr*(B) = exact.sgd_max_learning_rate`` lies below it (about ``2B / tr Sigma`` for small
batches) and moves to ``lr_fraction = 1`` as ``B`` grows; ``edge_ratio = lr / lr*(B)`` has level 1
there (the contour drawn by ``linsolve plot``). Seeds are independent draws (every grid point has
its own key); ``SweepResult.over_seeds`` reduces them to the mean risk and its standard error.

Outputs: ``risk`` (simulated final risk; ``inf`` once diverged), ``theory_risk`` (its exact
expectation; ``inf`` above the simulator's divergence threshold ``1e8 (R_0 + 1)``), ``risk0``
(the initial risk), ``edge`` (``lr*(B)``), ``lr``,
``edge_ratio``, ``spectral_radius`` (of the exact second-moment recursion; > 1 beyond the edge),
``status`` and ``diverged`` (risk above ``1e8 (R_0 + 1)`` or non-finite).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import exact, simulate
from ._rules import POSITIVE, POSITIVE_INT, Rule, integer

__all__ = ["sgd_make", "power_law_problem", "SGD_RULES", "DIVERGENCE_FACTOR"]

#: A run, and the exact expectation, count as diverged above ``DIVERGENCE_FACTOR (R_0 + 1)``.
DIVERGENCE_FACTOR = 1e8

NON_NEGATIVE = Rule("non-negative", lambda v: v >= 0)
SGD_RULES = {
    "lr_fraction": POSITIVE,
    "batch_size": POSITIVE_INT,
    "seed": integer(0, text="an integer >= 0 (independent repetitions: use {range = n})"),
    "d": POSITIVE_INT,
    "spectrum_exponent": NON_NEGATIVE,
    "noise": NON_NEGATIVE,
    "steps": POSITIVE_INT,
}


def power_law_problem(d: int, spectrum_exponent, target_exponent, dtype):
    r"""``(lam, w_star)``: ``lam_k = k^-a`` and ``w*_k = sqrt(k^-b / (lam_k sum_j j^-b))``, k = 1..d.

    **Returns:** two (d,) arrays of `dtype`; ``1/2 sum_k lam_k w*_k^2 = 1/2``.
    """
    k = jnp.arange(1, d + 1, dtype=dtype)
    lam = k ** (-jnp.asarray(spectrum_exponent, dtype))
    target = k ** (-jnp.asarray(target_exponent, dtype))
    return lam, jnp.sqrt(target / jnp.sum(target) / lam)


def _theory_table(lr_fractions, batch_sizes, d, a, b, noise, steps):
    """Exact ``(risk, edge, spectral_radius)`` on the (lr, batch size) grid, numpy (n_lr, n_B).

    They do not depend on the seed, so they are computed once here, not at every draw (and the
    eigensolver stays out of the sharded sweep call: XLA's CPU runtime was seen to hang with
    ``eigh`` beside the simulator's ``scan`` in one program split over two devices, jax 0.10.2).
    """
    dtype = jnp.result_type(float)
    lam, w_star = power_law_problem(d, a, b, dtype)
    sigma = jnp.asarray(noise, dtype)

    def exact_point(fraction, B):
        lr = fraction * 2 / jnp.max(lam)
        theory = exact.sgd_risk(steps, eigenvalues=lam, c0=w_star**2, lr=lr, batch_size=B, noise=sigma)
        return theory.risk, theory.spectral_radius

    fractions, sizes = (jnp.asarray(v, dtype) for v in np.meshgrid(lr_fractions, batch_sizes, indexing="ij"))
    risk, radius = jax.jit(jax.vmap(exact_point))(fractions.ravel(), sizes.ravel())
    # Beyond the simulator's divergence threshold the expectation counts as diverged too (inf).
    risk0 = 0.5 * jnp.sum(lam * w_star**2) + 0.5 * sigma**2
    risk = jnp.where(risk > DIVERGENCE_FACTOR * (risk0 + 1), jnp.inf, risk)
    # One call per batch size, outside jit (`sgd_max_learning_rate` checks its eigenvalues eagerly).
    edges = np.asarray([exact.sgd_max_learning_rate(lam, batch_size=B) for B in batch_sizes])
    shape = fractions.shape
    return np.asarray(risk).reshape(shape), np.broadcast_to(edges, shape), np.asarray(radius).reshape(shape)


def sgd_make(params, axes):
    """Point function of the ``sgd`` study (see the module docstring)."""
    lr_axis = np.asarray(axes["lr_fraction"], float)
    batch_axis = np.asarray(axes["batch_size"], float)
    max_batch = int(np.max(batch_axis))
    d, steps = int(params["d"]), int(params["steps"])
    a, b, noise = params["spectrum_exponent"], params["target_exponent"], params["noise"]
    risk_table, edge_table, radius_table = _theory_table(lr_axis, batch_axis, d, a, b, noise, steps)

    def point(lr_fraction, batch_size, seed, key):
        del seed  # the repetition index: the point's own key makes the draws independent
        dtype = jnp.result_type(float)  # the sweep's float dtype
        lam, w_star = power_law_problem(d, a, b, dtype)
        lr = jnp.asarray(lr_fraction, dtype) * 2 / jnp.max(lam)
        run = simulate.online_linear_sgd(
            key, covariance=lam, w_star=w_star, w0=jnp.zeros((d,), dtype), lr=lr,
            batch_size=jnp.asarray(batch_size, dtype), steps=steps, noise=jnp.asarray(noise, dtype),
            record_every=steps, max_batch_size=max_batch, divergence_factor=DIVERGENCE_FACTOR,
        )
        # This point's row of the exact tables: the grid value nearest to the point's (exact match).
        i = jnp.argmin(jnp.abs(jnp.asarray(lr_axis, dtype) - lr_fraction))
        j = jnp.argmin(jnp.abs(jnp.asarray(batch_axis, dtype) - batch_size))
        edge = jnp.asarray(edge_table, dtype)[i, j]
        return {
            "risk": run.risk[-1],
            "theory_risk": jnp.asarray(risk_table, dtype)[i, j],
            "risk0": run.risk[0],
            "edge": edge,
            "lr": lr,
            "edge_ratio": lr / edge,
            "spectral_radius": jnp.asarray(radius_table, dtype)[i, j],
            "status": run.status,
            "diverged": run.diverged,
        }

    return point
