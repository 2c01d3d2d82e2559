"""A small CNN of strided convolutions and one dense layer: Camuto et al.'s CONV model (Fig. 3, from their code).

    input → conv(32, 4×4, stride 2, "same") → ELU → conv(128, 4×4, stride 2, "same") → ELU → flatten → dense(outputs)

`widths` are the convolutions' channels (so `scale=smoke` shrinks them as it shrinks MLP widths). "Same" padding
for an even kernel and stride 2 pads (k − s)/2 = 1 on each side, as TensorFlow's does for even input sizes
(28 → 14 → 7 on Fashion-MNIST). Weights are uniform in ±1/√fan_in (PyTorch's default, drawn from our generator),
biases zero (the authors' code zero-initialises them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.models.mlp import ACTIVATIONS
from noisereg.registry import MODELS


@dataclass
class StridedCnnSettings:
    name: str = "strided_cnn"
    widths: list[int] = field(default_factory=lambda: [32, 128])  # channels of each strided convolution
    kernel_size: int = 4
    stride: int = 2
    activation: str = "elu"
    bias: bool = True

    def check(self, group: str = "model") -> None:
        if self.activation not in ACTIVATIONS:
            raise SettingError(
                f"{group}.activation={self.activation!r} is unknown; choose one of {sorted(ACTIVATIONS)}"
            )
        if not self.widths or any(int(w) < 1 for w in self.widths):
            raise SettingError(f"{group}.widths={list(self.widths)} must be positive channel counts, e.g. [32,128]")
        if self.kernel_size < 1 or self.stride < 1 or self.kernel_size < self.stride:
            raise SettingError(
                f"{group}.kernel_size={self.kernel_size} and {group}.stride={self.stride} must be >= 1, "
                "the kernel at least the stride"
            )


class StridedCNN(nn.Module):
    def __init__(
        self,
        input_shape,
        num_outputs: int,
        widths=(32, 128),
        kernel_size: int = 4,
        stride: int = 2,
        activation: str = "elu",
        bias: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise SettingError(
                f"model=strided_cnn needs images (channels, height, width), not inputs shaped {tuple(input_shape)}"
            )
        channels = [input_shape[0], *[int(w) for w in widths]]
        padding = (kernel_size - stride) // 2
        self.convolutions = nn.ModuleList(
            nn.Conv2d(a, b, kernel_size, stride=stride, padding=padding, bias=bias)
            for a, b in zip(channels, channels[1:])
        )
        # One activation module per convolution, so GNI's hooks can tell the layers apart.
        self.activations = nn.ModuleList(ACTIVATIONS[activation]() for _ in widths)
        self.piecewise_linear_in_parameters = activation in ("relu", "linear", "identity")
        height, width = input_shape[1:]
        for _ in widths:
            height = (height + 2 * padding - kernel_size) // stride + 1
            width = (width + 2 * padding - kernel_size) // stride + 1
        if height < 1 or width < 1:
            raise SettingError(
                f"model=strided_cnn: {len(widths)} strided convolutions shrink {tuple(input_shape[1:])} "
                "to nothing; use fewer widths"
            )
        self.flatten = nn.Flatten()
        self.head = nn.Linear(channels[-1] * height * width, num_outputs, bias=bias)
        self._initialise(generator)

    @torch.no_grad()
    def _initialise(self, generator: torch.Generator | None) -> None:
        for layer in [*self.convolutions, self.head]:
            if layer.weight.is_meta:  # built to be counted (noisereg/memory.py), not trained
                continue
            bound = 1 / math.sqrt(layer.weight[0].numel())
            layer.weight.uniform_(-bound, bound, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()

    def hidden_activation_modules(self) -> list[nn.Module]:
        return list(self.activations)

    def preactivation_modules(self) -> list[nn.Module]:
        return [*self.convolutions, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for convolution, activation in zip(self.convolutions, self.activations):
            x = activation(convolution(x))
        return self.head(self.flatten(x))


@MODELS.register("strided_cnn", StridedCnnSettings)
def build_strided_cnn(input_shape, num_outputs: int, generator: torch.Generator | None = None, **settings):
    return StridedCNN(tuple(input_shape), num_outputs, generator=generator, **settings)
