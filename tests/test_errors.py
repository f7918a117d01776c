"""Every bad input gets a ValueError that names the argument, the expectation and what came."""

import jax.numpy as jnp
import jax.random as jr
import pytest

import linsolve as lns
from linsolve import init, simulate, tasks

TASK = tasks.teacher(jr.PRNGKey(0), 4, 3, jnp.array([1.0, 0.5]))
GOOD = init.random(jr.PRNGKey(1), (4, 5, 3), 0.1)
TS = jnp.linspace(0, 1, 3)


@pytest.mark.parametrize(
    "params,match",
    [
        (
            (jnp.ones((5, 4)), jnp.ones((3, 6))),
            r"`params0\[1\]` must have 5 columns.*got shape \(3, 6\)",
        ),
        ((jnp.ones((5, 2)), jnp.ones((3, 5))), r"`params0\[0\]` must have d_in=4 columns"),
        ((jnp.ones((5, 4)), jnp.ones((2, 5))), r"`params0\[-1\]` must have d_out=3 rows"),
        ((jnp.ones((5, 4, 1)), jnp.ones((3, 5))), r"`params0\[0\]` must be a 2-D matrix"),
        ((jnp.full((5, 4), jnp.nan), jnp.ones((3, 5))), r"`params0\[0\]` must be finite; got 20"),
        ((), r"`params0` must be a non-empty tuple"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        simulate.gradient_flow(params, TASK, TS)
    with pytest.raises(ValueError, match=match):
        simulate.gradient_descent(params, TASK, lrs=0.1, steps=1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lrs": 0.0}, r"`lrs` must be positive; got \[0.0, 0.0\]"),
        ({"lrs": (0.1, -1.0)}, r"`lrs` must be positive; got \[0.1, -1.0\]"),
        ({"lrs": (0.1, 0.2, 0.3)}, r"`lrs` must be a scalar or have one entry per layer \(2\)"),
        ({"lrs": jnp.inf}, r"`lrs` must be finite"),
        ({"output_scale": -1.0}, r"`output_scale` must be positive"),
    ],
)
def test_bad_rates_and_scales(kwargs, match):
    kwargs = {"lrs": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate.gradient_descent(GOOD, TASK, steps=1, **kwargs)
    with pytest.raises(ValueError, match=match):
        simulate.gradient_flow(GOOD, TASK, TS, **kwargs)


def test_bad_simulator_options():
    with pytest.raises(ValueError, match=r"`ts` must be non-negative and non-decreasing"):
        simulate.gradient_flow(GOOD, TASK, jnp.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"`steps` must be a multiple of `record_every`"):
        simulate.gradient_descent(GOOD, TASK, lrs=0.1, steps=10, record_every=3)
    with pytest.raises(ValueError, match=r"`batch_size` needs a task that carries data"):
        simulate.gradient_descent(GOOD, TASK, lrs=0.1, steps=1, batch_size=2, key=jr.PRNGKey(0))
    data_task = tasks.teacher(jr.PRNGKey(2), 4, 3, jnp.array([1.0]), n=10)
    with pytest.raises(ValueError, match=r"`batch_size` must be .*\[1, n=10\].*got 11"):
        simulate.gradient_descent(
            GOOD, data_task, lrs=0.1, steps=1, batch_size=11, key=jr.PRNGKey(0)
        )
    with pytest.raises(ValueError, match=r"`key` is required"):
        simulate.gradient_descent(GOOD, data_task, lrs=0.1, steps=1, batch_size=2)
    with pytest.raises(ValueError, match=r"`optimizer` must be one of"):
        simulate.gradient_descent(GOOD, TASK, lrs=0.1, steps=1, optimizer="adamw2")
    with pytest.raises(ValueError, match=r"`task` must be a linsolve.Task"):
        simulate.gradient_flow(GOOD, {"Sxx": 1}, TS)


def test_bad_tasks_and_inits():
    with pytest.raises(ValueError, match=r"`Syx` must have shape \(d_out, d_in=3\); got \(2, 4\)"):
        lns.Task(jnp.eye(3), jnp.ones((2, 4)), jnp.eye(2))
    with pytest.raises(ValueError, match=r"`Y` must have shape \(n=5, d_out\); got \(4, 1\)"):
        lns.Task.from_data(jnp.ones((5, 2)), jnp.ones((4, 1)))
    with pytest.raises(ValueError, match=r"at most min\(d_in, d_out\)=2 entries; got 3"):
        tasks.teacher(jr.PRNGKey(0), 2, 4, jnp.array([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"`singular_values` must be non-negative"):
        tasks.teacher(jr.PRNGKey(0), 2, 4, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"`m2` must be positive"):
        tasks.scalar(s=1.0, m2=-1.0)
    with pytest.raises(ValueError, match=r"`scales` must be non-negative; got \[0.1, -0.5\]"):
        init.random(jr.PRNGKey(0), (3, 4, 2), (0.1, -0.5))
    with pytest.raises(ValueError, match=r"`sizes` must be positive integers"):
        init.random(jr.PRNGKey(0), (3, 0, 2), 0.1)
    with pytest.raises(ValueError, match=r"every hidden width must be >= the number of modes r=3"):
        init.aligned(tasks.teacher(jr.PRNGKey(0), 3, 3, jnp.ones(3)), (3, 2, 3), 0.1)
