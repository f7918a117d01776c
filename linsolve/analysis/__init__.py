"""Analysis toolkits for training dynamics.

- Representations (Sharon & Dar 2024): CKA (biased, debiased, minibatch, RBF), epoch-by-epoch
  similarity matrices (also in closed form along exact solutions), linear probes and
  decision-region agreement.
- Koopman spectra (Redman et al. 2024): time-delay DMD, the Wasserstein spectral distance,
  the shuffle conjugacy test, between-seed baselines, perturbed-ensemble training.
- Embedding principle in depth (Bai et al. 2022): critical lifting into deeper networks, Hessian
  spectra (full or Lanczos), criticality, layer linearisation, output-preserving manifolds.
- AGOP and neural collapse (Beaglehole et al. 2024): AGOP and the Neural Feature Ansatz,
  NC1-NC4, Deep Recursive Feature Machines.
- Sharpness (Cohen et al. 2021): the top Hessian eigenvalue by Lanczos on Hessian-vector
  products, recordable along ``simulate.gradient_descent`` (progressive sharpening, the edge of
  stability at ``2/lr``).
"""

from ._agop import agop as agop
from ._agop import agop_linear as agop_linear
from ._agop import agop_shallow as agop_shallow
from ._agop import layer_agops as layer_agops
from ._agop import layer_nfa as layer_nfa
from ._agop import nfa_correlation as nfa_correlation
from ._agop import pearson as pearson
from ._agop import psd_sqrt as psd_sqrt
from ._assignment import linear_sum_assignment as linear_sum_assignment
from ._cka import cka as cka
from ._cka import cka_linear as cka_linear
from ._cka import cka_matrix as cka_matrix
from ._cka import cka_matrix_exact as cka_matrix_exact
from ._cka import cka_matrix_linear as cka_matrix_linear
from ._cka import cka_matrix_saxe as cka_matrix_saxe
from ._cka import cka_minibatch as cka_minibatch
from ._cka import hsic as hsic
from ._collapse import CollapseMetrics as CollapseMetrics
from ._collapse import LayerCollapse as LayerCollapse
from ._collapse import collapse_along_training as collapse_along_training
from ._collapse import collapse_metrics as collapse_metrics
from ._collapse import layer_collapse as layer_collapse
from ._collapse import nc1 as nc1
from ._collapse import nc2 as nc2
from ._collapse import nc3 as nc3
from ._collapse import nc4 as nc4
from ._hessian import HessianSpectrum as HessianSpectrum
from ._hessian import classify as classify
from ._hessian import flat_hessian as flat_hessian
from ._hessian import gradient_norm as gradient_norm
from ._hessian import hessian_spectrum as hessian_spectrum
from ._hessian import hvp as hvp
from ._hessian import is_critical as is_critical
from ._hessian import lanczos as lanczos
from ._koopman import EnsembleRun as EnsembleRun
from ._koopman import SeedBaseline as SeedBaseline
from ._koopman import conjugacy_test as conjugacy_test
from ._koopman import dmd as dmd
from ._koopman import ensemble_observables as ensemble_observables
from ._koopman import match_spectra as match_spectra
from ._koopman import output_weights as output_weights
from ._koopman import pca as pca
from ._koopman import perturbed_ensemble as perturbed_ensemble
from ._koopman import seed_baseline as seed_baseline
from ._koopman import snapshot_pairs as snapshot_pairs
from ._koopman import spectral_distance as spectral_distance
from ._koopman import time_delay as time_delay
from ._lifting import BoundaryLift as BoundaryLift
from ._lifting import ManifoldDimension as ManifoldDimension
from ._lifting import backprop_signal as backprop_signal
from ._lifting import boundary_lift as boundary_lift
from ._lifting import insert_layer as insert_layer
from ._lifting import lift as lift
from ._lifting import linearisation_index as linearisation_index
from ._lifting import output_manifold_dimension as output_manifold_dimension
from ._lifting import sign_constant as sign_constant
from ._probes import LinearProbe as LinearProbe
from ._probes import Plane as Plane
from ._probes import agreement_matrix as agreement_matrix
from ._probes import fit_logistic_probe as fit_logistic_probe
from ._probes import fit_probe as fit_probe
from ._probes import plane as plane
from ._probes import predict as predict
from ._probes import probe_agreement as probe_agreement
from ._probes import probe_agreement_matrix as probe_agreement_matrix
from ._probes import triplet_planes as triplet_planes
from ._rfm import KERNELS as KERNELS
from ._rfm import DeepRFM as DeepRFM
from ._rfm import deep_rfm as deep_rfm
from ._rfm import kernel_agop as kernel_agop
from ._rfm import kernel_gradients as kernel_gradients
from ._rfm import kernel_matrix as kernel_matrix
from ._sharpness import HessianExtremes as HessianExtremes
from ._sharpness import hessian_extremes as hessian_extremes
from ._sharpness import sharpness as sharpness
from ._sharpness import sharpness_observer as sharpness_observer
from ._sharpness import training_loss as training_loss
