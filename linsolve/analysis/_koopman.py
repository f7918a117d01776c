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
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Complex, Float

from .._validate import check_finite
from ..mlp import MLP
from ..models import ShallowNet
from ..simulate import Trajectory, gradient_descent
from ..tasks import Task
from ._assignment import linear_sum_assignment
from ._wasserstein import uniform_wasserstein

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


# --------------------------------------------------------------------------------------------
# Distances and the conjugacy test
# --------------------------------------------------------------------------------------------


def _spectrum(name: str, e) -> np.ndarray:
    e = np.asarray(e)
    if not (np.issubdtype(e.dtype, np.number)) or e.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of (complex) eigenvalues; got shape {e.shape}.")
    e = e.astype(np.complex128)
    if not np.all(np.isfinite(e)):
        raise ValueError(f"`{name}` must be finite.")
    return e


def match_spectra(e1, e2) -> tuple[float, np.ndarray]:
    """Optimal matching of two equal-size eigenvalue sets: ``(W, perm)`` with ``e1[i] <-> e2[perm[i]]``.

    ``W = min_pi (1/k) sum_i |e1_i - e2_pi(i)|`` (Euclidean distance in the complex plane), the
    1-Wasserstein distance between the uniform measures on the two sets (Redman et al. 2024).
    """
    e1, e2 = _spectrum("e1", e1), _spectrum("e2", e2)
    if e1.shape != e2.shape:
        raise ValueError(
            f"a matching needs eigenvalue sets of the same size; got {e1.size} and {e2.size} "
            "(use the same DMD `rank` for both; spectral_distance accepts different sizes)."
        )
    if e1.size == 0:
        raise ValueError("eigenvalue sets are empty.")
    return _match(e1, e2)


def _match(e1: np.ndarray, e2: np.ndarray) -> tuple[float, np.ndarray]:
    cost = np.abs(e1[:, None] - e2[None, :])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean()), cols


def spectral_distance(e1: Complex[Array, " k"], e2: Complex[Array, " l"]) -> float:
    r"""1-Wasserstein distance between the uniform distributions on two eigenvalue sets.

    ``W = min_P sum_ij P_ij |e1_i - e2_j|`` over transport plans ``P >= 0`` with row sums ``1/k``
    and column sums ``1/l`` (Euclidean distance in the complex plane). Zero for conjugate
    dynamics (shared Koopman eigenvalues; Redman et al., NeurIPS 2024, arXiv 2302.09160).

    * Equal sizes (``k = l``): ``W = min_pi (1/k) sum_i |e1_i - e2_pi(i)|``, the optimal matching
      of the authors' code, solved exactly by the Hungarian method.
    * Different sizes (e.g. the 10 OGD and 6 bisection eigenvalues kept by a numerical-rank
      cutoff): the transport linear program, solved exactly by the HiGHS simplex method through
      ``scipy.optimize.linprog``. One point against several gives their mean distance to it;
      ``{0}`` against ``{0, 1}`` gives 1/2.

    It is a metric on finite sets (symmetric, zero only for equal sets with multiplicity in
    proportion, triangle inequality).

    **Arguments:** `e1` (k,), `e2` (l,) finite (complex) eigenvalues, k, l >= 1.

    **Returns:** the distance, a float >= 0.
    """
    e1, e2 = _spectrum("e1", e1), _spectrum("e2", e2)
    if e1.size == 0 or e2.size == 0:
        raise ValueError(f"eigenvalue sets must be non-empty; got sizes {e1.size} and {e2.size}.")
    if e1.size == e2.size:
        return _match(e1, e2)[0]
    return uniform_wasserstein(e1, e2)[0]


def _numpy_rng(key) -> np.random.Generator:
    """A NumPy generator seeded by the bits of a JAX PRNG key (raw uint32 or typed key)."""
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.key_data(key)
    return np.random.default_rng(np.asarray(key, dtype=np.uint32).ravel().tolist())


def conjugacy_test(e1, e2, *, shuffles: int = 1000, key) -> tuple[float, float]:
    """Randomised shuffle test of Redman et al. (2024): is ``W(e1, e2)`` larger than chance?

    Take the optimal matching ``e1_i <-> e2_pi(i)``; in each of `shuffles` draws swap every
    matched pair between the two sets with probability 1/2 and recompute the distance ``W_s``.
    ``p = #{W_s >= W} / shuffles`` (up to a relative round-off of 1e-9). Since the original pairing
    stays available, ``W_s <= W``; a small p says shuffling usually brings the sets closer, i.e. the
    spectra differ systematically (evidence against conjugacy). Compare ``W`` with the between-seed
    baseline (:func:`seed_baseline`) as well: the test has little power for small sets.

    **Arguments:** `e1`, `e2` equal-size eigenvalue sets (the test swaps matched pairs, so it
    needs a one-to-one matching); `shuffles` >= 1; `key` a JAX PRNG key
    (it seeds the NumPy generator of the coin flips, which avoids compiling a sampler per size).

    **Returns:** ``(distance, p_value)``.
    """
    if isinstance(shuffles, bool) or int(shuffles) != shuffles or shuffles < 1:
        raise ValueError(f"`shuffles` must be a positive integer; got {shuffles!r}.")
    W, perm = match_spectra(e1, e2)
    a, b = _spectrum("e1", e1), _spectrum("e2", e2)[perm]
    flips = _numpy_rng(key).random((int(shuffles), a.size)) < 0.5
    count = 0
    for flip in flips:
        s1, s2 = np.where(flip, b, a), np.where(flip, a, b)
        count += _match(s1, s2)[0] >= W * (1 - 1e-9)
    return W, count / int(shuffles)


class SeedBaseline(NamedTuple):
    """Distances between the spectra of one setting across seeds: all pairs, their mean and std."""

    distances: np.ndarray
    mean: float
    std: float


def seed_baseline(spectra: Sequence) -> SeedBaseline:
    """Between-seed baseline: ``W`` between every pair of spectra of the *same* setting.

    Distances between settings are read relative to this spread (Redman et al. report it for their
    widest network), since even conjugate dynamics give ``W > 0`` from finite data.

    **Arguments:** `spectra`: a sequence of >= 2 eigenvalue sets (or an (S, k) array); sizes may
    differ (:func:`spectral_distance`).
    """
    spectra = [_spectrum(f"spectra[{i}]", e) for i, e in enumerate(spectra)]
    if len(spectra) < 2:
        raise ValueError(f"`spectra` needs at least 2 eigenvalue sets; got {len(spectra)}.")
    d = np.array(
        [
            spectral_distance(spectra[i], spectra[j])
            for i in range(len(spectra))
            for j in range(i + 1, len(spectra))
        ]
    )
    return SeedBaseline(d, float(d.mean()), float(d.std()))


# --------------------------------------------------------------------------------------------
# Ensembles of training runs
# --------------------------------------------------------------------------------------------


def perturbed_ensemble(params, size: int, *, key, rel: float = 1e-3):
    """One initialisation plus ``size - 1`` multiplicatively perturbed copies, stacked on axis 0.

    Member 0 is `params`; member ``m >= 1`` is ``w (1 + rel u)`` elementwise with
    ``u ~ U(-1, 1)`` (Redman et al.'s FCN ensembles: 10 members, ``rel = 0.001``). Zero entries
    (e.g. zero biases) stay zero. Works for any PyTree of arrays (deep linear tuples, ShallowNet).
    """
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"`size` must be a positive integer; got {size!r}.")
    if not rel >= 0:
        raise ValueError(f"`rel` must be non-negative; got {rel!r}.")
    return _perturb(params, key, int(size), jnp.asarray(rel))


@eqx.filter_jit
def _perturb(params, key, size: int, rel):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jr.split(key, max(len(leaves), 1))
    out = []
    for leaf, k in zip(leaves, keys):
        leaf = jnp.asarray(leaf)
        copies = jnp.broadcast_to(leaf, (size - 1,) + leaf.shape)
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            u = jr.uniform(k, copies.shape, leaf.dtype, -1.0, 1.0)
            copies = copies * (1 + jnp.asarray(rel, leaf.dtype) * u)
        out.append(jnp.concatenate([leaf[None], copies]))
    return jax.tree_util.tree_unflatten(treedef, out)


class EnsembleRun(NamedTuple):
    """Observables of an ensemble of training runs, in the (T, D, N) layout that :func:`dmd` takes.

    **Fields:** `observables` (T, D, N), `loss` (T, N) full-batch loss, `diverged` (N,) bool,
    `ts` (T,) step counts of the records.
    """

    observables: np.ndarray
    loss: np.ndarray
    diverged: np.ndarray
    ts: np.ndarray


@eqx.filter_jit
def _run_ensemble(
    params0, task, lrs, key, output_scale, observable, steps, record_every, optimizer, batch_size
):
    def one(p):
        traj = gradient_descent(
            p,
            task,
            lrs=lrs,
            steps=steps,
            record_every=record_every,
            output_scale=output_scale,
            optimizer=optimizer,
            batch_size=batch_size,
            key=key,
            observe=lambda q: {"y": jnp.ravel(observable(q))},
        )
        return traj.observables["y"], traj.loss, traj.diverged, traj.ts

    return jax.vmap(one)(params0)


def ensemble_observables(
    params0,
    task: Task,
    *,
    lrs,
    steps: int,
    observable: Callable = output_weights,
    record_every: int = 1,
    batch_size: int | None = None,
    key=None,
    optimizer=None,
    output_scale=1.0,
) -> EnsembleRun:
    """Train every member of an ensemble with :func:`linsolve.simulate.gradient_descent` (vmapped,
    one compilation) and record ``observable(params)`` at ``t = 0, record_every, ..., steps``.

    All members share `key`, so minibatch SGD sees the same batch sequence in every run (as in
    Redman et al., where a seed fixes the batch order and the ensemble varies the initialisation).

    **Arguments:**
    - `params0`: stacked initialisations (leading axis N), e.g. from :func:`perturbed_ensemble`.
    - `task`, `lrs`, `steps`, `record_every`, `batch_size`, `key`, `optimizer`, `output_scale`:
      as for ``gradient_descent``.
    - `observable`: ``params -> array`` (default :func:`output_weights`); reuse the same function
      object across calls to reuse the compiled program.

    **Returns:** an :class:`EnsembleRun` with `observables` (T, D, N).
    """
    leaves = jax.tree_util.tree_leaves(params0)
    if not leaves or any(jnp.ndim(x) < 1 for x in leaves):
        raise ValueError("`params0` must be a PyTree of arrays stacked along a leading ensemble axis.")
    N = leaves[0].shape[0]
    if any(x.shape[0] != N for x in leaves):
        raise ValueError(f"every leaf of `params0` must have the ensemble size {N} as leading axis.")
    for i, x in enumerate(leaves):
        check_finite(f"params0 leaf {i}", x)
    if not callable(observable):
        raise ValueError(f"`observable` must be a function params -> array; got {type(observable).__name__}.")
    if batch_size is not None and key is None:
        raise ValueError("`key` is required for minibatch SGD (`batch_size` is set).")
    dtype = leaves[0].dtype
    key = jr.PRNGKey(0) if key is None else key
    obs, loss, diverged, ts = _run_ensemble(
        params0,
        task,
        jnp.asarray(lrs, dtype),
        key,
        jnp.asarray(output_scale, dtype),
        observable,
        int(steps),
        int(record_every),
        optimizer,
        batch_size,
    )
    return EnsembleRun(
        np.moveaxis(np.asarray(obs), 0, 2),
        np.asarray(loss).T,
        np.asarray(diverged),
        np.asarray(ts[0]),
    )
