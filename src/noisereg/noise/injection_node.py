"""Noise injection node (NIN), Levi et al. Sec. 2.

One scalar ε per sample, ε ~ N(0, σ²), enters the preactivations z of a chosen layer through a trainable
weight vector W_NI: z ← z + ε · W_NI. W_NI is a parameter of the model, so the run's optimizer trains it (and it
counts in `params/l2_norm`). Evaluation uses ε = 0 (Levi App. B).

When ε is drawn (`resample`):
- `step`: fresh ε at every forward pass in training;
- `epoch`: one ε per training sample, drawn afresh at the start of every epoch and looked up by the batch's sample
  indices: the paper's "re-initialized" NIN ("sampled repeatedly at each SGD training epoch", Sec. 2);
- `fixed`: one ε per training sample, drawn once before training (the paper's "fixed value" NIN, Fig. 1).

W_NI starts at N(0, 1/fan_in), the fan-in of the layer it joins (Levi App. B: "w_NI,0 = 1/√N_fan-in"; for the first
hidden layer of an FMNIST MLP, 784), or N(0, init_scale²), or the constant init_scale in every entry (the linear toy
model of Fig. 2 starts from fixed weights).

Table 1 states σ² in units of the network, c · d_input / (N_w · η) (MSE) or c · d_input / η (CE). An experiment
keeps the paper's c in `strength` and computes σ from it with the `nin_sigma` resolver:
`sigma: ${nin_sigma:${.strength},784,0.01,1024}` is σ = √(c · 784 / (0.01 · 1024)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import torch
from omegaconf import OmegaConf
from torch import nn

from noisereg.errors import SettingError
from noisereg.models.sites import output_width, preactivation_modules
from noisereg.noise.base import NoiseMode, NoiseSettings, check_sigma
from noisereg.noise.random_streams import RandomStreams
from noisereg.registry import NOISE_MODES

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset

RESAMPLING = ("step", "epoch", "fixed")
INITIALISATIONS = ("fan_in", "normal", "constant")


def sigma_from_strength(strength: float, d_input: float, lr: float, width: float = 1.0) -> float:
    """σ = √(c · d_input / (width · η)): Levi Table 1's σ² with c = `strength` (width N_w for MSE, 1 for CE)."""
    strength, d_input, lr, width = float(strength), float(d_input), float(lr), float(width)
    if not (strength >= 0 and d_input > 0 and lr > 0 and width > 0):
        raise ValueError(
            f"nin_sigma needs c >= 0 and d_input, lr, width > 0 (got c={strength:g}, d_input={d_input:g}, "
            f"lr={lr:g}, width={width:g}); e.g. noise.strength=0.1"
        )
    return math.sqrt(strength * d_input / (width * lr))


OmegaConf.register_new_resolver("nin_sigma", sigma_from_strength, replace=True)


@dataclass
class NoiseInjectionNodeSettings(NoiseSettings):
    name: str = "nin"
    sigma: float = 0.1
    layer: int = 0  # which layer's preactivations (0 = first hidden layer, -1 = output)
    resample: str = "step"  # step | epoch (re-initialized NIN) | fixed (one ε per sample, drawn once)
    init: str = "fan_in"  # W_NI at start: fan_in N(0, 1/fan_in) (Levi App. B) | normal N(0, init_scale²) | constant
    init_scale: float = 0.01  # std of `normal`, value of `constant`
    strength: Optional[float] = None  # Levi Table 1's c, when an experiment computes sigma from it (nin_sigma)

    def check(self, group: str = "noise") -> None:
        if self.resample not in RESAMPLING:
            raise SettingError(f"{group}.resample={self.resample!r} is unknown; choose one of {list(RESAMPLING)}")
        if self.init not in INITIALISATIONS:
            raise SettingError(f"{group}.init={self.init!r} is unknown; choose one of {list(INITIALISATIONS)}")
        if not math.isfinite(self.init_scale):
            raise SettingError(f"{group}.init_scale={self.init_scale} must be finite, e.g. {group}.init_scale=0.01")


class NoiseInjectionWeights(nn.Module):
    """Holds W_NI; registered on the model as `noise_injection_node` so it is trained and saved with it."""

    # z + ε·W_NI is linear in W_NI (and ε = 0 in eval mode): the exact Hessian trace still applies.
    piecewise_linear_in_parameters = True

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(initial)


def fan_in(site: nn.Module) -> int:
    """Inputs feeding one unit of a Linear or Conv layer; 1 for a normalisation layer (the ResNet's preactivations
    are BatchNorm outputs: one affine weight per unit, initialised at 1)."""
    if hasattr(site, "in_features"):
        return site.in_features
    if hasattr(site, "in_channels"):
        return site.in_channels // site.groups * math.prod(site.kernel_size)
    return 1


def initial_weights(width: int, init: str, scale: float, fan: int, generator: torch.Generator) -> torch.Tensor:
    if init == "constant":
        return torch.full((width,), float(scale))
    std = 1.0 / math.sqrt(fan) if init == "fan_in" else scale
    return torch.randn(width, generator=generator) * std


@NOISE_MODES.register("nin", NoiseInjectionNodeSettings)
class NoiseInjectionNode(NoiseMode):
    name = "nin"

    def __init__(
        self,
        sigma: float,
        layer: int = 0,
        resample: str = "step",
        init: str = "fan_in",
        init_scale: float = 0.01,
        strength: float | None = None,
        n_train: int | None = None,
        seed: int | None = None,
        **schedule,
    ):
        super().__init__(**schedule)
        NoiseInjectionNodeSettings(
            sigma=sigma, layer=layer, resample=resample, init=init, init_scale=init_scale
        ).check()
        self.sigma = check_sigma(sigma)
        self.layer = layer
        self.resample = resample
        self.init, self.init_scale = init, init_scale
        self.strength = strength  # recorded only: σ is what the node uses
        self.n_train = n_train
        self.random = RandomStreams(seed)
        self.generator = self.random.generator("cpu")
        # ε per training sample: drawn once (fixed) or at the start of each epoch (epoch, `table_epoch` says which).
        self.epsilon_table: torch.Tensor | None = None
        self.table_epoch: int | None = None
        self.node: NoiseInjectionWeights | None = None
        self.site: nn.Module | None = None
        self.next_site: nn.Module | None = None
        self._model: nn.Module | None = None

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        if data is not None:
            self.n_train = data.n_train
        if self.resample in ("epoch", "fixed") and self.n_train is None:
            raise SettingError(
                f"noise.resample={self.resample} needs the training-set size (n_train) to draw one ε per sample"
            )
        sites = preactivation_modules(model)
        if not -len(sites) <= self.layer < len(sites):
            raise SettingError(
                f"noise.layer={self.layer} is out of range: the model has {len(sites)} layers (0..{len(sites) - 1})"
            )
        index = self.layer % len(sites)
        self.site = sites[index]
        self.next_site = sites[index + 1] if index + 1 < len(sites) else None
        width = output_width(self.site)
        device = next(model.parameters()).device
        initial = initial_weights(width, self.init, self.init_scale, fan_in(self.site), self.generator)
        self.node = NoiseInjectionWeights(initial).to(device)
        model.add_module("noise_injection_node", self.node)
        if self.resample == "fixed":
            self.epsilon_table = self._draw_table(device)
        self._model = model
        self.site.register_forward_hook(self._inject)

    def _draw_table(self, device: torch.device) -> torch.Tensor:
        # Host generator keeps draws identical on CPU and GPU for a given seed.
        return (torch.randn(self.n_train, generator=self.generator) * self.sigma).to(device)

    def begin_step(self, step: int, epoch: int, batch_indices: torch.Tensor | None = None, steps: int = 1) -> None:
        super().begin_step(step, epoch, batch_indices, steps)
        if self.resample == "epoch" and epoch != self.table_epoch:
            self.epsilon_table = self._draw_table(self.node.weight.device)
            self.table_epoch = epoch

    def _epsilon(self, batch_size: int, device: torch.device) -> torch.Tensor:
        if self.resample == "step":
            # Host generator keeps draws identical on CPU and GPU for a given seed.
            epsilon = torch.randn(batch_size, generator=self.generator) * self.sigma
            if device.type == "cuda":  # pinned and asynchronous: the copy does not wait for the GPU every step
                return epsilon.pin_memory().to(device, non_blocking=True)
            return epsilon.to(device)
        if self.batch_indices is None or self.epsilon_table is None:
            raise RuntimeError(f"NIN with resample={self.resample} needs the batch's sample indices (begin_step)")
        return self.epsilon_table[self.batch_indices.to(self.epsilon_table.device)].to(device)

    def _inject(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if not (self._model.training and self.active):
            return None
        epsilon = self._epsilon(output.shape[0], output.device).to(output.dtype)
        # Broadcast W_NI over the trailing (spatial) dimensions of convolutional preactivations.
        shape = (output.shape[0], -1) + (1,) * (output.dim() - 2)
        weight = self.node.weight.reshape((1, -1) + (1,) * (output.dim() - 2))
        return output + epsilon.reshape(shape) * weight

    @torch.no_grad()
    def metrics(self) -> dict[str, float]:
        """‖W_NI‖ (the NIW), and the Frobenius norms of the data weights of the NIN's layer and of the next layer
        (Levi Figs 2-3: blue, black and red)."""
        if self.node is None:
            return {}
        metrics = {
            "noise/nin_weight_norm": float(self.node.weight.norm()),
            "noise/nin_layer_weight_norm": float(self.site.weight.norm()),
        }
        if self.next_site is not None:
            metrics["noise/next_layer_weight_norm"] = float(self.next_site.weight.norm())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        # W_NI itself is a parameter of the model and travels with its state_dict.
        table = None if self.epsilon_table is None else self.epsilon_table.cpu()
        return {
            **super().state_dict(),
            "random": self.random.state_dict(),
            "epsilon_table": table,
            "table_epoch": self.table_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.random.load_state_dict(state["random"])
        self.table_epoch = state["table_epoch"]
        if state["epsilon_table"] is not None:
            self.epsilon_table = state["epsilon_table"].to(self.node.weight.device)
