"""Figures (matplotlib is imported lazily, inside each function).

`heatmap` draws one output over two sweep axes, with small multiples over the others;
`phase_figures` / `sweep_figures` make a study's standard figures; `Label` declares how an axis or
output is shown.
"""

from ._figures import phase_figures as phase_figures
from ._figures import sweep_figures as sweep_figures
from ._labels import Label as Label
from ._learning import mode_learning as mode_learning
from ._phase import heatmap as heatmap
