"""The protocol every noise mode follows (DESIGN.md, "Noise modes share one protocol").

The trainer calls every hook of every mode the same way, once per step:

    noise.attach(model)                    # once, before the optimizer is built
    noise.begin_step(step, epoch, indices) # switches noise off after `stop_step`/`stop_epoch`
    y = noise.targets(x, y)                # label noise
    with noise.perturbed():                # parameter noise, restored bitwise on exit
        loss_fn(model(x), y).backward()
    optimizer.step()

GD is this class itself: every hook does nothing. Evaluation is always noise-free: hooks that act in the
forward pass (NIN, GNI) check `model.training`, and the trainer evaluates in eval mode.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn
from noisereg.errors import SettingError


class NoiseMode:
    """No noise (plain GD/SGD); the base class of every mode."""

    name = "gd"

    def __init__(self, stop_step: int | None = None, stop_epoch: int | None = None):
        if (stop_step is not None and stop_step < 0) or (stop_epoch is not None and stop_epoch < 0):
            raise SettingError("noise.stop_step and noise.stop_epoch must be >= 0, or null to keep noise on")
        self.stop_step = stop_step
        self.stop_epoch = stop_epoch
        self.active = True
        self.batch_indices: torch.Tensor | None = None

    def attach(self, model: nn.Module) -> None:
        """Add parameters or forward hooks to the model (NIN, GNI). Called before the optimizer is built."""

    def begin_step(self, step: int, epoch: int, batch_indices: torch.Tensor | None = None) -> None:
        """Called before every training step; `batch_indices` index the training set (NIN `resample: fixed`)."""
        stopped = (self.stop_step is not None and step >= self.stop_step) or (
            self.stop_epoch is not None and epoch >= self.stop_epoch
        )
        self.active = not stopped
        self.batch_indices = batch_indices

    def targets(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The targets the loss sees this step (label noise changes them)."""
        return targets

    @contextlib.contextmanager
    def perturbed(self) -> Iterator[None]:
        """Context around forward+backward: parameters perturbed on entry, restored bitwise on exit."""
        yield

    def metrics(self) -> dict[str, float]:
        """Extra metrics for the run record, e.g. `noise/nin_weight_norm`."""
        return {}


def check_sigma(sigma: float, setting: str = "noise.sigma") -> float:
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise SettingError(f"{setting}={sigma!r} must be a number, e.g. {setting}=0.05") from None
    if not 0.0 <= sigma < float("inf"):  # also rejects NaN
        raise SettingError(f"{setting}={sigma} must be finite and >= 0 (a standard deviation); e.g. {setting}=0.05")
    return sigma
