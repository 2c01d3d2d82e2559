"""The training loop: full-batch GD or minibatch SGD over tensors already on the device.

Batches are index slices of a `randperm` drawn each epoch (airbench style), so there is no DataLoader and no
per-sample Python on the hot path. Every noise mode is driven through the same protocol (noise/base.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.losses import build_loss
from noisereg.noise.base import NoiseMode

SCHEDULES = ("constant", "cosine")


@dataclass
class OptimizerSettings:
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0


@dataclass
class TrainerSettings:
    loss: str = "cross_entropy"
    batch_size: int | None = None  # None: full batch (GD)
    steps: int | None = None  # exactly one of steps / epochs
    epochs: int | None = None
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    schedule: str = "constant"
    eval_every: int = 50  # steps
    eval_batch_size: int = 4096
    divergence_check_every: int = 1  # steps; >1 avoids a host sync per step on GPUs
    progress_bar: bool = True


@dataclass
class TrainResult:
    status: str  # completed | diverged
    steps: int
    final_metrics: dict[str, Any]
    reason: str = ""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SettingError(f"trainer.device={device!r} but CUDA is not available here; use trainer.device=auto or cpu")
    return torch.device(device)


def steps_per_epoch(n_train: int, batch_size: int | None) -> int:
    return 1 if batch_size is None else math.ceil(n_train / batch_size)


def total_steps(settings: TrainerSettings, n_train: int) -> int:
    if (settings.steps is None) == (settings.epochs is None):
        raise SettingError("set exactly one of trainer.steps and trainer.epochs (the other to null)")
    if settings.steps is not None:
        if settings.steps < 0:
            raise SettingError(f"trainer.steps={settings.steps} must be >= 0")
        return settings.steps
    if settings.epochs < 0:
        raise SettingError(f"trainer.epochs={settings.epochs} must be >= 0")
    return settings.epochs * steps_per_epoch(n_train, settings.batch_size)


def check_settings(settings: TrainerSettings) -> None:
    if settings.schedule not in SCHEDULES:
        raise SettingError(f"trainer.schedule={settings.schedule!r} is unknown; choose one of {list(SCHEDULES)}")
    if settings.batch_size is not None and settings.batch_size < 1:
        raise SettingError(f"trainer.batch_size={settings.batch_size} must be >= 1, or null for full batch")
    if settings.optimizer.lr <= 0:
        raise SettingError(f"trainer.optimizer.lr={settings.optimizer.lr} must be > 0")
    if settings.eval_every < 1 or settings.divergence_check_every < 1 or settings.eval_batch_size < 1:
        raise SettingError("trainer.eval_every, trainer.eval_batch_size and trainer.divergence_check_every must be >= 1")
    if settings.optimizer.momentum < 0 or settings.optimizer.weight_decay < 0:
        raise SettingError("trainer.optimizer.momentum and trainer.optimizer.weight_decay must be >= 0")


def build_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer:
    if settings.nesterov and settings.momentum <= 0:
        raise SettingError("trainer.optimizer.nesterov=true needs trainer.optimizer.momentum > 0")
    return torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.nesterov,
        weight_decay=settings.weight_decay,
    )


def learning_rate_factor(schedule: str, n_steps: int) -> Callable[[int], float]:
    if schedule == "constant":
        return lambda step: 1.0
    # Cosine annealing to 0 over the whole run, stepped every iteration (Loshchilov & Hutter 2016).
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, n_steps) / max(n_steps, 1)))


def loss_targets(targets: torch.Tensor, loss_name: str, num_outputs: int) -> torch.Tensor:
    """Class indices become one-hot vectors for squared losses (Levi et al. Fig. 2 train with MSE on one-hot)."""
    if loss_name != "cross_entropy" and targets.dtype == torch.int64:
        return F.one_hot(targets, num_outputs).to(torch.get_default_dtype())
    return targets


@torch.no_grad()
def evaluate(
    model: nn.Module, loss_fn: nn.Module, loss_name: str, inputs: torch.Tensor, targets: torch.Tensor,
    num_outputs: int, batch_size: int,
) -> dict[str, float]:
    """Noise-free loss and accuracy (classification) or MSE (regression), in eval mode, averaged per sample."""
    was_training = model.training
    model.eval()
    total_loss, correct, squared_error, n = 0.0, 0, 0.0, inputs.shape[0]
    for start in range(0, n, batch_size):
        x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
        output = model(x)
        total_loss += float(loss_fn(output, loss_targets(y, loss_name, num_outputs))) * x.shape[0]
        if y.dtype == torch.int64:
            correct += int((output.argmax(dim=1) == y).sum())
        else:
            squared_error += float((output - y).pow(2).sum())
    model.train(was_training)
    metrics = {"loss": total_loss / n}
    if targets.dtype == torch.int64:
        metrics["acc"] = correct / n
    else:
        metrics["mse"] = squared_error / targets.numel()
    return metrics


@torch.no_grad()
def parameter_norms(model: nn.Module) -> dict[str, float]:
    parameters = [p.detach() for p in model.parameters()]
    return {
        "params/l2_norm": float(torch.linalg.vector_norm(torch.stack([p.norm() for p in parameters]))),
        "params/l1_norm": float(sum(p.abs().sum() for p in parameters)),
    }


def is_finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def train(
    model: nn.Module,
    data: TensorDataset,
    noise: NoiseMode,
    settings: TrainerSettings,
    log: Callable[[dict[str, Any]], None],
    seed: int = 0,
    extra_metrics: Callable[[int], dict[str, float]] | None = None,
    extra_metrics_every: int | None = None,
) -> TrainResult:
    """Train `model` (noise already attached) and call `log(row)` with a metrics row every `eval_every` steps.

    `extra_metrics(step)` adds metrics computed elsewhere (curvature) at step 0, every `extra_metrics_every` steps
    and at the last step. A NaN or inf loss ends the run with status `diverged`; it is a result, not an error.
    """
    check_settings(settings)
    n_steps = total_steps(settings, data.n_train)
    loss_fn = build_loss(settings.loss)
    optimizer = build_optimizer(model, settings.optimizer)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(settings.schedule, n_steps))
    device = data.train_inputs.device
    shuffle = torch.Generator().manual_seed(seed)
    per_epoch = steps_per_epoch(data.n_train, settings.batch_size)
    full_batch = settings.batch_size is None or settings.batch_size >= data.n_train

    def metrics_row(step: int, last_loss: float | None) -> dict[str, Any]:
        row: dict[str, Any] = {"step": step, "epoch": step / per_epoch}
        for split, x, y in (("train", data.train_inputs, data.train_targets), ("test", data.test_inputs, data.test_targets)):
            for key, value in evaluate(model, loss_fn, settings.loss, x, y, data.num_outputs, settings.eval_batch_size).items():
                row[f"{split}/{key}"] = value
        row.update(parameter_norms(model))
        row["lr"] = optimizer.param_groups[0]["lr"]
        if last_loss is not None:
            row["train/batch_loss"] = last_loss
        row["noise/active"] = float(noise.active)
        row.update(noise.metrics())
        if extra_metrics is not None and extra_due(step):
            row.update(extra_metrics(step))
        return row

    def extra_due(step: int) -> bool:
        return extra_metrics_every is not None and (step % extra_metrics_every == 0 or step == n_steps)

    def diverged_at(row: dict[str, Any]) -> bool:
        return not is_finite([v for k, v in row.items() if k.endswith("/loss") and isinstance(v, float)])

    model.train()
    first = metrics_row(0, None)
    log(first)
    if diverged_at(first):
        return TrainResult("diverged", 0, first, "non-finite loss at initialisation")
    progress = _progress_bar(n_steps, settings.progress_bar)
    pending: list[torch.Tensor] = []
    last_row, step = first, 0
    try:
        while step < n_steps:
            epoch = step // per_epoch
            order = (
                torch.arange(data.n_train, device=device)
                if full_batch
                else torch.randperm(data.n_train, generator=shuffle).to(device)
            )
            for start in range(0, data.n_train, settings.batch_size or data.n_train):
                if step >= n_steps:
                    break
                if full_batch:
                    indices, x, y = order, data.train_inputs, data.train_targets
                else:
                    indices = order[start : start + settings.batch_size]
                    x, y = data.train_inputs[indices], data.train_targets[indices]
                noise.begin_step(step, epoch, indices)
                y = loss_targets(noise.targets(x, y), settings.loss, data.num_outputs)
                optimizer.zero_grad(set_to_none=True)
                with noise.perturbed():
                    loss = loss_fn(model(x), y)
                    loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                pending.append(loss.detach())
                if step % settings.divergence_check_every == 0 or step == n_steps:
                    losses = torch.stack(pending).tolist()
                    pending.clear()
                    progress.update(len(losses))
                    progress.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
                    if not is_finite(losses):
                        row = {"step": step, "epoch": step / per_epoch, "train/batch_loss": losses[-1]}
                        log(row)
                        return TrainResult("diverged", step, row, f"non-finite training loss at step {step}")
                if step % settings.eval_every == 0 or extra_due(step) or step == n_steps:
                    last_row = metrics_row(step, float(loss.detach()))
                    log(last_row)
                    if diverged_at(last_row):
                        return TrainResult("diverged", step, last_row, f"non-finite evaluation loss at step {step}")
    finally:
        progress.close()
    return TrainResult("completed", step, last_row)


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    # disable=None hides the bar when stderr is not a terminal (CI logs, cluster job files stay clean).
    return tqdm(total=total, desc="train", unit="step", disable=None if enabled else True, dynamic_ncols=True)
