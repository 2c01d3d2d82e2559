"""Label noise: fresh noise on the targets at every step (Blanc et al., Sec. 1.2).

Regression: y + Z with Z ~ N(0, δ²) (`distribution="gaussian"`) or Z = ±δ with equal probability
(`distribution="rademacher"`, Blanc et al.'s ±δ). Classification: each label is replaced, with probability p,
by a class drawn uniformly from all classes (it may draw the true class again, as in Damian et al.).
Its implicit regularizer is (1/n) Σᵢ ‖∇θ h(xᵢ)‖² (Blanc et al. Eq. 1), logged as `reg/blanc`.

`anneal_steps` (ours; regression): δ falls linearly to 0 over the last `anneal_steps` steps before `stop_step`,
δ_t = δ·min(1, (stop_step − t)/anneal_steps), so that the noisy phase ends at rest rather than mid-jitter; logged
as `noise/delta`. A block of steps (train/fused.py) draws its targets in one call, one leading row per step, and
says how many steps it spans (`begin_step(..., steps=L)`): each row gets its own step's δ_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from noisereg.curvature.regularizers import output_gradient_norm_squared
from noisereg.errors import SettingError
from noisereg.noise.base import GdSettings, NoiseMode, check_sigma
from noisereg.noise.random_streams import RandomStreams
from noisereg.registry import NOISE_MODES

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset
    from noisereg.probes.base import CurvatureContext

DISTRIBUTIONS = ("gaussian", "rademacher")


@dataclass
class LabelNoiseSettings(GdSettings):  # σ composes in sweeps of modes but label noise uses δ and p
    name: str = "label_noise"
    delta: float = 0.1
    flip_probability: float = 0.1
    distribution: str = "gaussian"
    anneal_steps: int = 0  # δ → 0 linearly over the last anneal_steps steps before noise.stop_step (0: abrupt)


class LabelNoise(NoiseMode):
    name = "label_noise"

    def __init__(
        self,
        delta: float = 0.1,
        flip_probability: float = 0.1,
        distribution: str = "gaussian",
        num_classes: int | None = None,
        seed: int | None = None,
        anneal_steps: int = 0,
        **schedule: Any,
    ):
        super().__init__(**schedule)
        if anneal_steps and (self.stop_step is None or not 0 < anneal_steps <= self.stop_step):
            raise SettingError(
                f"noise.anneal_steps={anneal_steps} must lie in [0, noise.stop_step] and needs "
                f"noise.stop_step, the step δ reaches 0 at (it is {self.stop_step}); e.g. "
                "noise.stop_step=1000000 noise.anneal_steps=100000"
            )
        self.anneal_steps = int(anneal_steps)
        self.step, self.steps = 0, 1
        if distribution not in DISTRIBUTIONS:
            raise SettingError(f"noise.distribution={distribution!r} is unknown; choose one of {list(DISTRIBUTIONS)}")
        if not 0.0 <= flip_probability <= 1.0:
            raise SettingError(f"noise.flip_probability={flip_probability} must lie in [0, 1]")
        self.delta = check_sigma(delta, "noise.delta")
        self.flip_probability = float(flip_probability)
        self.distribution = distribution
        self.num_classes = num_classes
        self.random = RandomStreams(seed)

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        if data is not None and data.task == "classification":
            self.num_classes = data.num_outputs

    def begin_step(self, step: int, epoch: int, batch_indices: torch.Tensor | None = None, steps: int = 1) -> None:
        """As every mode's; `steps` > 1: the next `targets` call draws for the `steps` steps from `step` at once,
        one leading row of targets per step (a block, train/fused.py)."""
        super().begin_step(step, epoch, batch_indices, steps)
        self.step, self.steps = step, steps

    def delta_at(self, steps: torch.Tensor) -> torch.Tensor:
        """δ_t at the steps t: δ·min(1, (stop_step − t)/anneal_steps) while annealing (δ before, 0 from stop_step)."""
        if not self.anneal_steps:
            return torch.full(steps.shape, self.delta, dtype=torch.float64)
        remaining = (self.stop_step - steps.double()) / self.anneal_steps
        return self.delta * remaining.clamp(0.0, 1.0)

    def targets(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return targets
        generator = self.random.generator(targets.device)
        if targets.dtype in (torch.int64, torch.int32):
            return self._flip(targets, generator)
        if self.distribution == "gaussian":
            noise = torch.randn(targets.shape, generator=generator, device=targets.device, dtype=targets.dtype)
        else:
            signs = torch.randint(0, 2, targets.shape, generator=generator, device=targets.device)
            noise = signs.to(targets.dtype) * 2 - 1
        if not self.anneal_steps or self.step + self.steps <= self.stop_step - self.anneal_steps:
            return targets + self.delta * noise  # (annealing not begun: the draws of a run without it)
        if self.steps > 1 and targets.shape[0] != self.steps:
            raise ValueError(
                f"a block of {self.steps} steps needs one leading row of targets per step, got {tuple(targets.shape)}"
            )
        delta = self.delta_at(self.step + torch.arange(self.steps)).to(device=targets.device, dtype=targets.dtype)
        delta = delta.view(-1, *[1] * (targets.dim() - 1)) if self.steps > 1 else delta[0]  # one δ_t per step
        return targets + delta * noise

    def metrics(self) -> dict[str, float]:
        # δ_t of the last step drawn for (as `noise/active`): the annealing schedule in the records.
        last = torch.tensor(self.step + self.steps - 1)
        return {"noise/delta": float(self.delta_at(last))} if self.anneal_steps else {}

    def _flip(self, labels: torch.Tensor, generator) -> torch.Tensor:
        if self.num_classes is None:
            raise SettingError("label noise on class labels needs num_classes (the dataset sets it)")
        flip = torch.rand(labels.shape, generator=generator, device=labels.device) < self.flip_probability
        random_labels = torch.randint(
            0, self.num_classes, labels.shape, generator=generator, device=labels.device, dtype=labels.dtype
        )
        return torch.where(flip, random_labels, labels)

    def regularizer_metrics(self, context: CurvatureContext) -> dict[str, float]:
        return {"reg/blanc": output_gradient_norm_squared(context.model, context.inputs, context.chunk_size)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "random": self.random.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.random.load_state_dict(state["random"])


@NOISE_MODES.register("label_noise", LabelNoiseSettings)
def label_noise(sigma: float = 0.0, **settings: Any) -> LabelNoise:
    return LabelNoise(**settings)
