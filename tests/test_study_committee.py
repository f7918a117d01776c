"""The `committee` sweep study: SGD of a committee machine beside its ODEs, padded widths exact."""

import jax.random as jr
import numpy as np
import pytest

from linsolve import exact, simulate, sweep
from linsolve.sweep import ConfigError, Grid
from linsolve.sweep._config import parse_config
from linsolve.sweep._studies import STUDIES, Study
from linsolve.sweep._study_committee import COMMITTEE_STUDY_KWARGS, committee_start

STUDY = Study(**COMMITTEE_STUDY_KWARGS)
SEEDS = 6
# N = 200, alpha = 24, lr = 1: the fast drop and the start of the plateau (cheap; the ODE follows
# the seed mean there within a few percent, see tests/test_simulate_committee.py).
PARAMS = {**STUDY.params, "N": 200, "alpha": 24.0, "n_records": 8}


def test_start_has_the_documented_order_parameters():
    W_star, W0 = committee_start(jr.PRNGKey(2), N=40, K=3, M=2, init_overlap=0.07, init_norm=0.2,
                                 dtype=np.float64)
    Q, R, T, _, _ = simulate.committee_order_parameters(W0, np.ones(3), W_star, np.ones(2))
    R0 = np.asarray(R)
    np.testing.assert_allclose(T, np.eye(2), atol=1e-13)
    np.testing.assert_allclose(Q, R0 @ R0.T + 0.04 * np.eye(3), atol=1e-13)
    assert 0.01 < np.abs(R0).max() < 0.3  # R0 = 0.07 G, G a standard Gaussian draw


def test_tiny_sweep_follows_the_ode_and_padding_is_exact():
    grid = Grid(lr=np.array([1.0]), K=np.array([2, 3]), init_overlap=np.array([0.05]),
                seed=np.arange(SEEDS))
    result = sweep.run(STUDY.make(PARAMS, grid.axes), grid, progress=False, key=jr.PRNGKey(7))
    assert sorted(result.keys()) == sorted([
        "eps_g", "theory_eps_g", "eps_g0", "plateau_length", "theory_plateau_length", "error",
        "status", "diverged", "theory_status",
    ])
    assert np.all(result["status"] == simulate.CONVERGED) and not result["diverged"].any()
    assert np.all(result["theory_status"] == simulate.CONVERGED)
    mean = result.over_seeds()
    theory, sim = mean["theory_eps_g"][0, :, 0], mean["eps_g"][0, :, 0]
    np.testing.assert_allclose(sim, theory, rtol=0.06)  # measured 1.2 % (K = 2), 3.0 % (K = 3)
    assert np.all(mean["error"] < 0.1)  # one run's max gap along the curve

    # Independent: the K = 2 points, run UNPADDED (K = 2 arrays) from the same start and key.
    N, M, every = PARAMS["N"], PARAMS["M"], int(PARAMS["alpha"] * PARAMS["N"] / PARAMS["n_records"])
    W_star, W0 = committee_start(jr.PRNGKey(PARAMS["init_seed"]), N=N, K=3, M=M,
                                 init_overlap=0.05, init_norm=PARAMS["init_norm"], dtype=np.float64)
    teacher, student = (W_star, np.ones(M)), (W0[:2], np.ones(2))
    seed = 3  # flat index of (lr 0, K = 2, overlap 0, seed 3)
    run = simulate.online_sgd_committee(jr.fold_in(jr.PRNGKey(7), seed), N=N, K=2, M=M, lr=1.0,
                                        steps=every * PARAMS["n_records"], record_every=every,
                                        train_readout=False, teacher=teacher, student=student)
    np.testing.assert_allclose(result["eps_g"][0, 0, 0, seed], run.eps_g[-1], rtol=1e-10)
    Q0, R0, T, v0, vs = simulate.committee_order_parameters(*student, *teacher)
    ode = exact.committee_ode(run.alpha, Q0=Q0, R0=R0, T=T, v0=v0, v_star=vs, lr=1.0,
                              train_readout=False)
    # the padded state changes only the step-size control's norm: agreement to the tolerance
    np.testing.assert_allclose(result["theory_eps_g"][0, 0, 0], ode.eps_g[-1], rtol=1e-8)
    np.testing.assert_allclose(result["eps_g0"][0, 0, 0], ode.eps_g[0], rtol=1e-12)


def test_bad_values_raise_config_error_naming_the_key(monkeypatch):
    with pytest.raises(ConfigError, match="`axes.lr` must be positive"):
        STUDY.check_axis("lr", np.array([0.5, 0.0]))
    with pytest.raises(ConfigError, match="`axes.K` must be a positive integer"):
        STUDY.check_axis("K", np.array([2, 2.5]))
    with pytest.raises(ConfigError, match="`axes.init_overlap` must be non-negative"):
        STUDY.check_axis("init_overlap", np.array([-0.1]))
    with pytest.raises(ConfigError, match="`params.n_records`"):
        STUDY.check_params({**PARAMS, "n_records": 0})
    with pytest.raises(ConfigError, match="`params.learned_fraction` must be in \\(0, 1\\)"):
        STUDY.check_params({**PARAMS, "learned_fraction": 1.0})
    with pytest.raises(ConfigError, match="`params.N` must be >= the largest K plus M = 6"):
        STUDY.make({**PARAMS, "N": 5}, {"K": np.array([2, 4])})
    # through a configuration file, with the study registered as `_studies.STUDIES` will hold it
    monkeypatch.setitem(STUDIES, "committee", STUDY)
    config = parse_config(STUDY.default_config())  # the shipped configuration is valid
    assert config.params["N"] == 1000 and "seed" in config.grid.axes
    with pytest.raises(ConfigError, match="`params.noise` must be non-negative"):
        parse_config({"study": "committee", "axes": {"lr": [1.0]}, "params": {"noise": -0.1}})
    with pytest.raises(ConfigError, match="`params.train_readout` must be of type bool"):
        parse_config({"study": "committee", "axes": {"lr": [1.0]}, "params": {"train_readout": 1}})
    with pytest.raises(ConfigError, match="unknown axis"):
        parse_config({"study": "committee", "axes": {"width": [1.0]}})
