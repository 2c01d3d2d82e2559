"""Probes: measurements taken during training, at step 0, every `interval` steps and at the last step.

The trainer holds a list of them (the Hessian trace and the papers' regularizers in curvature.py, model outputs
in predictions.py, ...). Each returns a `Measurement`: scalars go into the metrics row of that step (`metrics.jsonl`,
W&B), arrays into the run's artifacts (`artifacts/<name>/<step>.npz`). Probes never touch the training trajectory:
they use their own random streams and leave the model as they found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from noisereg.errors import SettingError

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset
    from noisereg.noise.base import NoiseMode


@dataclass
class ProbeSettings:
    """Settings every probe accepts (`probes.<name>.every`, `probes.<name>.unit`)."""

    every: Optional[int] = None  # every N steps or epochs (also at step 0 and the last step); None: off
    unit: str = "steps"  # what `every` counts: steps | epochs

    def check(self, group: str = "probes") -> None:
        if self.every is not None and self.every < 1:
            raise SettingError(f"{group}.every={self.every} must be >= 1, or null to switch it off")
        if self.unit not in ("steps", "epochs"):
            raise SettingError(f"{group}.unit={self.unit!r} is unknown; choose steps or epochs")


@dataclass
class Measurement:
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # name -> arrays of one .npz


@dataclass
class ProbeContext:
    """What a probe is built from: the run's model, data, loss and noise mode."""

    model: nn.Module
    data: TensorDataset
    loss_fn: nn.Module
    loss_targets: Callable[[torch.Tensor], torch.Tensor]  # class indices -> what the loss takes
    noise: NoiseMode
    steps_per_epoch: int
    make_noise: Callable[[int], NoiseMode]  # a fresh, unattached copy of the run's noise mode on random stream k


@dataclass
class CurvatureContext:
    """What a noise mode's `regularizer_metrics` is measured from (the curvature probe, curvature.py, builds one at
    each measurement): the model at its current parameters, the fixed curvature subset with clean targets, the clean
    loss there and the Gauss–Newton trace tr(Jθᵀ H_L Jθ)."""

    model: nn.Module
    loss_fn: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: float
    ggn_trace: float
    chunk_size: int | None


def steps_between(every: int | None, unit: str, context: ProbeContext) -> int | None:
    """A probe's `every` (counted in `unit`: steps or epochs) in steps; None stays None (off)."""
    return every if every is None or unit == "steps" else every * context.steps_per_epoch


class Probe:
    name = "probe"

    def __init__(self, interval: int | None):
        self.interval = interval  # in steps

    def due(self, step: int, last_step: int) -> bool:
        return self.interval is not None and (step % self.interval == 0 or step == last_step)

    def measure(self, step: int) -> Measurement:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Random streams a probe advances (none by default), so a resumed run measures as an uninterrupted one."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
