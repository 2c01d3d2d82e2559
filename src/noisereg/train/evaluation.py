"""Noise-free evaluation: loss and accuracy (or MSE) on a split, parameter norms."""
from __future__ import annotations

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
