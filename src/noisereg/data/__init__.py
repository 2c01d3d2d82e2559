"""Datasets, registered in `DATASETS`, returned as tensors (`TensorDataset`) ready to move to the training device;
`BatchIterator` cuts them into batches there, through the dataset's `ImagePipeline` for stored images."""

from __future__ import annotations

from typing import Any

from noisereg.data.batches import Batch, BatchIterator
from noisereg.data.cifar10 import cifar10, cifar10_tensors
from noisereg.data.fmnist import DatasetNotFoundError, fashion_mnist_tensors, fmnist_full, fmnist_subset
from noisereg.data.images import ImagePipeline
from noisereg.data.matrix_sensing import matrix_sensing
from noisereg.data.points import points_1d, single_point
from noisereg.data.sines import sum_of_sines
from noisereg.data.synthetic import scalar_regression, synthetic_sparse
from noisereg.data.tabular import diabetes
from noisereg.data.tensors import TensorDataset
from noisereg.registry import DATASETS


def build_dataset(name: str, **options: Any) -> TensorDataset:
    return DATASETS.build({"name": name, **options})


__all__ = [
    "DATASETS",
    "Batch",
    "BatchIterator",
    "DatasetNotFoundError",
    "ImagePipeline",
    "TensorDataset",
    "build_dataset",
    "cifar10",
    "cifar10_tensors",
    "diabetes",
    "fashion_mnist_tensors",
    "fmnist_full",
    "fmnist_subset",
    "matrix_sensing",
    "points_1d",
    "scalar_regression",
    "single_point",
    "sum_of_sines",
    "synthetic_sparse",
]
