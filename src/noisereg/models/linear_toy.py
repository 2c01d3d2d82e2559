"""Levi et al.'s linear toy model (Sec. 3, Eq. 4): f(x) = w⁽¹⁾ · (w⁽⁰⁾ · x), one input, one hidden unit, one output,
no biases, linear activation; a noise injection node on its hidden unit (`noise=nin noise.layer=0`) makes the
hidden preactivation w⁽⁰⁾x + w_NI ε. It is the MLP of mlp.py with those sizes, started from fixed weights: the
phase boundaries of Eqs. 5–6 depend on the initial weights, so every seed starts at the same point and varies only
the data order and the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from noisereg.errors import SettingError
from noisereg.models.mlp import MLP
from noisereg.registry import MODELS


@dataclass
class LinearToySettings:
    name: str = "linear_toy"
    widths: list[int] = field(default_factory=lambda: [1])  # one hidden unit (d₁ = 1); listed so scales apply
    first_weight: float = 0.5  # w⁽⁰⁾ at initialisation
    second_weight: float = 1.0  # w⁽¹⁾ at initialisation

    def check(self, group: str = "model") -> None:
        if list(self.widths) != [1]:
            raise SettingError(
                f"{group}.widths={list(self.widths)}: the linear toy model has one hidden unit; "
                f"use {group}.widths=[1] or model=mlp"
            )
        if not (math.isfinite(self.first_weight) and math.isfinite(self.second_weight)):
            raise SettingError(f"{group}.first_weight and {group}.second_weight must be finite")


@MODELS.register("linear_toy", LinearToySettings)
def build_linear_toy(
    input_shape: tuple[int, ...],
    num_outputs: int,
    generator: torch.Generator | None = None,
    widths: list[int] = (1,),
    first_weight: float = 0.5,
    second_weight: float = 1.0,
) -> MLP:
    if math.prod(input_shape) != 1 or num_outputs != 1:
        raise SettingError(
            f"model=linear_toy takes one input and one output, the data have {math.prod(input_shape)} "
            f"and {num_outputs}; use dataset=scalar_regression"
        )
    model = MLP(1, 1, [1], activation="linear", bias=False)
    with torch.no_grad():
        model.layers[0].weight.fill_(first_weight)
        model.layers[1].weight.fill_(second_weight)
    return model
