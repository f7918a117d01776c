"""Helpers of experiments/deep_matrix_completion.py: the nuclear-norm solver and learning times."""

import numpy as np
import pytest

from linsolve import exact
from linsolve.gallery import load_experiment

dmc = load_experiment("deep_matrix_completion")


def test_nuclear_norm_completion_known_minimiser():
    # [[1, 1], [1, x]]: |X|_* = 1 + x for x >= 1, sqrt((1 - x)^2 + 4) > 2 for x < 1: x = 1.
    target = np.array([[1.0, 1.0], [1.0, 123.0]])
    mask = np.array([[1, 1], [1, 0]])
    out = dmc.nuclear_norm_completion(target, mask, tol=1e-12)
    assert out.converged
    assert 0 <= out.primal - 2.0 < 1e-12
    # |X|_* - 2 ~ (1 - x)^2 / 4 for x < 1: a gap of 1e-12 pins x to ~2e-6.
    np.testing.assert_allclose(out.solution, np.ones((2, 2)), atol=2 * np.sqrt(1e-12))


def test_nuclear_norm_completion_certificate_holds_independently():
    M = dmc.gaussian_low_rank(12, 2, seed=3)
    mask = dmc.observation_mask(12, 70, seed=4)
    out = dmc.nuclear_norm_completion(M, mask, tol=1e-10)
    assert out.converged and out.relative_gap <= 1e-10
    # Primal feasibility, dual feasibility and the gap, recomputed here from X and Y alone.
    assert np.array_equal(out.solution[mask == 1], M[mask == 1])
    assert np.all(out.dual[mask == 0] == 0)
    assert np.linalg.norm(out.dual, 2) <= 1 + 1e-12
    nuclear = np.linalg.svd(out.solution, compute_uv=False).sum()
    lower = np.sum(out.dual * M)
    assert 0 <= nuclear - lower <= 1e-10 * nuclear
    # Any other interpolant (random fill of the unobserved entries) has a larger nuclear norm.
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = out.solution + 1e-2 * rng.standard_normal(M.shape) * (1 - mask)
        assert np.linalg.svd(other, compute_uv=False).sum() >= lower


def test_nuclear_norm_completion_full_observation_is_the_target():
    M = dmc.gaussian_low_rank(6, 2, seed=1)
    out = dmc.nuclear_norm_completion(M, np.ones_like(M))
    assert out.converged
    np.testing.assert_array_equal(out.solution, M)


@pytest.mark.parametrize("depth", [2, 3])
def test_learning_times_match_exact_saxe_time(depth):
    s, u0 = np.array([3.0, 1.0]), 1e-3
    ts = np.linspace(0.0, 40.0, 40001)
    u = np.asarray(exact.saxe_mode(ts[:, None], s=s, u0=u0, depth=depth))
    measured = dmc.learning_times(ts, u, s / 2)
    predicted = np.asarray(exact.saxe_time(u0, s / 2, s=s, depth=depth))
    np.testing.assert_allclose(measured, predicted, rtol=1e-5)
    assert np.isnan(dmc.learning_times(ts, u, 2 * s)).all()  # never reached


def test_completion_loss_value():
    M = np.arange(9.0).reshape(3, 3)
    mask = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    P = np.ones((3, 3))
    expected = 0.5 * ((1 - 0) ** 2 + (1 - 4) ** 2 + (1 - 5) ** 2) / 3
    assert abs(float(dmc.completion_loss(M, mask)(P)) - expected) < 1e-14


def test_bad_input():
    with pytest.raises(ValueError, match="`mask`"):
        dmc.nuclear_norm_completion(np.ones((3, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="`mask`"):
        dmc.nuclear_norm_completion(np.ones((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`m`"):
        dmc.observation_mask(3, 10, seed=0)
    with pytest.raises(ValueError, match="`values`"):
        dmc.learning_times(np.arange(3.0), np.ones((4, 2)), 1.0)
