"""CIFAR-10 in the `cifar-10-batches-py` layout, read by our own loader and kept as uint8 on the training device.

`dataset.root` is the `cifar-10-batches-py` folder itself or a folder holding it. When neither holds any of its
files and `dataset.download` is on, the archive is fetched with torchvision's downloader (which checks the
archive's MD5) and unpacked under it; either way the files are then read here. Loading checks content, not checksums,
so mirrors and subsets load: the five training batches and the test batch must be present, each a dict with a
uint8 `data` array of N×3072 pixels (32×32, channel-major) and N `labels` in 0–9. A missing, truncated or corrupt
file is a one-line error naming it and `dataset.root`.

The batches are pickles (Python 2, protocol 2, in the original). They are read by `SafeUnpickler`, which builds
only what the format holds — dicts, str or bytes keys, lists of ints, uint8 numpy arrays — and refuses every
other global, so a file cannot run code when it is loaded.

Pixels stay uint8 (150 MB for the whole set); normalisation with the authors' code's statistics and the training
crop and flip are the batch iterator's, through `ImagePipeline` (data/images.py).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from noisereg.data.images import ImagePipeline
from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.registry import DATASETS

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
# The normalisation of the authors' code (and kuangliu/pytorch-cifar): per-channel mean and std.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
CROP_PADDING = 4
DEFAULT_ROOT = "data"
DOWNLOAD_TIMEOUT_S = 60


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for the CIFAR batch files: the only globals it resolves are the three numpy uses to pickle a
    uint8 array (and `_codecs.encode`, which Python 3 uses for bytes at protocol 2), each replaced by a narrow
    stand-in: an empty uint8 array for the bytes to fill, the uint8 dtype, latin-1 text to bytes. Anything else is
    refused before it is called."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _empty_array
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return _uint8_dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refuses to load the global {module}.{name} (not part of the CIFAR format)")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refuses persistent references (not part of the CIFAR format)")


_NDARRAY = object()  # stands for numpy.ndarray: only `_empty_array` accepts it, and it cannot be called


def _empty_array(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("an array of a type other than numpy.ndarray")
    return np.empty(0, dtype=np.uint8)  # BUILD then sets its shape, dtype and bytes (ndarray.__setstate__)


def _uint8_dtype(code: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if code not in ("u1", b"u1", "uint8", b"uint8"):
        raise pickle.UnpicklingError(f"an array of dtype {code!r}, not uint8")
    return np.dtype("u1", False, True)  # a copy: BUILD sets its state, never the shared uint8 dtype's


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("an encoded string other than latin-1 text")
    return text.encode("latin1")


def _fix(root: str) -> str:
    return f"put the original {FOLDER} folder (or a mirror) there, or point dataset.root at one (dataset.root={root!r})"


def _key(batch: dict, name: str) -> Any:
    for key in (name, name.encode()):
        if key in batch:
            return batch[key]
    return None


def read_batch(path: Path, root: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: (images uint8 (N, 3, 32, 32), labels int64 (N,)), its content checked."""
    problem = f"CIFAR-10 file {path}"
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SettingError(f"{problem} cannot be read ({error.strerror}); {_fix(root)}") from None
    try:
        batch = SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        raise SettingError(f"{problem} is corrupt or not a CIFAR batch ({error}); {_fix(root)}") from None
    except EOFError:
        raise SettingError(f"{problem} is truncated ({len(raw)} bytes); {_fix(root)}") from None
    except Exception as error:  # a damaged stream fails in many ways (ValueError, KeyError, IndexError, ...)
        raise SettingError(f"{problem} is corrupt ({type(error).__name__}: {error}); {_fix(root)}") from None
    data, labels = (_key(batch, "data"), _key(batch, "labels")) if isinstance(batch, dict) else (None, None)
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        raise SettingError(
            f"{problem} is not a CIFAR batch (a dict with a `data` array and a `labels` list); {_fix(root)}"
        )
    pixels = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels or data.shape[0] < 1:
        raise SettingError(
            f"{problem} holds {data.dtype} data shaped {data.shape}, not N×{pixels} uint8 "
            f"(32×32×3 images); {_fix(root)}"
        )
    if len(labels) != data.shape[0] or not all(type(label) is int and 0 <= label < CLASSES for label in labels):
        raise SettingError(
            f"{problem} has {len(labels)} labels for {data.shape[0]} images, or labels outside 0–9; {_fix(root)}"
        )
    return data.reshape(-1, *IMAGE_SHAPE), np.asarray(labels, dtype=np.int64)


def find_folder(root: str | os.PathLike) -> Path | None:
    """The folder holding the batch files: `root` itself or `root/cifar-10-batches-py`; None if neither has any."""
    root = Path(root)
    for folder in (root, root / FOLDER):
        if any((folder / name).exists() for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    return None


def download_cifar10(root: str | os.PathLike) -> Path:
    """Fetch the archive with torchvision's downloader (it checks the archive's MD5) into a temporary folder —
    nothing is written under `root` if that fails — then unpack it beside `root`'s contents and move the folder into
    place, so jobs downloading at once never see half a folder."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_url, extract_archive

    root = Path(root)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with tempfile.TemporaryDirectory(prefix="noisereg-cifar10-") as archive_folder:
            download_url(CIFAR10.url, archive_folder, filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".cifar10-download-", dir=root))
            try:
                extract_archive(str(Path(archive_folder) / CIFAR10.filename), str(staging))
                (staging / FOLDER).rename(root / FOLDER)
            except OSError:
                if find_folder(root) is None:  # not merely another job that finished first
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return root / FOLDER


@functools.lru_cache(maxsize=2)
def _load(folder: Path, stamps: tuple[tuple[int, int], ...], root: str) -> tuple[torch.Tensor, ...]:
    train = [read_batch(folder / name, root) for name in TRAIN_FILES]
    test_images, test_labels = read_batch(folder / TEST_FILE, root)
    train_images = np.concatenate([images for images, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    return tuple(torch.from_numpy(array) for array in (train_images, train_labels, test_images, test_labels))


def cifar10_tensors(
    root: str | os.PathLike = DEFAULT_ROOT, download_if_missing: bool = False
) -> tuple[torch.Tensor, ...]:
    """The whole of CIFAR-10 under `root`: (train images uint8 (N, 3, 32, 32), train labels int64, test images,
    test labels). Read once per process (the files' sizes and times key the cache)."""
    root = str(root)
    folder = find_folder(root)
    if folder is None:
        if not download_if_missing:
            raise SettingError(
                f"CIFAR-10 not found: no {FOLDER} files under dataset.root={root!r}; {_fix(root)}, "
                "or set dataset.download=true where a network is reachable"
            )
        try:
            folder = download_cifar10(root)
        except Exception as error:
            raise SettingError(
                f"CIFAR-10 not found under dataset.root={root!r} and its download failed "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                f"{_fix(root)}"
            )
    missing = [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]
    if missing:
        raise SettingError(
            f"CIFAR-10 file {folder / missing[0]} is missing ({len(missing)} of the 6 batch files are); {_fix(root)}"
        )
    stamps = tuple(((folder / n).stat().st_size, (folder / n).stat().st_mtime_ns) for n in (*TRAIN_FILES, TEST_FILE))
    return _load(folder, stamps, root)


@dataclass
class Cifar10Settings:
    name: str = "cifar10"
    root: str = DEFAULT_ROOT  # the cifar-10-batches-py folder, or a folder holding it (or to download it into)
    download: bool = True  # fetch the archive when root holds no CIFAR-10 files (needs a network)
    n_train: Optional[int] = None  # None: all 50k training images; else a random subset chosen by `seed`
    n_test: Optional[int] = None  # None: all 10k test images; else the first n_test
    seed: int = 0  # which training subset (when n_train is set)
    augment: bool = True  # random crop (zero padding 4) and horizontal flip of training batches, as the authors' code


@DATASETS.register("cifar10", Cifar10Settings)
def cifar10(
    root: str | os.PathLike = DEFAULT_ROOT,
    download: bool = True,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    augment: bool = True,
) -> TensorDataset:
    train_x, train_y, test_x, test_y = cifar10_tensors(root, download_if_missing=download)
    if n_train is not None:
        if not 1 <= n_train <= train_x.shape[0]:
            raise SettingError(f"dataset.n_train={n_train} must lie in [1, {train_x.shape[0]}], or null for all")
        subset = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(seed))[:n_train]
        train_x, train_y = train_x[subset], train_y[subset]
    if n_test is not None:
        if n_test < 1:
            raise SettingError(f"dataset.n_test={n_test} must be >= 1, or null for the full test set")
        test_x, test_y = test_x[:n_test], test_y[:n_test]
    pipeline = ImagePipeline(MEAN, STD, crop_padding=CROP_PADDING if augment else 0, flip=augment)
    return TensorDataset(train_x, train_y, test_x, test_y, "classification", CLASSES, pipeline)
