"""A small CIFAR-10 in the real `cifar-10-batches-py` layout, for tests and smoke runs where the real data cannot be
had: the six batch files and `batches.meta`, written opcode by opcode as the original files are (Python 2
cPickle, protocol 2: byte-string keys, a numpy array rebuilt by `numpy.core.multiarray._reconstruct`, labels as a
list of ints), so our loader reads it through exactly the path it takes for the real files.

    python tests/cifar_fixture.py DIRECTORY [--per-batch 40] [--test 100]

writes DIRECTORY/cifar-10-batches-py (then `dataset.root=DIRECTORY`). Images are noisy colour patches whose mean
colour depends on the class, so a model can learn something from them.
"""

from __future__ import annotations

import argparse
import pickle
import struct
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _string(value: bytes) -> bytes:
    """A Python 2 `str`: SHORT_BINSTRING below 256 bytes, BINSTRING above."""
    if len(value) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(value)]) + value
    return pickle.BINSTRING + struct.pack("<i", len(value)) + value


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return pickle.BININT1 + bytes([value])
    if 0 <= value < 65536:
        return pickle.BININT2 + struct.pack("<H", value)
    return pickle.BININT + struct.pack("<i", value)


def _list(items: list[bytes]) -> bytes:
    out = pickle.EMPTY_LIST
    for start in range(0, len(items), 1000):  # cPickle appends in batches of 1000
        out += pickle.MARK + b"".join(items[start : start + 1000]) + pickle.APPENDS
    return out


def _uint8_array(array: np.ndarray) -> bytes:
    """numpy's pickle of a C-contiguous uint8 array, as numpy 1.x under Python 2 wrote it."""
    dtype = (
        pickle.GLOBAL
        + b"numpy\ndtype\n"
        + _string(b"u1")
        + _int(0)
        + _int(1)
        + pickle.TUPLE3
        + pickle.REDUCE
        + pickle.MARK
        + _int(3)
        + _string(b"|")
        + pickle.NONE * 3
        + pickle.BININT
        + struct.pack("<i", -1)
        + pickle.BININT
        + struct.pack("<i", -1)
        + _int(0)
        + pickle.TUPLE
        + pickle.BUILD
    )
    shape = pickle.MARK + b"".join(_int(d) for d in array.shape) + pickle.TUPLE
    return (
        pickle.GLOBAL
        + b"numpy.core.multiarray\n_reconstruct\n"
        + pickle.GLOBAL
        + b"numpy\nndarray\n"
        + _int(0)
        + pickle.TUPLE1
        + _string(b"b")
        + pickle.TUPLE3
        + pickle.REDUCE
        + pickle.MARK
        + _int(1)
        + shape
        + dtype
        + pickle.NEWFALSE
        + _string(array.tobytes())
        + pickle.TUPLE
        + pickle.BUILD
    )


def python2_pickle(entries: dict[bytes, bytes]) -> bytes:
    """A protocol-2 pickle of a dict whose keys are byte strings and whose values are already-encoded opcodes."""
    body = b"".join(_string(key) + value for key, value in entries.items())
    return pickle.PROTO + bytes([2]) + pickle.EMPTY_DICT + pickle.MARK + body + pickle.SETITEMS + pickle.STOP


def batch_file(images: np.ndarray, labels: np.ndarray, batch_label: str) -> bytes:
    return python2_pickle(
        {
            b"batch_label": _string(batch_label.encode()),
            b"labels": _list([_int(int(label)) for label in labels]),
            b"data": _uint8_array(np.ascontiguousarray(images.reshape(len(images), -1))),
            b"filenames": _list([_string(f"fixture_{batch_label[:4]}_{i}.png".encode()) for i in range(len(images))]),
        }
    )


def make_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 10, n)
    colours = np.linspace(30, 225, 10)[:, None] * np.array([1.0, 0.6, 0.3])[None, :]  # a mean colour per class
    images = colours[labels][:, :, None, None] + rng.normal(0, 40, (n, 3, 32, 32))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_cifar10(directory: str | Path, per_batch: int = 40, n_test: int = 100, seed: int = 0) -> Path:
    """Write `directory/cifar-10-batches-py` with 5 × per_batch training and n_test test images; returns
    `directory` (what `dataset.root` takes)."""
    folder = Path(directory) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(1, 6):
        images, labels = make_images(per_batch, rng)
        (folder / f"data_batch_{index}").write_bytes(batch_file(images, labels, f"training batch {index} of 5"))
    images, labels = make_images(n_test, rng)
    (folder / "test_batch").write_bytes(batch_file(images, labels, "testing batch 1 of 1"))
    meta = python2_pickle(
        {
            b"num_cases_per_batch": _int(per_batch),
            b"label_names": _list([_string(name.encode()) for name in LABEL_NAMES]),
            b"num_vis": _int(3072),
        }
    )
    (folder / "batches.meta").write_bytes(meta)
    return Path(directory)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--per-batch", type=int, default=40)
    parser.add_argument("--test", type=int, default=100)
    args = parser.parse_args()
    print(write_cifar10(args.directory, args.per_batch, args.test))
