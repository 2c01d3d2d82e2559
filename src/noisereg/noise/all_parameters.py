"""GD+noise: every parameter group is perturbed at every step (Orvieto et al., App. F).

Each of the M groups gets N(0, (σ/√M)²), so the total injected variance per step matches layer-wise noise,
which perturbs one group with N(0, σ²) (Sec. 3.2: both minimise the same regularised loss, Eq. 11).
"""

from __future__ import annotations

from dataclasses import dataclass

from noisereg.noise.parameter_noise import ParameterNoise, ParameterNoiseSettings
from noisereg.registry import NOISE_MODES


@dataclass
class AllParamSettings(ParameterNoiseSettings):
    name: str = "gd_noise"


@NOISE_MODES.register("gd_noise", AllParamSettings)
class AllParamNoise(ParameterNoise):
    name = "gd_noise"
    closed_form = "all_parameters"  # Sec. 3.1: σ² regularizer plus a σ⁴ variance term growing with width

    def draw(self):
        std = self.per_parameter_sigma
        return [(p, std) for group in self.groups for p in group]
