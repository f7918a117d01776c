"""Run a validated configuration (a built-in study) as a sweep."""

from __future__ import annotations

import jax.random as jr

from ._config import SweepConfig
from ._result import SweepResult
from ._run import run

__all__ = ["run_config"]


def run_config(config: SweepConfig, *, out=None, executor=None, progress=True, resume=True) -> SweepResult:
    """Evaluate a study over its grid; the configuration is stored in the result's metadata."""
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
    )
