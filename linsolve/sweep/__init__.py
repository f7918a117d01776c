"""Phase-diagram sweeps: a Grid of named axes, chunked vmapped runs, a resumable result store."""

from ._grid import Grid as Grid
from ._grid import linspace as linspace
from ._grid import logspace as logspace
from ._result import SweepResult as SweepResult
from ._run import run as run
