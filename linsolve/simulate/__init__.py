"""Simulators: gradient flow (diffrax) and gradient descent / SGD / optax optimisers (lax.scan)."""

from ._committee import OnlineCommitteeRun as OnlineCommitteeRun
from ._committee import committee_order_parameters as committee_order_parameters
from ._committee import online_sgd_committee as online_sgd_committee
from ._common import CONVERGED as CONVERGED
from ._common import DIVERGED as DIVERGED
from ._common import STATUS_NAMES as STATUS_NAMES
from ._common import STEP_LIMIT as STEP_LIMIT
from ._common import Trajectory as Trajectory
from ._descent import gradient_descent as gradient_descent
from ._diagonal import DiagonalTrajectory as DiagonalTrajectory
from ._diagonal import diagonal_gradient_descent as diagonal_gradient_descent
from ._diagonal import diagonal_gradient_flow as diagonal_gradient_flow
from ._end_to_end import balanced_factorization as balanced_factorization
from ._end_to_end import end_to_end_flow as end_to_end_flow
from ._end_to_end import end_to_end_velocity as end_to_end_velocity
from ._flow import gradient_flow as gradient_flow
from ._online import OnlineSGDRun as OnlineSGDRun
from ._online import online_linear_sgd as online_linear_sgd
