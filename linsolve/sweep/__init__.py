"""Phase-diagram sweeps: a Grid of named axes, chunked vmapped runs, a resumable result store,
built-in studies configured by TOML files."""

from ._classify import classify as classify
from ._config import ConfigError as ConfigError
from ._config import SweepConfig as SweepConfig
from ._config import load_config as load_config
from ._config import parse_config as parse_config
from ._grid import Grid as Grid
from ._grid import linspace as linspace
from ._grid import logspace as logspace
from ._result import SweepResult as SweepResult
from ._run import cpu_devices as cpu_devices
from ._run import default_chunk_size as default_chunk_size
from ._run import run as run
from ._store import StoreError as StoreError
from ._studies import STUDIES as STUDIES
from ._studies import time_to_learn as time_to_learn
from ._study_run import run_config as run_config
