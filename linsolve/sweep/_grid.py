"""`Grid`: named axes whose outer product is the set of sweep points."""

from __future__ import annotations

import math

import jax
import jax.random as jr
import numpy as np

__all__ = ["Grid", "linspace", "logspace"]


def linspace(start: float, stop: float, num: int) -> np.ndarray:
    """``num`` evenly spaced values from `start` to `stop` (inclusive)."""
    return np.linspace(start, stop, int(num))


def logspace(start: float, stop: float, num: int) -> np.ndarray:
    """``num`` log-spaced values from `start` to `stop` (the values, not their exponents)."""
    if start <= 0 or stop <= 0:
        raise ValueError(f"`logspace` needs positive end points; got start={start}, stop={stop}.")
    return np.geomspace(start, stop, int(num))


class Grid:
    """Named 1-D axes; the grid is their outer product in the given order (C order when flat).

    ``Grid(width=[16, 64], lr=logspace(1e-3, 1e-1, 8))`` has shape (2, 8); flat index ``i`` is the
    point ``np.unravel_index(i, shape)``. Per-point PRNG keys fold the flat index into a base key,
    so results do not depend on chunking or execution order.
    """

    def __init__(self, **axes):
        if not axes:
            raise ValueError("`Grid` needs at least one named axis, e.g. Grid(lr=[0.1, 0.2]).")
        clean = {}
        for name, values in axes.items():
            arr = np.asarray(values)
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(
                    f"axis `{name}` must be a non-empty 1-D array of values; got shape {arr.shape}."
                )
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise ValueError(f"axis `{name}` must hold numbers; got dtype {arr.dtype}.")
            if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
                raise ValueError(f"axis `{name}` must be finite; got {arr.tolist()}.")
            clean[name] = arr
        self._axes = clean

    @property
    def axes(self) -> dict[str, np.ndarray]:
        return dict(self._axes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self._axes.values())

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def flat(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """The points ``start..stop`` of the flattened grid, one (m,) array per axis."""
        stop = self.size if stop is None else min(stop, self.size)
        index = np.unravel_index(np.arange(start, stop), self.shape)
        return {name: values[i] for (name, values), i in zip(self._axes.items(), index)}

    def take(self, index) -> dict[str, np.ndarray]:
        """The points at the flat indices `index` (any order), one (m,) array per axis."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.size):
            raise ValueError(f"`index` must lie in [0, {self.size}); got values up to {index.max()}.")
        unravelled = np.unravel_index(index, self.shape)
        return {name: values[i] for (name, values), i in zip(self._axes.items(), unravelled)}

    def point(self, flat_index: int) -> dict:
        """The values of every axis at one flat index."""
        if not 0 <= flat_index < self.size:
            raise ValueError(f"`flat_index` must be in [0, {self.size}); got {flat_index}.")
        return {name: values[0] for name, values in self.flat(flat_index, flat_index + 1).items()}

    def unflatten(self, values: np.ndarray) -> np.ndarray:
        """(size, ...) -> (*shape, ...)."""
        values = np.asarray(values)
        if values.shape[:1] != (self.size,):
            raise ValueError(
                f"`values` must have {self.size} rows (one per grid point); got shape {values.shape}."
            )
        return values.reshape(self.shape + values.shape[1:])

    def keys(self, key, start: int = 0, stop: int | None = None) -> jax.Array:
        """Per-point PRNG keys ``fold_in(key, flat_index)`` for points ``start..stop``."""
        stop = self.size if stop is None else min(stop, self.size)
        return jax.vmap(lambda i: jr.fold_in(key, i))(np.arange(start, stop, dtype=np.uint32))

    def to_dict(self) -> dict:
        return {name: values.tolist() for name, values in self._axes.items()}

    @classmethod
    def from_dict(cls, axes: dict) -> Grid:
        return cls(**{name: np.asarray(values) for name, values in axes.items()})

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Grid)
            and self.names == other.names
            and all(np.array_equal(a, b) for a, b in zip(self._axes.values(), other._axes.values()))
        )

    def __repr__(self) -> str:
        axes = ", ".join(f"{n}[{len(v)}]" for n, v in self._axes.items())
        return f"Grid({axes})"
