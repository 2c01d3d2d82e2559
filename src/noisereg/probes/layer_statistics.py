"""`probes.layer_statistics`: per layer, how steep the layer-to-layer function is (Camuto et al. Fig. 5).

For each layer k whose weight matrix Wₖ is square (hidden-to-hidden), on the training inputs, noise-free:

- `layers/masked_weight_norm/<k>`: mean over inputs of ‖W̃ₖ‖_F, W̃ₖ = diag(φ'(zₖ)) Wₖ = ∇_{hₖ₋₁} hₖ — for ReLU, Wₖ
  with the rows of inactive units zeroed (the paper's "columns", in its transposed convention). The authors'
  code plots this unsquared norm under a ‖·‖²₂ label; `layers/masked_weight_norm_squared/<k>` is the mean of
  its square.
- `layers/weight_trace/<k>`: Tr(Wₖ), the paper's indicator of how many negative weights switch units off.

k counts the weight layers from 1 (the input layer), so a 6-layer, 256-wide MLP has square layers 2 … 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.models.sites import hidden_activation_modules, preactivation_modules
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.registry import PROBES


@dataclass
class LayerStatisticsSettings(ProbeSettings):
    n_samples: int = 1024  # the first n training inputs (all of them when fewer)

    def check(self, group: str = "probes.layer_statistics") -> None:  # also while `every` is unset (config.validate)
        super().check(group)
        if self.n_samples < 1:
            raise SettingError(f"{group}.n_samples={self.n_samples} must be >= 1")


@PROBES.register("layer_statistics", LayerStatisticsSettings)
class LayerStatisticsProbe(Probe):
    name = "layer_statistics"

    def __init__(self, context: ProbeContext, every: int | None, unit: str, n_samples: int):
        LayerStatisticsSettings(every=every, unit=unit, n_samples=n_samples).check()
        super().__init__(every if every is None or unit == "steps" else every * context.steps_per_epoch)
        model = context.model
        layers, activations = preactivation_modules(model), hidden_activation_modules(model)
        # Layer k (1-based) feeds activation module k; the last layer is the output.
        self.layers = {
            k: (layer, activation)
            for k, (layer, activation) in enumerate(zip(layers, activations), 1)
            if isinstance(layer, nn.Linear) and layer.weight.shape[0] == layer.weight.shape[1]
        }
        if not self.layers:
            raise SettingError(
                "probes.layer_statistics needs an MLP with square hidden-to-hidden layers "
                "(at least two equal hidden widths)"
            )
        self.model = model
        self.inputs = context.data.train_inputs[:n_samples]

    def measure(self, step: int) -> Measurement:
        captured: dict[int, torch.Tensor] = {}
        handles = [
            layer.register_forward_hook(lambda module, args, output, k=k: captured.__setitem__(k, output))
            for k, (layer, _) in self.layers.items()
        ]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(self.inputs)
        finally:
            for handle in handles:
                handle.remove()
            self.model.train(was_training)
        metrics = {}
        for k, (layer, activation) in self.layers.items():
            slope = activation_slope(activation, captured[k])  # φ'(zₖ), (n, d)
            row_norms = layer.weight.detach().pow(2).sum(dim=1)  # ‖Wₖ[i, :]‖²
            squared = (slope.pow(2) * row_norms).sum(dim=1).double()  # ‖diag(φ'(zₖ)) Wₖ‖²_F per input
            metrics[f"layers/masked_weight_norm/{k}"] = float(squared.sqrt().mean())
            metrics[f"layers/masked_weight_norm_squared/{k}"] = float(squared.mean())
            metrics[f"layers/weight_trace/{k}"] = float(torch.trace(layer.weight.detach()))
        return Measurement(metrics=metrics)


def activation_slope(activation: nn.Module, preactivation: torch.Tensor) -> torch.Tensor:
    """φ'(z) elementwise, by differentiating the activation module (1[z > 0] for ReLU). Its `forward` is called
    directly: the module's hooks (GNI's noise, which would draw from the run's random stream) must not run."""
    z = preactivation.detach().requires_grad_(True)
    with torch.enable_grad():
        (slope,) = torch.autograd.grad(activation.forward(z).sum(), z)
    return slope
