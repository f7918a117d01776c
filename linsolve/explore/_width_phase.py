r"""The ``width-phase`` explorer: kernel vs feature learning of the width-d one-hidden-layer network.

The network ``f(x) = kappa (u . w) x`` (Xu & Ziyin) on one-dimensional data (target ``s = 1``,
``m2 = 1``), width ``d``, output scale ``kappa = d^-c``, random init ``u0, w0 ~ N(0, d^-a)``
(one fixed draw, its first d entries at width d), layer rates ``eta_u = 1/sqrt(rho)``,
``eta_w = sqrt(rho)`` (ratio ``rho = eta_w/eta_u``). The NTK ``K = kappa^2 sqrt(B^2 + A^2 F^2)``
moves from ``K(0)`` to ``K(inf)``, with the exact ratio (``exact.regime``)

    K(inf)/K(0) = sqrt(1 + r^2) / sqrt(1 + r0^2),   r = A|s|/B,  r0 = A|F0|/B,
    A = 2 sqrt(eta_u eta_w)/kappa,  B = ||eta_w u0 u0^T - eta_u w0 w0^T||_*,

so the phase ratio ``r ~ d^(c + a - 1)`` (``exact.width_exponent``) separates the kernel phase
(``r << 1``: the NTK hardly moves) from feature learning (``r >> 1``); ``r = 1`` is the boundary.
"""

from __future__ import annotations

import functools

import numpy as np

from ._spec import Explorer, Panel, Slider

__all__ = ["WIDTH_PHASE", "width_phase_curves", "width_phase_simulation"]

WIDTHS = tuple(2**k for k in range(3, 12))  # 8 ... 2048
OUTPUT_EXPONENTS = tuple(float(c) for c in np.round(np.linspace(0.0, 2.0, 11), 2))
CUTS = (0.4, 1.0, 1.6)  # output exponents of the line panel (and of the simulation)
TARGET = 1.0
_HORIZON = 40.0  # simulated time, in time constants of the slower of the kernel and rich rates


def _check(lr_ratio, init_exponent) -> tuple[float, float]:
    lr_ratio, init_exponent = float(lr_ratio), float(init_exponent)
    if not (np.isfinite(lr_ratio) and lr_ratio > 0):
        raise ValueError(f"`lr_ratio` must be finite and > 0; got {lr_ratio!r}.")
    if not np.isfinite(init_exponent):
        raise ValueError(f"`init_exponent` must be finite; got {init_exponent!r}.")
    return lr_ratio, init_exponent


def _points(widths, exponents, lr_ratio, init_exponent):
    """Padded inits and scalars of every (exponent, width) point, flattened in C order."""
    import jax.numpy as jnp
    import jax.random as jr

    dtype = jnp.result_type(float)
    d_max = max(WIDTHS)
    xi, zeta = jr.normal(jr.PRNGKey(0), (2, d_max), dtype)
    d = jnp.asarray(np.tile(widths, len(exponents)), dtype)
    c = jnp.asarray(np.repeat(exponents, len(widths)), dtype)
    mask = (jnp.arange(d_max)[None, :] < d[:, None]).astype(dtype)
    sigma = d[:, None] ** (-init_exponent / 2)
    u0, w0 = sigma * xi * mask, sigma * zeta * mask
    kappa = d ** (-c)
    eta_u = jnp.full_like(d, 1 / np.sqrt(lr_ratio))
    eta_w = jnp.full_like(d, np.sqrt(lr_ratio))
    return u0, w0, kappa, eta_u, eta_w


@functools.cache
def _regime_batch():
    """``exact.regime`` vmapped over the points (one compilation per shape)."""
    import jax

    from .. import exact

    def one(u0, w0, kappa, eta_u, eta_w):
        info = exact.regime(u0, w0, s=TARGET, kappa=kappa, eta_u=eta_u, eta_w=eta_w)
        return info.kernel_ratio, info.r

    return jax.jit(jax.vmap(one))


def width_phase_curves(*, lr_ratio, init_exponent=0.0) -> dict:
    r"""The NTK change ``|K(inf)/K(0) - 1|`` and phase ratio r over width x output exponent.

    At each width ``d`` (8 ... 2048) and output exponent ``c`` (``kappa = d^-c``, 0 ... 2):
    ``exact.regime(u0, w0, s=1, kappa=kappa, eta_u=1/sqrt(lr_ratio), eta_w=sqrt(lr_ratio))``,
    ``u0, w0 = d^(-a/2) (xi, zeta)[:d]`` (one fixed Gaussian draw), giving
    ``K(inf)/K(0) = sqrt(1 + r^2)/sqrt(1 + r0^2)`` and ``r = A|s|/B``.

    **Arguments:** `lr_ratio`: ``eta_w/eta_u > 0``; `init_exponent`: ``a`` in
    ``sigma^2 = d^-a``.

    **Returns:** dict with ``"width"`` (W,), ``"c"`` (C,), ``"log_change"`` (C, W) =
    ``log10 |K(inf)/K(0) - 1|``, ``"log_r"`` (C, W) = ``log10 r`` (the boundary ``r = 1`` is its
    zero contour) and ``"cut0"``, ``"cut1"``, ``"cut2"`` (W,): ``|K(inf)/K(0) - 1|`` at
    ``c = 0.4, 1, 1.6``.

    Reference: Xu & Ziyin, "Three Mechanisms of Feature Learning in a Linear Network", ICLR 2025
    (arXiv:2401.07085).
    """
    lr_ratio, a = _check(lr_ratio, init_exponent)
    widths = np.asarray(WIDTHS, np.float64)
    exponents = np.asarray(OUTPUT_EXPONENTS, np.float64)
    ratio, r = (np.asarray(x, np.float64) for x in _regime_batch()(
        *_points(widths, exponents, lr_ratio, a)))
    change = np.abs(ratio - 1).reshape(len(exponents), len(widths))
    with np.errstate(divide="ignore"):
        out = {
            "width": widths,
            "c": exponents,
            "log_change": np.log10(change),
            "log_r": np.log10(r.reshape(change.shape)),
        }
    for i, c in enumerate(CUTS):
        out[f"cut{i}"] = change[OUTPUT_EXPONENTS.index(c)]
    return out


def width_phase_simulation(*, lr_ratio, init_exponent=0.0) -> dict:
    """Gradient flow of the weights at the cuts ``c = 0.4, 1, 1.6`` of :func:`width_phase_curves`.

    At each width and cut: ``simulate.gradient_flow(((w0[:, None], u0[None, :])), tasks.scalar(s=1),
    ...)`` with rates ``(eta_w, eta_u)`` and output scale ``kappa``, for 40 time constants of the
    slower of the kernel and rich rates (``40 (1 + ln(1 + r)) / (kappa^2 (B + A|s|))``); all points
    in one vmapped solve, the time rescaled into the rates. The NTK change is
    ``|K(T) - K(0)| / K(0)``, ``K = kappa^2 (eta_u |w|^2 + eta_w |u|^2)``. Float64 when JAX runs
    with ``jax_enable_x64``.

    **Returns:** dict with ``"width"`` and ``"cut0"``, ``"cut1"``, ``"cut2"`` (W,) as in
    :func:`width_phase_curves`, plus ``"diverged"`` (the number of diverged runs).
    """
    import jax
    import jax.numpy as jnp

    from .. import simulate, tasks

    lr_ratio, a = _check(lr_ratio, init_exponent)
    widths = np.asarray(WIDTHS, np.float64)
    u0, w0, kappa, eta_u, eta_w = _points(widths, np.asarray(CUTS), lr_ratio, a)
    A = 2 * jnp.sqrt(eta_u * eta_w) / kappa
    c1 = eta_w * jnp.sum(u0 * u0, -1) - eta_u * jnp.sum(w0 * w0, -1)
    D = jnp.sum(u0 * u0, -1) * jnp.sum(w0 * w0, -1) - jnp.sum(u0 * w0, -1) ** 2
    B = jnp.sqrt(c1**2 + 4 * eta_u * eta_w * jnp.maximum(D, 0.0))
    T = _HORIZON * (1 + jnp.log1p(A * TARGET / B)) / (kappa**2 * (B + A * TARGET))
    task = tasks.scalar(s=TARGET, dtype=u0.dtype)
    ts = jnp.asarray([0.0, 1.0], u0.dtype)

    def run(u, w, k, lr_w, lr_u):
        traj = simulate.gradient_flow((w[:, None], u[None, :]), task, ts, lrs=jnp.stack([lr_w, lr_u]),
                                      output_scale=k)
        wT, uT = traj.params[0][-1, :, 0], traj.params[1][-1, 0, :]
        # K_T - K_0 from the weight changes: (x_T - x_0).(x_T + x_0), no cancellation.
        delta = lr_u * (wT - w) @ (wT + w) + lr_w * (uT - u) @ (uT + u)
        return jnp.abs(delta) / (lr_u * w @ w + lr_w * u @ u), traj.diverged

    change, diverged = jax.vmap(run)(u0, w0, kappa, eta_w * T, eta_u * T)
    change = np.asarray(change, np.float64).reshape(len(CUTS), len(widths))
    out = {"width": widths, **{f"cut{i}": change[i] for i in range(len(CUTS))}}
    out["diverged"] = np.asarray(float(np.sum(np.asarray(diverged))))
    return out


WIDTH_PHASE = Explorer(
    name="width-phase",
    title="Width x output scale: the kernel / feature-learning phase diagram",
    description=(
        "The width-d one-hidden-layer linear network f(x) = kappa (u.w) x on one-dimensional data "
        "(Xu & Ziyin 2025), random init u0, w0 ~ N(0, d^-a), output scale kappa = d^-c, layer "
        "rates eta_w/eta_u = rho. Its exact solution moves the NTK by the factor "
        "K(inf)/K(0) = sqrt(1 + r^2)/sqrt(1 + r0^2) with the phase ratio r = A|s|/B ~ d^(c+a-1): "
        "the heat map shows log10 |K(inf)/K(0) - 1| over width and c, the white line the phase "
        "boundary r = 1 (the kernel phase r < 1 lies at large width and small c). The right "
        "panel cuts the map at c = 0.4, 1 and 1.6. Move the learning-rate ratio and the init exponent "
        "to shift the boundary."
    ),
    sliders=(
        Slider("lr_ratio", "learning-rate ratio eta_w / eta_u",
               tuple(float(2.0**k) for k in range(-4, 5)), default=4),
        Slider("init_exponent", "init exponent a (sigma^2 = d^-a)", (0.0, 0.5, 1.0), default=0),
    ),
    panels=(
        Panel("heatmap", "log10 NTK change |K(inf)/K(0) - 1|", "width d", "output exponent c",
              "width", (("log_change", "log10 change"), ("log_r", "r = 1")), y="c", log_x=True),
        Panel("lines", "NTK change at c = 0.4, 1, 1.6", "width d", "|K(inf)/K(0) - 1|", "width",
              tuple((f"cut{i}", f"c = {c:g}") for i, c in enumerate(CUTS)), log_x=True, log_y=True),
    ),
    curves=width_phase_curves,
    simulate=width_phase_simulation,
)
