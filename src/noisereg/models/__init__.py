"""Models by name. Each model is one short file."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from noisereg.models.diagonal import DiagonalNetwork
from noisereg.models.mlp import MLP
from noisereg.models.sites import hidden_activation_modules, preactivation_modules
from noisereg.errors import SettingError


def build_model(
    name: str, input_shape: tuple[int, ...], output_dim: int, generator: torch.Generator | None = None, **options: Any
) -> nn.Module:
    if name == "mlp":
        return MLP(input_dim=math.prod(input_shape), output_dim=output_dim, generator=generator, **options)
    if name == "diagonal_net":
        if output_dim != 1:
            raise SettingError("model=diagonal_net is a regression model with one output; use dataset=synthetic_sparse")
        return DiagonalNetwork(input_dim=math.prod(input_shape), **options)  # deterministic init: w₁ = w₂
    raise SettingError(f"model.name={name!r} is unknown; choose one of ['diagonal_net', 'mlp']")


__all__ = ["DiagonalNetwork", "MLP", "build_model", "hidden_activation_modules", "preactivation_modules"]
