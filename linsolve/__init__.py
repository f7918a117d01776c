"""linsolve: exact solutions and simulators for the training dynamics of linear and shallow nets."""

from importlib.metadata import PackageNotFoundError, version

from . import exact as exact
from . import init as init
from . import mlp as mlp
from . import models as models
from . import simulate as simulate
from . import tasks as tasks
from .tasks import Task as Task

try:
    __version__ = version("linsolve")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
