"""Fashion-MNIST, offline, read and checked by our own idx reader.

Each of the four files is looked for as `<root>/FashionMNIST/raw/<name>` (unzipped, torchvision's layout), then
`<name>.gz` in that folder, then in the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
Gzip files are read in memory, never unpacked to disk. Loading checks the content — idx magic numbers, 28×28
images, a payload of exactly the stated size, labels 0–9, as many labels as images — so a truncated, corrupt or
empty file is a one-line error naming the file and `dataset.root`. Pixels are scaled to [0, 1] (`ToTensor()` only,
as the authors' code does).
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.registry import DATASETS

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEFAULT_ROOT = "data"
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # unsigned bytes, 3 and 1 dimensions
FIX = "re-install dataset-fashion-mnist (apt-get install --reinstall dataset-fashion-mnist) or set dataset.root"


class DatasetNotFoundError(SettingError, FileNotFoundError):
    pass


@dataclass
class FmnistSubsetSettings:
    name: str = "fmnist_subset"
    n_train: int = 1024
    n_test: Optional[int] = None  # None: the full 10k test set
    root: Optional[str] = None  # unset: data/FashionMNIST/raw, else the Debian package's files (see find_file)
    seed: int = 0  # which training subset; fixed across runs, as the paper varies only init and noise


def _raw_dir(root: str | os.PathLike) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def find_file(root: str | os.PathLike | None, name: str) -> Path:
    """`root` unset: `data/FashionMNIST/raw`, then the Debian package. A root the user names is used or refused,
    never replaced by another copy."""
    raw = _raw_dir(DEFAULT_ROOT if root is None else root)
    candidates = [raw / name, raw / f"{name}.gz"] + ([DEBIAN_DIR / f"{name}.gz"] if root is None else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if root is not None:
        raise DatasetNotFoundError(
            f"Fashion-MNIST file {name}[.gz] is not in {raw} (dataset.root={str(root)!r}); "
            f"put the four files there, or leave dataset.root unset to use {DEBIAN_DIR} "
            f"(`apt-get install -y dataset-fashion-mnist`)"
        )
    raise DatasetNotFoundError(
        f"Fashion-MNIST file {name} not found under {raw} nor in {DEBIAN_DIR}; "
        f"fix: `apt-get install -y dataset-fashion-mnist`, or set dataset.root to a folder with "
        f"FashionMNIST/raw/{name}[.gz]"
    )


def _read_bytes(path: Path, root: str | os.PathLike) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; a cut-off stream an EOFError
        raise SettingError(
            f"Fashion-MNIST file {path} is corrupt ({error}); {FIX} (dataset.root={str(root)!r})"
        ) from None


def read_idx(path: Path, root: str | os.PathLike = DEFAULT_ROOT) -> np.ndarray:
    """An idx file of unsigned bytes (images N×28×28 or labels N), checked against its header."""
    data = _read_bytes(path, root)
    problem = f"Fashion-MNIST file {path}"
    if len(data) < 8:
        raise SettingError(f"{problem} is empty or truncated ({len(data)} bytes); {FIX} (dataset.root={str(root)!r})")
    magic, count = struct.unpack(">II", data[:8])
    if magic == IMAGES_MAGIC:
        if len(data) < 16:
            raise SettingError(f"{problem} is truncated in its header; {FIX} (dataset.root={str(root)!r})")
        rows, columns = struct.unpack(">II", data[8:16])
        shape, offset = (count, rows, columns), 16
        if (rows, columns) != (28, 28):
            raise SettingError(
                f"{problem} holds {rows}×{columns} images, not 28×28; {FIX} (dataset.root={str(root)!r})"
            )
    elif magic == LABELS_MAGIC:
        shape, offset = (count,), 8
    else:
        raise SettingError(
            f"{problem} is not an idx file of images or labels (magic {magic:#010x}); {FIX} "
            f"(dataset.root={str(root)!r})"
        )
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise SettingError(
            f"{problem} is truncated or padded: {len(data) - offset} bytes after the header, "
            f"expected {expected} for shape {shape}; {FIX} (dataset.root={str(root)!r})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


@functools.lru_cache(maxsize=2)
def _load(paths: tuple[Path, ...], stamps: tuple[tuple[int, int], ...], root: str) -> tuple[torch.Tensor, ...]:
    arrays = [read_idx(path, root) for path in paths]
    splits = []
    for (images, labels), (images_path, path) in zip((arrays[:2], arrays[2:]), (paths[:2], paths[2:])):
        if images.ndim != 3:
            raise SettingError(
                f"Fashion-MNIST file {images_path} holds labels, not images: the files under "
                f"dataset.root={root!r} are mixed up; {FIX}"
            )
        if labels.ndim != 1:
            raise SettingError(
                f"Fashion-MNIST file {path} holds images, not labels: the files under "
                f"dataset.root={root!r} are mixed up; {FIX}"
            )
        if images.shape[0] != labels.shape[0]:
            raise SettingError(
                f"Fashion-MNIST {path} has {labels.shape[0]} labels for {images.shape[0]} images; "
                f"{FIX} (dataset.root={root!r})"
            )
        if labels.size and labels.max() > 9:
            raise SettingError(
                f"Fashion-MNIST {path} has label {labels.max()}, outside 0–9; {FIX} (dataset.root={root!r})"
            )
        splits.append(torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0))
        splits.append(torch.from_numpy(labels.astype(np.int64)))
    return tuple(splits)


def fashion_mnist_tensors(
    root: str | os.PathLike | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole of Fashion-MNIST: (train_x, train_y, test_x, test_y), float32 pixels in [0, 1] shaped
    (N, 1, 28, 28), int64 labels. Read once per process (the files' sizes and times key the cache)."""
    paths = tuple(find_file(root, name) for name in FILES)
    stamps = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    return _load(paths, stamps, str(root))


@DATASETS.register("fmnist_subset", FmnistSubsetSettings)
def fmnist_subset(
    n_train: int = 1024, n_test: int | None = None, root: str | os.PathLike | None = None, seed: int = 0
) -> TensorDataset:
    """A random training subset of `n_train` images chosen by `seed` (Orvieto App. F.1: 1024), and the full 10k
    test set (or its first `n_test` images)."""
    train_x, train_y, test_x, test_y = fashion_mnist_tensors(root)
    if not 1 <= n_train <= train_x.shape[0]:
        raise SettingError(f"dataset.n_train={n_train} must lie in [1, {train_x.shape[0]}]")
    if n_test is not None and n_test < 1:
        raise SettingError(f"dataset.n_test={n_test} must be >= 1, or null for the full test set")
    subset = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(seed))[:n_train]
    if n_test is not None:
        test_x, test_y = test_x[:n_test], test_y[:n_test]
    return TensorDataset(train_x[subset], train_y[subset], test_x, test_y, task="classification", num_outputs=10)


@dataclass
class FmnistFullSettings:
    name: str = "fmnist_full"
    train_fraction: float = 0.6  # of the 70,000 pooled images (Levi App. B: a 60/40 training/validation split)
    n_train: Optional[int] = None  # None: the whole training share (42,000); else its first n_train images
    n_test: Optional[int] = None  # None: the whole held-out share (28,000); else its first n_test images
    standardize: bool = True  # subtract the training images' mean pixel value, divide by their std (one scalar each)
    root: Optional[str] = None  # as FmnistSubsetSettings.root
    seed: int = 0  # which split; fixed across runs, as seeds vary only the initialisation, batches and noise

    def check(self, group: str = "dataset") -> None:
        if not 0.0 < self.train_fraction < 1.0:
            raise SettingError(f"{group}.train_fraction={self.train_fraction} must lie in (0, 1), e.g. 0.6")
        for key in ("n_train", "n_test"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise SettingError(f"{group}.{key}={getattr(self, key)} must be >= 1, or null for the whole share")


@DATASETS.register("fmnist_full", FmnistFullSettings)
def fmnist_full(
    train_fraction: float = 0.6,
    n_train: int | None = None,
    n_test: int | None = None,
    standardize: bool = True,
    root: str | os.PathLike | None = None,
    seed: int = 0,
) -> TensorDataset:
    """All 70,000 Fashion-MNIST images (the official train and test files pooled), split at random by `seed` into
    a training and a held-out share, standardised with the training images' statistics (Levi App. B: "subtracting
    the mean and dividing by the variance of the training data", read as the standard deviation)."""
    FmnistFullSettings(train_fraction=train_fraction, n_train=n_train, n_test=n_test).check()
    train_x, train_y, test_x, test_y = fashion_mnist_tensors(root)
    images, labels = torch.cat([train_x, test_x]), torch.cat([train_y, test_y])
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    cut = round(train_fraction * images.shape[0])
    train, test = order[:cut][:n_train], order[cut:][:n_test]
    train_x, test_x = images[train], images[test]
    if standardize:
        mean, std = train_x.mean(), train_x.std()
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    return TensorDataset(train_x, labels[train], test_x, labels[test], task="classification", num_outputs=10)
