"""Built-in study ``learning-rate``: lazy / catapult / divergent GD of the width-d network.

At every grid point (width, ``lr lambda_0``, layer-rate ratio, init scale) the network
``f(x) = kappa (u . w) x`` (``kappa = width^-c``) is trained by gradient descent of the FULL
vectors (``simulate.gradient_descent``) and, beside it, by the exact 3-D map
(``exact.one_hidden_layer_gd``, ``exact.gd_phase``), with the theory's two phase boundaries from
``exact.gd_phase_boundaries``. The learning rate is set in units of the start's curvature:
``lr_lambda0 = m2 kappa^2 (lr_u |w0|^2 + lr_w |u0|^2)`` with ``lr_u = lr / sqrt(r)``,
``lr_w = lr sqrt(r)``, ``r = lr_ratio``; Lewkowycz et al. (2020, arXiv 2003.02218) predict the
boundaries 2 (lazy | catapult) and 4 (catapult | divergent, ``s = 0``) for wide nets.

Outputs: ``phase`` / ``theory_phase`` (codes of ``exact.GD_PHASES``: lazy, catapult, diverged,
undecided), ``lr_lambda_final`` / ``theory_lr_lambda_final`` (the final ``m2 K_lr``, < 2 at a
stable minimum; NaN once diverged), ``peak_loss_ratio`` / ``theory_peak_loss_ratio``,
``ntk_change``, ``x_catapult`` and ``x_diverge`` (the boundaries in units of ``lr lambda_0``),
``catapult_window = min(x / x_catapult, x_diverge / x)`` (level 1 on both boundaries: the contour
drawn by ``linsolve plot``), ``error`` (max relative difference of ``F`` between the map and the
simulation over the steps before divergence), ``loss``, ``status``, ``diverged``.
"""

from __future__ import annotations

import jax.numpy as jnp
import jax.random as jr

from .. import exact, simulate, tasks

__all__ = ["learning_rate_make", "simulated_phase"]


def simulated_phase(F, lr_lambda, loss, diverged, *, s, tol):
    """GD phase code (``exact.GD_PHASES``) of a simulated run from its per-step records.

    Converged: the last ``|F - s|`` within `tol` of ``max(|s|, |F_0 - s|)`` and the last
    ``lr_lambda < 2``; then "catapult" if the loss ever exceeded its initial value, else "lazy".
    """
    dtype = F.dtype
    scale = jnp.maximum(jnp.maximum(jnp.abs(s), jnp.abs(F[0] - s)), jnp.finfo(dtype).tiny)
    converged = (jnp.abs(F[-1] - s) <= tol * scale) & (lr_lambda[-1] < 2)
    spike = jnp.max(jnp.where(jnp.isfinite(loss), loss, -jnp.inf)) > loss[0] * (
        1 + 64 * jnp.finfo(dtype).eps)
    return jnp.where(diverged, 2, jnp.where(converged, jnp.where(spike, 1, 0), 3)).astype(jnp.int32)


def _point(*, width, max_width, x, ratio, init_scale, c, s, m2, steps, key):
    dtype = jnp.result_type(float)
    x, ratio, init_scale, c = (jnp.asarray(v, dtype) for v in (x, ratio, init_scale, c))
    d = jnp.asarray(width, dtype)
    mask = (jnp.arange(max_width) < width).astype(dtype)
    ku, kw = jr.split(key)
    u0 = init_scale * jr.normal(ku, (max_width,), dtype) * mask
    w0 = init_scale * jr.normal(kw, (max_width,), dtype) * mask
    kappa = d ** (-c)
    lam0 = m2 * kappa**2 * (w0 @ w0 / jnp.sqrt(ratio) + u0 @ u0 * jnp.sqrt(ratio))
    lr = x / lam0
    lr_u, lr_w = lr / jnp.sqrt(ratio), lr * jnp.sqrt(ratio)
    tol = jnp.sqrt(jnp.finfo(dtype).eps)

    def observe(params):
        w, u = params[0][:, 0], params[1][0, :]
        return {"F": kappa * u @ w, "K": m2 * kappa**2 * (lr_u * w @ w + lr_w * u @ u)}

    traj = simulate.gradient_descent(
        (w0[:, None], u0[None, :]), tasks.scalar(s=s, m2=m2, dtype=dtype), lrs=(lr_w, lr_u),
        steps=steps, output_scale=kappa, record_params=False, observe=observe,
    )
    F_sim, K_sim = traj.observables["F"], traj.observables["K"]
    phase = simulated_phase(F_sim, K_sim, traj.loss, traj.diverged, s=s, tol=tol)
    theory = exact.gd_phase(u0, w0, s=s, m2=m2, kappa=kappa, lr_u=lr_u, lr_w=lr_w,
                            max_steps=steps, tol=tol)
    path = exact.one_hidden_layer_gd(jnp.arange(steps + 1), u0, w0, s=s, m2=m2, kappa=kappa,
                                     lr_u=lr_u, lr_w=lr_w)
    live = ~(path.diverged | jnp.isinf(traj.loss))
    diff = jnp.where(live, jnp.abs(path.F - F_sim), 0.0)
    error = jnp.max(diff) / jnp.maximum(jnp.max(jnp.where(live, jnp.abs(F_sim), 0.0)),
                                        jnp.finfo(dtype).tiny)
    bounds = exact.gd_phase_boundaries(u0, w0, s=s, m2=m2, kappa=kappa, lr_ratio=ratio,
                                       max_steps=steps, tol=tol)
    x_cat, x_div = bounds.lr_catapult * bounds.lambda0, bounds.lr_diverge * bounds.lambda0
    nan = jnp.asarray(jnp.nan, dtype)
    final_K = jnp.where(traj.diverged, nan, K_sim[-1])
    return {
        "phase": phase,
        "theory_phase": theory.code,
        "lr_lambda_final": final_K,
        "theory_lr_lambda_final": jnp.where(theory.code == 2, nan, theory.lr_lambda),
        "peak_loss_ratio": jnp.max(jnp.where(jnp.isfinite(traj.loss), traj.loss, 0)) / traj.loss[0],
        "theory_peak_loss_ratio": theory.peak_loss / theory.loss0,
        "ntk_change": jnp.where(traj.diverged, nan, jnp.abs(K_sim[-1] - K_sim[0]) / K_sim[0]),
        "x_catapult": x_cat,
        "x_diverge": x_div,
        "catapult_window": jnp.minimum(x / x_cat, x_div / x),
        "error": error,
        "loss": traj.loss[-1],
        "status": traj.status,
        "diverged": traj.diverged,
    }


def learning_rate_make(params, axes):
    """Point function of the ``learning-rate`` study (see the module docstring)."""
    max_width = int(max(int(w) for w in jnp.atleast_1d(jnp.asarray(axes["width"]))))
    fixed = dict(c=params["output_exponent"], s=params["s"], m2=params["m2"],
                 steps=int(params["steps"]))

    def point(width, lr_lambda0, lr_ratio, init_scale, key):
        return _point(width=width, max_width=max_width, x=lr_lambda0, ratio=lr_ratio,
                      init_scale=init_scale, key=key, **fixed)

    return point
