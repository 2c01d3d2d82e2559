"""The protocol every noise mode follows (one small file per mode in this package).

Every mode is built from its settings (its schema is registered beside it in `NOISE_MODES`) and the trainer calls
every hook of every mode the same way:

    noise = LayerwiseNoise(sigma=0.05, seed=1)
    noise.attach(model, data)              # once, before the optimizer is built (NIN adds a parameter)
    noise.begin_step(step, epoch, indices) # switches noise off after `stop_step`/`stop_epoch`
    y = noise.targets(x, y)                # label noise
    with noise.perturbed():                # parameter noise, restored bitwise on exit
        outputs = model(x)
        loss = loss_fn(outputs, y)
        penalty = noise.penalty(outputs, y, loss_fn)   # an explicit regulariser instead of noise (gni_explicit)
        (loss if penalty is None else loss + penalty).backward()
    optimizer.step()

`state_dict()`/`load_state_dict()` save and restore everything a mode needs to continue a run exactly (its random
streams, NIN's fixed ε), like a torch module's. `regularizer_metrics(...)` returns the explicit regularizer the
mode's paper derives, measured during training with curvature/'s formulas; the curvature probe
(probes/curvature.py) asks every mode the same way, and learns what parameter noise a mode adds from
`perturbs_parameters`, `named_groups()`, `per_parameter_sigma` and `closed_form` (none here).

GD is this class itself: every hook does nothing. Evaluation is always noise-free: hooks that act in the forward
pass (NIN, GNI) check `model.training`, and the trainer evaluates in eval mode.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Optional

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.registry import NOISE_MODES

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset
    from noisereg.probes.base import CurvatureContext


@dataclass
class NoiseSettings:
    """Settings every mode accepts."""

    name: str = "gd"
    stop_step: Optional[int] = None  # noise off from this step on
    stop_epoch: Optional[int] = None  # noise off from this epoch on (the ResNet recipe: 135 of 150)


@dataclass
class GdSettings(NoiseSettings):
    name: str = "gd"
    # GD has no σ; the key exists so that an experiment's σ composes with noise=gd in a sweep of modes.
    sigma: float = 0.0


@dataclass
class PlainGdSettings(GdSettings):
    """`noise=gd`'s own schema: also takes the activation-noise settings of Camuto's experiments (σ², whether the
    input is noised), so they compose with noise=gd in a sweep of modes; GD uses none of them. (Kept out of
    GdSettings, which other modes extend.)"""

    variance: Optional[float] = None
    noise_input: bool = False


class NoiseMode:
    """No noise (plain GD/SGD); the base class of every mode."""

    name = "gd"
    # What the curvature probe asks (probes/curvature.py): whether the mode adds noise to the parameters (Orvieto's
    # setting: parameter_noise.py's modes do), and which of Orvieto's closed forms for linear models describes it
    # (models/mlp.py, models/diagonal.py).
    perturbs_parameters = False
    closed_form: str = ""

    def __init__(self, stop_step: int | None = None, stop_epoch: int | None = None):
        if (stop_step is not None and stop_step < 0) or (stop_epoch is not None and stop_epoch < 0):
            raise SettingError("noise.stop_step and noise.stop_epoch must be >= 0, or null to keep noise on")
        self.stop_step = stop_step
        self.stop_epoch = stop_epoch
        self.active = True
        self.batch_indices: torch.Tensor | None = None

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        """Add parameters or forward hooks to the model (NIN, GNI), or find the parameter groups to perturb.
        Called once, before the optimizer is built."""

    def begin_step(self, step: int, epoch: int, batch_indices: torch.Tensor | None = None, steps: int = 1) -> None:
        """Called before every training step; `batch_indices` index the training set (NIN `resample: fixed`);
        `steps` > 1: a block of that many steps from `step` follows, its targets drawn at once (train/fused.py)."""
        stopped = (self.stop_step is not None and step >= self.stop_step) or (
            self.stop_epoch is not None and epoch >= self.stop_epoch
        )
        self.active = not stopped
        self.batch_indices = batch_indices

    def targets(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The targets the loss sees this step (label noise changes them)."""
        return targets

    @contextlib.contextmanager
    def perturbed(self) -> Iterator[None]:
        """Context around forward+backward: parameters perturbed on entry, restored bitwise on exit."""
        yield

    def penalty(self, outputs: torch.Tensor, targets: torch.Tensor, loss_fn: nn.Module) -> torch.Tensor | None:
        """A term added to this step's training loss, computed from the forward pass that gave `outputs`: the
        explicit regulariser a paper derives, trained with in place of noise (`gni_explicit`); None for modes
        that regularise by noise alone."""
        return None

    def metrics(self) -> dict[str, float]:
        """Extra metrics for the run record, e.g. `noise/nin_weight_norm`."""
        return {}

    def regularizer_metrics(self, context: CurvatureContext) -> dict[str, float]:
        """The explicit regularizer this mode's paper derives, measured at the current parameters."""
        return {}

    def named_groups(self) -> dict[str, list[str]] | None:
        """The parameter groups this mode perturbs, each named by its first tensor's name (`reg/ggn_trace/<group>`
        in the records); None when it perturbs no parameters."""
        return None

    @property
    def per_parameter_sigma(self) -> float:
        """σ_p, the per-parameter standard deviation of the papers' formulas for parameter noise: none here."""
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active = bool(state["active"])


@NOISE_MODES.register("gd", PlainGdSettings)
def plain_gradient_descent(
    sigma: float = 0.0,
    seed: int | None = None,
    variance: float | None = None,
    noise_input: bool = False,
    **schedule: Any,
) -> NoiseMode:
    """`noise=gd`: σ, σ², noise_input and the seed are accepted so every mode is built the same way; GD uses none."""
    return NoiseMode(**schedule)


def check_sigma(sigma: float, setting: str = "noise.sigma") -> float:
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise SettingError(f"{setting}={sigma!r} must be a number, e.g. {setting}=0.05") from None
    if not 0.0 <= sigma < float("inf"):  # also rejects NaN
        raise SettingError(f"{setting}={sigma} must be finite and >= 0 (a standard deviation); e.g. {setting}=0.05")
    return sigma
