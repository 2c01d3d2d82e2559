"""`noise=gni_explicit`: train with Camuto et al.'s explicit regulariser R added to the clean loss, instead of GNI.

    L(θ) + R(θ),   R = ½ Σₖ σₖ² E_x Tr(Jₖᵀ H_L Jₖ)   (Eq. 9; Eq. 11 for squared errors)

over the same layers and variances `gni` would noise (the input and every hidden activation by default), so
`noise=gni` and `noise=gni_explicit` with the same settings are the two arms of Camuto's Fig. 3. No noise is drawn:
forward hooks keep this step's activations (in the autograd graph) and `penalty()` turns them into R with
curvature/explicit_regularizer.py — for our MLP through its chain of layers, for other models by one backward pass
per output — and the trainer's backward pass then includes R's gradient.

Samples must not interact in the forward pass (R is summed per sample), so models with BatchNorm or dropout are
refused. The last batch's R is logged as `noise/explicit_R`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from noisereg.curvature.explicit_regularizer import chain_regularizer, explicit_regularizer
from noisereg.curvature.regularizers import INPUT_SITE
from noisereg.errors import SettingError
from noisereg.models.mlp import MLP
from noisereg.models.sites import preactivation_modules
from noisereg.noise.activation_noise import ActivationSites, ActivationVarianceSettings
from noisereg.registry import NOISE_MODES

if TYPE_CHECKING:
    from noisereg.data.tensors import TensorDataset

# Modules that make samples interact or the forward pass random: R would not be the per-sample sum it is.
INTERACTING = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.GroupNorm,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
)
FIRST_LAYER = -1  # key of the first Linear layer's output among the captured tensors


@dataclass
class ExplicitRegularizerSettings(ActivationVarianceSettings):
    name: str = "gni_explicit"


@NOISE_MODES.register("gni_explicit", ExplicitRegularizerSettings)
class ExplicitActivationRegularizer(ActivationSites):
    name = "gni_explicit"

    def __init__(self, sigma=None, variance=None, noise_input: bool = True, seed: int | None = None, **schedule):
        super().__init__(sigma, variance, noise_input, **schedule)  # deterministic: the seed is not used
        self._captured: dict[int, torch.Tensor] = {}
        self._chain: MLP | None = None  # our MLP: R through its chain of layers
        self._input_layer: nn.Linear | None = None  # other models: the first Linear layer, if it sees the input
        self.last_value: torch.Tensor | None = None

    def attach(self, model: nn.Module, data: TensorDataset | None = None) -> None:
        super().attach(model, data)
        interacting = [type(m).__name__ for m in model.modules() if isinstance(m, INTERACTING)]
        if interacting:
            raise SettingError(
                f"noise=gni_explicit needs samples that do not interact in the forward pass; the model "
                f"has {interacting[0]}: use noise=gni, or a model without it"
            )
        model.register_forward_pre_hook(self._start)
        if isinstance(model, MLP) and list(model.activations) == [s for s in self.sites if s != INPUT_SITE]:
            self._chain = model
            for k, layer in enumerate(model.layers[:-1], 1):  # keep z₁ … z_{L−1}
                layer.register_forward_hook(self._keep(k))
            return
        for k, site in enumerate(self.sites):
            if site != INPUT_SITE:
                site.register_forward_hook(self._keep(k))
        if self.noise_input and data is not None:
            self._input_layer = self._linear_seeing_the_input(model, data.train_inputs[:2])
            if self._input_layer is not None:
                self._input_layer.register_forward_hook(self._keep(FIRST_LAYER))

    @staticmethod
    def _linear_seeing_the_input(model: nn.Module, sample: torch.Tensor) -> nn.Linear | None:
        """The first Linear layer, if it receives the network input itself (flattened): then the input's term is
        taken at its output (curvature/explicit_regularizer.py)."""
        layers = preactivation_modules(model)
        if not layers or not isinstance(layers[0], nn.Linear):
            return None
        seen: list[torch.Tensor] = []
        handle = layers[0].register_forward_hook(lambda module, args, output: seen.append(args[0]))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(sample)
        finally:
            handle.remove()
            model.train(was_training)
        return layers[0] if len(seen) == 1 and torch.equal(seen[0], sample.flatten(1)) else None

    def _capturing(self) -> bool:
        return self._model.training and self.active

    def _start(self, module, inputs):
        """Every training forward pass starts a fresh capture; without a Linear first layer to take the input's term
        at, the input is made a leaf that requires grad."""
        self._captured.clear()
        if not self._capturing() or not self.noise_input or self._chain is not None or self._input_layer is not None:
            return None
        leaf = inputs[0].detach().requires_grad_(True)
        self._captured[self.sites.index(INPUT_SITE)] = leaf
        return (leaf,) + tuple(inputs[1:])

    def _keep(self, k: int):
        def keep(module, args, output):
            if self._capturing():
                if k in self._captured:
                    raise RuntimeError(f"noise=gni_explicit: {type(module).__name__} ran twice in one forward pass")
                self._captured[k] = output

        return keep

    def penalty(self, outputs: torch.Tensor, targets: torch.Tensor, loss_fn: nn.Module) -> torch.Tensor | None:
        if not self._capturing() or not self._captured:
            return None
        value = (
            self._chain_penalty(outputs, targets, loss_fn)
            if self._chain is not None
            else self._any_penalty(outputs, targets, loss_fn)
        )
        self._captured.clear()
        self.last_value = value.detach()
        return value

    def _chain_penalty(self, outputs, targets, loss_fn) -> torch.Tensor:
        hidden = [v for site, v in zip(self.sites, self.variances) if site != INPUT_SITE]
        input_variance = self.variances[0] if self.noise_input else 0.0
        weights = [layer.weight for layer in self._chain.layers]
        preactivations = [self._captured[k] for k in range(1, len(weights))]
        activations = list(self._chain.activations)
        return chain_regularizer(
            outputs, weights, preactivations, activations, hidden, input_variance, loss_fn, targets
        )

    def _any_penalty(self, outputs, targets, loss_fn) -> torch.Tensor:
        activations, variances, input_layer = [], [], None
        for k, (site, variance) in enumerate(zip(self.sites, self.variances)):
            if site == INPUT_SITE and self._input_layer is not None:
                input_layer = (self._captured[FIRST_LAYER], self._input_layer.weight, variance)
                continue
            activations.append(self._captured[k])
            variances.append(variance)
        return explicit_regularizer(outputs, activations, variances, loss_fn, targets, input_layer)

    def metrics(self) -> dict[str, float]:
        return {} if self.last_value is None else {"noise/explicit_R": float(self.last_value)}
