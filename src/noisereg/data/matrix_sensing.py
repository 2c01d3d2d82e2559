"""Matrix sensing (Blanc et al. Fig. 1, after Li et al. 2018): recover a rank-r d×d matrix X* = U*U*ᵀ from n = 5dr
linear measurements yᵢ = ⟨Aᵢ, X*⟩, the entries of each Aᵢ i.i.d. N(0, 1).

U* has orthonormal columns (the Q of a Gaussian matrix's QR; the paper does not say), so ‖X*‖²_F = ‖X*‖_* = r.
The test split is fresh measurements of the same X*: for Gaussian A, E(⟨A, X⟩ − ⟨A, X*⟩)² = ‖X − X*‖²_F, which
probes/matrix_recovery.py measures exactly from `truth["planted_matrix"]`. Everything is drawn from one CPU
generator seeded with `seed`, so the data are the same on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.registry import DATASETS


@dataclass
class MatrixSensingSettings:
    name: str = "matrix_sensing"
    dimension: int = 20  # d (the paper: 100)
    rank: int = 1  # r (the paper: 5)
    measurements_factor: float = 5.0  # n = factor · d · r measurements (the paper: 5)
    n_test: int = 1000  # fresh measurements for test/mse
    seed: int = 0


@DATASETS.register("matrix_sensing", MatrixSensingSettings)
def matrix_sensing(
    dimension: int = 20, rank: int = 1, measurements_factor: float = 5.0, n_test: int = 1000, seed: int = 0
) -> TensorDataset:
    if dimension < 1 or not 1 <= rank <= dimension:
        raise SettingError(f"dataset.rank={rank} must lie in [1, dataset.dimension={dimension}]")
    n_train = math.ceil(measurements_factor * dimension * rank)
    if n_train < 1 or n_test < 1:
        raise SettingError("dataset.measurements_factor and dataset.n_test must give at least one measurement each")
    generator = torch.Generator().manual_seed(seed)
    planted_factor, _ = torch.linalg.qr(torch.randn(dimension, rank, generator=generator))
    planted = planted_factor @ planted_factor.T

    def measure(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        operators = torch.randn(n, dimension, dimension, generator=generator)
        return operators, (operators * planted).sum(dim=(1, 2)).unsqueeze(1)

    train_x, train_y = measure(n_train)
    test_x, test_y = measure(n_test)
    return TensorDataset(
        train_x, train_y, test_x, test_y, task="regression", num_outputs=1, truth={"planted_matrix": planted}
    )
