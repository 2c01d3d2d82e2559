"""Orvieto et al.'s toy CNN+MLP for CIFAR-10 (App. F.2, Eq. 52; the PyTorch tutorial's network):
Conv(3,6,5)–ReLU–MaxPool–Conv(6,16,5)–ReLU–MaxPool–Lin(400,120)–ReLU–Lin(120,84)–ReLU–Lin(84,10); 62,006 parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.models.init import initialise
from noisereg.registry import MODELS


@dataclass
class ToyCnnSettings:
    name: str = "toy_cnn"
    widths: list[int] = field(default_factory=lambda: [6, 16, 120, 84])  # 2 convolutions' channels, 2 linears' widths

    def check(self, group: str = "model") -> None:
        if len(self.widths) != 4 or any(int(w) < 1 for w in self.widths):
            raise SettingError(
                f"model.widths={list(self.widths)} must be 4 positive numbers (conv, conv, linear, "
                "linear), e.g. model.widths=[6,16,120,84]"
            )


class ToyCNN(nn.Module):
    piecewise_linear_in_parameters = True  # conv, ReLU, max-pool, linear: the exact Hessian trace applies

    def __init__(self, input_shape, num_outputs=10, widths=(6, 16, 120, 84), generator=None):
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, widths[0], 5)
        self.conv2 = nn.Conv2d(widths[0], widths[1], 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(widths[1] * _side(height) * _side(width), widths[2])
        self.fc2 = nn.Linear(widths[2], widths[3])
        self.fc3 = nn.Linear(widths[3], num_outputs)
        # One activation module per hidden layer, so activation noise (GNI) finds each site.
        self.activations = nn.ModuleList(nn.ReLU() for _ in range(4))
        initialise(self, generator)

    def hidden_activation_modules(self):
        return list(self.activations)

    def preactivation_modules(self):
        return [self.conv1, self.conv2, self.fc1, self.fc2, self.fc3]

    def forward(self, x):
        relu1, relu2, relu3, relu4 = self.activations
        x = self.pool(relu1(self.conv1(x)))
        x = self.pool(relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = relu4(self.fc2(relu3(self.fc1(x))))
        return self.fc3(x)


def _side(pixels: int) -> int:
    """Side of the feature map after conv 5, pool 2, conv 5, pool 2: 32 → 28 → 14 → 10 → 5."""
    return ((pixels - 4) // 2 - 4) // 2


@MODELS.register("toy_cnn", ToyCnnSettings)
def build_toy_cnn(input_shape, num_outputs, generator=None, widths=(6, 16, 120, 84)) -> ToyCNN:
    if len(input_shape) != 3 or min(input_shape[1:]) < 16:
        raise SettingError(
            f"model=toy_cnn takes images (channels, height, width) of at least 16×16, not "
            f"{tuple(input_shape)}; use dataset=cifar10"
        )
    return ToyCNN(input_shape, num_outputs, [int(w) for w in widths], generator)
