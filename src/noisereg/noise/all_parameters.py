"""GD+noise: every parameter group is perturbed at every step (Orvieto et al., App. F).

Each of the M groups gets N(0, (σ/√M)²), so the total injected variance per step matches layer-wise noise,
which perturbs one group with N(0, σ²) (Sec. 3.2: both minimise the same regularised loss, Eq. 11).
"""
from __future__ import annotations

import math

from torch import nn

from noisereg.noise.base import check_sigma
from noisereg.noise.parameter_groups import parameter_groups
from noisereg.noise.parameter_noise import ParameterNoise


class AllParamNoise(ParameterNoise):
    name = "gd_noise"

    def __init__(self, model: nn.Module, sigma: float, groups: str = "tensor", **schedule):
        super().__init__(**schedule)
        self.sigma = check_sigma(sigma)
        self.groups = parameter_groups(model, groups)
        self.group_std = self.sigma / math.sqrt(len(self.groups))

    def draw(self):
        return [(p, self.group_std) for group in self.groups for p in group]
