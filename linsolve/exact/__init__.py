"""Closed-form (exact) solutions of gradient flow for linear and shallow networks."""

from ._mode import mode as mode
from ._mode import mode_rapidity as mode_rapidity
from ._mode import mode_time as mode_time
