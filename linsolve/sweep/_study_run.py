"""Run a validated configuration (a built-in study) as a sweep."""

from __future__ import annotations

import jax.random as jr

from ._config import SweepConfig
from ._result import SweepResult
from ._run import run

__all__ = ["run_config"]


def run_config(
    config: SweepConfig, *, out=None, executor=None, progress=True, resume=True, overwrite=False
) -> SweepResult:
    """Evaluate a study over its grid; the configuration is stored in the result's metadata.

    **Arguments:**

    - `config`: a :class:`SweepConfig` (from :func:`load_config` or :func:`parse_config`).
    - `out`, `executor`, `progress`, `resume`, `overwrite`: as for :func:`linsolve.sweep.run`
      (`overwrite=True` discards the results a folder `out` already holds and recomputes).

    **Returns:** the :class:`SweepResult`; every study's outputs include ``status`` (outcome code of
    the simulation, see :data:`linsolve.simulate.STATUS_NAMES`) and ``diverged``.
    """
    fn = config.study.make(config.params, config.grid.axes)
    description = {
        "study": config.study.name,
        "params": config.params,
        "seed": config.seed,
        "axes": config.grid.to_dict(),
    }
    return run(
        fn,
        config.grid,
        chunk_size=config.chunk_size,
        out=out,
        executor=executor,
        progress=progress,
        key=jr.PRNGKey(config.seed),
        config=description,
        resume=resume,
        overwrite=overwrite,
    )
