"""The trainer's settings (the `trainer` config group's schema) and their checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

import torch

from noisereg.errors import SettingError

SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("sgd", "adam")
RESUME_POLICIES = ("auto", "never", "restart")
UNITS = ("steps", "epochs")
PRECISIONS = ("auto", "float32", "bfloat16")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class OptimizerSettings:
    name: str = "sgd"  # sgd | adam (Camuto et al.'s Fourier experiment, Fig. 4)
    lr: float = 0.1
    momentum: float = 0.0  # SGD
    nesterov: bool = False  # SGD
    weight_decay: float = 0.0  # both: L2 added to the gradient (torch's SGD and Adam)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam
    eps: float = 1e-8  # Adam


@dataclass
class TrainerSettings:
    device: str = "auto"  # auto: CUDA when present, else CPU
    loss: str = "cross_entropy"
    batch_size: Optional[int] = None  # None: full batch (GD)
    steps: Optional[int] = None  # exactly one of steps / epochs
    epochs: Optional[int] = None
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    schedule: str = "constant"
    eval_every: int = 50  # in eval_unit
    eval_unit: str = "steps"  # steps | epochs (Levi's figures log once per epoch)
    # Denser evaluations early in the run, besides every `eval_every`: every `early_eval_every` steps up to
    # `early_eval_until` (in eval_unit), e.g. to see a catapult that rises and recovers within the first epoch
    # (Levi et al.). 0: none.
    early_eval_every: int = 0
    early_eval_until: int = 0
    eval_batch_size: int = 4096
    divergence_check_every: int = 1  # steps; >1 avoids a host sync per step on GPUs
    # Many steps per call (train/fused.py): the steps between two evaluations run in blocks of up to this many,
    # one call each, with batches and noise drawn for the whole block; `compile` then compiles that call (a loop in
    # generated code: tiny models then run ~100x faster). 1: one Python step at a time.
    steps_per_call: int = 1
    # Members (train/members.py): N runs with seeds seed, seed+1, ..., seed+N-1 trained as one batched model, each
    # writing its own run directory (seed_<s>/ in the job's). 1: a single run.
    members: int = 1
    # Intra-op CPU threads while training (torch.set_num_threads); None: torch's default. Tiny models want 1: each
    # step's ops are too small to share, and waking a second thread costs more than the step (far more when the
    # other core is busy).
    threads: Optional[int] = None
    progress_bar: bool = True
    # GPU speed (train/loop.py): bf16 autocast of forward passes, channels-last image layout, torch.compile.
    precision: str = "auto"  # auto: bfloat16 autocast on CUDA, float32 elsewhere | float32 | bfloat16
    channels_last: Optional[bool] = None  # None: on CUDA only
    # torch.compile: the model for training and evaluation steps, or with steps_per_call > 1 the block of steps.
    compile: bool = False
    # Resume (train/state.py, tracking/job.py): auto continues an unfinished run directory from its checkpoint and
    # leaves a finished one alone; never refuses a directory that holds records; restart discards them.
    resume: str = "auto"
    checkpoint_every: Optional[int] = 1000  # in checkpoint_unit; None: only when interrupted
    checkpoint_unit: str = "steps"
    keep_checkpoint: bool = False  # keep checkpoint.pt once the run has finished (its final state)

    def check(self, group: str = "trainer") -> None:
        """Every setting on its own, before anything is built (the data decide the number of steps)."""
        optimizer = self.optimizer
        if optimizer.name not in OPTIMIZERS:
            raise SettingError(
                f"trainer.optimizer.name={optimizer.name!r} is unknown; choose one of {list(OPTIMIZERS)}"
            )
        if optimizer.name == "adam" and (optimizer.momentum or optimizer.nesterov):
            raise SettingError(
                "trainer.optimizer.momentum and nesterov are SGD's; Adam's moments are "
                "trainer.optimizer.betas (set momentum=0 and nesterov=false)"
            )
        if len(optimizer.betas) != 2 or not all(0 <= b < 1 for b in optimizer.betas):
            raise SettingError(
                f"trainer.optimizer.betas={list(optimizer.betas)} must be two numbers in [0, 1), "
                "e.g. trainer.optimizer.betas=[0.9,0.999]"
            )
        if not (math.isfinite(optimizer.eps) and optimizer.eps > 0):
            raise SettingError(f"trainer.optimizer.eps={optimizer.eps} must be finite and > 0, e.g. 1e-8")
        if not (math.isfinite(optimizer.lr) and optimizer.lr > 0):
            raise SettingError(
                f"trainer.optimizer.lr={optimizer.lr} must be finite and > 0, e.g. trainer.optimizer.lr=0.01"
            )
        for key, example in (("momentum", "0.9"), ("weight_decay", "5e-4")):
            value = getattr(optimizer, key)
            if not (math.isfinite(value) and value >= 0):
                raise SettingError(
                    f"trainer.optimizer.{key}={value} must be finite and >= 0, e.g. trainer.optimizer.{key}={example}"
                )
        if optimizer.nesterov and optimizer.momentum <= 0:
            raise SettingError("trainer.optimizer.nesterov=true needs trainer.optimizer.momentum > 0")
        if (self.steps is None) == (self.epochs is None):
            raise SettingError("set exactly one of trainer.steps and trainer.epochs (the other to null)")
        for key in ("steps", "epochs"):
            if (getattr(self, key) or 0) < 0:
                raise SettingError(f"trainer.{key}={getattr(self, key)} must be >= 0")
        if self.schedule not in SCHEDULES:
            raise SettingError(f"trainer.schedule={self.schedule!r} is unknown; choose one of {list(SCHEDULES)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise SettingError(f"trainer.batch_size={self.batch_size} must be >= 1, or null for full batch")
        if self.eval_every < 1 or self.divergence_check_every < 1 or self.eval_batch_size < 1:
            raise SettingError(
                "trainer.eval_every, trainer.eval_batch_size and trainer.divergence_check_every must be >= 1"
            )
        if self.eval_unit not in UNITS:
            raise SettingError(f"trainer.eval_unit={self.eval_unit!r} is unknown; choose steps or epochs")
        if (
            self.early_eval_every < 0
            or self.early_eval_until < 0
            or bool(self.early_eval_every) != bool(self.early_eval_until)
        ):
            raise SettingError(
                f"trainer.early_eval_every={self.early_eval_every} and trainer.early_eval_until="
                f"{self.early_eval_until} must both be > 0 (steps; until in eval_unit), or both 0"
            )
        if self.threads is not None and self.threads < 1:
            raise SettingError(f"trainer.threads={self.threads} must be >= 1, or null for torch's default")
        if self.steps_per_call < 1:
            raise SettingError(f"trainer.steps_per_call={self.steps_per_call} must be >= 1 (1: one step per call)")
        if self.members < 1:
            raise SettingError(f"trainer.members={self.members} must be >= 1 (1: a single run)")
        if self.resume not in RESUME_POLICIES:
            raise SettingError(f"trainer.resume={self.resume!r} is unknown; choose one of {list(RESUME_POLICIES)}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise SettingError(f"trainer.checkpoint_every={self.checkpoint_every} must be >= 1, or null")
        for key in ("checkpoint_unit", "eval_unit"):
            if getattr(self, key) not in UNITS:
                raise SettingError(f"trainer.{key}={getattr(self, key)!r} is unknown; choose steps or epochs")
        if self.precision not in PRECISIONS:
            raise SettingError(f"trainer.precision={self.precision!r} is unknown; choose one of {list(PRECISIONS)}")
        resolve_device(self.device)


def resolve_device(device: str) -> torch.device:
    if not DEVICE_PATTERN.match(device):
        raise SettingError(f"trainer.device={device!r} is unknown; choose auto, cpu, cuda or cuda:N")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingError(
                f"trainer.device={device!r} but CUDA is not available here; use trainer.device=auto or cpu"
            )
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise SettingError(f"trainer.device={device!r} but this machine has {torch.cuda.device_count()} GPU(s)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise SettingError("trainer.device='mps' but MPS is not available here; use trainer.device=auto or cpu")
    return torch.device(device)


def autocast_dtype(settings: TrainerSettings, device: torch.device) -> torch.dtype | None:
    """The dtype forward passes autocast to (None: float32 throughout). Curvature is always float32."""
    if settings.precision == "bfloat16" or (settings.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def uses_channels_last(settings: TrainerSettings, device: torch.device) -> bool:
    return device.type == "cuda" if settings.channels_last is None else settings.channels_last


def steps_per_epoch(n_train: int, batch_size: int | None) -> int:
    return 1 if batch_size is None else math.ceil(n_train / batch_size)


def total_steps(settings: TrainerSettings, n_train: int) -> int:
    if settings.steps is not None:
        return settings.steps
    return settings.epochs * steps_per_epoch(n_train, settings.batch_size)


def interval_in_steps(every: int | None, unit: str, n_train: int, batch_size: int | None) -> int | None:
    """A `*_every` setting counted in steps or epochs, in steps."""
    if every is None or unit == "steps":
        return every
    return every * steps_per_epoch(n_train, batch_size)
