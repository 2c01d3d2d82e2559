"""Noise injection node (NIN), Levi et al. Sec. 2.

One scalar ε per sample, ε ~ N(0, σ²), enters the preactivations z of a chosen layer through a trainable
weight vector W_NI: z ← z + ε · W_NI. W_NI is a parameter of the model, so the run's optimizer trains it.
`resample="step"` draws fresh ε at every forward pass; `resample="fixed"` draws one ε per training sample once
(Levi Fig. 1) and looks it up by the batch's sample indices. Evaluation uses ε = 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.models.sites import output_width, preactivation_modules
from noisereg.noise.base import NoiseMode, NoiseSettings, check_sigma
from noisereg.noise.random_streams import RandomStreams
from noisereg.registry import NOISE_MODES

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset

RESAMPLING = ("step", "fixed")


@dataclass
class NoiseInjectionNodeSettings(NoiseSettings):
    name: str = "nin"
    sigma: float = 0.1
    layer: int = 0  # which layer's preactivations (0 = first hidden layer, -1 = output)
    resample: str = "step"  # step: fresh ε every step | fixed: one ε per training sample, drawn once (Levi Fig. 1)
    init_std: float = 0.01  # initial W_NI ~ N(0, init_std²)


class NoiseInjectionWeights(nn.Module):
    """Holds W_NI; registered on the model as `noise_injection_node` so it is trained and saved with it."""

    # z + ε·W_NI is linear in W_NI (and ε = 0 in eval mode): the exact Hessian trace still applies.
    piecewise_linear_in_parameters = True

    def __init__(self, width: int, init_std: float, generator: torch.Generator | None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, generator=generator) * init_std)


@NOISE_MODES.register("nin", NoiseInjectionNodeSettings)
class NoiseInjectionNode(NoiseMode):
    name = "nin"

    def __init__(
        self,
        sigma: float,
        layer: int = 0,
        resample: str = "step",
        init_std: float = 0.01,
        n_train: int | None = None,
        seed: int | None = None,
        **schedule,
    ):
        super().__init__(**schedule)
        if resample not in RESAMPLING:
            raise SettingError(f"noise.resample={resample!r} is unknown; choose one of {list(RESAMPLING)}")
        self.sigma = check_sigma(sigma)
        self.layer = layer
        self.resample = resample
        self.init_std = init_std
        self.n_train = n_train
        self.random = RandomStreams(seed)
        self.generator = self.random.generator("cpu")
        self.fixed_epsilon: torch.Tensor | None = None
        self.node: NoiseInjectionWeights | None = None
        self._model: nn.Module | None = None

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        if data is not None:
            self.n_train = data.n_train
        if self.resample == "fixed" and self.n_train is None:
            raise SettingError("noise.resample=fixed needs the training-set size (n_train) to draw one ε per sample")
        sites = preactivation_modules(model)
        if not -len(sites) <= self.layer < len(sites):
            raise SettingError(
                f"noise.layer={self.layer} is out of range: the model has {len(sites)} layers (0..{len(sites) - 1})"
            )
        site = sites[self.layer]
        width = output_width(site)
        device = next(model.parameters()).device
        self.node = NoiseInjectionWeights(width, self.init_std, self.generator).to(device)
        model.add_module("noise_injection_node", self.node)
        if self.resample == "fixed":
            self.fixed_epsilon = (torch.randn(self.n_train, generator=self.generator) * self.sigma).to(device)
        self._model = model
        site.register_forward_hook(self._inject)

    def _epsilon(self, batch_size: int, device: torch.device) -> torch.Tensor:
        if self.resample == "fixed":
            if self.batch_indices is None:
                raise RuntimeError("NIN with resample=fixed needs the batch's sample indices (begin_step)")
            return self.fixed_epsilon[self.batch_indices.to(self.fixed_epsilon.device)].to(device)
        # Host generator keeps draws identical on CPU and GPU for a given seed.
        epsilon = torch.randn(batch_size, generator=self.generator) * self.sigma
        if device.type == "cuda":  # pinned and asynchronous: the copy does not wait for the GPU every step
            return epsilon.pin_memory().to(device, non_blocking=True)
        return epsilon.to(device)

    def _inject(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if not (self._model.training and self.active):
            return None
        epsilon = self._epsilon(output.shape[0], output.device).to(output.dtype)
        # Broadcast W_NI over the trailing (spatial) dimensions of convolutional preactivations.
        shape = (output.shape[0], -1) + (1,) * (output.dim() - 2)
        weight = self.node.weight.reshape((1, -1) + (1,) * (output.dim() - 2))
        return output + epsilon.reshape(shape) * weight

    def metrics(self) -> dict[str, float]:
        return {"noise/nin_weight_norm": float(self.node.weight.detach().norm())} if self.node is not None else {}

    def state_dict(self) -> dict[str, Any]:
        # W_NI itself is a parameter of the model and travels with its state_dict.
        return {**super().state_dict(), "random": self.random.state_dict(), "fixed_epsilon": self.fixed_epsilon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.random.load_state_dict(state["random"])
        if state["fixed_epsilon"] is not None:
            self.fixed_epsilon = state["fixed_epsilon"].to(self.fixed_epsilon.device)
