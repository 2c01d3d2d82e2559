"""Noise modes: one small file each, one protocol (`base.NoiseMode`), registered in `NOISE_MODES`.

Outside Hydra:

    noise = LayerwiseNoise(model, sigma=0.05)
    with noise.perturbed():
        loss_fn(model(x), y).backward()   # gradient at the perturbed point
    optimizer.step()                      # applied to the restored weights
"""

from noisereg.noise.activation_noise import ActivationNoise
from noisereg.noise.activation_regularizer import ExplicitActivationRegularizer
from noisereg.noise.all_parameters import AllParamNoise
from noisereg.noise.base import NoiseMode, NoiseSettings
from noisereg.noise.injection_node import NoiseInjectionNode
from noisereg.noise.label_noise import LabelNoise
from noisereg.noise.layerwise import LayerwiseNoise
from noisereg.noise.parameter_groups import parameter_groups
from noisereg.noise.parameter_noise import ParameterNoise
from noisereg.registry import NOISE_MODES

__all__ = [
    "NOISE_MODES",
    "ActivationNoise",
    "AllParamNoise",
    "ExplicitActivationRegularizer",
    "LabelNoise",
    "LayerwiseNoise",
    "NoiseInjectionNode",
    "NoiseMode",
    "NoiseSettings",
    "ParameterNoise",
    "parameter_groups",
]
