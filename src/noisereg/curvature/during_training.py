"""What `curvature.every` logs during training: the Hessian trace and the regularizer the run's noise mode
implies, measured on a fixed, seeded subset of the training set, so predicted and measured values sit side by side.

| metric | when | formula |
|---|---|---|
| `hessian/trace`, `hessian/trace_sem` | always | `hessian_trace(method)`: exact for piecewise-linear nets (sem 0) |
| `reg/ggn_trace`, `reg/ggn_trace/<group>` | always | tr(Jθᵀ H_L Jθ), per noise group (Orvieto Eq. 11) |
| `reg/orvieto`, `loss/regularized` | gd_noise, layerwise | σ_p²/2 · reg/ggn_trace, and loss + that (Eq. 6 / 11) |
| `reg/camuto` | gni, additive | ½ Σₖ σₖ² E Tr(Jₖᵀ H_L Jₖ) (Camuto Eq. 9) |
| `reg/blanc` | label_noise | (1/n) Σᵢ ‖∇θ h(xᵢ)‖² (Blanc Eq. 1) |
| `theory/...` | linear nets, diagonal net, half_mse loss | Orvieto's closed forms (Sec. 2.3, 3.1, 3.2, App. E) |
| `theory/R_sigma_mc`, `_sem` | `monte_carlo_repeats` > 0 | mean of L(w + noise) over fresh draws of the run's noise |

σ_p is the per-parameter standard deviation of the papers' formulas: our `noise.sigma` follows Orvieto App. F
(GD+noise gives each of M groups σ/√M; layer-wise gives one group σ), so σ_p = σ/√M for both modes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from noisereg.curvature.linear_closed_forms import (
    deep_linear_layerwise_noise,
    diagonal_network_regularizer,
    one_hidden_layer_all_parameter_noise,
    one_hidden_layer_layerwise_noise,
)
from noisereg.curvature.regularizers import (
    INPUT_SITE,
    camuto_regularizer,
    gauss_newton_trace,
    orvieto_regularizer,
    output_gradient_norm_squared,
)
from noisereg.curvature.trace import exact_is_valid, hessian_trace
from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.losses import HalfMSELoss
from noisereg.models.diagonal import DiagonalNetwork
from noisereg.models.mlp import MLP
from noisereg.models.sites import hidden_activation_modules
from noisereg.noise.base import NoiseMode
from noisereg.noise.parameter_noise import ParameterNoise

METHODS = ("auto", "exact", "hutchinson", "hutchpp", "pyhessian")


@dataclass
class CurvatureSettings:
    every: int | None = None  # measurements every `every` steps or epochs (and at step 0 and the end); None: off
    unit: str = "steps"  # what `every` counts: steps | epochs
    n_samples: int = 1024  # the fixed training subset the curvature is measured on
    seed: int = 0  # which subset, and the Monte-Carlo probes
    method: str = "auto"
    probes: int = 100
    chunk_size: int | None = None
    monte_carlo_repeats: int = 0


def check_settings(settings: CurvatureSettings) -> None:
    if settings.method not in METHODS:
        raise SettingError(f"curvature.method={settings.method!r} is unknown; choose one of {list(METHODS)}")
    if settings.unit not in ("steps", "epochs"):
        raise SettingError(f"curvature.unit={settings.unit!r} is unknown; choose steps or epochs")
    if settings.every is not None and settings.every < 1:
        raise SettingError(f"curvature.every={settings.every} must be >= 1, or null to switch curvature off")
    if settings.n_samples < 1 or settings.probes < 1 or settings.monte_carlo_repeats < 0:
        raise SettingError("curvature.n_samples and curvature.probes must be >= 1, curvature.monte_carlo_repeats >= 0")
    if settings.method == "hutchpp" and settings.probes < 3:
        raise SettingError(f"curvature.method=hutchpp needs curvature.probes >= 3 (got {settings.probes})")
    if settings.chunk_size is not None and settings.chunk_size < 1:
        raise SettingError(f"curvature.chunk_size={settings.chunk_size} must be >= 1, or null for automatic")


class CurvatureMetrics:
    """Callable `step -> metrics`, handed to the trainer as `extra_metrics`."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        loss_targets: Callable[[torch.Tensor], torch.Tensor],
        data: TensorDataset,
        noise: NoiseMode,
        settings: CurvatureSettings,
        make_noise: Callable[[], NoiseMode] | None = None,
    ):
        check_settings(settings)
        self.model, self.loss_fn, self.noise, self.settings = model, loss_fn, noise, settings
        subset = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(settings.seed))
        subset = subset[: settings.n_samples].to(data.train_inputs.device)
        self.inputs = data.train_inputs[subset]
        self.targets = loss_targets(data.train_targets[subset])  # clean targets, in the form the loss takes
        self.half_mse = isinstance(loss_fn, HalfMSELoss)  # the closed forms assume L = 1/(2n)‖y − f‖²
        # Monte Carlo draws come from a separate noise object, so measuring never shifts the run's own draws.
        # R_σ = E L(w + noise) is defined for parameter noise only.
        wanted = settings.monte_carlo_repeats and make_noise is not None and isinstance(noise, ParameterNoise)
        self.monte_carlo_noise = make_noise() if wanted else None
        self.exact = settings.method in ("auto", "exact") and exact_is_valid(model, loss_fn, self.inputs)
        if settings.method == "exact" and not self.exact:
            raise SettingError(
                "curvature.method=exact needs a network piecewise linear in each parameter tensor (ReLU or linear) "
                "and a cross_entropy/mse/half_mse loss; use curvature.method=auto or hutchinson"
            )
        if settings.method == "pyhessian" and noise.name == "nin":
            raise SettingError("curvature.method=pyhessian fails on NIN's weights (unused in eval mode); "
                               "use curvature.method=auto or hutchinson")  # fmt: skip

    def __call__(self, step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        groups = self._groups()
        ggn = gauss_newton_trace(self.model, self.loss_fn, self.inputs, self.targets, groups, self.settings.chunk_size)
        metrics["reg/ggn_trace"] = ggn.value
        metrics.update({f"reg/ggn_trace/{name}": value for name, value in ggn.per_group.items()})
        if self.exact:  # the Gauss–Newton trace is the Hessian trace here: no second computation
            metrics["hessian/trace"], metrics["hessian/trace_sem"] = ggn.value, 0.0
        else:
            estimate = self._hessian_trace()
            metrics["hessian/trace"], metrics["hessian/trace_sem"] = estimate.value, estimate.stderr
        loss = self._loss()
        if isinstance(self.noise, ParameterNoise):
            metrics["reg/orvieto"] = orvieto_regularizer(ggn, self.per_parameter_sigma())
            metrics["loss/regularized"] = loss + metrics["reg/orvieto"]
        if self.noise.name == "gni" and getattr(self.noise, "kind", "") == "additive":
            sites, sigmas = list(hidden_activation_modules(self.model)), list(self.noise.sigmas)
            if self.noise.noise_input:  # the input is Camuto's layer 0, noised with the first σ
                sites, sigmas = [INPUT_SITE, *sites], [self.noise.input_sigma, *sigmas]
            metrics["reg/camuto"] = camuto_regularizer(self.model, self.loss_fn, self.inputs, self.targets, sites, sigmas)
        if self.noise.name == "label_noise":
            metrics["reg/blanc"] = output_gradient_norm_squared(self.model, self.inputs, self.settings.chunk_size)
        if isinstance(self.noise, ParameterNoise) and self.half_mse:
            metrics.update(self._closed_forms(loss))
        if self.monte_carlo_noise is not None:
            metrics.update(self._monte_carlo(loss))
        return metrics

    def per_parameter_sigma(self) -> float:
        return self.noise.sigma / math.sqrt(len(self.noise.groups))

    def _groups(self) -> dict[str, list[str]] | None:
        """Name the groups the run's parameter noise perturbs (by their first tensor), else one per tensor."""
        if not isinstance(self.noise, ParameterNoise):
            return None
        names = {id(p): name for name, p in self.model.named_parameters()}
        return {names[id(group[0])]: [names[id(p)] for p in group] for group in self.noise.groups}

    def _hessian_trace(self):
        method, options = self.settings.method, {}
        if method in ("auto", "hutchinson", "pyhessian"):
            options["probes"] = self.settings.probes
        if method == "hutchpp":
            options["matvecs"] = self.settings.probes
        if method in ("auto", "hutchinson", "hutchpp"):
            options["seed"] = self.settings.seed
        return hessian_trace(self.model, self.loss_fn, self.inputs, self.targets, method=method, **options)

    @torch.no_grad()
    def _loss(self) -> float:
        was_training = self.model.training
        self.model.eval()
        try:
            return float(self.loss_fn(self.model(self.inputs), self.targets))
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def _closed_forms(self, loss: float) -> dict[str, float]:
        """Orvieto's exact expressions for linear models; `theory/R_sigma_closed_form` is E L(w + noise)."""
        sigma = self.per_parameter_sigma()
        x = self.inputs.flatten(1).double()
        if isinstance(self.model, DiagonalNetwork):
            form = diagonal_network_regularizer(self.model.w1.double(), self.model.w2.double(), x, sigma)
            metrics = {"theory/orvieto_diagonal": float(form["second_order"])}  # the same σ² term for both modes
            if self.noise.name == "gd_noise":  # the σ⁴ term is derived for all-parameter noise only
                metrics["theory/R_sigma_closed_form"] = loss + float(form["total"])
            return metrics
        if not (isinstance(self.model, MLP) and self.model.activation in ("linear", "identity")):
            return {}
        if any(layer.bias is not None for layer in self.model.layers):
            return {}
        weights = [layer.weight.double() for layer in self.model.layers]
        layerwise = float(deep_linear_layerwise_noise(weights, x, sigma))
        metrics = {"theory/orvieto_layerwise": layerwise}
        if len(weights) == 2:
            all_parameters = one_hidden_layer_all_parameter_noise(weights[0], weights[1], x, sigma)
            metrics["theory/orvieto_all_second_order"] = float(all_parameters["second_order"])
            metrics["theory/orvieto_all_variance"] = float(all_parameters["variance_term"])
            if self.noise.name == "gd_noise":
                metrics["theory/R_sigma_closed_form"] = loss + float(all_parameters["total"])
        if self.noise.name == "layerwise":
            if len(weights) == 2:
                layerwise = float(one_hidden_layer_layerwise_noise(weights[0], weights[1], x, sigma)["total"])
            metrics["theory/R_sigma_closed_form"] = loss + layerwise
        return metrics

    @torch.no_grad()
    def _monte_carlo(self, loss: float) -> dict[str, float]:
        """R_σ = E L(w + noise) by fresh draws of the run's noise mode (Orvieto Fig. 1: 100 repeats)."""
        was_training = self.model.training
        self.model.eval()
        values = []
        try:
            for _ in range(self.settings.monte_carlo_repeats):
                with self.monte_carlo_noise.perturbed():
                    values.append(float(self.loss_fn(self.model(self.inputs), self.targets)))
        finally:
            self.model.train(was_training)
        values_tensor = torch.tensor(values, dtype=torch.float64)
        sem = float(values_tensor.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0
        return {"theory/R_sigma_mc": float(values_tensor.mean()), "theory/R_sigma_mc_sem": sem}
