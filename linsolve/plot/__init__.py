"""Figures (matplotlib is imported lazily, inside each function)."""

from ._learning import mode_learning as mode_learning
from ._phase import heatmap as heatmap
from ._phase import sweep_figures as sweep_figures
