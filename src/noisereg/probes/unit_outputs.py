"""`probes.unit_outputs`: Blanc et al.'s Theorem 3 measured on a two-layer tanh or logistic network trained on one
point x. With label noise, the stable points have every unit's output oᵢ = cᵢσ(wᵢᵀx) either 0 or shared (tanh:
one value; logistic: at most two), and each hᵢ = σ(wᵢᵀx) fixed by oᵢ (App. C):

    logistic: hᵢ = oᵢ²‖x‖² / (1 + oᵢ²‖x‖²)              (Eq. 21)
    tanh:     hᵢ² = √(oᵢ²‖x‖² / (oᵢ²‖x‖² + 1))            (Eq. 23)

| metric | what |
|---|---|
| `units/active` | units with |oᵢ| > 1e-3 · maxⱼ |oⱼ| |
| `units/output_cv` | std / |mean| of the active units' oᵢ (0: all equal) |
| `units/clusters` | groups of active oᵢ, split where sorted values are more than 5 % of max |o| apart |
| `units/stationarity_residual` | max over active units of |hᵢ − Eq. 21| (logistic) or |hᵢ² − Eq. 23| (tanh) |

The artifact `unit_outputs/<step>.npz` holds `outputs` (oᵢ), `output_weights` (cᵢ) and `activations` (hᵢ).
Needs a model with `unit_outputs(x)` and `activation_name` (models/smooth_two_layer.py) and uses the first
training point.
"""

from __future__ import annotations

import torch

from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings, steps_between
from noisereg.registry import PROBES

ACTIVE = 1e-3  # relative to the largest |oᵢ|
CLUSTER_GAP = 0.05  # relative to the largest |oᵢ|


def stationary_activation(outputs: torch.Tensor, x_norm_squared: float, activation: str) -> torch.Tensor:
    """What hᵢ (logistic, Eq. 21) or hᵢ² (tanh, Eq. 23) is at a point label noise does not repel."""
    scaled = outputs.pow(2) * x_norm_squared
    if activation == "sigmoid":
        return scaled / (1 + scaled)
    return torch.sqrt(scaled / (scaled + 1))


@PROBES.register("unit_outputs", ProbeSettings)  # every, unit: nothing else
class UnitOutputsProbe(Probe):
    name = "unit_outputs"

    def __init__(self, context: ProbeContext, every: int | None, unit: str):
        if not hasattr(context.model, "unit_outputs"):
            raise SettingError(
                "probes.unit_outputs needs a two-layer network with unit outputs; use model=smooth_two_layer"
            )
        super().__init__(steps_between(every, unit, context))
        self.model = context.model
        self.point = context.data.train_inputs[:1]
        self.x_norm_squared = float(self.point.double().pow(2).sum())

    def measure(self, step: int) -> Measurement:
        output_weights, activations = self.model.unit_outputs(self.point)
        activations = activations[0].double()
        outputs = output_weights.double() * activations
        largest = float(outputs.abs().max())
        active = outputs.abs() > ACTIVE * largest if largest > 0 else torch.zeros_like(outputs, dtype=torch.bool)
        chosen = outputs[active]
        metrics = {"units/active": float(active.sum())}
        if chosen.numel():
            metrics["units/output_cv"] = float(chosen.std(correction=0) / chosen.mean().abs())
            gaps = torch.diff(torch.sort(chosen).values)
            metrics["units/clusters"] = float(1 + (gaps > CLUSTER_GAP * largest).sum())
            observed = activations[active] if self.model.activation_name == "sigmoid" else activations[active] ** 2
            expected = stationary_activation(chosen, self.x_norm_squared, self.model.activation_name)
            metrics["units/stationarity_residual"] = float((observed - expected).abs().max())
        arrays = {
            "outputs": outputs.float().cpu().numpy(),
            "output_weights": output_weights.float().cpu().numpy(),
            "activations": activations.float().cpu().numpy(),
        }
        return Measurement(metrics=metrics, artifacts={self.name: arrays})
