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
    from noisereg.curvature.during_training import CurvatureContext
    from noisereg.data.tensors import TensorDataset


@dataclass
class ParameterNoiseSettings(GdSettings):
    sigma: float = 0.05
    groups: str = "tensor"  # tensor: every parameter tensor (authors' code) | layer: weight+bias of a layer


class ParameterNoise(NoiseMode):
    """A mode that perturbs some parameter groups around forward+backward.

    Built with or without the model: `LayerwiseNoise(model, sigma=0.05)` finds its groups at once,
    `LayerwiseNoise(sigma=0.05)` when `attach(model)` is called."""

    # Which of Orvieto's closed forms for linear models describes this mode (models/mlp.py, models/diagonal.py).
    closed_form: str = ""

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
        saved = perturb(targets, self.random)
        try:
            yield
        finally:
            restore([p for p, _ in targets], saved)

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
