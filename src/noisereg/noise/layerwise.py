"""Layer-wise noise: one parameter group per step gets N(0, σ²) (Orvieto et al., Sec. 3.2 and 4, Eq. 11).

`order="random"`: the group is drawn uniformly at each step, as the paper's text says.
`order="cyclic"`: group `step mod M`, as the authors' code does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from torch import nn

from noisereg.errors import SettingError
from noisereg.noise.parameter_noise import ParameterNoise, ParameterNoiseSettings
from noisereg.registry import NOISE_MODES

ORDERS = ("random", "cyclic")


@dataclass
class LayerwiseSettings(ParameterNoiseSettings):
    name: str = "layerwise"
    order: str = "random"  # random (the paper's text) | cyclic (the authors' code: group = step mod M)


@NOISE_MODES.register("layerwise", LayerwiseSettings)
class LayerwiseNoise(ParameterNoise):
    name = "layerwise"
    closed_form = "layerwise"  # Sec. 3.2: the σ² regularizer without the variance term

    def __init__(self, model: nn.Module | None = None, sigma: float = 0.05, order: str = "random", **options: Any):
        if order not in ORDERS:
            raise SettingError(f"noise.order={order!r} is unknown; choose one of {list(ORDERS)}")
        self.order = order
        super().__init__(model, sigma=sigma, **options)
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

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "choice": self._choice.getstate(), "draws": self._draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        version, internal, gauss_next = state["choice"]
        self._choice.setstate((version, tuple(internal), gauss_next))
        self._draws = int(state["draws"])
