"""PyTorch's default initialisation of Linear and Conv layers, drawn from a given generator so that a model's
initialisation is seeded on its own stream (app.py): weights and biases U(−1/√fan_in, 1/√fan_in) (the bound
`kaiming_uniform_(a=√5)` gives). BatchNorm keeps γ = 1, β = 0."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def initialise(model: nn.Module, generator: torch.Generator | None) -> None:
    for module in model.modules():
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) or module.weight.is_meta:
            continue  # a model built on the meta device is only counted (noisereg/memory.py)
        bound = 1 / math.sqrt(module.weight[0].numel())
        module.weight.uniform_(-bound, bound, generator=generator)
        if module.bias is not None:
            module.bias.uniform_(-bound, bound, generator=generator)
