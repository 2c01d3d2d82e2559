"""Curvature: estimators and formulas over a model, data, a loss and which variables — the Hessian trace of the loss
(exact, Hutchinson), the Gauss–Newton machinery and each paper's explicit regularizer (all Gauss–Newton traces).

A floor below the noise modes: nothing here imports `noisereg.noise`; the modes call these formulas for their
`regularizer_metrics` and `penalty`, and the probe that measures them during training is probes/curvature.py.

    from noisereg.curvature import hessian_trace
    estimate = hessian_trace(model, loss_fn, x, y)            # exact for ReLU nets, Hutchinson otherwise
    estimate.value, estimate.stderr, estimate.per_group
"""

from noisereg.curvature.linear_closed_forms import (
    deep_linear_layerwise_noise,
    diagonal_network_regularizer,
    one_hidden_layer_all_parameter_noise,
    one_hidden_layer_layerwise_noise,
    one_hidden_layer_regularized_minimum,
)
from noisereg.curvature.piecewise_linear import check_piecewise_linear
from noisereg.curvature.regularizers import (
    activation_gauss_newton_trace,
    camuto_regularizer,
    gauss_newton_trace,
    orvieto_regularizer,
    output_gradient_norm_squared,
)
from noisereg.curvature.trace import TraceEstimate, exact_is_valid, hessian_trace

__all__ = [
    "TraceEstimate",
    "activation_gauss_newton_trace",
    "camuto_regularizer",
    "check_piecewise_linear",
    "deep_linear_layerwise_noise",
    "diagonal_network_regularizer",
    "exact_is_valid",
    "gauss_newton_trace",
    "hessian_trace",
    "one_hidden_layer_all_parameter_noise",
    "one_hidden_layer_layerwise_noise",
    "one_hidden_layer_regularized_minimum",
    "orvieto_regularizer",
    "output_gradient_norm_squared",
]
