"""Small hand-made regression sets of Blanc et al.: twelve points on a line (Figs 2-3) and one point (Theorem 3).

The paper does not give Fig. 2's twelve points. Ours: xⱼ = −1 + 2j/11 and
y = (0, .545, 1.091, .545, 0, .182, .364, .545, 0, −.545, −.182, .182): every consecutive pair lies in a co-linear
triple, so Theorem 2 singles out the piecewise-linear interpolant (curve length 5.0330). The test split is a grid
over [x₁, x₁₂] labelled by that interpolant, so test/mse is the mean squared distance from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.registry import DATASETS

TWELVE_TARGETS = [0.0, 0.545, 1.091, 0.545, 0.0, 0.182, 0.364, 0.545, 0.0, -0.545, -0.182, 0.182]


def piecewise_linear(x: torch.Tensor, knots_x: torch.Tensor, knots_y: torch.Tensor) -> torch.Tensor:
    """The piecewise-linear interpolant of the knots (sorted by x) at x, constant outside them."""
    x = x.clamp(knots_x[0], knots_x[-1])
    right = torch.searchsorted(knots_x, x).clamp(1, len(knots_x) - 1)
    left = right - 1
    weight = (x - knots_x[left]) / (knots_x[right] - knots_x[left])
    return knots_y[left] + weight * (knots_y[right] - knots_y[left])


@dataclass
class Points1dSettings:
    name: str = "points_1d"
    targets: list[float] = field(default_factory=lambda: list(TWELVE_TARGETS))
    inputs: Optional[list[float]] = None  # None: evenly spaced on [−1, 1]
    n_test: int = 401  # grid points over [x₁, xₙ], labelled by the piecewise-linear interpolant


@DATASETS.register("points_1d", Points1dSettings)
def points_1d(
    targets: Sequence[float] = TWELVE_TARGETS, inputs: Sequence[float] | None = None, n_test: int = 401
) -> TensorDataset:
    y = torch.tensor([float(v) for v in targets])
    x = torch.linspace(-1.0, 1.0, len(y)) if inputs is None else torch.tensor([float(v) for v in inputs])
    if len(y) < 2 or x.shape != y.shape:
        raise SettingError(f"dataset.inputs and dataset.targets must have one length >= 2 (got {len(x)} and {len(y)})")
    if not bool((x[1:] > x[:-1]).all()):
        raise SettingError("dataset.inputs must increase strictly, e.g. dataset.inputs=[-1,0,1]")
    if n_test < 2:
        raise SettingError(f"dataset.n_test={n_test} must be >= 2 (a grid)")
    grid = torch.linspace(float(x[0]), float(x[-1]), n_test)
    return TensorDataset(
        x.unsqueeze(1),
        y.unsqueeze(1),
        grid.unsqueeze(1),
        piecewise_linear(grid, x, y).unsqueeze(1),
        task="regression",
        num_outputs=1,
    )


@dataclass
class SinglePointSettings:
    name: str = "single_point"
    input_dim: int = 5
    target: float = 1.0
    seed: int = 0  # the direction of x (‖x‖ = 1)


@DATASETS.register("single_point", SinglePointSettings)
def single_point(input_dim: int = 5, target: float = 1.0, seed: int = 0) -> TensorDataset:
    """One point x ∈ R^d with ‖x‖ = 1 and its label (Theorem 3); the test split is the same point."""
    if input_dim < 1:
        raise SettingError(f"dataset.input_dim={input_dim} must be >= 1")
    x = torch.randn(1, input_dim, generator=torch.Generator().manual_seed(seed))
    x = x / x.norm()
    y = torch.tensor([[float(target)]])
    return TensorDataset(x, y, x.clone(), y.clone(), task="regression", num_outputs=1)
