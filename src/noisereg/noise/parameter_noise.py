"""Shared mechanics of parameter noise: draw Gaussian noise into some parameters, restore them bitwise.

Restoring from a saved copy (not by subtracting the noise) is what makes the restoration exact: x + e − e
is not always x in floating point.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from noisereg.noise.base import NoiseMode
from noisereg.noise.random_streams import RandomStreams


class ParameterNoise(NoiseMode):
    """A mode that perturbs some parameter tensors around forward+backward (GD+noise, layer-wise)."""

    def __init__(self, stop_step: int | None = None, stop_epoch: int | None = None, seed: int | None = None):
        super().__init__(stop_step=stop_step, stop_epoch=stop_epoch)
        # Our own streams, so noise draws never shift the data order or the initialisation.
        self.random = RandomStreams(seed)

    def draw(self) -> list[tuple[torch.Tensor, float]]:
        """The (parameter, standard deviation) pairs to perturb this step."""
        raise NotImplementedError

    @contextlib.contextmanager
    def perturbed(self) -> Iterator[None]:
        if not self.active:
            yield
            return
        targets = [(p, std) for p, std in self.draw() if std > 0.0]
        saved = perturb(targets, self.random)
        try:
            yield
        finally:
            restore([p for p, _ in targets], saved)


@torch.no_grad()
def perturb(targets: Sequence[tuple[torch.Tensor, float]], random: RandomStreams) -> list[torch.Tensor]:
    """Add N(0, std²) to each parameter in place; return bitwise copies of the originals."""
    saved = []
    for parameter, std in targets:
        saved.append(parameter.detach().clone())
        parameter.add_(random.normal_(torch.empty_like(parameter), std))
    return saved


@torch.no_grad()
def restore(parameters: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> None:
    if parameters:
        torch._foreach_copy_(list(parameters), list(saved))
