"""Point-function fingerprints: what changes them, what does not, and that they agree across processes."""

import os
import subprocess
import sys
import textwrap
import types

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import linsolve
from linsolve.sweep._fingerprint import fingerprint, is_library_module

POINT = """
import jax.numpy as jnp
import jax.random as jr

SCALE = {scale}

def helper(x):
    return {body}

def point(a, b, shift=1.0, *, power=2):
    inner = lambda y: y ** power
    return {{"y": helper(a) * SCALE + inner(b) + shift}}
"""


def _user_module(scale="2.0", body="jnp.sin(x)", name="user_study"):
    """A fresh user module (not installed, not in sys.modules) defining `helper` and `point`."""
    module = types.ModuleType(name)
    exec(textwrap.dedent(POINT.format(scale=scale, body=body)), module.__dict__)
    return module


def test_same_code_same_fingerprint_in_fresh_objects():
    assert fingerprint(_user_module().point) == fingerprint(_user_module().point)
    assert len(fingerprint(_user_module().point)) == 64


def test_helper_body_and_global_data_change_the_fingerprint():
    base = fingerprint(_user_module().point)
    assert fingerprint(_user_module(body="jnp.cos(x)").point) != base  # a helper's body
    assert fingerprint(_user_module(scale="3.0").point) != base  # a global constant


def test_defaults_kwdefaults_and_nested_code_change_the_fingerprint():
    module = _user_module()
    base = fingerprint(module.point)
    module.point.__defaults__ = (2.0,)
    assert fingerprint(module.point) != base
    module = _user_module()
    module.point.__kwdefaults__ = {"power": 3}
    assert fingerprint(module.point) != base
    nested = _user_module()
    exec("def point(a, b, shift=1.0, *, power=2):\n    return {'y': (lambda y: y + 1)(a)}", nested.__dict__)
    other = _user_module()
    exec("def point(a, b, shift=1.0, *, power=2):\n    return {'y': (lambda y: y + 2)(a)}", other.__dict__)
    assert fingerprint(nested.point) != fingerprint(other.point)


def _closure_over(value):
    def point(a):
        return {"y": a * value}

    return point


def test_closure_values_change_the_fingerprint():
    big = np.ones(5000)  # repr would elide the middle; the hash reads every byte
    changed = big.copy()
    changed[2500] = 2.0
    assert fingerprint(_closure_over(big)) != fingerprint(_closure_over(changed))
    assert fingerprint(_closure_over(big)) == fingerprint(_closure_over(big.copy()))
    assert fingerprint(_closure_over(jnp.ones(3))) != fingerprint(_closure_over(jnp.ones(3, jnp.float32)))
    assert fingerprint(_closure_over({"lr": 0.1})) != fingerprint(_closure_over({"lr": 0.2}))
    assert fingerprint(_closure_over(jr.key(0))) != fingerprint(_closure_over(jr.key(1)))
    # functions in cells are followed, library closures by their captured values
    assert fingerprint(_closure_over(_closure_over(1.0))) != fingerprint(_closure_over(_closure_over(2.0)))
    assert fingerprint(_closure_over(optax.sgd(0.1))) != fingerprint(_closure_over(optax.sgd(0.2)))


class _Settings:
    def __init__(self, lr):
        self.lr = lr


def test_plain_objects_hash_by_their_fields_not_their_address():
    assert fingerprint(_closure_over(_Settings(0.1))) == fingerprint(_closure_over(_Settings(0.1)))
    assert fingerprint(_closure_over(_Settings(0.1))) != fingerprint(_closure_over(_Settings(0.3)))


def test_module_attributes_reached_through_a_user_module():
    helpers = _user_module(name="user_helpers")

    def point(a):
        return {"y": helpers.helper(a)}

    base = fingerprint(point)
    helpers.helper = _user_module(body="x + 1", name="user_helpers").helper
    assert fingerprint(point) != base
    # the same through a global: user_main.point evaluates `helpers.helper` by attribute
    main = types.ModuleType("user_main")
    main.helpers = _user_module(name="user_helpers")
    exec("def point(a):\n    return {'y': helpers.helper(a)}", main.__dict__)
    base = fingerprint(main.point)
    main.helpers.helper = _user_module(body="x + 1", name="user_helpers").helper
    assert fingerprint(main.point) != base


def test_libraries_enter_by_name():
    assert is_library_module("jax.numpy") and is_library_module("numpy") and is_library_module("json")
    assert not is_library_module("linsolve.simulate") and not is_library_module("__main__")
    assert not is_library_module(None)


def test_fingerprint_is_the_same_in_another_process():
    """Set iteration order (hash seed), addresses and object ids never enter the hash."""
    code = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "from linsolve.sweep import load_config\n"
        "from linsolve.sweep._fingerprint import fingerprint\n"
        "import linsolve.sweep, os\n"
        "path = os.path.join(os.path.dirname(linsolve.sweep.__file__), 'configs', 'lambda.toml')\n"
        "c = load_config(path)\n"
        "print(fingerprint(c.study.make(c.params, c.grid.axes)))\n"
    )
    from linsolve.sweep import _fingerprint, load_config

    path = os.path.join(os.path.dirname(_fingerprint.__file__), "configs", "lambda.toml")
    config = load_config(path)
    here = fingerprint(config.study.make(config.params, config.grid.axes))
    env = dict(os.environ, PYTHONHASHSEED="12345", JAX_PLATFORMS="cpu")
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


def _uses_linsolve(lr):
    return {"loss": linsolve.simulate.gradient_descent(lr)}


def test_linsolve_functions_are_followed_through_attribute_chains(monkeypatch):
    base = fingerprint(_uses_linsolve)
    assert fingerprint(_uses_linsolve) == base
    monkeypatch.setattr(linsolve.simulate, "gradient_descent", lambda lr: lr)
    assert fingerprint(_uses_linsolve) != base
