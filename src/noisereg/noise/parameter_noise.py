"""Shared mechanics of parameter noise: draw Gaussian noise into some parameters, restore them bitwise.

Restoring from a saved copy (not by subtracting the noise) is what makes the restoration exact: x + e − e
is not always x in floating point.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from noisereg.noise.base import NoiseMode


class ParameterNoise(NoiseMode):
    """A mode that perturbs some parameter tensors around forward+backward (GD+noise, layer-wise)."""

    def __init__(self, stop_step: int | None = None, stop_epoch: int | None = None, seed: int | None = None):
        super().__init__(stop_step=stop_step, stop_epoch=stop_epoch)
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator | None:
        """A generator of our own per device when seeded, so noise draws don't shift the data order or init."""
        if self.seed is None:
            return None
        if device not in self._generators:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[device] = generator
        return self._generators[device]

    def draw(self) -> list[tuple[torch.Tensor, float]]:
        """The (parameter, standard deviation) pairs to perturb this step."""
        raise NotImplementedError

    @contextlib.contextmanager
    def perturbed(self) -> Iterator[None]:
        if not self.active:
            yield
            return
        targets = [(p, std) for p, std in self.draw() if std > 0.0]
        saved = perturb(targets, self.generator)
        try:
            yield
        finally:
            restore([p for p, _ in targets], saved)


@torch.no_grad()
def perturb(targets: Sequence[tuple[torch.Tensor, float]], generator_for) -> list[torch.Tensor]:
    """Add N(0, std²) to each parameter in place; return bitwise copies of the originals."""
    saved = []
    for parameter, std in targets:
        saved.append(parameter.detach().clone())
        noise = torch.empty_like(parameter).normal_(0.0, std, generator=generator_for(parameter.device))
        parameter.add_(noise)
    return saved


@torch.no_grad()
def restore(parameters: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> None:
    if parameters:
        torch._foreach_copy_(list(parameters), list(saved))
