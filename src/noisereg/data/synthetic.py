"""Synthetic regressions: Orvieto et al.'s sparse one (Fig. 2, footnote 3: 40 points from a standard Gaussian in
R^10, labels planted as a linear function of the first two coordinates) and Levi et al.'s scalar one (Sec. 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.registry import DATASETS


@dataclass
class SyntheticSparseSettings:
    name: str = "synthetic_sparse"
    n_train: int = 40
    n_test: int = 1000
    input_dim: int = 10
    coefficients: list[float] = field(default_factory=lambda: [1.0, -1.0])
    label_noise_std: float = 0.0
    seed: int = 0


@DATASETS.register("synthetic_sparse", SyntheticSparseSettings)
def synthetic_sparse(
    n_train: int = 40,
    n_test: int = 1000,
    input_dim: int = 10,
    coefficients: Sequence[float] = (1.0, -1.0),
    label_noise_std: float = 0.0,
    seed: int = 0,
) -> TensorDataset:
    if n_train < 1 or n_test < 1 or input_dim < 1:
        raise SettingError("dataset.n_train, dataset.n_test and dataset.input_dim must be >= 1")
    if len(coefficients) > input_dim:
        raise SettingError(f"dataset.coefficients has {len(coefficients)} entries but dataset.input_dim={input_dim}")
    generator = torch.Generator().manual_seed(seed)
    beta = torch.zeros(input_dim)
    beta[: len(coefficients)] = torch.tensor([float(c) for c in coefficients])

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, input_dim, generator=generator)
        y = x @ beta + label_noise_std * torch.randn(n, generator=generator)
        return x, y.unsqueeze(1)

    train_x, train_y = sample(n_train)
    test_x, test_y = sample(n_test)
    return TensorDataset(train_x, train_y, test_x, test_y, task="regression", num_outputs=1)


@dataclass
class ScalarRegressionSettings:
    name: str = "scalar_regression"
    n_train: int = 10000
    n_test: int = 1000
    input_std: float = 1.0  # σ_x
    slope: float = 1.0  # M
    seed: int = 0


@DATASETS.register("scalar_regression", ScalarRegressionSettings)
def scalar_regression(
    n_train: int = 10000, n_test: int = 1000, input_std: float = 1.0, slope: float = 1.0, seed: int = 0
) -> TensorDataset:
    """Levi et al.'s univariate linear regression (Sec. 3): x ~ N(0, σ_x²), y = M·x, without label noise."""
    if n_train < 1 or n_test < 1:
        raise SettingError("dataset.n_train and dataset.n_test must be >= 1")
    if not input_std > 0:
        raise SettingError(f"dataset.input_std={input_std} must be > 0, e.g. dataset.input_std=1.0")
    generator = torch.Generator().manual_seed(seed)
    train_x, test_x = (torch.randn(n, 1, generator=generator) * input_std for n in (n_train, n_test))
    return TensorDataset(train_x, slope * train_x, test_x, slope * test_x, task="regression", num_outputs=1)
