"""Sweep configuration files (TOML, read with the standard library's tomllib), validated.

A configuration names a built-in study and gives its axes and fixed parameters::

    study = "one-hidden-layer"
    chunk_size = 64                      # optional (default: the store's, about 10-50 chunks)
    seed = 0                             # optional, 0..2**32-1

    [axes]                               # each axis: a list, {lin|log = [start, stop, num]}
    width = [16, 64, 256]                # or {range = n} (0, 1, ..., n - 1)
    output_exponent = { lin = [0.0, 1.0, 5] }
    lr_ratio = { log = [0.1, 10.0, 5] }
    seed = { range = 32 }                # independent repetitions (studies with a `seed` axis;
                                         # `SweepResult.over_seeds` reduces it)

    [params]                             # fixed parameters of the study (optional)
    s = 1.0

Unknown keys, wrong types, empty axes, non-finite numbers and values outside what the study
accepts (each study's rules: positive widths, integer counts, preset indices, ...) raise
``ConfigError`` (a ValueError) naming the key, what it must be and the value given.
"""

from __future__ import annotations

import tomllib

import numpy as np

from ._grid import Grid

__all__ = ["ConfigError", "SweepConfig", "load_config", "parse_config"]

_TOP_LEVEL = {"study", "chunk_size", "seed", "axes", "params", "description"}


class ConfigError(ValueError):
    """A sweep configuration is invalid; the message names the key and the value."""


class SweepConfig:
    """A validated configuration: the study, its Grid, its fixed parameters, run settings."""

    def __init__(self, study, grid: Grid, params: dict, chunk_size, seed: int, raw: dict):
        self.study, self.grid, self.params = study, grid, params
        self.chunk_size, self.seed, self.raw = chunk_size, seed, raw


def _axis(name: str, spec) -> np.ndarray:
    where = f"axes.{name}"
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"`{where}` must not be empty.")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec):
            raise ConfigError(f"`{where}` must be a list of numbers; got {spec!r}.")
        return np.asarray(spec)
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in ("lin", "log", "range"):
            raise ConfigError(
                f"`{where}` must be a list or a table with one key 'lin', 'log' or 'range'; got {spec!r}."
            )
        if "range" in spec:
            n = spec["range"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(f"`{where}.range` must be an integer n >= 1 (values 0..n-1); got {n!r}.")
            return np.arange(n)
        kind, args = next(iter(spec.items()))
        if (
            not isinstance(args, list)
            or len(args) != 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in args)
            or not float(args[2]).is_integer()
            or args[2] < 1
        ):
            raise ConfigError(f"`{where}.{kind}` must be [start, stop, num] with num >= 1; got {args!r}.")
        start, stop, num = float(args[0]), float(args[1]), int(args[2])
        if kind == "log":
            if start <= 0 or stop <= 0:
                raise ConfigError(f"`{where}.log` needs positive start and stop; got {args!r}.")
            return np.geomspace(start, stop, num)
        return np.linspace(start, stop, num)
    raise ConfigError(
        f"`{where}` must be a list, a {{lin|log = [start, stop, num]}} or a {{range = n}} table; "
        f"got {spec!r}."
    )


def parse_config(raw: dict) -> SweepConfig:
    """Validate a configuration dictionary (as read from TOML)."""
    from ._studies import STUDIES

    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; allowed: {sorted(_TOP_LEVEL)}.")
    name = raw.get("study")
    if not isinstance(name, str) or name not in STUDIES:
        raise ConfigError(f"`study` must be one of {sorted(STUDIES)}; got {name!r}.")
    study = STUDIES[name]
    axes = raw.get("axes")
    if not isinstance(axes, dict) or not axes:
        raise ConfigError(f"`axes` must be a non-empty table of axes; got {axes!r}.")
    bad_axes = sorted(set(axes) - set(study.axes))
    if bad_axes:
        raise ConfigError(f"unknown axis {bad_axes} for study {name!r}; its axes are {list(study.axes)}.")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"`params` must be a table; got {params!r}.")
    bad_params = sorted(set(params) - set(study.params))
    if bad_params:
        raise ConfigError(
            f"unknown parameter {bad_params} for study {name!r}; its parameters are {sorted(study.params)}."
        )
    for key, value in params.items():
        default = study.params[key]
        if isinstance(default, bool) != isinstance(value, bool) or not isinstance(
            value, type(default) if not isinstance(default, float) else (int, float)
        ):
            raise ConfigError(f"`params.{key}` must be of type {type(default).__name__}; got {value!r}.")
    grid_axes = {}
    for axis in study.axes:  # keep the study's axis order; missing axes take their default
        values = _axis(axis, axes[axis]) if axis in axes else np.asarray([study.axes[axis]])
        study.check_axis(axis, values)
        grid_axes[axis] = values
    chunk_size = raw.get("chunk_size")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ConfigError(f"`chunk_size` must be a positive integer; got {chunk_size!r}.")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"`description` must be a string; got {description!r}.")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ConfigError(f"`seed` must be an integer in 0..2**32-1 (a PRNG seed); got {seed!r}.")
    merged = {**study.params, **params}
    study.check_params(merged)
    return SweepConfig(study, Grid(**grid_axes), merged, chunk_size, seed, raw)


def load_config(path_or_name: str) -> SweepConfig:
    """Read a TOML file, or a built-in study by name (its shipped default configuration)."""
    from ._studies import STUDIES

    if path_or_name in STUDIES:
        return parse_config(STUDIES[path_or_name].default_config())
    try:
        with open(path_or_name, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError as error:
        raise ConfigError(
            f"no config file {path_or_name!r} and no built-in study of that name "
            f"(built-in: {sorted(STUDIES)})."
        ) from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path_or_name}: not valid TOML: {error}") from error
    except OSError as error:  # a folder, no permission, ...
        reason = error.strerror or error
        raise ConfigError(f"cannot read the config file {path_or_name!r}: {reason}.") from error
    return parse_config(raw)
