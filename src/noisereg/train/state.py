"""Everything a run needs to continue exactly where it stopped, in one object, saved atomically.

A resumed run reproduces an uninterrupted one bitwise (same machine): the checkpoint holds the model (W_NI included),
the optimizer (momentum buffers), the learning-rate schedule, the step, the batch iterator (its generator, the
epoch's permutation and the position in it), every random stream of the noise mode (and NIN's fixed ε, layer-wise's
choice stream), the probes' streams, torch's global generators, the losses not yet checked for divergence and the
last metrics row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from noisereg.data.batches import BatchIterator
from noisereg.errors import DamagedRecord
from noisereg.noise.base import NoiseMode
from noisereg.probes.base import Probe

FORMAT = 1


class TrainingState:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        batches: BatchIterator,
        noise: NoiseMode,
        probes: list[Probe],
    ):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.batches, self.noise, self.probes = batches, noise, probes
        self.step = 0
        self.started = False  # the step-0 metrics row is logged
        self.pending_losses: list[torch.Tensor] = []  # batch losses not yet checked for NaN/inf (0-d or per block)
        self.last_row: dict[str, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        # One loss per step: a 0-d tensor per single step, a 1-d tensor per block of steps (train/fused.py).
        pending = torch.cat([loss.reshape(-1) for loss in self.pending_losses]).cpu() if self.pending_losses else None
        return {
            "format": FORMAT,
            "step": self.step,
            "started": self.started,
            "pending_losses": pending,
            "last_row": self.last_row,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "batches": self.batches.state_dict(),
            "noise": self.noise.state_dict(),
            "probes": [probe.state_dict() for probe in self.probes],
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not {FORMAT}")
        device = next(self.model.parameters()).device
        self.step, self.started, self.last_row = int(state["step"]), bool(state["started"]), dict(state["last_row"])
        pending = state["pending_losses"]
        self.pending_losses = [] if pending is None else list(pending.to(device).unbind())
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.batches.load_state_dict(state["batches"])
        self.noise.load_state_dict(state["noise"])
        for probe, probe_state in zip(self.probes, state["probes"], strict=True):
            probe.load_state_dict(probe_state)
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def restore(self, path: str | os.PathLike, contents: dict[str, Any] | None = None) -> None:
        """Continue from the checkpoint at `path` (its `contents`, when already loaded). A file that is not a
        checkpoint of this run is a `DamagedRecord`, one line, before anything has changed on disk."""
        contents = load_checkpoint(path) if contents is None else contents
        try:
            self.load_state_dict(contents)
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as error:
            raise DamagedRecord(Path(path), f"not a checkpoint of this run: {type(error).__name__}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a crash mid-write leaves the previous checkpoint in place, never half a file, and a
        failed write (a full disk) leaves no partial file either."""
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "wb") as f:
                torch.save(self.state_dict(), f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's contents; `weights_only` so loading never runs code from the file. Random bytes, a cut-off
    file, an empty one or a pickle of anything but tensors and plain containers is a one-line `DamagedRecord`
    (torch's own message would advise `weights_only=False`, which runs the file's code: never do that)."""
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # UnpicklingError, RuntimeError (zip reader), EOFError, ...
        raise DamagedRecord(Path(path), f"torch.load refused it: {type(error).__name__}") from None
    if not isinstance(contents, dict) or contents.get("format") != FORMAT:
        raise DamagedRecord(Path(path), f"not a noisereg checkpoint of format {FORMAT}")
    return contents
