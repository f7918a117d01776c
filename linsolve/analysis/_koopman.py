"""Koopman spectra of training dynamics and the spectral test of topological conjugacy.

Redman, Fonoberova, Mohr, Kevrekidis & Mezić, "Identifying equivalent training dynamics",
NeurIPS 2024 (arXiv 2302.09160). A training algorithm is a map ``theta_{t+1} = T(theta_t)``. Two
maps are topologically conjugate when ``h o T1 = T2 o h`` for a homeomorphism ``h``; conjugate maps
share their Koopman eigenvalues (``phi(T(x)) = lambda phi(x)``), so different spectra mean
*non*-conjugate dynamics and matching spectra are consistent with conjugacy. The recipe (as in the
authors' code):

1. record observables ``x_t`` (raw state, output-layer weights, PCA coordinates) along trajectories
   from several initial conditions, an array (T, D, N);
2. time-delay (Hankel) embedding ``z_t = [x_t; x_{t+1}; ...; x_{t+d}]``, ``(d + 1) D`` numbers;
3. pool the snapshot pairs ``(z_t, z_{t+1})`` of all trajectories into columns of ``Z, Z'``;
4. exact DMD (Tu et al. 2014): ``Z = U S V^T`` truncated to ``k`` modes,
   ``A~ = U^T Z' V S^{-1}``; the Koopman eigenvalue estimates are ``eig(A~)``;
5. distance between two spectra: the 1-Wasserstein distance between the uniform distributions on
   the two eigenvalue sets in the complex plane; for equal sizes k it is the optimal matching
   ``W = min_pi (1/k) sum_i |lambda_i - mu_pi(i)|`` (Hungarian method, as in the authors' code),
   for different sizes the optimal transport between masses 1/k and 1/k';
6. significance: swap every matched pair between the two sets with probability 1/2, recompute
   ``W``; ``p = Pr[W_shuffled >= W]`` (small p: the spectra differ more than by chance).

Eigenproblems and SVDs run in NumPy float64 on the host (the reduced DMD matrix is tiny, and
``jnp.linalg.eig`` runs on CPU anyway); trajectories are simulated in JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import check_finite
from ..mlp import MLP
from ..models import ShallowNet
from ..simulate import Trajectory

__all__ = [
    "time_delay",
    "snapshot_pairs",
    "dmd",
    "match_spectra",
    "spectral_distance",
    "conjugacy_test",
    "SeedBaseline",
    "seed_baseline",
    "pca",
    "output_weights",
    "perturbed_ensemble",
    "EnsembleRun",
    "ensemble_observables",
]


# --------------------------------------------------------------------------------------------
# Data: observables, embedding, snapshot pairs
# --------------------------------------------------------------------------------------------


def output_weights(params) -> Float[Array, " n"]:
    """Observable selector: the output-layer weights, flattened (``W2`` of a ShallowNet, ``W_L`` of an
    MLP or of a deep linear tuple); the observable of Redman et al.'s fully connected experiments."""
    if isinstance(params, ShallowNet):
        return jnp.ravel(params.W2)
    if isinstance(params, MLP):
        return jnp.ravel(params.weights[-1])
    if isinstance(params, tuple | list) and len(params) > 0:
        return jnp.ravel(params[-1])
    raise ValueError(
        f"`output_weights` takes a ShallowNet, an MLP or a tuple (W1, ..., WL); got {type(params).__name__}. "
        "Pass your own `observable` function for other models."
    )


def _flatten_time(x, batch: int) -> np.ndarray:
    """(*batch, T, ...) -> (*batch, T, D) float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[: batch + 1] + (-1,))


def _trajectory_data(traj: Trajectory, observable) -> list[np.ndarray]:
    """A Trajectory (or a vmapped ensemble of them, ``ts`` of shape (N, T)) -> list of (T, D)."""
    batch = traj.ts.ndim - 1
    if batch not in (0, 1):
        raise ValueError(f"a Trajectory must have `ts` of shape (T,) or (N, T); got {traj.ts.shape}.")
    if observable is None:
        leaves = [_flatten_time(x, batch) for x in jax.tree_util.tree_leaves(traj.params)]
        data = np.concatenate(leaves, axis=-1)
    elif isinstance(observable, str):
        if observable not in traj.observables:
            raise ValueError(
                f"`observable` {observable!r} was not recorded; the Trajectory has "
                f"{sorted(traj.observables)}."
            )
        data = _flatten_time(traj.observables[observable], batch)
    elif callable(observable):
        fn = lambda p: jnp.ravel(observable(p))
        for _ in range(batch + 1):
            fn = jax.vmap(fn)
        data = _flatten_time(fn(traj.params), batch)
    else:
        raise ValueError(
            f"`observable` must be None, a recorded observable name or a function params -> array; "
            f"got {type(observable).__name__}."
        )
    return [data] if batch == 0 else list(data)


def _as_list(trajectories, observable) -> list[np.ndarray]:
    """Normalise every accepted input to a list of (T_i, D) float64 arrays."""
    if isinstance(trajectories, Trajectory):
        return _trajectory_data(trajectories, observable)
    if isinstance(trajectories, Sequence) and not isinstance(trajectories, str):
        if len(trajectories) == 0:
            raise ValueError("`trajectories` is empty.")
        return [x for item in trajectories for x in _as_list(item, observable)]
    if observable is not None:
        raise ValueError("`observable` applies to Trajectory inputs; arrays are used as given.")
    X = np.asarray(trajectories)
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"`trajectories` must be real; got dtype {X.dtype}.")
    X = X.astype(np.float64)
    if X.ndim == 2:
        return [X]
    if X.ndim == 3:
        return [X[:, :, i] for i in range(X.shape[2])]
    raise ValueError(
        f"`trajectories` must be (T, D, N) (time, state, initial condition), (T, D), a Trajectory or "
        f"a list of these; got shape {X.shape}."
    )


def time_delay(X: Float[Array, "T D N"], delays: int) -> Float[Array, "T-delays (delays+1)*D N"]:
    """Time-delay (Hankel) embedding ``z_t = [x_t; x_{t+1}; ...; x_{t+delays}]``.

    **Arguments:** `X` (T, D, N) (time, state, initial condition; (T, D) for one trajectory),
    `delays` >= 0 with ``T > delays``.

    **Returns:** (T - delays, (delays + 1) D, N) (or without the last axis), the block
    ``[d D, (d + 1) D)`` of the state axis being ``x_{t+d}``.
    """
    X = np.asarray(X, dtype=np.float64)
    _check_delays(delays)
    if X.ndim not in (2, 3):
        raise ValueError(f"`X` must be (T, D, N) or (T, D); got shape {X.shape}.")
    T = X.shape[0]
    if T <= delays:
        raise ValueError(f"`X` has T={T} snapshots; delays={delays} needs at least {delays + 1}.")
    return np.concatenate([X[d : T - delays + d] for d in range(delays + 1)], axis=1)


def snapshot_pairs(Z: Float[Array, "T n N"]) -> tuple[Float[Array, "n M"], Float[Array, "n M"]]:
    """Pool the consecutive pairs ``(z_t, z_{t+1})`` of every trajectory into columns.

    **Arguments:** `Z` (T, n, N) (or a list of (T_i, n) arrays).

    **Returns:** ``(Zm, Zp)``, each (n, M) with ``M = sum_i (T_i - 1)``, trajectory by trajectory.
    """
    Z = [np.asarray(z, dtype=np.float64) for z in _as_list(Z, None)]
    Zm = np.concatenate([z[:-1] for z in Z], axis=0).T
    Zp = np.concatenate([z[1:] for z in Z], axis=0).T
    return Zm, Zp


def _check_delays(delays) -> None:
    if isinstance(delays, bool) or int(delays) != delays or delays < 0:
        raise ValueError(f"`delays` must be a non-negative integer; got {delays!r}.")


def pca(data: Float[Array, "T D N"], n_components: int) -> tuple[Float[Array, "T k N"], Float[Array, "k D"]]:
    """PCA observables: project every state onto the top principal directions of all snapshots.

    As in Redman et al.'s Transformer experiment (sklearn PCA fitted on the pooled snapshots, then
    ``x_t -> C x_t`` with the raw, uncentred state): ``C`` (k, D) holds the leading right singular
    vectors of the centred (T N, D) snapshot matrix.

    **Returns:** ``(projected (T, k, N), components (k, D))``.
    """
    X = np.asarray(data, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"`data` must be (T, D, N); got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError("`data` must be finite.")
    T, D, N = X.shape
    if int(n_components) != n_components or not 1 <= n_components <= min(D, T * N):
        raise ValueError(f"`n_components` must be an integer in [1, {min(D, T * N)}]; got {n_components!r}.")
    pooled = np.moveaxis(X, 2, 1).reshape(T * N, D)
    _, _, Vh = np.linalg.svd(pooled - pooled.mean(axis=0), full_matrices=False)
    C = Vh[: int(n_components)]
    return np.einsum("kd,tdn->tkn", C, X), C


# --------------------------------------------------------------------------------------------
# DMD
# --------------------------------------------------------------------------------------------


def dmd(
    trajectories,
    *,
    delays: int,
    rank: int | None = None,
    observable: Callable | str | None = None,
    return_modes: bool = False,
    rtol: float | None = None,
):
    r"""Koopman eigenvalues of a pooled ensemble of trajectories by time-delay exact DMD.

    With the delay embedding ``z_t = [x_t; ...; x_{t+d}]``, snapshot matrices ``Z = [z_t]``,
    ``Z' = [z_{t+1}]`` pooled over all trajectories, the SVD ``Z = U S V^T`` truncated to `rank`
    terms, the reduced operator ``A~ = U^T Z' V S^{-1}`` (the least-squares ``Z' ~ A Z`` projected
    on the leading POD modes) has eigenvalues ``lambda`` and exact DMD modes
    ``phi = Z' V S^{-1} w`` (Tu et al., J. Comput. Dyn. 1 (2014) 391; Redman et al., NeurIPS 2024,
    arXiv 2302.09160). For data from ``x_{t+1} = A x_t`` spanning the state space they are
    ``eig(A)`` exactly.

    **Arguments:**

    - `trajectories`: (T, D, N) (time, state, initial condition), (T, D), a
      :class:`~linsolve.simulate.Trajectory` (also a vmapped ensemble, ``ts`` (N, T)), or a list
      of any of these (lengths may differ; D must agree).
    - `delays`: number of delays ``d >= 0`` (``d = 0`` is plain DMD).
    - `rank`: number of SVD modes kept; None keeps every singular value above
      ``rtol * s_max`` (the numerical rank). Redman et al.'s ``dmd(X, Y, k)`` keeps the first
      ``k`` singular values (``rank=k``, which must not exceed the numerical rank here) or, with
      ``k = -1`` (their OMD/OGD/bisection and Transformer runs), all of them with no cutoff:
      ``rank=None, rtol=0`` reproduces that whenever every singular value is positive (their
      ``1/S`` is then finite); the default ``rtol`` instead drops singular values at round-off
      level, so such spectra can have fewer eigenvalues than theirs (e.g. 6 instead of 10 for
      the bisection run, whose iterates reach machine precision).
    - `observable`: for Trajectory inputs: None (all parameters, flattened), the name of a
      recorded observable, or a function ``params -> array`` (e.g. :func:`output_weights`).
    - `return_modes`: also return the (unit-norm) exact DMD modes.
    - `rtol`: relative singular-value cutoff; default ``max(n, M) * eps`` (``0`` keeps every
      positive singular value).

    **Returns:** complex eigenvalues (k,) (NumPy, sorted by decreasing modulus), and with
    `return_modes` the pair ``(eigenvalues, modes (n, k))``, ``n = (d + 1) D``.
    """
    _check_delays(delays)
    data = _as_list(trajectories, observable)
    D = data[0].shape[1]
    for i, x in enumerate(data):
        if x.ndim != 2 or x.shape[1] != D:
            raise ValueError(f"trajectory {i} has shape {x.shape}; every trajectory must be (T_i, D={D}).")
        if x.shape[0] < delays + 2:
            raise ValueError(
                f"too few snapshots: trajectory {i} has T={x.shape[0]}, and delays={delays} needs "
                f"T >= {delays + 2} (one snapshot pair after embedding)."
            )
        check_finite(f"trajectories[{i}]", x)
    Zm, Zp = snapshot_pairs([time_delay(x, delays) for x in data])
    n, M = Zm.shape
    if rank is not None and (isinstance(rank, bool) or int(rank) != rank or not 1 <= rank <= min(n, M)):
        raise ValueError(
            f"`rank` must be an integer in [1, min(n, M)] = [1, {min(n, M)}] for {n}-dimensional "
            f"embedded states and {M} snapshot pairs; got {rank!r}."
        )
    if rtol is not None and not (np.isfinite(rtol) and 0 <= rtol < 1):
        raise ValueError(f"`rtol` must be in [0, 1); got {rtol!r}.")
    U, s, Vh = np.linalg.svd(Zm, full_matrices=False)
    rtol = max(n, M) * np.finfo(np.float64).eps if rtol is None else float(rtol)
    numerical = int(np.sum(s > rtol * s[0])) if s[0] > 0 else 0
    if numerical == 0:
        raise ValueError("the snapshot matrix is zero; the trajectories carry no dynamics.")
    if rank is not None and rank > numerical:
        raise ValueError(
            f"`rank`={rank} exceeds the numerical rank {numerical} of the snapshot matrix "
            f"(singular values below {rtol:.1e} * s_max); lower `rank` or add trajectories."
        )
    k = numerical if rank is None else int(rank)
    U, s, V = U[:, :k], s[:k], Vh[:k].T
    ZpV = (Zp @ V) / s
    eigs, W = np.linalg.eig(U.T @ ZpV)
    order = np.lexsort((eigs.imag, -eigs.real, -np.abs(eigs)))
    eigs = eigs[order]
    if not return_modes:
        return eigs
    modes = ZpV @ W[:, order]
    norms = np.linalg.norm(modes, axis=0)
    projected = U @ W[:, order]  # the projected mode where the exact one vanishes (lambda = 0)
    modes = np.where(norms > 0, modes / np.where(norms > 0, norms, 1), projected)
    return eigs, modes


# The spectra and ensemble halves live in their own modules; importable from here as before.
from ._koopman_ensemble import EnsembleRun, ensemble_observables, perturbed_ensemble  # noqa: E402
from ._koopman_spectra import (  # noqa: E402
    SeedBaseline,
    conjugacy_test,
    match_spectra,
    seed_baseline,
    spectral_distance,
)
