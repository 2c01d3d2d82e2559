"""A real tabular regression that installs offline: scikit-learn's bundled diabetes data (442 patients, 10 features,
a disease-progression score), standing in for Boston house prices in Camuto et al. Fig. 2 (scikit-learn removed
Boston; the authors used it, 404 train / 102 test points, features standardised, targets scaled to about [−1, 1]).

A seeded permutation splits 80 / 20 (354 / 88 points, as 404 / 102 for Boston); features and targets are
standardised with the training split's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.registry import DATASETS

TEST_FRACTION = 0.2


@dataclass
class DiabetesSettings:
    name: str = "diabetes"
    n_train: int = 354  # the whole training split; fewer: its first n
    n_test: int = 88  # the whole test split
    seed: int = 0  # which split; fixed across runs


def diabetes_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_diabetes
    except ImportError:  # pragma: no cover - a dependency of the package
        raise SettingError("dataset=diabetes needs scikit-learn (pip install scikit-learn, or make install)") from None
    features, targets = load_diabetes(return_X_y=True, scaled=False)  # raw values: we standardise on train only
    return features.astype(np.float64), targets.astype(np.float64)


@DATASETS.register("diabetes", DiabetesSettings)
def diabetes(n_train: int = 354, n_test: int = 88, seed: int = 0) -> TensorDataset:
    features, targets = diabetes_arrays()
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed)).numpy()
    n_test_split = round(TEST_FRACTION * len(targets))
    test_rows, train_rows = order[:n_test_split], order[n_test_split:]
    for key, value, available in (("n_train", n_train, len(train_rows)), ("n_test", n_test, len(test_rows))):
        if not 1 <= value <= available:
            raise SettingError(f"dataset.{key}={value} must lie in [1, {available}] for dataset=diabetes")
    train_rows, test_rows = train_rows[:n_train], test_rows[:n_test]
    mean, std = features[train_rows].mean(axis=0), features[train_rows].std(axis=0)
    target_mean, target_std = targets[train_rows].mean(), targets[train_rows].std()

    def tensors(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = (features[rows] - mean) / std
        y = (targets[rows] - target_mean) / target_std
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)

    train_x, train_y = tensors(train_rows)
    test_x, test_y = tensors(test_rows)
    return TensorDataset(train_x, train_y, test_x, test_y, task="regression", num_outputs=1)
