"""Closed-form (exact) solutions of gradient flow (and descent) for linear and shallow networks.

Every family is checked against high-accuracy integration of the original parameter-space ODE by
``linsolve verify`` (see ``linsolve.verify``).
Each function's docstring writes its formula and cites its paper.
"""

from ._committee import CommitteeODE as CommitteeODE
from ._committee import committee_error as committee_error
from ._committee import committee_ode as committee_ode
from ._diagonal import DiagonalFlow as DiagonalFlow
from ._diagonal import DiagonalImplicitBias as DiagonalImplicitBias
from ._diagonal import diagonal_flow as diagonal_flow
from ._diagonal import diagonal_implicit_bias as diagonal_implicit_bias
from ._diagonal import diagonal_potential as diagonal_potential
from ._gd_phase import GD_PHASES as GD_PHASES
from ._gd_phase import GDPhase as GDPhase
from ._gd_phase import PhaseBoundaries as PhaseBoundaries
from ._gd_phase import gd_phase as gd_phase
from ._gd_phase import gd_phase_boundaries as gd_phase_boundaries
from ._gd_stability import max_learning_rate as max_learning_rate
from ._gd_stability import minimum_sharpness as minimum_sharpness
from ._lambda_balanced import LambdaBalancedSolution as LambdaBalancedSolution
from ._lambda_balanced import lambda_balanced as lambda_balanced
from ._lambda_balanced import lambda_balanced_mode as lambda_balanced_mode
from ._linearized import LinearizedSolution as LinearizedSolution
from ._linearized import linearized as linearized
from ._mode import mode as mode
from ._mode import mode_rapidity as mode_rapidity
from ._mode import mode_time as mode_time
from ._one_hidden_layer import MECHANISMS as MECHANISMS
from ._one_hidden_layer import OneHiddenLayer as OneHiddenLayer
from ._one_hidden_layer import PhaseRatio as PhaseRatio
from ._one_hidden_layer import Regime as Regime
from ._one_hidden_layer import one_hidden_layer as one_hidden_layer
from ._one_hidden_layer import phase_ratio as phase_ratio
from ._one_hidden_layer import regime as regime
from ._one_hidden_layer import width_exponent as width_exponent
from ._one_hidden_layer_gd import OneHiddenLayerGD as OneHiddenLayerGD
from ._one_hidden_layer_gd import one_hidden_layer_gd as one_hidden_layer_gd
from ._saddle_to_saddle import SaddleToSaddle as SaddleToSaddle
from ._saddle_to_saddle import saddle_to_saddle as saddle_to_saddle
from ._saxe import saxe_mode as saxe_mode
from ._saxe import saxe_time as saxe_time
from ._saxe_gd import SaxeModeGD as SaxeModeGD
from ._saxe_gd import saxe_mode_gd as saxe_mode_gd
from ._saxe_matrix import saxe_product as saxe_product
from ._sgd import SGDRisk as SGDRisk
from ._sgd import sgd_max_learning_rate as sgd_max_learning_rate
from ._sgd import sgd_optimal_learning_rate as sgd_optimal_learning_rate
from ._sgd import sgd_risk as sgd_risk
from ._single_neuron import SingleNeuron as SingleNeuron
from ._single_neuron import single_neuron as single_neuron
from ._single_neuron import single_neuron_implicit_bias as single_neuron_implicit_bias
from ._single_neuron import single_neuron_potential as single_neuron_potential
