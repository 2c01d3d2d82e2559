"""Orvieto et al.'s wider fully convolutional network for CIFAR-10 (App. F.2, Eq. 53): four 3×3 convolutions
(padding 1) 3→32→64→128→128, each followed by ReLU and 2×2 max-pooling, the channels averaged over positions,
Lin(128, 10); 242,122 parameters. The authors' code uses 32→128→128→128: `model.widths=[32,128,128,128]`."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from noisereg.errors import SettingError
from noisereg.models.init import initialise
from noisereg.registry import MODELS


@dataclass
class WideCnnSettings:
    name: str = "wide_cnn"
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 128])  # channels of the convolutions

    def check(self, group: str = "model") -> None:
        if not self.widths or any(int(w) < 1 for w in self.widths):
            raise SettingError(
                f"model.widths={list(self.widths)} must be positive channel counts, e.g. model.widths=[32,64,128,128]"
            )


class WideCNN(nn.Module):
    piecewise_linear_in_parameters = True  # conv, ReLU, max-pool, mean, linear: the exact Hessian trace applies

    def __init__(self, input_shape, num_outputs=10, widths=(32, 64, 128, 128), generator=None):
        super().__init__()
        channels = [input_shape[0], *widths]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(channels[:-1], channels[1:]))
        self.activations = nn.ModuleList(nn.ReLU() for _ in widths)  # one per site, for activation noise
        self.pool = nn.MaxPool2d(2, 2)
        self.average = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # each channel's mean over positions
        self.linear = nn.Linear(widths[-1], num_outputs)
        initialise(self, generator)

    def hidden_activation_modules(self):
        return list(self.activations)

    def preactivation_modules(self):
        return [*self.convs, self.linear]

    def forward(self, x):
        for conv, relu in zip(self.convs, self.activations):
            x = self.pool(relu(conv(x)))
        return self.linear(self.average(x))


@MODELS.register("wide_cnn", WideCnnSettings)
def build_wide_cnn(input_shape, num_outputs, generator=None, widths=(32, 64, 128, 128)) -> WideCNN:
    if len(input_shape) != 3 or min(input_shape[1:]) < 2 ** len(widths):
        raise SettingError(
            f"model=wide_cnn with {len(widths)} poolings takes images of at least "
            f"{2 ** len(widths)}×{2 ** len(widths)} pixels, not {tuple(input_shape)}"
        )
    return WideCNN(input_shape, num_outputs, [int(w) for w in widths], generator)
