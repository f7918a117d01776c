"""Tests run in float64 on two CPU devices; `compilations` counts XLA compilations inside a block."""

import contextlib

import jax
import jax.random as jr
import pytest

jax.config.update("jax_enable_x64", True)
# Two CPU devices, so the sweep's sharded path runs in the tests as it does under the CLI.
jax.config.update("jax_num_cpu_devices", 2)


@pytest.fixture
def getkey():
    """A fresh PRNG key per call, deterministic per test."""
    state = {"key": jr.PRNGKey(0)}

    def _getkey():
        state["key"], sub = jr.split(state["key"])
        return sub

    return _getkey


@contextlib.contextmanager
def count_compilations():
    """Yields a list whose length is the number of backend compilations inside the block."""
    events = []

    def listener(name, *args, **kwargs):
        if name.endswith("backend_compile_duration"):
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def compilations():
    return count_compilations
