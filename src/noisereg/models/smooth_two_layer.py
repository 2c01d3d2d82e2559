"""The two-layer network of Blanc et al.'s Theorem 3: f(x) = Σᵢ cᵢ σ(wᵢᵀx), σ = tanh or the logistic function, no
biases. Initialisation (not given in the paper): wᵢ ~ N(0, I), cᵢ ~ N(0, 1/m).

`unit_outputs(x)` gives each unit's output weight cᵢ and activation hᵢ = σ(wᵢᵀx): Theorem 3 is about the products
oᵢ = cᵢhᵢ at the points label noise does not repel (probes/unit_outputs.py measures them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.registry import MODELS

ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}  # sigmoid: the logistic function


@dataclass
class SmoothTwoLayerSettings:
    name: str = "smooth_two_layer"
    width: int = 20
    activation: str = "tanh"  # tanh | sigmoid

    def check(self, group: str = "model") -> None:
        if self.activation not in ACTIVATIONS:
            raise SettingError(f"model.activation={self.activation!r} is unknown; choose one of {list(ACTIVATIONS)}")
        if self.width < 1:
            raise SettingError(f"model.width={self.width} must be >= 1, e.g. model.width=20")


class SmoothTwoLayerNetwork(nn.Module):
    def __init__(
        self, input_dim: int, width: int = 20, activation: str = "tanh", generator: torch.Generator | None = None
    ):
        super().__init__()
        self.activation_name = activation
        self.hidden = nn.Linear(input_dim, width, bias=False)  # rows wᵢ
        self.activation = ACTIVATIONS[activation]()
        self.output = nn.Linear(width, 1, bias=False)  # cᵢ
        if not self.hidden.weight.is_meta:  # built on the meta device to be counted (noisereg/memory.py)
            with torch.no_grad():
                self.hidden.weight.normal_(0.0, 1.0, generator=generator)
                self.output.weight.normal_(0.0, 1.0 / math.sqrt(width), generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.activation(self.hidden(x.flatten(1))))

    @torch.no_grad()
    def unit_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cᵢ, hᵢ(x)) for the units i: output weights (m,) and activations (n, m)."""
        return self.output.weight[0].detach(), self.activation(self.hidden(x.flatten(1)))


@MODELS.register("smooth_two_layer", SmoothTwoLayerSettings)
def build_smooth_two_layer(input_shape: tuple[int, ...], num_outputs: int, generator=None, **settings):
    if num_outputs != 1:
        raise SettingError("model=smooth_two_layer has one output; use a regression dataset (dataset=single_point)")
    return SmoothTwoLayerNetwork(math.prod(input_shape), generator=generator, **settings)
