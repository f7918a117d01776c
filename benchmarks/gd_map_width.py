"""Cost of the exact GD map of the width-d network against GD of the full vectors, vs width.

``python benchmarks/gd_map_width.py``: 2000 GD steps of ``f(x) = kappa (u.w) x`` in float64 at
``lr lambda_0 = 3`` (catapult), by ``exact.one_hidden_layer_gd(..., weights=False)`` (the 3-D map)
and by ``simulate.gradient_descent`` (full vectors, final weights only), for widths 1 to 1e6.
Each time is the best of 3 after one warm-up (compilation excluded); the printed ratio is
simulation / map in the same run.
"""

import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.random as jr  # noqa: E402

from linsolve import exact, simulate, tasks  # noqa: E402

STEPS = 2000


def best(fn, repeats=3):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    print("| width | exact map (s) | full-vector GD (s) | GD / map | max abs diff of final F |")
    print("|---|---|---|---|---|")
    for d in (1, 100, 10_000, 1_000_000):
        ku, kw = jr.split(jr.PRNGKey(d))
        u0, w0 = jr.normal(ku, (d,)), jr.normal(kw, (d,))
        kappa = d**-0.5
        lr = 3.0 / (kappa**2 * float(u0 @ u0 + w0 @ w0))
        task = tasks.scalar(s=0.5)
        run_map = lambda: exact.one_hidden_layer_gd(STEPS, u0, w0, s=0.5, kappa=kappa, lr_u=lr,
                                                    lr_w=lr, weights=False).F
        run_gd = lambda: simulate.gradient_descent(
            (w0[:, None], u0[None, :]), task, lrs=lr, steps=STEPS, record_every=STEPS,
            record_params=False, output_scale=kappa).params
        t_map, t_gd = best(run_map), best(run_gd)
        W, U = run_gd()
        diff = abs(float(run_map()) - kappa * float(U[0] @ W[:, 0]))
        print(f"| {d:,} | {t_map:.4f} | {t_gd:.4f} | {t_gd / t_map:.0f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
