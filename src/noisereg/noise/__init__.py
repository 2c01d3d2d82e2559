"""Noise modes: one small file each, one protocol (`base.NoiseMode`).

Outside Hydra:

    noise = LayerwiseNoise(model, sigma=0.05)
    with noise.perturbed():
        loss_fn(model(x), y).backward()   # gradient at the perturbed point
    optimizer.step()                      # applied to the restored weights
"""
from noisereg.noise.activation_noise import ActivationNoise
from noisereg.noise.all_parameters import AllParamNoise
from noisereg.noise.base import NoiseMode
from noisereg.noise.injection_node import NoiseInjectionNode
from noisereg.noise.label_noise import LabelNoise
from noisereg.noise.layerwise import LayerwiseNoise
from noisereg.noise.parameter_groups import parameter_groups

NOISE_MODES = {
    "gd": NoiseMode,
    "gd_noise": AllParamNoise,
    "layerwise": LayerwiseNoise,
    "label_noise": LabelNoise,
    "nin": NoiseInjectionNode,
    "gni": ActivationNoise,
}

__all__ = [
    "NOISE_MODES",
    "ActivationNoise",
    "AllParamNoise",
    "LabelNoise",
    "LayerwiseNoise",
    "NoiseInjectionNode",
    "NoiseMode",
    "parameter_groups",
]
