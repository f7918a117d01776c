"""One self-contained HTML page per explorer: every slider setting precomputed, plotly.js inlined.

The page needs no network when viewed: plotly.js is copied in from the ``plotly`` package
(``plotly.offline.get_plotlyjs()``), the curves of every setting of the slider grid sit in the page
as JSON (floats rounded to 4 significant digits), and a few lines of JavaScript redraw the plot
with ``Plotly.react`` whenever an ``<input type=range>`` slider moves.
"""

from __future__ import annotations

import html
import json
import os
import time
from typing import NamedTuple

import numpy as np

from ._registry import get_explorer
from ._spec import Explorer, as_numpy

__all__ = ["ExplorerGrid", "page_data", "precompute", "write_html"]

_DIGITS = 4


class ExplorerGrid(NamedTuple):
    """The curves of an explorer at every setting of its slider grid.

    **Fields:**

    - `explorer`: the :class:`Explorer`.
    - `sliders`: the sliders whose grid was walked (coarser than the explorer's with ``smoke``).
    - `points`: list of ``curves`` results (dicts of float64 arrays), one per setting, in C order
      over `sliders` (the last slider fastest), as ``Explorer.settings`` lists them.
    - `seconds`: wall time of the precomputation.
    """

    explorer: Explorer
    sliders: tuple
    points: list
    seconds: float


def precompute(name, *, smoke: bool = False) -> ExplorerGrid:
    """Evaluate ``explorer.curves`` at every setting of the slider grid.

    **Arguments:** `name`: an explorer name (``list_explorers()``) or an :class:`Explorer`;
    `smoke`: use at most three values per slider (a fast, coarse page).

    **Returns:** an :class:`ExplorerGrid`.
    """
    explorer = get_explorer(name)
    start = time.perf_counter()
    points = [as_numpy(explorer.curves(**s)) for s in explorer.settings(smoke)]
    return ExplorerGrid(explorer, explorer.grid_sliders(smoke), points, time.perf_counter() - start)


def _rounded(x: np.ndarray):
    """Lists (nested for 2-D) with ``_DIGITS`` significant digits; non-finite entries become None."""
    flat = [float(f"{v:.{_DIGITS}g}") if np.isfinite(v) else None for v in x.ravel().tolist()]
    if x.ndim == 0:
        return flat[0]
    if x.ndim == 1:
        return flat
    n = x.shape[-1]
    return [flat[i:i + n] for i in range(0, len(flat), n)] if x.ndim == 2 else None


def _panel_ranges(grid: ExplorerGrid) -> list:
    """Shared colour ranges of the heat maps (so a slider move changes colours, not the scale)."""
    ranges = []
    for panel in grid.explorer.panels:
        if panel.kind != "heatmap":
            ranges.append(None)
            continue
        key = panel.series[0][0]
        values = np.concatenate([p[key].ravel() for p in grid.points])
        values = values[np.isfinite(values)]
        ranges.append([float(f"{values.min():.3g}"), float(f"{values.max():.3g}")]
                      if values.size else None)
    return ranges


def page_data(grid: ExplorerGrid) -> dict:
    """The JSON object embedded in the page: sliders, panels and the rounded curves.

    **Arguments:** `grid`: an :class:`ExplorerGrid` from :func:`precompute`.

    **Returns:** a JSON-serialisable dict with ``name``, ``title``, ``description``, ``sliders``
    (``name``, ``label``, ``values``, ``labels``, ``default``), ``panels`` (the :class:`Panel`
    fields plus ``zrange``) and ``points`` (one dict of rounded lists per setting).
    """
    e = grid.explorer
    return {
        "name": e.name,
        "title": e.title,
        "description": e.description,
        "sliders": [
            {"name": s.name, "label": s.label, "values": list(s.values),
             "labels": [f"{v:g}" for v in s.values], "default": s.default}
            for s in grid.sliders
        ],
        "panels": [{**p._asdict(), "series": [list(x) for x in p.series], "zrange": z}
                   for p, z in zip(e.panels, _panel_ranges(grid))],
        "points": [{k: _rounded(v) for k, v in point.items()} for point in grid.points],
    }


_SCRIPT = """
const D = JSON.parse(document.getElementById('explorer-data').textContent);
const inputs = D.sliders.map((s, i) => document.getElementById('slider-' + i));
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
function pointIndex() {
  let k = 0;
  D.sliders.forEach((s, i) => { k = k * s.values.length + Number(inputs[i].value); });
  return k;
}
function figure(P) {
  const n = D.panels.length, gap = 0.06, traces = [], layout = {
    margin: {t: 40, l: 60, r: 20, b: 50}, legend: {orientation: 'h', y: -0.2, traceorder: 'normal'},
    annotations: [], height: 460};
  D.panels.forEach((panel, j) => {
    const sx = j ? String(j + 1) : '', ax = {xaxis: 'x' + sx, yaxis: 'y' + sx};
    const lo = j / n + (j ? gap : 0), hi = (j + 1) / n - (j < n - 1 ? gap : 0);
    layout['xaxis' + sx] = {domain: [lo, hi], anchor: 'y' + sx, title: {text: panel.xlabel},
                            type: panel.log_x ? 'log' : 'linear', exponentformat: 'power'};
    layout['yaxis' + sx] = {anchor: 'x' + sx, title: {text: panel.ylabel},
                            type: panel.log_y ? 'log' : 'linear', exponentformat: 'power'};
    layout.annotations.push({text: panel.title, xref: 'paper', yref: 'paper', x: (lo + hi) / 2,
                             y: 1.07, showarrow: false, xanchor: 'center'});
    if (panel.kind === 'heatmap') {
      const [zkey, zlabel] = panel.series[0];
      const zr = panel.zrange || [null, null];
      traces.push(Object.assign({type: 'heatmap', x: P[panel.x], y: P[panel.y], z: P[zkey],
        zmin: zr[0], zmax: zr[1], colorscale: 'Viridis', name: zlabel,
        colorbar: {x: hi + 0.005, len: 0.9, thickness: 12}}, ax));
      if (panel.series.length > 1) {
        const [ckey, clabel] = panel.series[1];
        traces.push(Object.assign({type: 'contour', x: P[panel.x], y: P[panel.y], z: P[ckey],
          name: clabel, showscale: false, showlegend: true, hoverinfo: 'skip',
          contours: {coloring: 'none', start: 0, end: 0, size: 1},
          line: {color: 'white', width: 3}}, ax));
      }
    } else {
      panel.series.forEach(([key, label], i) => {
        traces.push(Object.assign({type: 'scatter', mode: 'lines', x: P[panel.x], y: P[key],
          name: label, line: {color: COLORS[i % COLORS.length], width: 2.5},
          showlegend: panel.series.length > 1}, ax));
      });
    }
  });
  return {traces: traces, layout: layout};
}
function draw() {
  D.sliders.forEach((s, i) => {
    document.getElementById('value-' + i).textContent = s.labels[Number(inputs[i].value)];
  });
  const f = figure(D.points[pointIndex()]);
  Plotly.react('plot', f.traces, f.layout, {displaylogo: false, responsive: true});
}
inputs.forEach(el => el.addEventListener('input', draw));
draw();
"""

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em; }
.controls { display: grid; grid-template-columns: 16em 1fr 5em; gap: 0.4em 1em;
            align-items: center; margin: 1em 0; }
.controls input { width: 100%; }
.value { font-family: monospace; }
p.note { color: #555; font-size: 0.9em; }
"""


def _page(data: dict, plotly_js: str) -> str:
    rows = "\n".join(
        f'<label for="slider-{i}">{html.escape(s["label"])}</label>'
        f'<input type="range" id="slider-{i}" min="0" max="{len(s["values"]) - 1}" step="1" '
        f'value="{s["default"]}"><span class="value" id="value-{i}"></span>'
        for i, s in enumerate(data["sliders"])
    )
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(data["title"])} - linsolve explorer</title>
<style>{_STYLE}</style>
<script>{plotly_js}</script>
</head>
<body>
<h1>{html.escape(data["title"])}</h1>
<p>{html.escape(data["description"])}</p>
<div class="controls">
{rows}
</div>
<div id="plot"></div>
<p class="note">Exact solutions (closed forms of linsolve.exact), precomputed for every slider
setting by <code>linsolve explore {html.escape(data["name"])}</code>; this page needs no network.</p>
<script type="application/json" id="explorer-data">{payload}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_html(name, path=None, *, smoke: bool = False) -> str:
    """Write the self-contained HTML page of an explorer; returns its path.

    Precomputes ``explorer.curves`` over the whole slider grid (:func:`precompute`), embeds the
    rounded results as JSON beside an inlined copy of plotly.js, and adds one range slider (with its
    value) per parameter; moving a slider redraws the plot with ``Plotly.react``. Nothing is loaded
    from the network when the page is viewed.

    **Arguments:**

    - `name`: an explorer name (``list_explorers()``: ``"saxe-stages"``, ``"lazy-rich"``,
      ``"width-phase"``) or an :class:`Explorer`.
    - `path`: the file to write (default ``NAME.html`` in the working directory); its folder must
      exist.
    - `smoke`: at most three values per slider (fast; for tests).

    **Returns:** `path` (str). Raises ValueError for an unknown `name` or an unwritable `path`, and
    ImportError (naming the extra to install) when plotly is missing.
    """
    explorer = get_explorer(name)
    path = os.fspath(path) if path is not None else f"{explorer.name}.html"
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise ValueError(f"`path` must be a file name in an existing folder; got {path!r}.")
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ImportError(
            'linsolve.explore.write_html needs plotly: pip install "linsolve[explore]"'
        ) from None
    text = _page(page_data(precompute(explorer, smoke=smoke)), get_plotlyjs())
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
