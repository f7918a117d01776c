"""The `diagonal` sweep study: GD of a diagonal linear network beside the flow's implicit bias."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from linsolve import exact, simulate, sweep
from linsolve.sweep import ConfigError, Grid
from linsolve.sweep._config import parse_config
from linsolve.sweep._studies import STUDIES, Study
from linsolve.sweep._study_diagonal import (
    DIAGONAL_STUDY_KWARGS,
    limit_sharpness,
    sparse_regression,
)

STUDY = Study(**DIAGONAL_STUDY_KWARGS)
PARAMS = {**STUDY.params, "n": 10, "d": 20, "k": 2, "steps": 20000}
# alpha = 0.5: at lr = 2e-4 not yet converged (t = 4), at lr = 0.5 beyond the stability edge
# (lr S_inf / 2 = 1.98): GD converges to ANOTHER interpolator. alpha = 2 (kernel regime): at
# lr = 2e-4 converged to the flow's limit up to the O(lr) GD bias; at lr = 0.5 it diverges.
GRID = Grid(alpha=np.array([0.5, 2.0]), lr=np.array([2e-4, 0.5]))


def _run(x64):
    with jax.enable_x64(x64):
        return sweep.run(STUDY.make(PARAMS, GRID.axes), GRID, progress=False, key=jr.PRNGKey(0))


@pytest.fixture(scope="module")
def result64():
    return _run(True)


def test_small_lr_gd_reaches_the_flows_implicit_bias_large_lr_diverges(result64):
    r = result64
    assert r["error"].dtype == np.float64
    # (alpha = 2, lr = 2e-4): converged; GD within 1e-4 of the flow's limit (measured 2.8e-6).
    assert r["status"][1, 0] == simulate.CONVERGED and r["residual"][1, 0] < 1e-9
    assert r["error"][1, 0] < 1e-4
    np.testing.assert_allclose(r["recovery_error"][1, 0], r["theory_recovery_error"][1, 0],
                               rtol=1e-4)
    # (alpha = 2, lr = 0.5): far beyond the edge, diverged and reported (inf, not NaN).
    assert r["diverged"][1, 1] and r["status"][1, 1] == simulate.DIVERGED
    assert r["edge_ratio"][1, 1] > 10
    assert np.isinf(r["recovery_error"][1, 1]) and np.isinf(r["error"][1, 1])
    # (alpha = 0.5, lr = 0.5): beyond the edge but converged, to another interpolator.
    assert r["status"][0, 1] == simulate.CONVERGED and r["residual"][0, 1] < 1e-9
    assert 1 < r["edge_ratio"][0, 1] < 2 and r["error"][0, 1] > 0.1
    # (alpha = 0.5, lr = 2e-4): the residual is still large: STEP_LIMIT, not diverged.
    assert r["status"][0, 0] == simulate.STEP_LIMIT and not r["diverged"][0, 0]
    assert np.all(r["edge_ratio"][:, 0] < 0.1)


def test_points_match_direct_runs_and_the_sharpness_a_dense_hessian(result64):
    X, y, beta_star = sparse_regression(PARAMS["task_seed"], 10, 20, 2)
    # The point (alpha = 2, lr = 2e-4) is the simulator's run, looked up in the right table row.
    run = simulate.diagonal_gradient_descent(X, y, alpha=2.0, lr=2e-4, steps=PARAMS["steps"],
                                             record_every=PARAMS["steps"])
    beta = np.asarray(run.beta[-1])
    np.testing.assert_allclose(result64["recovery_error"][1, 0],
                               np.linalg.norm(beta - beta_star) / np.linalg.norm(beta_star),
                               rtol=1e-12)
    for i, alpha in enumerate((0.5, 2.0)):
        limit = np.asarray(exact.diagonal_implicit_bias(X, y, alpha=alpha).beta)
        np.testing.assert_allclose(
            result64["theory_recovery_error"][i],
            np.linalg.norm(limit - beta_star) / np.linalg.norm(beta_star), rtol=1e-12,
        )
        # Independent: the top eigenvalue of the dense Hessian of L(u, v) at (u, v) on the flow's
        # conserved surface u v = alpha^2 with u^2 - v^2 = beta_inf.
        root = np.sqrt(limit**2 + 4 * alpha**4)
        u, v = np.sqrt((root + limit) / 2), np.sqrt((root - limit) / 2)

        def loss(w):
            res = X @ (w[:20] ** 2 - w[20:] ** 2) - y
            return 0.5 * jnp.dot(res, res) / 10

        H = np.asarray(jax.hessian(loss)(jnp.concatenate([u, v])))
        top = np.linalg.eigvalsh(H)[-1]
        np.testing.assert_allclose(limit_sharpness(X, limit, alpha), top, rtol=1e-10)
        np.testing.assert_allclose(result64["sharpness"][i], top, rtol=1e-10)
        np.testing.assert_allclose(result64["edge_ratio"][i], np.array([2e-4, 0.5]) * top / 2,
                                   rtol=1e-10)


def test_float32_sweep_agrees_with_float64(result64):
    r = _run(False)
    assert r["error"].dtype == np.float32
    np.testing.assert_array_equal(r["status"], result64["status"])
    np.testing.assert_array_equal(r["diverged"], result64["diverged"])
    # float32 GD stalls once 2 lr |r_i| is below the rounding of u (measured residual 4e-4, gap
    # to the flow's limit 1.3e-3 at lr = 2e-4), still within tol of the float64 answer.
    assert r["error"][1, 0] < 3e-3
    np.testing.assert_allclose(r["theory_recovery_error"], result64["theory_recovery_error"],
                               rtol=1e-5)
    finite = np.isfinite(result64["recovery_error"])
    np.testing.assert_allclose(r["recovery_error"][finite], result64["recovery_error"][finite],
                               rtol=3e-3)


def test_bad_values_raise_config_error_naming_the_key(monkeypatch):
    with pytest.raises(ConfigError, match="`axes.alpha` must be positive"):
        STUDY.check_axis("alpha", np.array([0.1, 0.0]))
    with pytest.raises(ConfigError, match="`axes.lr` must be positive"):
        STUDY.check_axis("lr", np.array([-1e-3]))
    with pytest.raises(ConfigError, match="`params.k` must be a positive integer"):
        STUDY.check_params({**PARAMS, "k": 1.5})
    with pytest.raises(ConfigError, match=r"`params.tol` must be in \(0, 1\)"):
        STUDY.check_params({**PARAMS, "tol": 0.0})
    with pytest.raises(ConfigError, match="`params.k` must be <= params.d = 20"):
        STUDY.make({**PARAMS, "k": 21}, GRID.axes)
    # through a configuration file, with the study registered as `_studies.STUDIES` will hold it
    monkeypatch.setitem(STUDIES, "diagonal", STUDY)
    config = parse_config(STUDY.default_config())  # the shipped configuration is valid
    assert config.grid.axes["alpha"].shape == (10,) and config.grid.axes["lr"].shape == (8,)
    with pytest.raises(ConfigError, match="`params.steps` must be a positive integer"):
        parse_config({"study": "diagonal", "axes": {"alpha": [0.1]}, "params": {"steps": 0}})
