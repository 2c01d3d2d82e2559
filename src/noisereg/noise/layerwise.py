"""Layer-wise noise: one parameter group per step gets N(0, σ²) (Orvieto et al., Sec. 3.2 and 4, Eq. 11).

`order="random"`: the group is drawn uniformly at each step, as the paper's text says.
`order="cyclic"`: group `step mod M`, as the authors' code does.
"""
from __future__ import annotations

import random

from torch import nn

from noisereg.noise.base import check_sigma
from noisereg.noise.parameter_groups import parameter_groups
from noisereg.noise.parameter_noise import ParameterNoise
from noisereg.errors import SettingError

ORDERS = ("random", "cyclic")


class LayerwiseNoise(ParameterNoise):
    name = "layerwise"

    def __init__(self, model: nn.Module, sigma: float, order: str = "random", groups: str = "tensor", **schedule):
        super().__init__(**schedule)
        if order not in ORDERS:
            raise SettingError(f"noise.order={order!r} is unknown; choose one of {list(ORDERS)}")
        self.sigma = check_sigma(sigma)
        self.order = order
        self.groups = parameter_groups(model, groups)
        # The group choice is cheap host-side randomness, kept apart from the device's noise generator.
        self._choice = random.Random(self.random.seed)
        self._draws = 0
        self.last_group: int | None = None

    def draw(self):
        if self.order == "cyclic":
            index = self._draws % len(self.groups)
        else:
            index = self._choice.randrange(len(self.groups))
        self._draws += 1
        self.last_group = index
        return [(p, self.sigma) for p in self.groups[index]]
