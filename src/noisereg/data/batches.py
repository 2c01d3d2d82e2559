"""Batches of a dataset that already lives on the training device (airbench style: no DataLoader, no workers).

Each epoch draws one permutation from the iterator's own generator and yields slices of it; full-batch training
yields the whole set every step. `state_dict()` holds the generator, the epoch's permutation and the position in
it, so a resumed run continues with exactly the batches an uninterrupted run would have seen. Augmentation
(e.g. CIFAR's crop and flip) is a batched tensor function applied to each batch's inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch


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
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ):
        self.inputs, self.targets = inputs, targets
        self.n = inputs.shape[0]
        self.full_batch = batch_size is None or batch_size >= self.n
        self.batch_size = self.n if self.full_batch else batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = augment
        self.epoch = 0
        self.position = 0  # next row of the epoch's order
        self.order: torch.Tensor | None = None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> Batch:
        if self.order is None:
            # The permutation comes from a host generator, so CPU and GPU runs see the same batches.
            self.order = (
                torch.arange(self.n, device=self.inputs.device)
                if self.full_batch
                else torch.randperm(self.n, generator=self.generator).to(self.inputs.device)
            )
        epoch = self.epoch
        if self.full_batch:
            indices, inputs, targets = self.order, self.inputs, self.targets
        else:
            indices = self.order[self.position : self.position + self.batch_size]
            inputs, targets = self.inputs[indices], self.targets[indices]
        self.position += self.batch_size
        if self.position >= self.n:
            self.epoch, self.position, self.order = self.epoch + 1, 0, None
        if self.augment is not None:
            inputs = self.augment(inputs, self.generator)
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
        return {"generator": self.generator.get_state(), "epoch": self.epoch, "position": self.position, "order": order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.order = None if state["order"] is None else state["order"].to(self.inputs.device)
        if self.full_batch and self.position:
            raise ValueError("a full-batch iterator is never part-way through an epoch")
