"""A dataset as tensors on the training device (airbench style: no DataLoader, no per-sample transforms)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TensorDataset:
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    task: str  # "classification" (int64 class targets) or "regression" (float targets)
    num_outputs: int
    # What the data were generated from, for measurements against the truth (a planted matrix, ...).
    truth: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_inputs.shape[1:])

    @property
    def n_train(self) -> int:
        return self.train_inputs.shape[0]

    def to(self, device: torch.device | str) -> "TensorDataset":
        return TensorDataset(
            self.train_inputs.to(device),
            self.train_targets.to(device),
            self.test_inputs.to(device),
            self.test_targets.to(device),
            self.task,
            self.num_outputs,
            {name: value.to(device) for name, value in self.truth.items()},
        )
