"""`SweepResult`: named axes and output arrays with the grid's axes first; portable `.npz` storage."""

from __future__ import annotations

import json
import os

import numpy as np

from ._grid import Grid

__all__ = ["SweepResult"]


class SweepResult:
    """Outputs of a sweep: ``result[name]`` has shape ``grid.shape + output shape``.

    **Attributes:** `axes` (dict of 1-D arrays, in grid order), `data` (dict of arrays),
    `meta` (dict: configuration, versions, dtype, device, ...).
    """

    def __init__(self, axes: dict, data: dict, meta: dict | None = None):
        self.grid = Grid(**axes)
        for name, values in data.items():
            if np.shape(values)[: len(self.grid.shape)] != self.grid.shape:
                raise ValueError(
                    f"output `{name}` must start with the grid shape {self.grid.shape}; "
                    f"got {np.shape(values)}."
                )
        self.data = {name: np.asarray(values) for name, values in data.items()}
        self.meta = dict(meta or {})

    @property
    def axes(self) -> dict[str, np.ndarray]:
        return self.grid.axes

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.data:
            raise KeyError(f"no output {name!r}; outputs are {sorted(self.data)}.")
        return self.data[name]

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def keys(self):
        return self.data.keys()

    def __repr__(self) -> str:
        return f"SweepResult({self.grid!r}, outputs={sorted(self.data)})"

    def sel(self, method: str = "exact", **selection) -> SweepResult:
        """Select axis values: exact match, or the nearest value with ``method="nearest"``.

        A scalar drops its axis; a list keeps the axis with the chosen values.
        """
        unknown = sorted(set(selection) - set(self.axes))
        if unknown:
            raise KeyError(f"unknown axes {unknown}; axes are {list(self.axes)}.")
        index, axes = [], {}
        for name, values in self.axes.items():
            if name not in selection:
                index.append(slice(None))
                axes[name] = values
                continue
            wanted = selection[name]
            picks = [self._find(name, values, w, method) for w in np.atleast_1d(wanted)]
            if np.ndim(wanted) == 0:
                index.append(picks[0])
            else:
                index.append(np.asarray(picks))
                axes[name] = values[picks]
        # Index one axis at a time so lists never broadcast against each other.
        data = {}
        for k, v in self.data.items():
            axis = 0
            for i in index:
                if isinstance(i, slice):
                    axis += 1
                elif np.ndim(i) == 0:
                    v = np.take(v, i, axis=axis)
                else:
                    v = np.take(v, i, axis=axis)
                    axis += 1
            data[k] = v
        if not axes:
            axes = {"point": np.zeros(1)}
            data = {k: v[None] for k, v in data.items()}
        return SweepResult(axes, data, self.meta)

    @staticmethod
    def _find(name, values, wanted, method) -> int:
        if method == "nearest":
            return int(np.argmin(np.abs(values - wanted)))
        hit = np.nonzero(np.isclose(values, wanted, rtol=1e-12, atol=0))[0]
        if len(hit) == 0:
            raise KeyError(f"axis `{name}` has no value {wanted}; values are {values.tolist()}.")
        return int(hit[0])

    def over_seeds(self, axis: str = "seed") -> SweepResult:
        """Reduce the axis of independent repetitions `axis` (default ``"seed"``) to statistics.

        Every grid point of a sweep gets its own PRNG key, so an axis ``seed = 0..n-1`` holds ``n``
        independent draws of each point. For each output ``name`` the reduced result holds:

        - floating ``name``: ``name`` the mean over the FINITE values (a diverged draw's ``inf``
          risk is left out of the mean; where no draw is finite, the plain mean: ``inf`` for an
          exact output that overflowed everywhere, else NaN), ``name_count`` (int) the number
          of finite values, ``name_std`` their sample standard deviation (``ddof = 1``; NaN for
          fewer than 2) and ``name_sem = name_std / sqrt(name_count)`` the standard error of
          the mean;
        - boolean ``name`` (e.g. ``diverged``): ``name`` True where any draw is True and
          ``name_fraction`` the fraction of draws that are True;
        - ``status`` (outcome codes of ``linsolve.simulate.STATUS_NAMES``): the most severe outcome
          over the draws (diverged, else step limit, else converged);
        - other integer outputs (category codes): the most common value (the smallest on ties).

        **Returns:** a :class:`SweepResult` without `axis` (with one placeholder axis ``point`` when
        `axis` was the only one); ``meta["over_seeds"] = {"axis": axis, "n": n}``.
        """
        if axis not in self.axes:
            raise KeyError(f"no axis {axis!r} to reduce; axes are {list(self.axes)}.")
        position = list(self.axes).index(axis)
        data = {}
        for name, values in self.data.items():
            data.update(_reduce(name, np.moveaxis(values, position, 0)))
        axes = {k: v for k, v in self.axes.items() if k != axis}
        if not axes:
            axes = {"point": np.zeros(1)}
            data = {k: v[None] for k, v in data.items()}
        meta = {**self.meta, "over_seeds": {"axis": axis, "n": int(len(self.axes[axis]))}}
        return SweepResult(axes, data, meta)

    def to_xarray(self):
        """An ``xarray.Dataset`` with the grid's axes as coordinates (needs xarray installed)."""
        try:
            import xarray as xr
        except ImportError as error:  # pragma: no cover - optional
            raise ImportError("`to_xarray` needs xarray: pip install xarray") from error
        dims = list(self.axes)
        variables = {}
        for name, values in self.data.items():
            extra = [f"{name}_dim{i}" for i in range(values.ndim - len(dims))]
            variables[name] = (dims + extra, values)
        return xr.Dataset(variables, coords=self.axes, attrs={"meta": json.dumps(self.meta)})

    def save(self, path: str) -> str:
        """Write one portable ``.npz`` (no pickle): arrays, axes and JSON metadata. Returns path."""
        if os.path.isdir(path):
            path = os.path.join(path, "result.npz")
        arrays = {f"data/{k}": v for k, v in self.data.items()}
        arrays.update({f"axis/{k}": v for k, v in self.axes.items()})
        arrays["__meta__"] = np.asarray(json.dumps({"meta": self.meta, "order": list(self.axes)}))
        tmp = path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str) -> SweepResult:
        """Read a result written by :meth:`save` (a ``.npz`` file, or a sweep folder)."""
        if os.path.isdir(path):
            path = os.path.join(path, "result.npz")
        if not os.path.exists(path):
            hint = ""
            if os.path.exists(os.path.join(os.path.dirname(path), "meta.json")):
                hint = " The sweep there has not finished; rerun it with the same arguments to complete it."
            raise ValueError(f"no sweep result at {path!r}.{hint}")
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(str(f["__meta__"]))
            axes = {k: f[f"axis/{k}"] for k in header["order"]}
            data = {k[5:]: f[k] for k in f.files if k.startswith("data/")}
        return cls(axes, data, header["meta"])


# Severity of the outcome codes of `linsolve.simulate.STATUS_NAMES`: diverged > step limit > converged.
_SEVERITY = np.array([0, 2, 1])


def _reduce(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics over the leading axis of `values` (the draws), named as in `over_seeds`."""
    if values.dtype == bool:
        return {name: values.any(axis=0), f"{name}_fraction": values.mean(axis=0)}
    if np.issubdtype(values.dtype, np.integer):
        if name == "status" and values.size and values.min() >= 0 and values.max() < len(_SEVERITY):
            worst = np.argmax(_SEVERITY[values], axis=0)
            return {name: np.take_along_axis(values, worst[None], axis=0)[0]}
        return {name: _mode(values)}
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, values, 0).sum(axis=0) / count
        mean = np.where(count > 0, mean, values.mean(axis=0))  # none finite: inf stays inf
        deviation = np.where(finite, values - mean, 0)
        std = np.sqrt((deviation**2).sum(axis=0) / (count - 1))
        std = np.where(count >= 2, std, np.nan)
        sem = std / np.sqrt(count)
    dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64
    return {
        name: mean.astype(dtype),
        f"{name}_count": count.astype(np.int64),
        f"{name}_std": std.astype(dtype),
        f"{name}_sem": sem.astype(dtype),
    }


def _mode(values: np.ndarray) -> np.ndarray:
    """The most common value along axis 0 (the smallest on ties)."""
    flat = values.reshape(values.shape[0], -1)
    out = np.empty(flat.shape[1], values.dtype)
    for j in range(flat.shape[1]):
        uniques, counts = np.unique(flat[:, j], return_counts=True)
        out[j] = uniques[np.argmax(counts)]
    return out.reshape(values.shape[1:])
