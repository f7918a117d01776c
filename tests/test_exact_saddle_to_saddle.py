"""Saddle-to-saddle (alpha -> 0) against the dual flow at alpha = 1e-6 .. 1e-12, and by hand."""

import numpy as np
import pytest

from linsolve.exact import diagonal_flow, diagonal_implicit_bias, saddle_to_saddle


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((5, 12)), rng.standard_normal(5)
    return X, y, saddle_to_saddle(X, y)


def _probes(path, X, y):
    """One time per plateau (past its first 30%), where the inactive |s_i| are smallest, and that
    smallest max |s_i|: the flow then sits within ~alpha^{2(1 - max|s_i|)} of the saddle."""
    taus, S, duals = (np.asarray(a) for a in (path.times, path.saddles, path.duals))
    out = []
    for k in range(len(taus)):
        end = taus[k + 1] if k + 1 < len(taus) else 2 * taus[-1]
        tt = np.linspace(taus[k] + 0.3 * (end - taus[k]), end, 1001)[:-1]
        grad = X.T @ (X @ S[k] - y) / X.shape[0]
        s = duals[k] - 2 * (tt - taus[k])[:, None] * grad
        inactive = S[k] == 0
        m = np.abs(s[:, inactive]).max(1) if inactive.any() else np.zeros(len(tt))
        out.append((tt[np.argmin(m)], m.min()))
    return np.array(out)


def test_path_structure_and_end(case):
    X, y, path = case
    assert path.converged
    taus = np.asarray(path.times)
    assert taus[0] == 0 and np.all(np.diff(taus) > 0)
    np.testing.assert_allclose(taus[1], 1 / (2 * np.max(np.abs(X.T @ y)) / 5), rtol=1e-14)
    l1 = diagonal_implicit_bias(X, y, alpha=0.0).beta
    np.testing.assert_allclose(path.saddles[-1], l1, atol=1e-12)
    assert float(path.losses[-1]) < 1e-25 and np.all(np.diff(np.asarray(path.losses)) < 0)
    duals = np.asarray(path.duals)
    S = np.asarray(path.saddles)
    assert np.all(np.abs(duals) <= 1)
    on = S != 0  # nonzero only where |s| = 1, with its sign
    assert np.all(np.abs(duals[on]) == 1) and np.all(np.sign(S[on]) == duals[on])


def test_orthogonal_design_by_hand():
    """X^T X / n = I: coordinate i joins at tau = 1 / (2 |b_i|), b = X^T y / n, and stays."""
    rng = np.random.default_rng(4)
    n = 5
    X = np.linalg.qr(rng.standard_normal((n, n)))[0] * np.sqrt(n)
    y = rng.standard_normal(n)
    b = X.T @ y / n
    path = saddle_to_saddle(X, y)
    order = np.argsort(-np.abs(b))
    np.testing.assert_allclose(path.times[1:], 1 / (2 * np.abs(b[order])), rtol=1e-12)
    for k in range(1, n + 1):
        expected = np.where(np.isin(np.arange(n), order[:k]), b, 0.0)
        np.testing.assert_allclose(path.saddles[k], expected, atol=1e-13)


def test_against_the_flow_at_small_alpha(case):
    X, y, path = case
    taus, S = np.asarray(path.times), np.asarray(path.saddles)
    probes = _probes(path, X, y)
    grid = np.linspace(0.0, 1.2 * taus[-1], 6001)
    jump_errors = {}
    for alpha in (1e-6, 1e-12):
        scale = np.log(1 / alpha)
        times = np.r_[grid, probes[:, 0]]
        order = np.argsort(times, kind="stable")
        flow = diagonal_flow(times[order] * scale, X, y, alpha=alpha)
        assert int(flow.status) == 0
        beta = np.empty_like(np.asarray(flow.beta))
        beta[order] = np.asarray(flow.beta)  # back to the order of `times`
        at_probes = beta[len(grid):]
        err = np.max(np.abs(at_probes - S), axis=1)
        predicted = alpha ** (2 * (1 - probes[:, 1]))  # size of the not-yet-active coordinates
        assert np.all(err <= 3 * predicted + 1e-3), (alpha, err, predicted)
        if alpha == 1e-12:
            settled = predicted < 1e-4
            assert settled.sum() >= 3 and np.all(err[settled] <= 1e-3), err
        # Jump k: the first time past tau_{k-1} the flow is nearer beta_k than beta_{k-1}.
        path_beta = beta[: len(grid)]
        est = []
        for k in range(1, len(taus)):
            nearer = (np.linalg.norm(path_beta - S[k], axis=1)
                      < np.linalg.norm(path_beta - S[k - 1], axis=1)) & (grid > taus[k - 1])
            est.append(grid[np.argmax(nearer)])
        jump_errors[alpha] = np.abs(np.array(est) / taus[1:] - 1)
    assert np.all(jump_errors[1e-12] <= 0.07), jump_errors
    # O(1/log(1/alpha)): smaller at the smaller alpha (up to the grid's resolution).
    resolution = (grid[1] - grid[0]) / taus[1:]
    assert np.all(jump_errors[1e-12] <= jump_errors[1e-6] + resolution), jump_errors
    assert np.mean(jump_errors[1e-12]) < 0.6 * np.mean(jump_errors[1e-6]), jump_errors


def test_bad_input():
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="`X`"):
        saddle_to_saddle(np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="`y`"):
        saddle_to_saddle(X, np.ones(4))
    with pytest.raises(ValueError, match="`max_saddles`"):
        saddle_to_saddle(X, np.ones(3), max_saddles=0)
