"""CIFAR-10: the real loading code on a fixture in the real cifar-10-batches-py layout (tests/cifar_fixture.py),
content checks with one-line errors, the restricted unpickler, and crop/flip/normalise as batched tensor operations
against torchvision's transforms."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
from cifar_fixture import FOLDER

from noisereg.data import BatchIterator, cifar10
from noisereg.data.cifar10 import MEAN, STD, SafeUnpickler, cifar10_tensors, read_batch
from noisereg.data.images import ImagePipeline
from noisereg.errors import SettingError


def copy_of(root, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(root, target)
    return target


def one_line_error(root, match: str, **options) -> str:
    with pytest.raises(SettingError) as error:
        cifar10(root=str(root), **options)
    message = str(error.value)
    assert "\n" not in message and "dataset.root" in message and match in message, message
    return message


def test_the_fixture_loads_as_uint8_tensors_identical_to_pythons_own_unpickling(cifar10_root):
    train_x, train_y, test_x, test_y = cifar10_tensors(cifar10_root)
    assert train_x.shape == (200, 3, 32, 32) and test_x.shape == (100, 3, 32, 32)
    assert train_x.dtype == test_x.dtype == torch.uint8 and train_y.dtype == torch.int64
    # The reference reading of the original format (what torchvision does): pickle.load with latin-1 strings.
    reference = pickle.loads((cifar10_root / FOLDER / "data_batch_2").read_bytes(), encoding="latin1")
    assert np.array_equal(train_x[40:80].numpy().reshape(40, -1), reference["data"])
    assert train_y[40:80].tolist() == reference["labels"]
    data = cifar10(root=str(cifar10_root / FOLDER), n_train=64, n_test=30, seed=1)  # the folder itself works too
    assert data.train_inputs.shape == (64, 3, 32, 32) and data.test_inputs.shape == (30, 3, 32, 32)
    assert data.train_inputs.dtype == torch.uint8 and data.num_outputs == 10 and data.task == "classification"
    assert torch.equal(data.test_inputs, test_x[:30])
    assert not torch.equal(cifar10(root=str(cifar10_root), n_train=64, seed=2).train_inputs, data.train_inputs)


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_mirror_re_pickled_by_python3_loads_the_same(cifar10_root, tmp_path, protocol):
    """Mirrors differ in bytes (str keys, numpy._core, _codecs at protocol 2): content is what is checked."""
    mirror = copy_of(cifar10_root, tmp_path)
    for path in (mirror / FOLDER).glob("*_batch*"):
        batch = pickle.loads(path.read_bytes(), encoding="latin1")
        path.write_bytes(pickle.dumps({"data": batch["data"], "labels": batch["labels"]}, protocol=protocol))
    for original, copied in zip(cifar10_tensors(cifar10_root), cifar10_tensors(mirror)):
        assert torch.equal(original, copied)


def test_missing_truncated_and_corrupt_files_are_one_line_errors_naming_the_file(cifar10_root, tmp_path):
    root = copy_of(cifar10_root, tmp_path)
    folder = root / FOLDER
    (folder / "data_batch_3").unlink()
    assert "data_batch_3 is missing" in one_line_error(root, "data_batch_3")
    shutil.copy(cifar10_root / FOLDER / "data_batch_3", folder)
    full = (folder / "data_batch_4").read_bytes()
    (folder / "data_batch_4").write_bytes(full[: len(full) // 2])
    assert "truncated" in one_line_error(root, "data_batch_4")
    (folder / "data_batch_4").write_bytes(full)
    (folder / "test_batch").write_bytes(b"\x00" * 100 + full[100:])
    one_line_error(root, "test_batch")
    (folder / "test_batch").write_bytes(b"")
    one_line_error(root, "test_batch")
    one_line_error(tmp_path / "empty", "no cifar-10-batches-py files", download=False)


def test_content_is_checked_shapes_and_labels(cifar10_root, tmp_path):
    root = copy_of(cifar10_root, tmp_path)
    path = root / FOLDER / "data_batch_1"
    batch = pickle.loads(path.read_bytes(), encoding="latin1")
    path.write_bytes(pickle.dumps({"data": batch["data"][:, :1024], "labels": batch["labels"]}))  # 32×32×1
    assert "not N×3072 uint8" in one_line_error(root, "data_batch_1")
    path.write_bytes(pickle.dumps({"data": batch["data"], "labels": [label + 10 for label in batch["labels"]]}))
    assert "outside 0–9" in one_line_error(root, "data_batch_1")
    path.write_bytes(pickle.dumps({"data": batch["data"].astype(np.int64), "labels": batch["labels"]}))
    assert "not uint8" in one_line_error(root, "data_batch_1")  # refused while unpickling: int64 arrays


class Payload:
    """Pickles as a call to os.system: what a malicious batch file would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_the_unpickler_admits_only_what_the_format_holds(cifar10_root, tmp_path):
    marker = tmp_path / "code-ran"
    root = copy_of(cifar10_root, tmp_path)
    path = root / FOLDER / "data_batch_5"
    path.write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}, protocol=2))
    assert "refuses to load the global posix.system" in one_line_error(root, "data_batch_5")
    assert not marker.exists(), "loading never runs code from a file"
    for obj in ({"data": np.zeros((2, 3072), dtype=object)}, {"data": "x", "f": print}, [np.float64(1.0)]):
        with pytest.raises(pickle.UnpicklingError):
            SafeUnpickler(__import__("io").BytesIO(pickle.dumps(obj, protocol=2)), encoding="bytes").load()
    images, labels = read_batch(cifar10_root / FOLDER / "data_batch_1", "root")  # the genuine article passes
    assert images.shape == (40, 3, 32, 32) and labels.shape == (40,)


def test_crop_flip_and_normalise_match_torchvision_transforms():
    from torchvision.transforms import v2

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=generator)
    pipeline = ImagePipeline(MEAN, STD, crop_padding=4, flip=True)
    augmentation = pipeline.draw(64, generator)
    ours = pipeline.augment(images, augmentation)
    for image, (row, column, flip), result in zip(images, augmentation.tolist(), ours):
        reference = v2.functional.crop(v2.functional.pad(image, [4]), row, column, 32, 32)
        if flip:
            reference = v2.functional.horizontal_flip(reference)
        assert torch.equal(result, reference)
    normalised = v2.functional.normalize(images.float() / 255, list(MEAN), list(STD))
    torch.testing.assert_close(pipeline.inputs(images), normalised, rtol=0, atol=1e-5)
    assert pipeline.inputs(images).dtype == torch.float32 and images.dtype == torch.uint8


def test_each_sample_gets_a_uniform_crop_and_a_fair_flip():
    draws = ImagePipeline(MEAN, STD, crop_padding=4, flip=True).draw(90_000, torch.Generator().manual_seed(1))
    for column in (0, 1):
        counts = torch.bincount(draws[:, column], minlength=9)
        assert counts.numel() == 9 and ((counts - 10_000).abs() < 450).all(), counts  # 4.5 binomial std devs
    assert abs(draws[:, 2].float().mean().item() - 0.5) < 0.006


def by_sample(iterator: BatchIterator) -> torch.Tensor:
    """One epoch of inputs, ordered by sample."""
    batches = [next(iterator) for _ in range(iterator.steps_per_epoch)]
    return torch.cat([b.inputs for b in batches])[torch.cat([b.indices for b in batches]).argsort()]


def test_the_batch_iterator_augments_per_epoch_and_resumes_mid_epoch_exactly(cifar10_root):
    data = cifar10(root=str(cifar10_root))
    batches = BatchIterator(data.train_inputs, data.train_targets, 48, seed=3, pipeline=data.pipeline)
    first, second = by_sample(batches), by_sample(batches)
    assert first.dtype == torch.float32 and first.shape == (200, 3, 32, 32)
    assert not torch.equal(first, second), "each epoch crops and flips every sample anew"
    next(batches), next(batches)
    state = batches.state_dict()  # part-way through the third epoch
    rest = [next(batches) for _ in range(7)]  # into the fourth
    resumed = BatchIterator(data.train_inputs, data.train_targets, 48, seed=99, pipeline=data.pipeline)
    resumed.load_state_dict(state)
    for expected in rest:
        batch = next(resumed)
        assert torch.equal(batch.inputs, expected.inputs) and torch.equal(batch.indices, expected.indices)
    plain = cifar10(root=str(cifar10_root), augment=False)
    batch = next(BatchIterator(plain.train_inputs, plain.train_targets, 48, seed=3, pipeline=plain.pipeline))
    assert torch.equal(batch.inputs, plain.model_inputs(plain.train_inputs[batch.indices])), "only normalised"
