"""Datasets by name, returned as tensors (`TensorDataset`) ready to move to the training device."""
from __future__ import annotations

from typing import Any

from noisereg.data.fmnist import DatasetNotFoundError, fashion_mnist_tensors, fmnist_subset
from noisereg.data.synthetic import synthetic_sparse
from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError

DATASETS = {"synthetic_sparse": synthetic_sparse, "fmnist_subset": fmnist_subset}


def build_dataset(name: str, **options: Any) -> TensorDataset:
    if name not in DATASETS:
        raise SettingError(f"dataset.name={name!r} is unknown; choose one of {sorted(DATASETS)}")
    return DATASETS[name](**options)


__all__ = ["DATASETS", "DatasetNotFoundError", "TensorDataset", "build_dataset", "fashion_mnist_tensors", "fmnist_subset"]
