"""Simulators: gradient flow (diffrax) and gradient descent / SGD / optax optimisers (lax.scan)."""

from ._common import Trajectory as Trajectory
from ._descent import gradient_descent as gradient_descent
from ._flow import gradient_flow as gradient_flow
