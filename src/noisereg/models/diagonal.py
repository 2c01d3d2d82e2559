"""Diagonal linear network (Orvieto et al. Sec. 2.4, Eq. 7): f(x) = xᵀβ with β = w₁∘w₁ − w₂∘w₂.

Noise on (w₁, w₂) induces the Lasso-like penalty 2σ² diag(XᵀX/n)ᵀ(w₁∘w₁ + w₂∘w₂) (Eq. 7–8). The parameters enter
quadratically. The total trace still equals the Gauss–Newton trace (the second derivatives +2xⱼ and −2xⱼ of the two
tensors cancel, D²Φ[I] = 0), but the per-tensor blocks do not, so the model does not claim piecewise linearity and
`hessian_trace(method="auto")` uses Hutchinson for it.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class DiagonalNetwork(nn.Module):
    piecewise_linear_in_parameters = False

    def __init__(self, input_dim: int, init_scale: float = 0.1):
        super().__init__()
        # One output only (a regression model); build_model refuses datasets with more.
        # w₁ = w₂ at init gives β = 0, the usual small-initialisation start of diagonal networks.
        start = torch.full((input_dim,), init_scale / math.sqrt(2))
        self.w1 = nn.Parameter(start.clone())
        self.w2 = nn.Parameter(start.clone())

    @property
    def beta(self) -> torch.Tensor:
        return self.w1 * self.w1 - self.w2 * self.w2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.beta.unsqueeze(1)
