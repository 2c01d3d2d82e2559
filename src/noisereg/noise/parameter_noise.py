"""Shared mechanics of parameter noise (GD+noise, layer-wise): draw Gaussian noise into some parameters around
forward+backward, restore them bitwise, and the regularizer it induces (Orvieto et al. Eq. 6 / Eq. 11).

Restoring from a saved copy (not by subtracting the noise) is what makes the restoration exact: x + e − e
is not always x in floating point.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import nn

from noisereg.curvature.regularizers import orvieto_regularizer
from noisereg.noise.base import GdSettings, NoiseMode, check_sigma
from noisereg.noise.parameter_groups import parameter_groups
from noisereg.noise.random_streams import RandomStreams

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset
    from noisereg.probes.base import CurvatureContext


@dataclass
class ParameterNoiseSettings(GdSettings):
    sigma: float = 0.05
    groups: str = "tensor"  # tensor: every parameter tensor (authors' code) | layer: weight+bias of a layer


class ParameterNoise(NoiseMode):
    """A mode that perturbs some parameter groups around forward+backward.

    Built with or without the model: `LayerwiseNoise(model, sigma=0.05)` finds its groups at once,
    `LayerwiseNoise(sigma=0.05)` when `attach(model)` is called."""

    perturbs_parameters = True

    def __init__(
        self,
        model: nn.Module | None = None,
        sigma: float = 0.05,
        groups: str = "tensor",
        seed: int | None = None,
        stop_step: int | None = None,
        stop_epoch: int | None = None,
    ):
        super().__init__(stop_step=stop_step, stop_epoch=stop_epoch)
        self.sigma = check_sigma(sigma)
        self.grouping = groups
        self.groups: list[list[nn.Parameter]] = []
        # Our own streams, so noise draws never shift the data order or the initialisation.
        self.random = RandomStreams(seed)
        self.buffers = PerturbationBuffers()
        self._model: nn.Module | None = None
        if model is not None:
            self.attach(model)

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        self.groups = parameter_groups(model, self.grouping)
        self._model = model

    @property
    def per_parameter_sigma(self) -> float:
        """σ_p, the per-parameter standard deviation of the papers' formulas. Our `noise.sigma` follows Orvieto
        App. F (GD+noise gives each of M groups σ/√M; layer-wise gives one group σ), so σ_p = σ/√M for both."""
        return self.sigma / math.sqrt(len(self.groups))

    def draw(self) -> list[tuple[torch.Tensor, float]]:
        """The (parameter, standard deviation) pairs to perturb this step."""
        raise NotImplementedError

    @contextlib.contextmanager
    def perturbed(self) -> Iterator[None]:
        if not self.active:
            yield
            return
        targets = [(p, std) for p, std in self.draw() if std > 0.0]
        saved = perturb(targets, self.random, self.buffers)
        try:
            yield
        finally:
            restore(saved)

    def named_groups(self) -> dict[str, list[str]]:
        """Each group named by its first tensor's name: `reg/ggn_trace/<group>` in the records."""
        names = {id(p): name for name, p in self._model.named_parameters()}
        return {names[id(group[0])]: [names[id(p)] for p in group] for group in self.groups}

    def regularizer_metrics(self, context: CurvatureContext) -> dict[str, float]:
        """σ_p²/2 · tr(Jθᵀ H_L Jθ) (Orvieto Eq. 6 / 11) and the regularised loss it adds up to."""
        regularizer = orvieto_regularizer(context.ggn_trace, self.per_parameter_sigma)
        return {"reg/orvieto": regularizer, "loss/regularized": context.loss + regularizer}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "random": self.random.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.random.load_state_dict(state["random"])


class PerturbationBuffers:
    """Flat buffers, kept from step to step, that one step's noise is drawn into and its saved parameters copied
    into: one `normal_` fills all of a step's draws (spread over the CPU cores by `RandomStreams`), and foreach
    operations scale, save, add and restore them — a few kernels per step however many tensors are perturbed
    (62 for a ResNet18), not a Python loop of them. Draws fill each parameter in its memory order, so one seed
    gives other (equally i.i.d.) values to a channels-last model than to a contiguous one."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}
        self._views: dict[tuple, tuple[torch.Tensor, list[torch.Tensor]]] = {}  # the same tensors every step: reused

    def take(self, purpose: str, parameters: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The first Σ numel elements of the `purpose` buffer, and consecutive pieces of it, each laid out in memory
        as its parameter is (channels-last convolution weights included), so foreach operations take their fast
        path."""
        first = parameters[0]
        layout = (purpose, first.device, first.dtype, tuple((id(p), p.shape, p.stride()) for p in parameters))
        if layout in self._views:
            return self._views[layout]
        key = (purpose, first.device, first.dtype)
        total = sum(p.numel() for p in parameters)
        if key not in self._buffers or self._buffers[key].numel() < total:
            self._buffers[key] = torch.empty(total, device=first.device, dtype=first.dtype)
            self._views = {k: v for k, v in self._views.items() if k[:3] != key}  # they point into the old buffer
        flat, views, offset = self._buffers[key], [], 0
        for parameter in parameters:
            piece = flat[offset : offset + parameter.numel()]
            dense = parameter.is_contiguous() or parameter.is_contiguous(memory_format=torch.channels_last)
            views.append(piece.as_strided(parameter.shape, parameter.stride()) if dense else piece.view_as(parameter))
            offset += parameter.numel()
        self._views[layout] = (flat[:total], views)
        return self._views[layout]


@torch.no_grad()
def perturb(
    targets: Sequence[tuple[torch.Tensor, float]], random: RandomStreams, buffers: PerturbationBuffers | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Add N(0, std²) to each parameter in place; return (parameter, bitwise copy of its original) pairs."""
    buffers = buffers if buffers is not None else PerturbationBuffers()
    by_kind: dict[tuple[torch.device, torch.dtype], list[tuple[torch.Tensor, float]]] = {}
    for parameter, std in targets:
        by_kind.setdefault((parameter.device, parameter.dtype), []).append((parameter, std))
    saved = []
    for members in by_kind.values():
        parameters, stds = [p for p, _ in members], [std for _, std in members]
        flat_noise, noise = buffers.take("noise", parameters)
        one_std = all(std == stds[0] for std in stds)
        random.normal_(flat_noise, stds[0] if one_std else 1.0)
        if not one_std:
            torch._foreach_mul_(noise, stds)
        _, copies = buffers.take("saved", parameters)
        torch._foreach_copy_(copies, parameters)
        torch._foreach_add_(parameters, noise)
        saved.extend(zip(parameters, copies))
    return saved


@torch.no_grad()
def restore(saved: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    if saved:
        torch._foreach_copy_([p for p, _ in saved], [copy for _, copy in saved])
