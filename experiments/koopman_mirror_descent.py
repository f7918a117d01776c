"""Koopman spectra identify a known algorithmic equivalence: mirror descent vs gradient descent.

Redman et al., "Identifying equivalent training dynamics", NeurIPS 2024 (arXiv 2302.09160), Fig. 2,
on the second example of Ghai, Lu & Hazan (2022, arXiv 2205.15235): online mirror descent (OMD) with
the log-barrier mirror map ``R(x) = -sum log x_i`` is equivalent to online gradient descent (OGD)
after the reparametrisation ``x = e^u``. Settings of the authors' code: loss ``f(x) = sum_i tan x_i``
on the box ``[1/T, 1]^2``, ``T = 100``, step ``eta = 1e-2``, 100 iterates, 5 x 5 grids of initial
conditions, 4 delays (10-dimensional observable), all 10 DMD eigenvalues. The bisection method on
the scalar ``f`` is the non-conjugate control.

* OMD: ``grad R(y) = grad R(x_t) - eta grad f(x_t)``, i.e. ``y = x_t / (1 + eta x_t sec^2 x_t)``,
  then the Bregman projection onto the box (componentwise clipping for this separable ``R``).
* OGD: ``u_{t+1} = clip(u_t - eta e^{u_t} sec^2(e^{u_t}), log(1/T), 0)``; in ``x`` coordinates
  ``x_{t+1} = x_t exp(-eta x_t sec^2 x_t)``, equal to OMD up to ``O(eta^2)``, so the spectra agree
  closely but not exactly.
* Bisection: ``z = (a + b)/2``; ``a <- z`` if ``f(z) < 0``, ``b <- z`` if ``f(z) > 0`` (the state
  stays put once ``f(z) = 0`` exactly; the authors' script leaves zeros there instead).

Run: ``python experiments/koopman_mirror_descent.py [--smoke]``; writes
``figures/koopman_mirror_descent.png``.
"""

from __future__ import annotations

import pathlib

import numpy as np

from linsolve.gallery import script_main

FIGURES = pathlib.Path(__file__).resolve().parent.parent / "figures"

ETA = 1e-2
T = 100  # iterates (rows of each trajectory) and the box parameter 1/T
DELAYS = 4
GRID = 5


def loss(x: np.ndarray) -> np.ndarray:
    """``f(x) = sum_i tan x_i`` over the state axis 0."""
    return np.tan(x).sum(axis=0)


def _grid(lo: float, hi: float, n: int) -> np.ndarray:
    g = np.linspace(lo, hi, n)
    return np.stack([a.ravel() for a in np.meshgrid(g, g)])  # (2, n^2)


def initial_conditions(n: int = GRID) -> dict[str, np.ndarray]:
    """The authors' grids: OMD ``x0 in [0.1, 0.9]^2``, OGD ``u0 in [-2.3, -0.1]^2``, bisection
    ``a0 in [-4/3, -1/3]^2``, ``b0 in [1/7, 8/7]^2`` (each (2, n^2))."""
    return {
        "x0": _grid(0.1, 0.9, n),
        "u0": _grid(-2.3, -0.1, n),
        "a0": _grid(-4 / 3, -1 / 3, n),
        "b0": _grid(1 / 7, 8 / 7, n),
    }


def mirror_descent(x0: np.ndarray, eta: float = ETA, steps: int = T) -> np.ndarray:
    """Log-barrier OMD with clipping onto ``[1/T, 1]^2``; (steps, 2, N) including ``x0``."""
    X = np.empty((steps,) + x0.shape)
    X[0] = x0
    for t in range(1, steps):
        x = X[t - 1]
        X[t] = np.clip(x / (1 + eta * x / np.cos(x) ** 2), 1 / T, 1.0)
    return X


def gradient_descent(u0: np.ndarray, eta: float = ETA, steps: int = T) -> np.ndarray:
    """OGD on ``f(e^u)`` with clipping onto ``[log(1/T), 0]^2``; (steps, 2, N) in ``u`` coordinates."""
    U = np.empty((steps,) + u0.shape)
    U[0] = u0
    for t in range(1, steps):
        u = U[t - 1]
        x = np.exp(u)
        U[t] = np.clip(u - eta * x / np.cos(x) ** 2, np.log(1 / T), 0.0)
    return U


def bisection(a0: np.ndarray, b0: np.ndarray, steps: int = T) -> np.ndarray:
    """Bisection on the scalar ``f`` for every initial bracket (columns); (steps, 2, N)."""
    if np.any(loss(a0) >= 0) or np.any(loss(b0) <= 0):
        raise ValueError("every bracket needs f(a0) < 0 < f(b0).")
    Z = np.empty((steps,) + a0.shape)
    a, b = a0.copy(), b0.copy()
    Z[0] = (a + b) / 2
    for t in range(1, steps):
        z = Z[t - 1]
        fz = loss(z)
        a = np.where(fz < 0, z, a)
        b = np.where(fz > 0, z, b)
        Z[t] = np.where(fz == 0, z, (a + b) / 2)
    return Z


def trajectories(grid: int = GRID) -> dict[str, np.ndarray]:
    """The three ensembles of the example, each (T, 2, grid^2)."""
    ic = initial_conditions(grid)
    return {
        "OMD": mirror_descent(ic["x0"]),
        "OGD": gradient_descent(ic["u0"]),
        "BM": bisection(ic["a0"], ic["b0"]),
    }


def spectra(grid: int = GRID, delays: int = DELAYS) -> dict[str, np.ndarray]:
    """Koopman eigenvalues of OMD, OGD and bisection: all ``2 (delays + 1)`` of them.

    As in the authors' code no singular value is cut (``rtol=0``). OMD and OGD snapshots have full
    numerical rank; bisection moves every trajectory along the line through ``a0, b0`` and freezes
    at machine precision, so its embedded snapshots have numerical rank 6 and its last 4
    eigenvalues are set by round-off (the "near-zero cluster" of the paper's BM spectrum).
    """
    from linsolve.analysis._koopman import dmd

    k = 2 * (delays + 1)
    return {name: dmd(X, delays=delays, rank=k, rtol=0.0) for name, X in trajectories(grid).items()}


def main(smoke: bool = False) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from linsolve.analysis._koopman import conjugacy_test

    shuffles = 200 if smoke else 1000
    eigs = spectra()
    pairs = [("OMD", "OGD"), ("OGD", "BM"), ("OMD", "BM")]
    results = {}
    for i, (a, b) in enumerate(pairs):
        W, p = conjugacy_test(eigs[a], eigs[b], shuffles=shuffles, key=jr.PRNGKey(i))
        results[f"{a}-{b}"] = (W, p)
    for name, e in eigs.items():
        print(f"{name} eigenvalues: " + " ".join(f"{z.real:.4f}{z.imag:+.4f}j" for z in e))
    for name, (W, p) in results.items():
        print(f"W({name}) = {W:.4e}   shuffle-test p = {p:.3f}  ({shuffles} shuffles)")

    FIGURES.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), dpi=100)
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    style = {"OMD": ("ko", 7), "OGD": ("r^", 5), "BM": ("b*", 7)}
    for ax, zoom in zip(axes, (False, True)):
        ax.plot(circle.real, circle.imag, "k--", lw=0.8)
        for name, e in eigs.items():
            marker, size = style[name]
            ax.plot(e.real, e.imag, marker, ms=size, mfc="none" if name == "OMD" else None, label=name)
        ax.set_xlabel(r"Re $\lambda$")
        ax.set_ylabel(r"Im $\lambda$")
        if zoom:
            ax.set_xlim(0.5, 1.1)
            ax.set_ylim(-0.05, 0.05)
            ax.set_title("zoom")
        else:
            ax.set_xlim(-1.25, 1.25)
            ax.set_ylim(-1.25, 1.25)
            ax.set_aspect("equal")
            W = {k: v[0] for k, v in results.items()}
            ax.set_title(f"W(OMD,OGD)={W['OMD-OGD']:.1e}, W(OGD,BM)={W['OGD-BM']:.2f}", fontsize=9)
            ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(FIGURES / "koopman_mirror_descent.png")
    plt.close(fig)
    return {"eigenvalues": eigs, "results": results}


if __name__ == "__main__":
    script_main(main, __doc__)
