"""The package's surface: subpackages as lazy attributes, a light `import linsolve`, the contract names."""

import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import linsolve

# Modules that `import linsolve` must not pull in (slow to import, optional, or only for the CLI).
HEAVY = ("jax", "matplotlib", "dask", "distributed", "torch", "linsolve.bench", "linsolve.gallery")

# Public names of the first release's API contract, by module.
CONTRACT = {
    "": ["Task", "tasks", "init", "exact", "simulate", "sweep", "analysis", "verify", "plot", "bench"],
    "tasks": ["Task", "teacher", "scalar"],
    "init": ["random", "lambda_balanced"],
    "exact": [
        "mode",
        "mode_time",
        "saxe_mode",
        "saxe_time",
        "one_hidden_layer",
        "single_neuron",
        "lambda_balanced",
        "linearized",
        "one_hidden_layer_gd",
        "saxe_mode_gd",
        "max_learning_rate",
        "gd_phase",
    ],
    "simulate": ["gradient_flow", "gradient_descent", "Trajectory"],
    "sweep": ["Grid", "run", "SweepResult", "classify"],
    "analysis": [
        "cka",
        "cka_matrix",
        "probe_agreement",
        "dmd",
        "spectral_distance",
        "conjugacy_test",
        "lift",
        "hessian_spectrum",
        "agop",
        "nfa_correlation",
        "nc1",
        "nc2",
        "deep_rfm",
        "sharpness",
    ],
    "verify": ["verify"],
}


def _python(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_linsolve_is_light():
    got = _python(
        """
        import json, sys
        import linsolve
        print(json.dumps({"modules": sorted(sys.modules), "version": linsolve.__version__}))
        """
    )
    heavy = [m for m in HEAVY if m in got["modules"]]
    assert heavy == [], f"`import linsolve` imports {heavy}"
    assert got["version"] == linsolve.__version__


def test_every_subpackage_is_a_lazy_attribute():
    got = _python(
        """
        import json, sys, types
        import linsolve as lns
        before = set(sys.modules)
        names = {n: getattr(lns, n).__name__ for n in lns.__all__ if n != "__version__"}
        modules = {n: isinstance(getattr(lns, n), types.ModuleType) for n in names}
        heavy = [m for m in ("matplotlib", "dask", "distributed", "torch") if m in sys.modules]
        print(json.dumps({"names": names, "modules": modules, "listed": sorted(dir(lns)),
                          "new": sorted(set(sys.modules) - before), "heavy": heavy}))
        """
    )
    public = [m.name for m in pkgutil.iter_modules(linsolve.__path__) if not m.name.startswith("_")]
    for name in public:
        assert got["names"].get(name) == f"linsolve.{name}", f"linsolve.{name} is not an attribute"
        assert got["modules"][name] and name in got["listed"]
    assert got["names"]["Task"] == "Task" and "Task" in got["listed"]
    assert "linsolve.sweep" in got["new"], "subpackages must be imported on first access, not before"
    # The subpackages keep their own heavy imports (matplotlib, Dask, PyTorch) inside functions.
    assert got["heavy"] == [], f"accessing the subpackages imports {got['heavy']}"


def test_star_import_and_unknown_attribute():
    namespace = {}
    exec("from linsolve import *", namespace)
    assert {"sweep", "analysis", "verify", "plot", "bench", "gallery", "Task"} <= set(namespace)
    with pytest.raises(AttributeError, match="module 'linsolve' has no attribute 'no_such_thing'"):
        linsolve.no_such_thing  # noqa: B018
    assert not hasattr(linsolve, "no_such_thing")


@pytest.mark.parametrize("module", sorted(CONTRACT))
def test_contract_names_exist(module):
    namespace = linsolve if not module else getattr(linsolve, module)
    missing = [name for name in CONTRACT[module] if not hasattr(namespace, name)]
    assert not missing, f"linsolve{'.' + module if module else ''} lacks {missing}"
