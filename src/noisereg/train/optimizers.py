"""The optimizer (SGD, the default, or Adam) and learning-rate schedule a run trains with."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from noisereg.train.settings import OptimizerSettings


def build_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer:
    if settings.name == "adam":
        return torch.optim.Adam(
            model.parameters(),
            lr=settings.lr,
            betas=tuple(settings.betas),
            eps=settings.eps,
            weight_decay=settings.weight_decay,
        )
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


def build_schedule(optimizer: torch.optim.Optimizer, schedule: str, n_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(schedule, n_steps))


def block_learning_rates(schedule: torch.optim.lr_scheduler.LambdaLR, steps: int) -> list[float]:
    """The learning rate of each of the next `steps` steps: what `schedule` would set before each of them."""
    (base,), (factor,) = schedule.base_lrs, schedule.lr_lambdas
    start = schedule.last_epoch
    return [base * factor(step) for step in range(start, start + steps)]


def advance_schedule(schedule: torch.optim.lr_scheduler.LambdaLR, steps: int) -> None:
    """The schedule's state after `steps` calls of `schedule.step()`, without making them one by one."""
    schedule.last_epoch += steps
    schedule._step_count += steps  # torch's own counter, kept so the state dict equals a step-by-step one
    rates = [base * factor(schedule.last_epoch) for base, factor in zip(schedule.base_lrs, schedule.lr_lambdas)]
    for group, rate in zip(schedule.optimizer.param_groups, rates):
        group["lr"] = rate
    schedule._last_lr = rates  # what get_last_lr() reports, as step() would have set it
