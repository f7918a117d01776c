"""Systematic bad-input audit: every call in `CASES` must raise a ValueError naming the argument.

Each case is ``(id, call, arg)``: ``call()`` passes one bad value (NaN, inf, an overflow-producing
magnitude, an empty array, a zero/negative/non-integer size, a bool, a wrong shape or type, a
non-positive rate or scale, ...) to a public function of tasks, init, models, mlp or the exact
solutions, and must raise ``ValueError`` whose message contains the backquoted name ``arg``.
``tests/audit_bad_input.py`` runs the same table in a subprocess and classifies every call as
(a) clear error, (b) unclear error, (c) silent result (NaN or nonsense accepted), (d) hang.

Valid edge cases next to the bad ones (B = 0, lam = 0, delta = 0, t = inf, ...) and mixed-precision
promotion are tested at the bottom.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linsolve as lns
from linsolve import analysis, exact, init, mlp, models, simulate, tasks

NAN, INF = float("nan"), float("inf")
KEY = jr.PRNGKey(0)
TASK = tasks.teacher(KEY, 3, 2, jnp.array([1.0, 0.5]))  # whitened population task, d_in 3, d_out 2
PARAMS = init.random(KEY, (3, 4, 2), 0.3)
NET = models.shallow_init(KEY, 3, 4, 2)
DATA = tasks.teacher(KEY, 3, 2, jnp.array([1.0]), n=8)
W1, W2 = init.lambda_balanced(KEY, (3, 2, 2), 0.5, 0.3)
U0, V0 = jnp.array([0.3, -0.2]), jnp.array([0.1, 0.4])
T = jnp.array([0.0, 1.0])
I3, I2 = np.eye(3), np.eye(2)
SYX = np.ones((2, 3))


def _nan_at(shape, value=NAN):
    x = np.ones(shape)
    x.flat[0] = value
    return x


def _mode(**kw):
    return exact.mode(kw.pop("t", T), **{"F0": 0.1, "s": 1.0, "k": 1.0, "A": 2.0, "B": 0.5, **kw})


def _mode_time(**kw):
    return exact.mode_time(kw.pop("F0", 0.1), kw.pop("F1", 0.5),
                           **{"s": 1.0, "k": 1.0, "A": 2.0, "B": 0.5, **kw})


def _lbm(**kw):
    return exact.lambda_balanced_mode(kw.pop("t", T), **{"a0": 0.1, "s": 1.0, "lam": 0.5, **kw})


def _ohl(**kw):
    args = {"t": T, "u0": U0, "w0": V0, "s": 1.0, **kw}
    return exact.one_hidden_layer(args.pop("t"), args.pop("u0"), args.pop("w0"), **args)


def _ohl_gd(**kw):
    args = {"steps": 3, "u0": U0, "w0": V0, "s": 1.0, "lr_u": 0.1, "lr_w": 0.1, **kw}
    return exact.one_hidden_layer_gd(args.pop("steps"), args.pop("u0"), args.pop("w0"), **args)


def _sn(**kw):
    args = {"t": T, "a0": 0.2, "w0": U0, "beta_star": V0, **kw}
    return exact.single_neuron(args.pop("t"), args.pop("a0"), args.pop("w0"), args.pop("beta_star"),
                               **args)


def _lb(**kw):
    args = {"t": T, "W1": W1, "W2": W2, "task": TASK, **kw}
    return exact.lambda_balanced(args.pop("t"), args.pop("W1"), args.pop("W2"), args.pop("task"),
                                 **args)


def _teacher(**kw):
    args = {"key": KEY, "d_in": 3, "d_out": 2, "singular_values": [1.0], **kw}
    return tasks.teacher(args.pop("key"), args.pop("d_in"), args.pop("d_out"),
                         args.pop("singular_values"), **args)


def _mixture(**kw):
    args = {"key": KEY, "n": 6, "d": 2, "k": 2, **kw}
    return tasks.gaussian_mixture(args.pop("key"), args.pop("n"), args.pop("d"), args.pop("k"),
                                  **args)


def _shallow(**kw):
    args = {"key": KEY, "d_in": 3, "width": 4, "d_out": 2, **kw}
    return models.shallow_init(args.pop("key"), args.pop("d_in"), args.pop("width"),
                               args.pop("d_out"), **args)


def names(message: str, arg: str) -> bool:
    """The message quotes `arg` (alone, or an entry or field of it: `arg[0]`, `arg.Sxx`)."""
    return re.search(rf"`{re.escape(arg)}(\[[^`]*\]|\.\w+)?`", message) is not None


class Case(NamedTuple):
    id: str
    call: object  # zero-argument callable
    arg: str  # the name the error must quote, as `arg`


CASES = [
    # --- Task, Task.from_data, Task.loss ----------------------------------------------------
    Case("Task/Sxx-nan", lambda: lns.Task(_nan_at((3, 3)), SYX, I2), "Sxx"),
    Case("Task/Syx-inf", lambda: lns.Task(I3, _nan_at((2, 3), INF), I2), "Syx"),
    Case("Task/Syy-nan", lambda: lns.Task(I3, SYX, _nan_at((2, 2))), "Syy"),
    Case("Task/Sxx-string", lambda: lns.Task("eye", SYX, I2), "Sxx"),
    Case("Task/Sxx-asymmetric", lambda: lns.Task(np.triu(np.ones((3, 3))), SYX, I2), "Sxx"),
    Case("Task/Sxx-negative-diagonal", lambda: lns.Task(-I3, SYX, I2), "Sxx"),
    Case("Task/Syy-negative-diagonal", lambda: lns.Task(I3, SYX, -I2), "Syy"),
    Case("Task/Syy-wrong-shape", lambda: lns.Task(I3, SYX, I3), "Syy"),
    Case("Task/Sxx-bool", lambda: lns.Task(np.eye(3, dtype=bool), SYX, I2), "Sxx"),
    Case("from_data/X-empty", lambda: lns.Task.from_data(np.zeros((0, 3)), np.zeros((0, 2))), "X"),
    Case("from_data/X-nan", lambda: lns.Task.from_data(_nan_at((4, 3)), np.ones((4, 2))), "X"),
    Case("from_data/Y-inf", lambda: lns.Task.from_data(np.ones((4, 3)), _nan_at((4, 2), INF)), "Y"),
    Case("from_data/X-overflow", lambda: lns.Task.from_data(np.full((4, 3), 1e200), np.ones((4, 1))),
         "X"),
    Case("from_data/Y-overflow", lambda: lns.Task.from_data(np.ones((4, 3)), np.full((4, 1), 1e200)),
         "Y"),
    Case("from_data/X-1d", lambda: lns.Task.from_data(np.ones(4), np.ones(4)), "X"),
    Case("from_data/labels-shape", lambda: lns.Task.from_data(np.ones((4, 3)), np.ones((4, 2)),
                                                              labels=np.zeros(3, int)), "labels"),
    Case("from_data/labels-float", lambda: lns.Task.from_data(np.ones((4, 3)), np.ones((4, 2)),
                                                              labels=np.full(4, 0.5)), "labels"),
    Case("from_data/labels-negative", lambda: lns.Task.from_data(np.ones((4, 3)), np.ones((4, 2)),
                                                                 labels=-np.ones(4, int)), "labels"),
    Case("Task.loss/P-shape", lambda: TASK.loss(jnp.ones((3, 3))), "P"),
    Case("Task.loss/P-nan", lambda: TASK.loss(_nan_at((2, 3))), "P"),
    # --- tasks.teacher ----------------------------------------------------------------------
    Case("teacher/d_in-negative", lambda: _teacher(d_in=-5), "d_in"),
    Case("teacher/d_in-zero", lambda: _teacher(d_in=0, singular_values=[]), "d_in"),
    Case("teacher/d_out-fraction", lambda: _teacher(d_out=2.5), "d_out"),
    Case("teacher/d_in-bool", lambda: _teacher(d_in=True), "d_in"),
    Case("teacher/n-zero", lambda: _teacher(n=0, whiten=False), "n"),
    Case("teacher/n-negative", lambda: _teacher(n=-3), "n"),
    Case("teacher/n-fraction", lambda: _teacher(n=10.5), "n"),
    Case("teacher/n-too-few-to-whiten", lambda: _teacher(n=2), "n"),
    Case("teacher/noise-nan", lambda: _teacher(noise=NAN), "noise"),
    Case("teacher/noise-negative", lambda: _teacher(noise=-1.0), "noise"),
    Case("teacher/noise-overflow", lambda: _teacher(noise=1e200), "noise"),
    Case("teacher/singular_values-nan", lambda: _teacher(singular_values=[NAN]), "singular_values"),
    Case("teacher/singular_values-overflow", lambda: _teacher(singular_values=[1e200]),
         "singular_values"),
    Case("teacher/singular_values-2d", lambda: _teacher(singular_values=[[1.0]]), "singular_values"),
    Case("teacher/key-int", lambda: _teacher(key=3), "key"),
    Case("teacher/dtype-int", lambda: _teacher(dtype=jnp.int32), "dtype"),
    # --- tasks.scalar -----------------------------------------------------------------------
    Case("scalar/s-nan", lambda: tasks.scalar(s=NAN), "s"),
    Case("scalar/s-overflow", lambda: tasks.scalar(s=1e308), "s"),
    Case("scalar/m2-zero", lambda: tasks.scalar(s=1.0, m2=0.0), "m2"),
    Case("scalar/m2-inf", lambda: tasks.scalar(s=1.0, m2=INF), "m2"),
    Case("scalar/m2-overflow", lambda: tasks.scalar(s=1e160, m2=1e160), "m2"),
    Case("scalar/s-bool", lambda: tasks.scalar(s=True), "s"),
    Case("scalar/s-vector", lambda: tasks.scalar(s=[1.0, 2.0]), "s"),
    Case("scalar/s-string", lambda: tasks.scalar(s="1"), "s"),
    # --- tasks.gaussian_mixture -------------------------------------------------------------
    Case("mixture/d-zero", lambda: _mixture(d=0), "d"),
    Case("mixture/d-negative", lambda: _mixture(d=-2), "d"),
    Case("mixture/n-negative", lambda: _mixture(n=-1), "n"),
    Case("mixture/n-below-k", lambda: _mixture(n=3, k=4), "n"),
    Case("mixture/k-one", lambda: _mixture(k=1), "k"),
    Case("mixture/k-fraction", lambda: _mixture(k=2.5), "k"),
    Case("mixture/separation-nan", lambda: _mixture(separation=NAN), "separation"),
    Case("mixture/separation-negative", lambda: _mixture(separation=-1.0), "separation"),
    Case("mixture/noise-inf", lambda: _mixture(noise=INF), "noise"),
    Case("mixture/targets-unknown", lambda: _mixture(targets="ovr"), "targets"),
    # --- init -------------------------------------------------------------------------------
    Case("random/sizes-zero", lambda: init.random(KEY, (3, 0, 2), 0.1), "sizes"),
    Case("random/sizes-fraction", lambda: init.random(KEY, (3, 2.5, 2), 0.1), "sizes"),
    Case("random/sizes-bool", lambda: init.random(KEY, (3, True, 2), 0.1), "sizes"),
    Case("random/sizes-int", lambda: init.random(KEY, 5, 0.1), "sizes"),
    Case("random/sizes-strings", lambda: init.random(KEY, ("3", "2"), 0.1), "sizes"),
    Case("random/scales-nan", lambda: init.random(KEY, (3, 2), NAN), "scales"),
    Case("random/scales-length", lambda: init.random(KEY, (3, 4, 2), (0.1,)), "scales"),
    Case("random/key-string", lambda: init.random("key", (3, 2), 0.1), "key"),
    Case("balanced/scale-nan", lambda: init.balanced(KEY, (3, 2, 2), NAN), "scale"),
    Case("balanced/scale-negative", lambda: init.balanced(KEY, (3, 2, 2), -1.0), "scale"),
    Case("decoupled/strengths-nan", lambda: init.decoupled(np.eye(2, 1), [NAN], np.eye(3, 1),
                                                           (3, 2, 2)), "strengths"),
    Case("decoupled/U-shape", lambda: init.decoupled(np.eye(3, 1), [1.0], np.eye(3, 1), (3, 2, 2)),
         "U"),
    Case("decoupled/U-nan", lambda: init.decoupled(_nan_at((2, 1)), [1.0], np.eye(3, 1), (3, 2, 2)),
         "U"),
    Case("decoupled/V-inf", lambda: init.decoupled(np.eye(2, 1), [1.0], _nan_at((3, 1), INF),
                                                   (3, 2, 2)), "V"),
    Case("aligned/task-dict", lambda: init.aligned({"Syx": SYX}, (3, 2, 2), 0.1), "task"),
    Case("aligned/strengths-negative", lambda: init.aligned(TASK, (3, 2, 2), -0.1), "strengths"),
    Case("aligned/strengths-nan", lambda: init.aligned(TASK, (3, 2, 2), NAN), "strengths"),
    Case("aligned/strengths-length", lambda: init.aligned(TASK, (3, 2, 2), [0.1, 0.2, 0.3]),
         "strengths"),
    Case("aligned/sizes-mismatch", lambda: init.aligned(TASK, (4, 2, 2), 0.1), "sizes"),
    Case("lambda_balanced/lam-nan", lambda: init.lambda_balanced(KEY, (3, 2, 2), NAN, 0.3), "lam"),
    Case("lambda_balanced/lam-inf", lambda: init.lambda_balanced(KEY, (3, 2, 2), INF, 0.3), "lam"),
    Case("lambda_balanced/lam-string", lambda: init.lambda_balanced(KEY, (3, 2, 2), "1", 0.3),
         "lam"),
    Case("lambda_balanced/lam-vector", lambda: init.lambda_balanced(KEY, (3, 2, 2), [0.1, 0.2], 0.3),
         "lam"),
    Case("lambda_balanced/lam-overflow", lambda: init.lambda_balanced(KEY, (3, 2, 2), 1e308, 0.3),
         "lam"),
    Case("lambda_balanced/scale-nan", lambda: init.lambda_balanced(KEY, (3, 2, 2), 0.5, NAN),
         "scale"),
    Case("lambda_balanced/scale-overflow", lambda: init.lambda_balanced(KEY, (3, 2, 2), 0.5, 1e300),
         "scale"),
    Case("lambda_balanced/sizes-depth", lambda: init.lambda_balanced(KEY, (3, 2, 2, 2), 0.5, 0.3),
         "sizes"),
    Case("lambda_balanced/lam-infeasible", lambda: init.lambda_balanced(KEY, (3, 4, 2), 0.5, 0.3),
         "lam"),
    # --- models -----------------------------------------------------------------------------
    Case("shallow_init/width-zero", lambda: _shallow(width=0), "width"),
    Case("shallow_init/width-negative", lambda: _shallow(width=-1), "width"),
    Case("shallow_init/d_in-fraction", lambda: _shallow(d_in=2.5), "d_in"),
    Case("shallow_init/d_out-bool", lambda: _shallow(d_out=True), "d_out"),
    Case("shallow_init/scales-nan", lambda: _shallow(scales=(NAN, 1.0)), "scales"),
    Case("shallow_init/scales-length", lambda: _shallow(scales=(1.0,)), "scales"),
    Case("shallow_init/activation", lambda: _shallow(activation="swish"), "activation"),
    Case("ShallowNet/W1-nan", lambda: models.ShallowNet(jnp.asarray(_nan_at((4, 3))), None,
                                                        jnp.ones((2, 4)), None), "W1"),
    Case("loss/params-nan", lambda: models.loss((jnp.asarray(_nan_at((4, 3))), PARAMS[1]), TASK),
         "params"),
    Case("loss/params-vs-task", lambda: models.loss((jnp.ones((4, 5)), PARAMS[1]), TASK), "params"),
    Case("loss/net-without-data", lambda: models.loss(NET, TASK), "task"),
    Case("loss/task-dict", lambda: models.loss(PARAMS, {"Sxx": I3}), "task"),
    Case("end_to_end/params-empty", lambda: models.end_to_end(()), "params"),
    Case("end_to_end/output_scale-nan", lambda: models.end_to_end(PARAMS, NAN), "output_scale"),
    Case("apply/X-width", lambda: models.apply(PARAMS, jnp.ones((5, 4))), "X"),
    Case("data_loss/Y-shape", lambda: models.data_loss(PARAMS, jnp.ones((5, 3)), jnp.ones((4, 2))),
         "Y"),
    Case("ntk/lrs-negative", lambda: models.ntk(PARAMS, lrs=-1.0), "lrs"),
    Case("ntk_data/X-nan", lambda: models.ntk_data(PARAMS, jnp.asarray(_nan_at((5, 3)))), "X"),
    Case("conserved/lrs-nan", lambda: models.conserved_quantities(PARAMS, lrs=NAN), "lrs"),
    Case("gradients/params-3d", lambda: models.gradients((jnp.ones((4, 3, 1)), PARAMS[1]), TASK),
         "params"),
    Case("parametrization/width-zero", lambda: models.parametrization("ntk", 0), "width"),
    Case("parametrization/width-fraction", lambda: models.parametrization("ntk", 2.5), "width"),
    Case("parametrization/lr-nan", lambda: models.parametrization("ntk", 4, lr=NAN), "lr"),
    Case("parametrization/name", lambda: models.parametrization("ntk2", 4), "name"),
    # --- mlp --------------------------------------------------------------------------------
    Case("mlp_init/sizes-zero", lambda: mlp.mlp_init(KEY, (3, 0, 1)), "sizes"),
    Case("mlp_init/sizes-short", lambda: mlp.mlp_init(KEY, (3,)), "sizes"),
    Case("mlp_init/sizes-bool", lambda: mlp.mlp_init(KEY, (3, True)), "sizes"),
    Case("mlp_init/scale-nan", lambda: mlp.mlp_init(KEY, (3, 2), scale=NAN), "scale"),
    Case("mlp_init/scale-negative", lambda: mlp.mlp_init(KEY, (3, 2), scale=-1.0), "scale"),
    Case("mlp_init/activation", lambda: mlp.mlp_init(KEY, (3, 2), activation="swish"), "activation"),
    Case("MLP/weights-nan", lambda: mlp.MLP((jnp.asarray(_nan_at((2, 3))),), None, None, None),
         "weights"),
    # --- exact.mode, mode_time, mode_rapidity -----------------------------------------------
    Case("mode/F0-nan", lambda: _mode(F0=NAN), "F0"),
    Case("mode/k-zero", lambda: _mode(k=0.0), "k"),
    Case("mode/A-negative", lambda: _mode(A=-1.0), "A"),
    Case("mode/B-negative", lambda: _mode(B=-1.0), "B"),
    Case("mode/t-negative", lambda: _mode(t=-1.0), "t"),
    Case("mode/t-nan", lambda: _mode(t=NAN), "t"),
    Case("mode/F0-bool", lambda: _mode(F0=True), "F0"),
    Case("mode/s-string", lambda: _mode(s="1"), "s"),
    Case("mode/B-overflow", lambda: _mode(B=1e200), "B"),
    Case("mode/A-overflow", lambda: _mode(A=1e200), "A"),
    Case("mode/k-overflow", lambda: _mode(k=1e308, A=10.0), "k"),
    Case("mode_time/F1-nan", lambda: _mode_time(F1=NAN), "F1"),
    Case("mode_time/k-negative", lambda: _mode_time(k=-1.0), "k"),
    Case("mode_rapidity/k-inf", lambda: exact.mode_rapidity(T, F0=0.1, s=1.0, k=INF, A=2.0, B=0.5),
         "k"),
    # --- exact.lambda_balanced_mode ---------------------------------------------------------
    Case("lambda_balanced_mode/tau-zero", lambda: _lbm(tau=0.0), "tau"),
    Case("lambda_balanced_mode/tau-negative", lambda: _lbm(tau=-1.0), "tau"),
    Case("lambda_balanced_mode/lam-nan", lambda: _lbm(lam=NAN), "lam"),
    Case("lambda_balanced_mode/a0-nan", lambda: _lbm(a0=NAN), "a0"),
    Case("lambda_balanced_mode/s-inf", lambda: _lbm(s=INF), "s"),
    Case("lambda_balanced_mode/t-negative", lambda: _lbm(t=-1.0), "t"),
    # --- exact.one_hidden_layer, phase_ratio, regime, width_exponent ------------------------
    Case("one_hidden_layer/u0-nan", lambda: _ohl(u0=jnp.array([NAN, 0.0])), "u0"),
    Case("one_hidden_layer/w0-shape", lambda: _ohl(w0=jnp.ones(3)), "w0"),
    Case("one_hidden_layer/eta_u-zero", lambda: _ohl(eta_u=0.0), "eta_u"),
    Case("one_hidden_layer/kappa-negative", lambda: _ohl(kappa=-1.0), "kappa"),
    Case("one_hidden_layer/m2-nan", lambda: _ohl(m2=NAN), "m2"),
    Case("one_hidden_layer/t-negative", lambda: _ohl(t=-1.0), "t"),
    Case("one_hidden_layer/u0-2d", lambda: _ohl(u0=jnp.ones((2, 1))), "u0"),
    Case("one_hidden_layer/s-vector", lambda: _ohl(s=[1.0, 2.0]), "s"),
    Case("one_hidden_layer/kappa-underflow", lambda: _ohl(kappa=1e-310), "kappa"),
    Case("one_hidden_layer/u0-overflow", lambda: _ohl(u0=jnp.array([1e200, 0.0])), "u0"),
    Case("phase_ratio/eta_w-negative", lambda: exact.phase_ratio(U0, V0, s=1.0, eta_w=-1.0),
         "eta_w"),
    Case("regime/tol-negative", lambda: exact.regime(U0, V0, s=1.0, tol=-1.0), "tol"),
    Case("regime/tol-nan", lambda: exact.regime(U0, V0, s=1.0, tol=NAN), "tol"),
    Case("width_exponent/preset", lambda: exact.width_exponent("bogus"), "a_u"),
    Case("width_exponent/a_w-nan", lambda: exact.width_exponent(1.0, NAN, 0.0, 0.0, 0.0), "a_w"),
    Case("width_exponent/c-string", lambda: exact.width_exponent(1.0, 1.0, 0.0, 0.0, "1"), "c"),
    # --- exact.single_neuron and friends ----------------------------------------------------
    Case("single_neuron/a0-nan", lambda: _sn(a0=NAN), "a0"),
    Case("single_neuron/beta_star-shape", lambda: _sn(beta_star=jnp.ones(3)), "beta_star"),
    Case("single_neuron/eta_a-zero", lambda: _sn(eta_a=0.0), "eta_a"),
    Case("single_neuron/t-nan", lambda: _sn(t=NAN), "t"),
    Case("single_neuron/beta_star-inf", lambda: _sn(beta_star=jnp.array([INF, 0.0])), "beta_star"),
    Case("single_neuron/w0-empty", lambda: _sn(w0=jnp.ones(0), beta_star=jnp.ones(0)), "w0"),
    Case("single_neuron/eta_w-overflow", lambda: _sn(eta_w=1e300, a0=1e10), "eta_w"),
    Case("potential/beta-nan", lambda: exact.single_neuron_potential(jnp.array([NAN]), 0.0), "beta"),
    Case("potential/delta-nan", lambda: exact.single_neuron_potential(jnp.array([1.0]), NAN),
         "delta"),
    Case("implicit_bias/task-dict", lambda: exact.single_neuron_implicit_bias(0.1, U0, {}), "task"),
    Case("implicit_bias/a_sign", lambda: exact.single_neuron_implicit_bias(
        0.1, jnp.ones(3), tasks.teacher(KEY, 3, 1, [1.0]), a_sign=2), "a_sign"),
    Case("implicit_bias/w0-shape", lambda: exact.single_neuron_implicit_bias(
        0.1, U0, tasks.teacher(KEY, 3, 1, [1.0])), "w0"),
    # --- exact.lambda_balanced --------------------------------------------------------------
    Case("lambda_balanced/tau-zero", lambda: _lb(tau=0.0), "tau"),
    Case("lambda_balanced/W1-nan", lambda: _lb(W1=jnp.asarray(_nan_at((2, 3)))), "W1"),
    Case("lambda_balanced/task-anisotropic", lambda: _lb(task=lns.Task(np.diag([1.0, 2.0, 3.0]), SYX,
                                                                         I2)), "task"),
    Case("lambda_balanced/W2-shape", lambda: _lb(W2=jnp.ones((2, 3))), "W2"),
    Case("lambda_balanced/not-balanced", lambda: _lb(W1=2 * W1), "W1"),
    Case("lambda_balanced/task-shape", lambda: _lb(task=tasks.teacher(KEY, 4, 2, [1.0])), "task"),
    Case("lambda_balanced/chunks-zero", lambda: _lb(chunks=0), "chunks"),
    Case("lambda_balanced/max_step-nan", lambda: _lb(max_step=NAN), "max_step"),
    Case("lambda_balanced/t-negative", lambda: _lb(t=-1.0), "t"),
    Case("lambda_balanced/tau-nan", lambda: _lb(tau=NAN), "tau"),
    Case("lambda_balanced/t-string", lambda: _lb(t="1"), "t"),
    Case("lambda_balanced/t-huge", lambda: _lb(t=1e12), "t"),
    Case("lambda_balanced/tau-tiny", lambda: _lb(tau=1e-12), "tau"),
    Case("lambda_balanced/tol-negative", lambda: _lb(tol=-1.0), "tol"),
    # --- finite learning rates: exact GD maps, stability, phases --------------------------------
    Case("one_hidden_layer_gd/lr_u-zero", lambda: _ohl_gd(lr_u=0.0), "lr_u"),
    Case("one_hidden_layer_gd/lr_w-nan", lambda: _ohl_gd(lr_w=NAN), "lr_w"),
    Case("one_hidden_layer_gd/steps-negative", lambda: _ohl_gd(steps=-2), "steps"),
    Case("one_hidden_layer_gd/steps-fraction", lambda: _ohl_gd(steps=0.5), "steps"),
    Case("one_hidden_layer_gd/w0-shape", lambda: _ohl_gd(w0=jnp.ones(3)), "w0"),
    Case("one_hidden_layer_gd/weight_decay-negative", lambda: _ohl_gd(weight_decay=-0.1),
         "weight_decay"),
    Case("one_hidden_layer_gd/weights-string", lambda: _ohl_gd(weights="yes"), "weights"),
    Case("gd_phase/max_steps-zero", lambda: exact.gd_phase(U0, V0, s=1.0, lr_u=0.1, lr_w=0.1,
                                                           max_steps=0), "max_steps"),
    Case("gd_phase/tol-negative", lambda: exact.gd_phase(U0, V0, s=1.0, lr_u=0.1, lr_w=0.1,
                                                         tol=-1.0), "tol"),
    Case("gd_phase_boundaries/lr_ratio-zero",
         lambda: exact.gd_phase_boundaries(U0, V0, s=0.0, lr_ratio=0.0), "lr_ratio"),
    Case("gd_phase_boundaries/iterations-zero",
         lambda: exact.gd_phase_boundaries(U0, V0, s=0.0, iterations=0), "iterations"),
    Case("saxe_mode_gd/lr-negative", lambda: exact.saxe_mode_gd(3, s=1.0, u0=0.1, lr=-0.1), "lr"),
    Case("saxe_mode_gd/depth-zero", lambda: exact.saxe_mode_gd(3, s=1.0, u0=0.1, lr=0.1, depth=0),
         "depth"),
    Case("saxe_mode_gd/variance-zero",
         lambda: exact.saxe_mode_gd(3, s=1.0, u0=0.1, lr=0.1, variance=0.0), "variance"),
    Case("saxe_mode_gd/steps-negative", lambda: exact.saxe_mode_gd(-1, s=1.0, u0=0.1, lr=0.1),
         "steps"),
    Case("max_learning_rate/task-dict", lambda: exact.max_learning_rate({}, depth=2), "task"),
    Case("max_learning_rate/depth-zero", lambda: exact.max_learning_rate(TASK, depth=0), "depth"),
    Case("max_learning_rate/lrs-length", lambda: exact.max_learning_rate(TASK, depth=2,
                                                                         lrs=[1.0]), "lrs"),
    Case("max_learning_rate/lrs-negative",
         lambda: exact.max_learning_rate(TASK, depth=2, lrs=[1.0, -1.0]), "lrs"),
    Case("max_learning_rate/Sxx-singular",
         lambda: exact.max_learning_rate(lns.Task(np.diag([1.0, 0.0, 1.0]), SYX, I2), depth=2),
         "task"),
    Case("sharpness/k-zero", lambda: analysis.sharpness(lambda p: jnp.sum(p**2), jnp.ones(3), k=0),
         "k"),
    Case("sharpness/loss_fn-none", lambda: analysis.sharpness(None, jnp.ones(3)), "loss_fn"),
    # --- SGD theory, committee machines, diagonal nets, end-to-end flow -------------------------
    Case("sgd_risk/eigenvalues-negative",
         lambda: exact.sgd_risk(3, eigenvalues=[1.0, -1.0], c0=[1.0, 1.0], lr=0.1, batch_size=1),
         "eigenvalues"),
    Case("sgd_risk/batch_size-zero",
         lambda: exact.sgd_risk(3, eigenvalues=[1.0], c0=[1.0], lr=0.1, batch_size=0), "batch_size"),
    Case("sgd_risk/lr-zero",
         lambda: exact.sgd_risk(3, eigenvalues=[1.0], c0=[1.0], lr=0.0, batch_size=1), "lr"),
    Case("sgd_max_learning_rate/batch_size-half",
         lambda: exact.sgd_max_learning_rate([1.0], batch_size=0.5), "batch_size"),
    Case("committee_error/Q-asymmetric",
         lambda: exact.committee_error(jnp.array([[1.0, 0.5], [0.0, 1.0]]), jnp.eye(2), jnp.eye(2),
                                       jnp.ones(2), jnp.ones(2)), "Q"),
    Case("committee_error/activation",
         lambda: exact.committee_error(jnp.eye(2), jnp.eye(2), jnp.eye(2), jnp.ones(2), jnp.ones(2),
                                       activation="tanh"), "activation"),
    Case("committee_ode/lr-zero",
         lambda: exact.committee_ode(jnp.array([0.0, 1.0]), Q0=jnp.eye(2), R0=jnp.eye(2),
                                     T=jnp.eye(2), v0=jnp.ones(2), v_star=jnp.ones(2), lr=0.0), "lr"),
    Case("committee_ode/R0-shape",
         lambda: exact.committee_ode(jnp.array([0.0, 1.0]), Q0=jnp.eye(2), R0=jnp.eye(3),
                                     T=jnp.eye(2), v0=jnp.ones(2), v_star=jnp.ones(2), lr=1.0), "R0"),
    Case("online_sgd_committee/lr-negative",
         lambda: simulate.online_sgd_committee(KEY, N=10, K=2, M=2, lr=-1.0, steps=5), "lr"),
    Case("online_linear_sgd/batch_size-zero",
         lambda: simulate.online_linear_sgd(KEY, covariance=jnp.ones(3), w_star=jnp.ones(3),
                                            w0=jnp.zeros(3), lr=0.1, batch_size=0, steps=5),
         "batch_size"),
    Case("diagonal_implicit_bias/alpha-negative",
         lambda: exact.diagonal_implicit_bias(np.ones((2, 4)), np.ones(2), alpha=-1.0), "alpha"),
    Case("diagonal_implicit_bias/y-shape",
         lambda: exact.diagonal_implicit_bias(np.ones((2, 4)), np.ones(3), alpha=1.0), "y"),
    Case("diagonal_flow/alpha-zero",
         lambda: exact.diagonal_flow(jnp.array([0.0, 1.0]), np.eye(2, 4), np.ones(2), alpha=0.0),
         "alpha"),
    Case("end_to_end_flow/depth-zero",
         lambda: simulate.end_to_end_flow(jnp.eye(2), lns.Task(I2, jnp.eye(2), I2),
                                          jnp.array([0.0, 1.0]), depth=0), "depth"),
    Case("end_to_end_flow/P0-shape",
         lambda: simulate.end_to_end_flow(jnp.ones(3), lns.Task(I2, jnp.eye(2), I2),
                                          jnp.array([0.0, 1.0]), depth=2), "P0"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_names_the_argument(case):
    with pytest.raises(ValueError) as info:
        case.call()
    assert names(str(info.value), case.arg), str(info.value)


def test_table_is_large_and_ids_unique():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


# --- valid edge cases next to the bad ones keep working ---------------------------------------


def test_valid_edges_of_the_exact_solutions():
    t = jnp.array([0.0, 0.5, 3.0, jnp.inf])
    # B = 0 (logistic), F0 = 0 (fixed point), s = 0; lam = 0 and lam < 0 (symmetric in lam).
    F = _mode(t=t, B=0.0)
    assert bool(jnp.all(jnp.isfinite(F))) and float(F[-1]) == 1.0
    np.testing.assert_array_equal(_mode(t=t, F0=0.0, B=0.0), 0.0)
    assert bool(jnp.all(jnp.isfinite(_mode(t=t, s=0.0))))
    for lam in (0.0, -0.5):
        np.testing.assert_allclose(
            _lbm(t=t[:-1], lam=lam, tau=2.0),
            exact.mode(t[:-1], F0=0.1, s=1.0, k=0.5, A=2.0, B=abs(lam)), rtol=1e-14)
    # delta = 0 (balanced single neuron), a0 = 0, beta* = 0.
    w0 = jnp.array([0.6, 0.8])  # |w0| = 1 = a0: delta = 0
    for kw in ({"a0": 1.0, "w0": w0}, {"a0": 0.0}, {"beta_star": jnp.zeros(2)}):
        out = _sn(t=t, **kw)
        assert bool(jnp.all(jnp.isfinite(out.a))) and bool(jnp.all(jnp.isfinite(out.w)))
    assert abs(float(_sn(t=t, a0=1.0, w0=w0).delta[1])) < 1e-14
    # B = 0 in the width-d network (balanced parallel start) and width d = 1.
    out = _ohl(t=t, u0=U0, w0=U0)
    assert float(out.B[0]) == 0.0 and bool(jnp.all(jnp.isfinite(out.F)))
    assert bool(jnp.all(jnp.isfinite(_ohl(t=t, u0=jnp.ones(1), w0=-jnp.ones(1)).F)))
    # lambda-balanced closed form from lam = 0 and lam < 0 inits.
    for lam, sizes in ((0.0, (3, 2, 2)), (-0.3, (3, 2, 2)), (0.0, (3, 6, 2))):
        V1, V2 = init.lambda_balanced(KEY, sizes, lam, 0.3)
        sol = exact.lambda_balanced(t, V1, V2, TASK)
        assert bool(jnp.all(jnp.isfinite(sol.product)))
        np.testing.assert_allclose(sol.lam, lam, atol=1e-12)


def test_valid_edges_of_tasks_init_models():
    assert tasks.teacher(jax.random.key(1), 3, 2, []).Syx.shape == (2, 3)  # typed key, rank 0
    assert tasks.teacher(KEY, np.int64(3), 2.0, [1.0], n=3).X.shape == (3, 3)  # n = d_in
    one = lns.Task.from_data(np.ones((1, 2)), np.ones(1))  # a single sample
    np.testing.assert_allclose(one.Sxx, np.ones((2, 2)))
    assert float(tasks.scalar(s=0.0).loss(jnp.zeros((1, 1)))) == 0.0
    mixture = tasks.gaussian_mixture(KEY, 4, 2, 2, separation=0.0, noise=0.0)
    np.testing.assert_array_equal(mixture.X, 0.0)
    assert all(float(jnp.max(jnp.abs(W))) == 0.0 for W in init.random(KEY, (3, 4, 2), 0.0))
    assert all(float(jnp.max(jnp.abs(W))) == 0.0 for W in init.aligned(TASK, (3, 2, 2), 0.0))
    net = models.shallow_init(KEY, 3, 4, 2, scales=0.0, bias=False)
    assert float(jnp.max(jnp.abs(net.W1))) == 0.0 and net.b1 is None
    assert float(jnp.max(jnp.abs(mlp.mlp_init(KEY, (3, 2), scale=0.0).weights[0]))) == 0.0
    # A layer rate of 0 removes that layer's term from the NTK.
    K = models.ntk(PARAMS, lrs=(1.0, 0.0))
    A = PARAMS[1] @ PARAMS[1].T
    np.testing.assert_allclose(K, jnp.kron(A, jnp.eye(3)), rtol=1e-12)


def test_checks_skip_tracers_under_jit_and_vmap():
    s = jnp.array([0.5, 1.0, 2.0])
    F = jax.vmap(lambda x: _mode(s=x, B=0.0))(s)
    np.testing.assert_allclose(F[:, 0], 0.1)
    lam = jnp.array([0.0, 0.5, -0.5])
    np.testing.assert_allclose(jax.vmap(lambda x: _lbm(lam=x))(lam)[:, 1],
                               jnp.stack([_lbm(lam=float(x))[1] for x in lam]), rtol=1e-14)
    losses = jax.vmap(lambda x: tasks.scalar(s=x).loss(jnp.zeros((1, 1))))(s)
    np.testing.assert_allclose(losses, 0.5 * s**2)
    loss = jax.jit(lambda p: models.loss(p, TASK))(PARAMS)
    np.testing.assert_allclose(loss, models.loss(PARAMS, TASK), rtol=1e-14)
    grads = jax.grad(lambda p: models.loss(p, TASK))(PARAMS)
    for g, h in zip(grads, models.gradients(PARAMS, TASK)):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-14)
    scaled = jax.jit(lambda c: init.random(KEY, (3, 2), c)[0])(2.0)
    np.testing.assert_allclose(scaled, 2 * init.random(KEY, (3, 2), 1.0)[0], rtol=1e-14)
    F = jax.jit(lambda u: _ohl(u0=u).F)(U0)
    np.testing.assert_allclose(F, _ohl().F, rtol=1e-14)


# --- mixed precision: float32 + float64 computes in float64 -----------------------------------

F32 = jnp.float32


def _same_in_float64(mixed, reference):
    """Every leaf of `mixed` is float64 and equals the all-float64 evaluation (same inputs)."""
    for a, b in zip(jax.tree_util.tree_leaves(mixed), jax.tree_util.tree_leaves(reference)):
        assert a.dtype == jnp.float64, a.dtype
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def _up(x):
    return jnp.asarray(x, F32).astype(jnp.float64)


def test_mixed_precision_promotes_the_exact_solutions():
    t32 = T.astype(F32)
    f32 = jnp.asarray(0.1, F32)
    _same_in_float64(_mode(t=t32, F0=f32, s=1.0 + jnp.zeros((), jnp.float64)),
                     _mode(t=T, F0=_up(0.1)))
    _same_in_float64(exact.mode_time(f32, jnp.float64(0.5), s=1.0, k=1.0, A=2.0, B=0.5),
                     _mode_time(F0=_up(0.1)))
    _same_in_float64(_lbm(t=t32, a0=f32, lam=jnp.float64(0.5)), _lbm(a0=_up(0.1)))
    _same_in_float64(_ohl(t=t32, u0=U0.astype(F32)), _ohl(u0=_up(U0)))
    _same_in_float64(_sn(a0=f32, w0=U0.astype(F32)), _sn(a0=_up(0.1), w0=_up(U0)))
    _same_in_float64(_lb(t=t32, W1=W1.astype(F32), W2=W2.astype(F32), tol=1e-6),
                     _lb(W1=_up(W1), W2=_up(W2), tol=1e-6))
    _same_in_float64(exact.width_exponent(jnp.ones(2, F32), jnp.float64(1.0), 0.0, 0.0, 0.0),
                     exact.width_exponent(jnp.ones(2), 1.0, 0.0, 0.0, 0.0))
    # Python floats do not widen: float32 input stays float32.
    assert _mode(t=t32, F0=f32).dtype == F32
    assert _lbm(t=t32, a0=f32, s=F32(1.0), lam=F32(0.5), tau=F32(1.0)).dtype == F32


def test_mixed_precision_promotes_tasks_and_inits():
    task = lns.Task(I3.astype(np.float32), SYX, I2.astype(np.float32))
    assert {task.Sxx.dtype, task.Syx.dtype, task.Syy.dtype} == {jnp.dtype(jnp.float64)}
    X = np.linspace(-1, 1, 12).reshape(4, 3)
    Y = np.cos(np.arange(8.0)).reshape(4, 2)
    _same_in_float64(lns.Task.from_data(X.astype(np.float32), Y),
                     lns.Task.from_data(X.astype(np.float32).astype(np.float64), Y))
    _same_in_float64(tasks.scalar(s=F32(0.1), m2=jnp.float64(2.0)),
                     tasks.scalar(s=_up(0.1), m2=2.0))
    assert tasks.scalar(s=F32(0.1)).dtype == F32
    _same_in_float64(init.lambda_balanced(KEY, (3, 2, 2), F32(0.5), jnp.float64(0.3)),
                     init.lambda_balanced(KEY, (3, 2, 2), _up(0.5), 0.3))
    U, V = np.eye(2, 1, dtype=np.float32), np.eye(3, 1, dtype=np.float32)
    _same_in_float64(init.decoupled(U, jnp.array([0.7]), V, (3, 2, 2)),
                     init.decoupled(U.astype(np.float64), [0.7], V.astype(np.float64), (3, 2, 2)))
    assert init.random(KEY, (3, 2), F32(0.5))[0].dtype == F32
