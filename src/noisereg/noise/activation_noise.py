"""Gaussian noise injection on activations (GNI), Camuto et al. Eq. 4–6.

Noise is added to every hidden activation hₖ, never to the network output:
additive  hₖ ← hₖ + εₖ,        εₖ ~ N(0, σₖ²)   (Eq. 4)
multiplicative  hₖ ← hₖ ∘ (1 + εₖ)                (Eq. 6)
with a σₖ per hidden layer (`sigma` a number, or a list with one entry per hidden layer). `noise_input` also
noises the network input (Camuto et al.'s code does by default; the paper's Eq. 4 counts it as layer 0).
Off at evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from noisereg.curvature.regularizers import INPUT_SITE, camuto_regularizer
from noisereg.errors import SettingError
from noisereg.models.sites import hidden_activation_modules
from noisereg.noise.base import NoiseSettings, NoiseMode, check_sigma
from noisereg.noise.random_streams import RandomStreams
from noisereg.registry import NOISE_MODES

if TYPE_CHECKING:
    from noisereg.curvature.during_training import CurvatureContext
    from noisereg.data.tensors import TensorDataset

KINDS = ("additive", "multiplicative")


@dataclass
class ActivationNoiseSettings(NoiseSettings):
    name: str = "gni"
    sigma: Any = 0.1  # one number, or a list with one σ_k per hidden layer
    kind: str = "additive"  # additive h + ε | multiplicative h·(1 + ε)
    noise_input: bool = False  # also noise the network input (Camuto et al.'s code does)


@NOISE_MODES.register("gni", ActivationNoiseSettings)
class ActivationNoise(NoiseMode):
    name = "gni"

    def __init__(
        self,
        sigma: float | Sequence[float],
        kind: str = "additive",
        noise_input: bool = False,
        seed: int | None = None,
        **schedule,
    ):
        super().__init__(**schedule)
        if kind not in KINDS:
            raise SettingError(f"noise.kind={kind!r} is unknown; choose one of {list(KINDS)}")
        self.sigma = sigma
        self.kind = kind
        self.noise_input = noise_input
        self.random = RandomStreams(seed)
        self.sigmas: list[float] = []
        self._model: nn.Module | None = None

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        sites = hidden_activation_modules(model)
        if not sites:
            raise SettingError("noise=gni needs a model with hidden layers (model.widths not empty)")
        if isinstance(self.sigma, (int, float)) and not isinstance(self.sigma, bool):
            self.sigmas = [check_sigma(self.sigma)] * len(sites)
        elif isinstance(self.sigma, (list, tuple)):
            self.sigmas = [check_sigma(s) for s in self.sigma]
        else:
            raise SettingError(f"noise.sigma={self.sigma!r} must be a number or a list of numbers, one per hidden layer")
        if len(self.sigmas) != len(sites):
            raise SettingError(
                f"noise.sigma has {len(self.sigmas)} values but the model has {len(sites)} hidden layers; "
                "give one value per hidden layer or a single number"
            )
        self._model = model
        for site, sigma in zip(sites, self.sigmas):
            site.register_forward_hook(self._hook(sigma))
        if self.noise_input:
            model.register_forward_pre_hook(self._input_hook(self.input_sigma))

    @property
    def input_sigma(self) -> float:
        """σ of the input noise (`noise_input`): the first hidden layer's σ."""
        return self.sigmas[0]

    def _on(self) -> bool:
        return self._model.training and self.active

    def _noisy(self, activation: torch.Tensor, sigma: float) -> torch.Tensor:
        noise = self.random.normal_(torch.empty_like(activation), sigma)
        return activation + noise if self.kind == "additive" else activation * (1 + noise)

    def _hook(self, sigma: float):
        def add_noise(module, inputs, output):
            return self._noisy(output, sigma) if self._on() and sigma > 0 else None

        return add_noise

    def _input_hook(self, sigma: float):
        def add_noise(module, inputs):
            if self._on() and sigma > 0:
                return (self._noisy(inputs[0], sigma),) + tuple(inputs[1:])
            return None

        return add_noise

    def regularizer_metrics(self, context: CurvatureContext) -> dict[str, float]:
        """R = ½ Σₖ σₖ² E Tr(Jₖᵀ H_L Jₖ) (Camuto et al. Eq. 9), derived for additive noise."""
        if self.kind != "additive":
            return {}
        sites, sigmas = list(hidden_activation_modules(context.model)), list(self.sigmas)
        if self.noise_input:  # the input is Camuto's layer 0, noised with the first σ
            sites, sigmas = [INPUT_SITE, *sites], [self.input_sigma, *sigmas]
        value = camuto_regularizer(context.model, context.loss_fn, context.inputs, context.targets, sites, sigmas)
        return {"reg/camuto": value}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "random": self.random.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.random.load_state_dict(state["random"])
