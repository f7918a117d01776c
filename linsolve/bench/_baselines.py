"""The baselines a user would write by hand: per-point loops in NumPy and PyTorch, and a pool.

This module imports no JAX: it runs in subprocesses whose BLAS is pinned to one thread
(``OPENBLAS_NUM_THREADS=1`` and friends, set before NumPy loads), exactly like a careful
hand-written sweep. Each loop is the covariance-form gradient-descent step of a two-layer linear
net (``P = W2 W1``, ``G = P Sxx - Syx``, ``W1 -= lr1 W2^T G``, ``W2 -= lr2 G W1^T``), with the
loss logged every `record_every` steps.

Command line (used by the harness): ``python -m linsolve.bench._baselines KIND PROBLEM.npz OUT.npz``
with KIND in numpy, torch, pool.
"""

from __future__ import annotations

import os
import sys
import time

SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLIS_NUM_THREADS": "1",
}


def numpy_point(W1, W2, Sxx, Syx, Syy_tr, lr1, lr2, steps, record_every):
    """One grid point, plain NumPy; returns the logged losses ((steps / record_every + 1,))."""
    import numpy as np

    W1, W2 = W1.copy(), W2.copy()
    losses = []
    for step in range(steps + 1):
        P = W2 @ W1
        PS = P @ Sxx
        if step % record_every == 0:
            losses.append(0.5 * Syy_tr - np.vdot(Syx, P) + 0.5 * np.vdot(PS, P))
        if step == steps:
            break
        G = PS - Syx
        dW2 = G @ W1.T
        W1 -= lr1 * (W2.T @ G)
        W2 -= lr2 * dW2
    return np.asarray(losses)


def torch_point(W1, W2, Sxx, Syx, Syy_tr, lr1, lr2, steps, record_every):
    """One grid point, PyTorch on the CPU (one thread), same step as :func:`numpy_point`."""
    import numpy as np
    import torch

    W1, W2, Sxx, Syx = (torch.from_numpy(np.array(a)) for a in (W1, W2, Sxx, Syx))
    losses = []
    with torch.no_grad():
        for step in range(steps + 1):
            P = W2 @ W1
            PS = P @ Sxx
            if step % record_every == 0:
                losses.append(float(0.5 * Syy_tr - (Syx * P).sum() + 0.5 * (PS * P).sum()))
            if step == steps:
                break
            G = PS - Syx
            dW2 = G @ W1.T
            W1.sub_(lr1 * (W2.T @ G))
            W2.sub_(lr2 * dW2)
    return np.asarray(losses)


def _pool_point(args):
    return numpy_point(*args)


def run(kind: str, problem_path: str, out_path: str) -> None:
    import numpy as np

    with np.load(problem_path) as f:
        p = {k: f[k] for k in f.files}
    steps, record_every = int(p["steps"]), int(p["record_every"])
    dtype = p["W1"].dtype
    Sxx, Syx = p["Sxx"].astype(dtype), p["Syx"].astype(dtype)
    Syy_tr = dtype.type(p["Syy_tr"])
    points = [
        (
            p["W1"][i],
            p["W2"][i],
            Sxx,
            Syx,
            Syy_tr,
            dtype.type(p["lr1"][i]),
            dtype.type(p["lr2"][i]),
            steps,
            record_every,
        )
        for i in range(p["W1"].shape[0])
    ]
    start = time.perf_counter()
    if kind == "numpy":
        losses = [numpy_point(*a) for a in points]
    elif kind == "torch":
        import torch

        torch.set_num_threads(1)
        losses = [torch_point(*a) for a in points]
    elif kind == "pool":
        import multiprocessing

        workers = int(p["workers"])
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pool.map(_pool_point, points[:workers], chunksize=1)  # start-up outside the timing
            start = time.perf_counter()
            losses = pool.map(_pool_point, points, chunksize=max(1, len(points) // workers))
    else:
        raise ValueError(f"`kind` must be numpy, torch or pool; got {kind!r}.")
    seconds = time.perf_counter() - start
    np.savez(out_path, losses=np.stack(losses), seconds=seconds)


if __name__ == "__main__":
    for name, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(name, value)
    run(*sys.argv[1:4])
