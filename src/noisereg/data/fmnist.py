"""Fashion-MNIST through torchvision, offline.

torchvision's `FashionMNIST(root, download=False)` reads the four unzipped idx files from
`<root>/FashionMNIST/raw/`. When they are missing we unzip them there from the Debian package
`dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist), or from `*.gz` files already in that folder.
Pixels are scaled to [0, 1] (`ToTensor()` only, as the authors' code does).
"""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import torch

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEFAULT_ROOT = "data"


class DatasetNotFoundError(SettingError, FileNotFoundError):
    pass


def _raw_dir(root: str | os.PathLike) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def prepare_fashion_mnist(root: str | os.PathLike = DEFAULT_ROOT) -> Path:
    """Make sure `<root>/FashionMNIST/raw/` holds the four unzipped files; return that folder."""
    raw = _raw_dir(root)
    for name in FILES:
        if (raw / name).exists():
            continue
        source = next((d / f"{name}.gz" for d in (raw, DEBIAN_DIR) if (d / f"{name}.gz").exists()), None)
        if source is None:
            raise DatasetNotFoundError(
                f"Fashion-MNIST file {name} not found under dataset.root={str(root)!r} ({raw}) nor in {DEBIAN_DIR}; "
                f"fix: `apt-get install -y dataset-fashion-mnist`, or set dataset.root to a folder with "
                f"FashionMNIST/raw/{name}[.gz]"
            )
        raw.mkdir(parents=True, exist_ok=True)
        partial = raw / f".{name}.partial"
        with gzip.open(source, "rb") as compressed, open(partial, "wb") as out:
            shutil.copyfileobj(compressed, out)
        partial.replace(raw / name)  # atomic: concurrent sweep jobs never read a half-written file
    return raw


def fashion_mnist_tensors(
    root: str | os.PathLike | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole of Fashion-MNIST: (train_x, train_y, test_x, test_y), float32 pixels in [0, 1] shaped
    (N, 1, 28, 28), int64 labels."""
    from torchvision.datasets import FashionMNIST

    root = DEFAULT_ROOT if root is None else root
    prepare_fashion_mnist(root)
    splits = []
    for train in (True, False):
        dataset = FashionMNIST(str(root), train=train, download=False)
        splits.append(dataset.data.unsqueeze(1).float().div_(255.0))
        splits.append(dataset.targets.long())
    return tuple(splits)


def fmnist_subset(
    n_train: int = 1024, n_test: int | None = None, root: str | os.PathLike = DEFAULT_ROOT, seed: int = 0
) -> TensorDataset:
    """A random training subset of `n_train` images chosen by `seed`, and the full 10k test set
    (or its first `n_test` images)."""
    train_x, train_y, test_x, test_y = fashion_mnist_tensors(root)
    if not 1 <= n_train <= train_x.shape[0]:
        raise SettingError(f"dataset.n_train={n_train} must lie in [1, {train_x.shape[0]}]")
    if n_test is not None and n_test < 1:
        raise SettingError(f"dataset.n_test={n_test} must be >= 1, or null for the full test set")
    subset = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(seed))[:n_train]
    if n_test is not None:
        test_x, test_y = test_x[:n_test], test_y[:n_test]
    return TensorDataset(train_x[subset], train_y[subset], test_x, test_y, task="classification", num_outputs=10)
