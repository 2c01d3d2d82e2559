"""Batches of a dataset that already lives on the training device (airbench style: no DataLoader, no workers).

Each epoch draws one permutation from the iterator's own host generator and yields slices of it; full-batch training
yields the whole set every step. Stored images (uint8) go through the dataset's `ImagePipeline`
(data/images.py): each sample's crop and flip for the epoch are drawn right after the permutation, from the same
generator, and moved to the device with it — one transfer per epoch, none per step — then applied and normalised
as batched tensor operations. `state_dict()` holds the generator, the epoch's permutation and augmentation table and
the position in them, so a resumed run continues with exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from noisereg.data.images import ImagePipeline


@dataclass
class Batch:
    inputs: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor  # rows of the training set, on the device (NIN's fixed ε is looked up by them)
    epoch: int  # the epoch this batch belongs to


class BatchIterator:
    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int | None,
        seed: int,
        pipeline: ImagePipeline | None = None,
    ):
        self.inputs, self.targets = inputs, targets
        self.n = inputs.shape[0]
        self.full_batch = batch_size is None or batch_size >= self.n
        self.batch_size = self.n if self.full_batch else batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.pipeline = pipeline
        self.augments = pipeline is not None and pipeline.augments
        self.epoch = 0
        self.position = 0  # next row of the epoch's order
        self.order: torch.Tensor | None = None
        self.augmentation: torch.Tensor | None = None  # (n, 3): each position's crop and flip this epoch

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> BatchIterator:
        return self

    def _start_epoch(self) -> None:
        # Drawn on the host, so CPU and GPU runs see the same batches.
        device = self.inputs.device
        if self.full_batch:
            self.order = torch.arange(self.n, device=device)
        else:
            self.order = torch.randperm(self.n, generator=self.generator).to(device)
        if self.augments:
            self.augmentation = self.pipeline.draw(self.n, self.generator).to(device)

    def __next__(self) -> Batch:
        if self.order is None:
            self._start_epoch()
        epoch, rows = self.epoch, slice(self.position, self.position + self.batch_size)
        if self.full_batch:
            indices, inputs, targets = self.order, self.inputs, self.targets
        else:
            indices = self.order[rows]
            inputs, targets = self.inputs[indices], self.targets[indices]
        if self.augments:
            inputs = self.pipeline.augment(inputs, self.augmentation[rows])
        if self.pipeline is not None:
            inputs = self.pipeline.inputs(inputs)
        self.position += self.batch_size
        if self.position >= self.n:
            self.epoch, self.position, self.order, self.augmentation = self.epoch + 1, 0, None, None
        return Batch(inputs, targets, indices, epoch)

    def take(self, steps: int) -> tuple[torch.Tensor, int]:
        """The rows of the next `steps` batches at once, as a (steps, batch size) tensor, and the epoch of the
        first: the same rows, in the same order, and the same iterator state afterwards as `steps` calls of
        `next()` (train/fused.py runs that many steps in one call). Needs batches of equal size."""
        if not self.full_batch and self.n % self.batch_size:
            raise ValueError(f"take() needs a batch size that divides the {self.n} rows (got {self.batch_size})")
        first_epoch = self.epoch
        if self.full_batch:
            self.epoch += steps
            return torch.arange(self.n, device=self.inputs.device).expand(steps, self.n), first_epoch
        pieces, wanted = [], steps * self.batch_size
        while wanted:
            if self.order is None:
                self.order = torch.randperm(self.n, generator=self.generator).to(self.inputs.device)
            piece = self.order[self.position : self.position + wanted]
            pieces.append(piece)
            wanted -= piece.numel()
            self.position += piece.numel()
            if self.position >= self.n:
                self.epoch, self.position, self.order = self.epoch + 1, 0, None
        return torch.cat(pieces).view(steps, self.batch_size), first_epoch

    def state_dict(self) -> dict[str, Any]:
        order = None if self.order is None or self.full_batch else self.order.cpu()
        augmentation = None if self.augmentation is None else self.augmentation.cpu()
        return {
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "position": self.position,
            "order": order,
            "augmentation": augmentation,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        device = self.inputs.device
        self.order = None if state["order"] is None else state["order"].to(device)
        augmentation = state.get("augmentation")
        self.augmentation = None if augmentation is None else augmentation.to(device)
        if self.full_batch and self.position:
            raise ValueError("a full-batch iterator is never part-way through an epoch")
