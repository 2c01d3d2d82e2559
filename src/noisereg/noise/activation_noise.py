"""Gaussian noise injection on activations (GNI), Camuto et al. Eq. 4–6.

Noise is added to the network input (Camuto's layer 0) and every hidden activation hₖ, never to the output:
additive  hₖ ← hₖ + εₖ,        εₖ ~ N(0, σₖ²)   (Eq. 5)
multiplicative  hₖ ← hₖ ∘ (1 + εₖ)                (Eq. 6)
Theorem 1 sums over k = 0 … L−1 and the authors' code noises the input too, so `noise_input` is on by default;
`noise_input: false` noises the hidden layers only. Off at evaluation.

The strength is given either as `variance` σₖ² — the quantity the paper quotes (σ² = 0.1; Fig. 2 uses σ² ∈ {0.1,
0.25, 1, 4}) — or as `sigma`, the standard deviation σₖ, never both: each is a number or a list with one value per
noised layer (the input first when it is noised). With neither, σ² = 0.1, the paper's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from noisereg.curvature.regularizers import INPUT_SITE, camuto_regularizer
from noisereg.errors import SettingError
from noisereg.models.sites import hidden_activation_modules
from noisereg.noise.base import NoiseMode, NoiseSettings, check_sigma
from noisereg.noise.random_streams import RandomStreams
from noisereg.registry import NOISE_MODES

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset
    from noisereg.probes.base import CurvatureContext

KINDS = ("additive", "multiplicative")
PAPER_VARIANCE = 0.1  # Camuto et al. Sec. 3, Figs 3 and 4: "GNIs of variance 0.1"
Strength = Any  # a number or a list of numbers (Hydra schemas take Any for "number or list")


@dataclass
class ActivationVarianceSettings(NoiseSettings):
    """The noise strength per noised layer and which layers: shared by `gni` and `gni_explicit`."""

    sigma: Strength = None  # standard deviation σₖ: a number, or one per noised layer (input first)
    variance: Strength = None  # σₖ², as Camuto et al. quote it; set this or sigma, not both (neither: 0.1)
    noise_input: bool = True  # the input is layer 0 of Theorem 1 (the authors' code noises it too)

    def check(self, group: str = "noise") -> None:
        resolve_strength(self.sigma, self.variance, count=None, group=group)


@dataclass
class ActivationNoiseSettings(ActivationVarianceSettings):
    name: str = "gni"
    kind: str = "additive"  # additive h + ε | multiplicative h·(1 + ε)

    def check(self, group: str = "noise") -> None:
        super().check(group)
        if self.kind not in KINDS:
            raise SettingError(f"{group}.kind={self.kind!r} is unknown; choose one of {list(KINDS)}")


def _as_list(value: Strength) -> list | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, str)):
        return list(value)
    return [value]


def resolve_strength(sigma: Strength, variance: Strength, count: int | None, group: str = "noise") -> list[float]:
    """The variances σₖ² of the noised layers from `sigma` (standard deviations) or `variance`, checked; with
    `count` (the number of noised layers) a single value is repeated and a list must have that length."""
    if sigma is not None and variance is not None:
        raise SettingError(
            f"{group}.sigma={sigma} and {group}.variance={variance} both set the noise strength; "
            f"set one and the other to null ({group}.variance is σ², as Camuto et al. quote "
            "it)"
        )
    if sigma is not None:
        values = [check_sigma(s, f"{group}.sigma") ** 2 for s in _as_list(sigma)]
        setting, given = f"{group}.sigma", sigma
    else:
        given = variance if variance is not None else PAPER_VARIANCE
        values = [check_variance(v, f"{group}.variance") for v in _as_list(given)]
        setting = f"{group}.variance"
    if not values:
        raise SettingError(f"{setting}=[] is empty; give a number or one value per noised layer")
    if count is None:
        return values
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise SettingError(
            f"{setting}={list(_as_list(given))} has {len(values)} values but the model has {count} "
            f"noised layers (the input first when {group}.noise_input=true, then each hidden layer); "
            "give one value per noised layer or a single number"
        )
    return values


def check_variance(variance: Any, setting: str = "noise.variance") -> float:
    try:
        variance = float(variance)
    except (TypeError, ValueError):
        raise SettingError(f"{setting}={variance!r} must be a number, e.g. {setting}=0.1") from None
    if not 0.0 <= variance < math.inf:  # also rejects NaN
        raise SettingError(f"{setting}={variance} must be finite and >= 0 (a variance σ²); e.g. {setting}=0.1")
    return variance


def noised_sites(model: nn.Module, noise_input: bool) -> list[nn.Module | str]:
    """The activations GNI noises, in Camuto's order: the input (`INPUT_SITE`, layer 0) when `noise_input`, then
    the module whose output is each hidden activation."""
    hidden = hidden_activation_modules(model)
    if not hidden:
        raise SettingError("GNI needs a model with hidden layers (model.widths not empty)")
    return ([INPUT_SITE] if noise_input else []) + list(hidden)


class ActivationSites(NoiseMode):
    """What GNI and its explicit regulariser share: the noised activations and their variances σₖ²."""

    def __init__(self, sigma: Strength = None, variance: Strength = None, noise_input: bool = True, **schedule):
        super().__init__(**schedule)
        resolve_strength(sigma, variance, count=None)
        self.sigma, self.variance, self.noise_input = sigma, variance, bool(noise_input)
        self.sites: list[nn.Module | str] = []
        self.variances: list[float] = []
        self._model: nn.Module | None = None

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        self.sites = noised_sites(model, self.noise_input)
        self.variances = resolve_strength(self.sigma, self.variance, count=len(self.sites))
        self._model = model

    @property
    def sigmas(self) -> list[float]:
        """Standard deviations σₖ of the noised layers (input first when it is noised)."""
        return [math.sqrt(v) for v in self.variances]

    def regularizer_metrics(self, context: CurvatureContext) -> dict[str, float]:
        """R = ½ Σₖ σₖ² E Tr(Jₖᵀ H_L Jₖ) (Camuto Eq. 9), derived for additive noise; for cross-entropy also Eq. 14's
        form, which keeps only the diagonal of H_L (Eq. 13) and so is ≥ Eq. 9."""
        if getattr(self, "kind", "additive") != "additive":
            return {}
        arguments = (context.model, context.loss_fn, context.inputs, context.targets, self.sites, self.sigmas)
        metrics = {"reg/camuto": camuto_regularizer(*arguments)}
        if isinstance(context.loss_fn, nn.CrossEntropyLoss):
            metrics["reg/camuto_diagonal"] = camuto_regularizer(*arguments, diagonal_hessian=True)
        return metrics


@NOISE_MODES.register("gni", ActivationNoiseSettings)
class ActivationNoise(ActivationSites):
    name = "gni"

    def __init__(
        self,
        sigma: Strength = None,
        kind: str = "additive",
        noise_input: bool = True,
        seed: int | None = None,
        variance: Strength = None,
        **schedule,
    ):
        super().__init__(sigma, variance, noise_input, **schedule)
        if kind not in KINDS:
            raise SettingError(f"noise.kind={kind!r} is unknown; choose one of {list(KINDS)}")
        self.kind = kind
        self.random = RandomStreams(seed)

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        super().attach(model, data)
        for site, sigma in zip(self.sites, self.sigmas):
            if site == INPUT_SITE:
                model.register_forward_pre_hook(self._input_hook(sigma))
            else:
                site.register_forward_hook(self._hook(sigma))

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

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "random": self.random.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.random.load_state_dict(state["random"])
