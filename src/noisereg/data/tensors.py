"""A dataset as tensors on the training device (airbench style: no DataLoader, no per-sample transforms)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from noisereg.data.images import ImagePipeline


@dataclass
class TensorDataset:
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    task: str  # "classification" (int64 class targets) or "regression" (float targets)
    num_outputs: int
    # Stored uint8 images become model inputs through this (normalisation; crop and flip for training batches);
    # None: the stored inputs are the model's inputs.
    pipeline: ImagePipeline | None = None
    # What the data were generated from, for measurements against the truth (a planted matrix, ...).
    truth: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_inputs.shape[1:])

    @property
    def n_train(self) -> int:
        return self.train_inputs.shape[0]

    def model_inputs(self, stored: torch.Tensor) -> torch.Tensor:
        """Rows of `train_inputs` or `test_inputs` as the model takes them (never augmented)."""
        return stored if self.pipeline is None else self.pipeline.inputs(stored)

    def to(self, device: torch.device | str, channels_last: bool = False) -> "TensorDataset":
        """On `device`; `channels_last`: image inputs laid out channels-last in memory (faster convolutions on GPUs)."""

        def inputs(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device)
            if channels_last and self.pipeline is None and x.dim() == 4:  # the pipeline lays out its own outputs
                x = x.contiguous(memory_format=torch.channels_last)
            return x

        pipeline = None if self.pipeline is None else self.pipeline.to(device, channels_last=channels_last)
        return TensorDataset(
            inputs(self.train_inputs),
            self.train_targets.to(device),
            inputs(self.test_inputs),
            self.test_targets.to(device),
            self.task,
            self.num_outputs,
            pipeline,
            {name: value.to(device) for name, value in self.truth.items()},
        )
