"""Noise-free evaluation: loss and accuracy (or MSE) on a split, parameter norms."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F


def loss_targets(targets: torch.Tensor, loss_name: str, num_outputs: int) -> torch.Tensor:
    """Class indices become one-hot vectors for squared losses (Levi et al. Fig. 2 train with MSE on one-hot)."""
    if loss_name != "cross_entropy" and targets.dtype == torch.int64:
        return F.one_hot(targets, num_outputs).to(torch.get_default_dtype())
    return targets


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loss_fn: nn.Module,
    loss_name: str,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    num_outputs: int,
    batch_size: int,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Noise-free loss and accuracy (classification) or MSE (regression), in eval mode, averaged per sample.
    `prepare` turns stored inputs into model inputs batch by batch (e.g. uint8 images → normalised floats);
    `autocast_dtype` runs the forward passes under autocast (the trainer's precision)."""
    was_training = model.training
    model.eval()
    n = inputs.shape[0]
    # Sums stay on the device and are read once at the end: one host synchronisation per evaluation.
    total_loss = torch.zeros((), dtype=torch.float64, device=inputs.device)
    correct = torch.zeros((), dtype=torch.int64, device=inputs.device)
    squared_error = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for start in range(0, n, batch_size):
        x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
        if prepare is not None:
            x = prepare(x)
        with torch.autocast(x.device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            output = model(x)
            total_loss += loss_fn(output, loss_targets(y, loss_name, num_outputs)).double() * x.shape[0]
        if y.dtype == torch.int64:
            correct += (output.argmax(dim=1) == y).sum()
        else:
            squared_error += (output.float() - y).pow(2).sum().double()
    model.train(was_training)
    metrics = {"loss": total_loss.item() / n}
    if targets.dtype == torch.int64:
        metrics["acc"] = correct.item() / n
    else:
        metrics["mse"] = squared_error.item() / targets.numel()
    return metrics


@torch.no_grad()
def parameter_norms(model: nn.Module) -> dict[str, float]:
    parameters = [p.detach() for p in model.parameters()]
    return {
        "params/l2_norm": float(torch.linalg.vector_norm(torch.stack([p.norm() for p in parameters]))),
        "params/l1_norm": float(sum(p.abs().sum() for p in parameters)),
    }
