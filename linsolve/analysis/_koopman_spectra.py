"""Distances between Koopman spectra and the shuffle test of topological conjugacy.

Steps 5 and 6 of the recipe in :mod:`._koopman` (Redman et al., NeurIPS 2024, arXiv 2302.09160):
the 1-Wasserstein distance between two eigenvalue sets (optimal matching for equal sizes), the
significance of a distance by random swaps of matched pairs, and the between-seed baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Complex

from ._assignment import linear_sum_assignment
from ._wasserstein import uniform_wasserstein

__all__ = ["match_spectra", "spectral_distance", "conjugacy_test", "SeedBaseline", "seed_baseline"]


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
