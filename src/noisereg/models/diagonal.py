"""Diagonal linear network (Orvieto et al. Sec. 2.4, Eq. 7): f(x) = xᵀβ with β = w₁∘w₁ − w₂∘w₂.

Noise on (w₁, w₂) induces the Lasso-like penalty 2σ² diag(XᵀX/n)ᵀ(w₁∘w₁ + w₂∘w₂) (Eq. 7–8). The parameters enter
quadratically. The total trace still equals the Gauss–Newton trace (the second derivatives +2xⱼ and −2xⱼ of the two
tensors cancel, D²Φ[I] = 0), but the per-tensor blocks do not, so the model does not claim piecewise linearity and
`hessian_trace(method="auto")` uses Hutchinson for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from noisereg.curvature.linear_closed_forms import diagonal_network_regularizer
from noisereg.errors import SettingError
from noisereg.registry import MODELS


@dataclass
class DiagonalNetSettings:
    name: str = "diagonal_net"
    init_scale: float = 0.1


class DiagonalNetwork(nn.Module):
    piecewise_linear_in_parameters = False

    def __init__(self, input_dim: int, init_scale: float = 0.1):
        super().__init__()
        # One output only (a regression model); its builder below refuses datasets with more.
        # w₁ = w₂ at init gives β = 0, the usual small-initialisation start of diagonal networks.
        start = torch.full((input_dim,), init_scale / math.sqrt(2))
        self.w1 = nn.Parameter(start.clone())
        self.w2 = nn.Parameter(start.clone())

    @property
    def beta(self) -> torch.Tensor:
        return self.w1 * self.w1 - self.w2 * self.w2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.beta.unsqueeze(1)

    @torch.no_grad()
    def closed_forms(self, inputs: torch.Tensor, sigma: float, loss: float, targets: torch.Tensor | None = None):
        """Eq. 7's penalty (the same σ² term for both noise modes); E L(w + noise) with its σ⁴ term is derived
        for all-parameter noise only."""
        form = diagonal_network_regularizer(self.w1.double(), self.w2.double(), inputs.flatten(1).double(), sigma)
        return {"theory/orvieto_diagonal": float(form["second_order"])}, {"all_parameters": loss + float(form["total"])}


@MODELS.register("diagonal_net", DiagonalNetSettings)
def build_diagonal_network(
    input_shape: tuple[int, ...], num_outputs: int, generator=None, **settings
) -> DiagonalNetwork:
    if num_outputs != 1:
        raise SettingError("model=diagonal_net is a regression model with one output; use dataset=synthetic_sparse")
    return DiagonalNetwork(input_dim=math.prod(input_shape), **settings)  # deterministic init: w₁ = w₂
