"""Blanc et al.'s two-layer ReLU network on 1-D data with a linear and a constant unit (App. B, Theorem 2):
f(x) = Σᵢ cᵢ relu(aᵢx + bᵢ) + a·x + b, all of aᵢ, bᵢ, cᵢ, a, b trained.

The paper gives no width or initialisation. Ours: width m = 100, aᵢ ~ N(0, s²), kinks −bᵢ/aᵢ = uᵢ ~ U(−r, r) inside
the data range (bᵢ = −aᵢuᵢ), cᵢ ~ N(0, (κs)²/m), a, b ~ U(−1, 1), with s = 2 and r = 1.2: with s = 1 plain SGD already
lands near the piecewise-linear interpolant, and Fig. 2's contrast disappears. κ (`output_scale`, 1 by default)
sets the output weights apart: Figs 2-3 take κ = 7 (conf/blanc/base/relu_1d.yaml), where SGD's curve is ~1.24× the
interpolant's, against 1.01× at κ = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.registry import MODELS


@dataclass
class Relu1dSettings:
    name: str = "relu_1d"
    width: int = 100  # m ReLU units
    init_scale: float = 2.0  # s: aᵢ ~ N(0, s²), cᵢ ~ N(0, (κs)²/m)
    kink_range: float = 1.2  # kinks −bᵢ/aᵢ ~ U(−r, r)
    output_scale: float = 1.0  # κ: cᵢ ~ N(0, (κs)²/m); κ = √m: output weights not shrunk by 1/√m

    def check(self, group: str = "model") -> None:
        if self.width < 1:
            raise SettingError(f"model.width={self.width} must be >= 1, e.g. model.width=100")
        if not (math.isfinite(self.init_scale) and self.init_scale > 0) or not self.kink_range >= 0:
            raise SettingError("model.init_scale must be finite and > 0 and model.kink_range >= 0")
        if not (math.isfinite(self.output_scale) and self.output_scale > 0):
            raise SettingError(
                f"model.output_scale={self.output_scale} must be finite and > 0, e.g. model.output_scale=1"
            )


class Relu1dNetwork(nn.Module):
    # A residual sum of linear maps and a ReLU: piecewise linear in each parameter tensor (the exact Hessian trace
    # and the per-layer Gauss–Newton route apply).
    piecewise_linear_in_parameters = True

    def __init__(
        self,
        width: int = 100,
        init_scale: float = 2.0,
        kink_range: float = 1.2,
        generator: torch.Generator | None = None,
        output_scale: float = 1.0,
    ):
        super().__init__()
        self.hidden = nn.Linear(1, width)  # weight aᵢ, bias bᵢ
        self.activation = nn.ReLU()
        self.output = nn.Linear(width, 1, bias=False)  # cᵢ
        self.linear_unit = nn.Linear(1, 1)  # weight a (the linear unit), bias b (the constant unit)
        if not self.hidden.weight.is_meta:  # built on the meta device to be counted (noisereg/memory.py)
            self._initialise(width, init_scale, kink_range, generator, output_scale)

    @torch.no_grad()
    def _initialise(
        self, width: int, scale: float, kink_range: float, generator: torch.Generator | None, output_scale: float = 1.0
    ) -> None:
        slopes = self.hidden.weight
        slopes.normal_(0.0, scale, generator=generator)
        kinks = torch.empty(width).uniform_(-kink_range, kink_range, generator=generator)
        self.hidden.bias.copy_(-slopes[:, 0] * kinks)
        self.output.weight.normal_(0.0, output_scale * scale / math.sqrt(width), generator=generator)
        self.linear_unit.weight.uniform_(-1.0, 1.0, generator=generator)
        self.linear_unit.bias.uniform_(-1.0, 1.0, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.activation(self.hidden(x))) + self.linear_unit(x)

    @torch.no_grad()
    def kinks(self, threshold: float = 1e-2) -> torch.Tensor:
        """Where the function bends: −bᵢ/aᵢ of the units whose change of slope |cᵢaᵢ| exceeds `threshold`."""
        slopes, offsets, weights = self.hidden.weight[:, 0], self.hidden.bias, self.output.weight[0]
        bends = (weights * slopes).abs() > threshold
        return torch.sort(-offsets[bends] / slopes[bends]).values


@MODELS.register("relu_1d", Relu1dSettings)
def build_relu_1d(input_shape: tuple[int, ...], num_outputs: int, generator=None, **settings) -> Relu1dNetwork:
    if tuple(input_shape) != (1,) or num_outputs != 1:
        raise SettingError(
            f"model=relu_1d maps one number to one number, but the dataset has inputs of shape "
            f"{tuple(input_shape)} and {num_outputs} outputs; use dataset=points_1d"
        )
    return Relu1dNetwork(generator=generator, **settings)
