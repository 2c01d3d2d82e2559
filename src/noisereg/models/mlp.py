"""Fully connected networks: the 1-hidden-layer linear net of Orvieto Fig. 2 and the FMNIST MLPs 1–4 (App. F)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from noisereg.curvature.linear_closed_forms import (
    deep_linear_layerwise_noise,
    one_hidden_layer_all_parameter_noise,
    one_hidden_layer_layerwise_noise,
    one_hidden_layer_regularized_minimum,
)
from noisereg.errors import SettingError
from noisereg.registry import MODELS

ACTIVATIONS = {
    "relu": nn.ReLU,
    "linear": nn.Identity,
    "identity": nn.Identity,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
}
INITIALISATIONS = ("default", "mean_field", "fan_in", "glorot_normal")


@dataclass
class MlpSettings:
    name: str = "mlp"
    widths: list[int] = field(default_factory=lambda: [500, 500, 500])  # hidden layers (Orvieto MLP 1)
    activation: str = "relu"  # relu | linear | tanh | elu | sigmoid
    bias: bool = True
    init: str = "default"  # default (PyTorch) | mean_field N(0, 1/(d_in·d_out)) | fan_in N(0, 1/d_in) | glorot_normal

    def check(self, group: str = "model") -> None:
        check_mlp_settings(self.widths, self.activation, self.init)


def check_mlp_settings(widths: Sequence[int], activation: str, init: str) -> None:
    if activation not in ACTIVATIONS:
        raise SettingError(f"model.activation={activation!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
    if init not in INITIALISATIONS:
        raise SettingError(f"model.init={init!r} is unknown; choose one of {list(INITIALISATIONS)}")
    if any(int(w) < 1 for w in widths):
        raise SettingError(f"model.widths={list(widths)} must all be positive, e.g. model.widths=[500,500]")


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
        check_mlp_settings(widths, activation, init)
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
            if layer.weight.is_meta:  # built to be counted (noisereg/memory.py), not trained
                continue
            fan_out, fan_in = layer.weight.shape
            if init == "default":
                # PyTorch's Kaiming-uniform, but drawn from our generator so init is seeded on its own.
                bound = 1 / math.sqrt(fan_in)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
                continue
            # mean_field: N(0, 1/(d_in·d_out)) (Orvieto Sec. 3.1, App. E footnote 6); fan_in: N(0, 1/d_in);
            # glorot_normal: N(0, 2/(d_in + d_out)) (Keras's default, which Camuto et al.'s code uses).
            variance = {
                "mean_field": 1.0 / (fan_in * fan_out),
                "fan_in": 1.0 / fan_in,
                "glorot_normal": 2.0 / (fan_in + fan_out),
            }[init]
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

    @torch.no_grad()
    def closed_forms(self, inputs: torch.Tensor, sigma: float, loss: float, targets: torch.Tensor | None = None):
        """Orvieto's exact expressions for deep linear networks without biases (Sec. 3.1, 3.2, App. E) at
        per-parameter std `sigma`: (metrics, {closed form of a noise mode: E L(w + noise)}); None otherwise. With
        `targets` and one hidden layer of one output, also the minimum of the regularised loss over all weights
        (`theory/regularized_minimum`, what Fig. 2's runs are judged against)."""
        if self.activation not in ("linear", "identity") or any(layer.bias is not None for layer in self.layers):
            return None
        weights = [layer.weight.double() for layer in self.layers]
        x = inputs.flatten(1).double()
        layerwise = float(deep_linear_layerwise_noise(weights, x, sigma))
        metrics = {"theory/orvieto_layerwise": layerwise}
        expected_loss = {}
        if len(weights) == 2:
            all_parameters = one_hidden_layer_all_parameter_noise(weights[0], weights[1], x, sigma)
            metrics["theory/orvieto_all_second_order"] = float(all_parameters["second_order"])
            metrics["theory/orvieto_all_variance"] = float(all_parameters["variance_term"])
            expected_loss["all_parameters"] = loss + float(all_parameters["total"])
            layerwise = float(one_hidden_layer_layerwise_noise(weights[0], weights[1], x, sigma)["total"])
            if targets is not None and weights[1].shape[0] == 1:
                metrics["theory/regularized_minimum"] = float(one_hidden_layer_regularized_minimum(x, targets, sigma))
        expected_loss["layerwise"] = loss + layerwise
        return metrics, expected_loss


@MODELS.register("mlp", MlpSettings)
def build_mlp(
    input_shape: tuple[int, ...], num_outputs: int, generator: torch.Generator | None = None, **settings
) -> MLP:
    return MLP(math.prod(input_shape), num_outputs, generator=generator, **settings)
