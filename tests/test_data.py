"""Datasets: the synthetic regression, and real Fashion-MNIST through torchvision's loader."""

from __future__ import annotations

import pytest
import torch

from noisereg.data import DatasetNotFoundError, fmnist_subset, synthetic_sparse


def test_synthetic_sparse_is_seeded_and_planted_on_two_coordinates():
    data = synthetic_sparse(seed=5)
    again = synthetic_sparse(seed=5)
    assert torch.equal(data.train_inputs, again.train_inputs)
    assert data.train_inputs.shape == (40, 10) and data.train_targets.shape == (40, 1)
    solution = torch.linalg.lstsq(data.train_inputs, data.train_targets).solution.squeeze()
    torch.testing.assert_close(solution, torch.tensor([1.0, -1.0] + [0.0] * 8), atol=1e-5, rtol=0)
    assert not torch.equal(synthetic_sparse(seed=6).train_inputs, data.train_inputs)


def test_fmnist_subset_on_the_real_files(fmnist_available, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dataset.root unset: data/FashionMNIST/raw under the working folder, then Debian's
    data = fmnist_subset(n_train=1024, seed=0)
    assert data.train_inputs.shape == (1024, 1, 28, 28) and data.test_inputs.shape == (10000, 1, 28, 28)
    assert data.train_inputs.dtype == torch.float32
    assert 0.0 == data.train_inputs.min().item() and data.train_inputs.max().item() == 1.0
    assert set(data.test_targets.unique().tolist()) == set(range(10))
    assert not any(tmp_path.iterdir()), "the Debian files are read in place: nothing is unpacked under dataset.root"
    same = fmnist_subset(n_train=1024, seed=0)
    other = fmnist_subset(n_train=1024, seed=1)
    assert torch.equal(same.train_inputs, data.train_inputs)
    assert not torch.equal(other.train_inputs, data.train_inputs)
    counts = torch.bincount(data.train_targets, minlength=10)
    assert counts.min() > 60, "a random subset has every class"


def test_missing_fmnist_names_both_fixes(tmp_path, monkeypatch):
    import noisereg.data.fmnist as fmnist

    monkeypatch.setattr(fmnist, "DEBIAN_DIR", tmp_path / "no-such-dir")
    with pytest.raises(DatasetNotFoundError) as error:
        fmnist_subset(root=tmp_path / "empty")
    message = str(error.value)
    assert "dataset.root" in message and "apt-get install -y dataset-fashion-mnist" in message
    assert "\n" not in message
