"""Loss functions by name.

`half_mse` is the papers' least-squares loss L = 1/(2n) Σᵢ ‖yᵢ − f(xᵢ)‖² (Orvieto Sec. 2.4);
`mse` is PyTorch's mean over every element; `cross_entropy` takes class indices.
For classification with `mse` or `half_mse` the trainer turns class indices into one-hot targets
(Levi et al. Fig. 2 train with MSE on one-hot labels).
"""

from __future__ import annotations

import torch
from torch import nn

from noisereg.errors import SettingError


class HalfMSELoss(nn.Module):
    """½ · mean over samples of the squared error summed over outputs: 1/(2n) ‖Y − F‖²_F."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        difference = (prediction - target).reshape(prediction.shape[0], -1)
        return 0.5 * difference.pow(2).sum(dim=1).mean()


LOSSES = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "half_mse": HalfMSELoss,
}


def build_loss(name: str) -> nn.Module:
    if name not in LOSSES:
        raise SettingError(f"trainer.loss={name!r} is unknown; choose one of {sorted(LOSSES)}")
    return LOSSES[name]()
