"""linsolve: exact solutions and simulators for the training dynamics of linear and shallow nets.

Every subpackage is an attribute of the package, imported on first use (PEP 562), so that
``import linsolve`` stays cheap (it imports neither JAX nor matplotlib nor Dask) and
``import linsolve as lns; lns.sweep.run(...)`` works without a separate import:

- `lns.tasks` (and `lns.Task`), `lns.init`, `lns.models`, `lns.mlp`: tasks, initialisations, networks.
- `lns.exact`: closed-form solutions of gradient flow.
- `lns.simulate`: gradient flow and gradient descent of the same parametrisations.
- `lns.sweep`: phase-diagram sweeps; `lns.analysis`: analysis toolkits; `lns.verify`: the
  theorem-check panel; `lns.plot`: figures; `lns.bench`: the performance harness;
  `lns.gallery`: the studies of ``experiments/``; `lns.explore`: the classroom explorers
  (notebook widgets and self-contained HTML pages); `lns.cli`: the ``linsolve`` command.
"""

import importlib as _importlib
import importlib.metadata as _metadata
import typing as _typing

try:
    __version__ = _metadata.version("linsolve")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

# Public subpackages and modules, imported lazily on first attribute access.
_SUBMODULES = (
    "analysis",
    "bench",
    "cli",
    "exact",
    "explore",
    "gallery",
    "init",
    "mlp",
    "models",
    "plot",
    "simulate",
    "sweep",
    "tasks",
    "verify",
)
# Names re-exported from a submodule: name -> submodule.
_REEXPORTS = {"Task": "tasks"}

__all__ = [*_SUBMODULES, *_REEXPORTS, "__version__"]

if _typing.TYPE_CHECKING:  # static tools see the attributes that __getattr__ provides at run time
    from . import analysis as analysis
    from . import bench as bench
    from . import cli as cli
    from . import exact as exact
    from . import explore as explore
    from . import gallery as gallery
    from . import init as init
    from . import mlp as mlp
    from . import models as models
    from . import plot as plot
    from . import simulate as simulate
    from . import sweep as sweep
    from . import tasks as tasks
    from . import verify as verify
    from .tasks import Task as Task


def __getattr__(name: str):
    """Import a subpackage (or a re-exported name) on first access and cache it on the package."""
    if name in _SUBMODULES:
        value = _importlib.import_module(f"{__name__}.{name}")
    elif name in _REEXPORTS:
        value = getattr(_importlib.import_module(f"{__name__}.{_REEXPORTS[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
