"""Interactive explorers of the closed-form solutions, for the classroom.

Each explorer (:data:`EXPLORERS`, :func:`list_explorers`) couples sliders over a grid of settings
with the exact curves of ``linsolve.exact`` at each setting:

- ``saxe-stages``: stage-like learning of the Saxe modes vs init scale, depth and weight decay;
- ``lazy-rich``: lazy vs rich learning of a lambda-balanced two-layer net, with its NTK change;
- ``width-phase``: the width x output-scale phase diagram of the one-hidden-layer network.

:func:`write_html` writes one self-contained HTML page per explorer (plotly.js inlined, every
setting precomputed; ``linsolve explore NAME --out page.html``), :func:`explorer_widget` the
notebook version (ipywidgets + matplotlib), which redraws the exact solution on every slider move
and overlays a gradient-flow simulation of the full weights on a button press.
Plotly and ipywidgets are imported only when needed (``pip install "linsolve[explore]"``).
"""

from ._html import ExplorerGrid as ExplorerGrid
from ._html import page_data as page_data
from ._html import precompute as precompute
from ._html import write_html as write_html
from ._registry import EXPLORERS as EXPLORERS
from ._registry import get_explorer as get_explorer
from ._registry import list_explorers as list_explorers
from ._spec import Explorer as Explorer
from ._spec import Panel as Panel
from ._spec import Slider as Slider
from ._widgets import explorer_widget as explorer_widget

__all__ = [
    "EXPLORERS",
    "Explorer",
    "ExplorerGrid",
    "Panel",
    "Slider",
    "explorer_widget",
    "get_explorer",
    "list_explorers",
    "page_data",
    "precompute",
    "write_html",
]
