"""Fully connected networks: the 1-hidden-layer linear net of Orvieto Fig. 2 and the FMNIST MLPs 1–4 (App. F)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from noisereg.errors import SettingError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "linear": nn.Identity,
    "identity": nn.Identity,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
}
INITIALISATIONS = ("default", "mean_field", "fan_in")


class MLP(nn.Module):
    """input → widths[0] → … → widths[-1] → output, an activation after every hidden layer."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        widths: Sequence[int],
        activation: str = "relu",
        bias: bool = True,
        init: str = "default",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise SettingError(f"model.activation={activation!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
        if init not in INITIALISATIONS:
            raise SettingError(f"model.init={init!r} is unknown; choose one of {list(INITIALISATIONS)}")
        if any(int(w) < 1 for w in widths):
            raise SettingError(f"model.widths={list(widths)} must all be positive")
        dims = [input_dim, *[int(w) for w in widths], output_dim]
        self.activation = activation
        # Piecewise linear in each weight tensor: the exact Gauss–Newton route for the Hessian trace applies.
        self.piecewise_linear_in_parameters = activation in ("relu", "linear", "identity")
        self.flatten = nn.Flatten()
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:]))
        # One activation module per hidden layer, so forward hooks (GNI) can tell the layers apart.
        self.activations = nn.ModuleList(ACTIVATIONS[activation]() for _ in widths)
        self._initialise(init, generator)

    @torch.no_grad()
    def _initialise(self, init: str, generator: torch.Generator | None) -> None:
        for layer in self.layers:
            fan_out, fan_in = layer.weight.shape
            if init == "default":
                # PyTorch's Kaiming-uniform, but drawn from our generator so init is seeded on its own.
                bound = 1 / math.sqrt(fan_in)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
                continue
            # mean_field: N(0, 1/(d_in·d_out)) (Orvieto Sec. 3.1, App. E footnote 6); fan_in: N(0, 1/d_in).
            variance = 1.0 / (fan_in * fan_out) if init == "mean_field" else 1.0 / fan_in
            layer.weight.normal_(0.0, math.sqrt(variance), generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()

    def hidden_activation_modules(self) -> list[nn.Module]:
        return list(self.activations)

    def preactivation_modules(self) -> list[nn.Module]:
        return list(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for layer, activation in zip(self.layers[:-1], self.activations):
            x = activation(layer(x))
        return self.layers[-1](x)
