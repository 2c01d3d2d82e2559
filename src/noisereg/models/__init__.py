"""Models, registered in `MODELS` (each one short file with its config schema beside it): MLPs, the diagonal
network, Orvieto et al.'s CIFAR-10 toy and wide CNNs, and the CIFAR ResNet18."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from noisereg.models.diagonal import DiagonalNetwork
from noisereg.models.factorized import FactorizedMatrix
from noisereg.models.linear_toy import build_linear_toy
from noisereg.models.mlp import MLP
from noisereg.models.relu_1d import Relu1dNetwork
from noisereg.models.resnet import ResNet
from noisereg.models.sites import hidden_activation_modules, preactivation_modules
from noisereg.models.smooth_two_layer import SmoothTwoLayerNetwork
from noisereg.models.strided_cnn import StridedCNN
from noisereg.models.toy_cnn import ToyCNN
from noisereg.models.wide_cnn import WideCNN
from noisereg.registry import MODELS


def build_model(
    name: str, input_shape: tuple[int, ...], output_dim: int, generator: torch.Generator | None = None, **options: Any
) -> nn.Module:
    """The model `name` for inputs of `input_shape` and `output_dim` outputs, initialised from `generator`."""
    return MODELS.build({"name": name, **options}, input_shape=input_shape, num_outputs=output_dim, generator=generator)


__all__ = [
    "MODELS",
    "DiagonalNetwork",
    "FactorizedMatrix",
    "MLP",
    "Relu1dNetwork",
    "ResNet",
    "SmoothTwoLayerNetwork",
    "StridedCNN",
    "ToyCNN",
    "WideCNN",
    "build_linear_toy",
    "build_model",
    "hidden_activation_modules",
    "preactivation_modules",
]
