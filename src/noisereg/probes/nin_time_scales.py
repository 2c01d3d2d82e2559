"""`probes.nin_time_scales`: Levi Eq. 10's time scales predicted from the current weights, beside the measured decay.

Both are in units of App. D's continuous time t = η · step (divide by the learning rate for steps):
- `tau/noise_theory` = 1 / (σ² ŵᵀ⟨H_z⟩ŵ), with ŵ = W_NI/‖W_NI‖ and ⟨H_z⟩ the Hessian of the clean loss with respect to
  the NIN layer's preactivations z (Eq. 3). The noise adds ½σ² W_NIᵀ⟨H_z⟩W_NI to the loss (Eq. 12), so in
  continuous time d‖W_NI‖/dt = −σ² ŵᵀ⟨H_z⟩ŵ ‖W_NI‖ (Eq. 9; the odd, 1/√|B| terms average out).
- `tau/loss_theory` = L / ‖∇θ L‖², the clean loss over its squared gradient: dL/dt = −‖∇θ L‖² (Eq. 8).
For the linear toy model these are App. D's closed forms, 1/(σ²(w⁽¹⁾)²) and 1/(2σ_x²((w⁽⁰⁾)² + (w⁽¹⁾)²)), with σ_x²
the mean of x² over the samples measured on. ŵᵀ⟨H_z⟩ŵ is the exact second derivative of the loss along ŵ (for ReLU
networks, almost everywhere), by double backpropagation through one scalar offset t·ŵ added to z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.registry import PROBES


@dataclass
class NinTimeScalesSettings(ProbeSettings):
    n_samples: int = 1024  # the first n training samples

    def check(self, group: str = "probes.nin_time_scales") -> None:  # also while `every` is unset (config.validate)
        super().check(group)
        if self.n_samples < 1:
            raise SettingError(f"{group}.n_samples={self.n_samples} must be >= 1")


@PROBES.register("nin_time_scales", NinTimeScalesSettings)
class NinTimeScalesProbe(Probe):
    name = "nin_time_scales"

    def __init__(self, context: ProbeContext, every: int | None, unit: str, n_samples: int):
        NinTimeScalesSettings(every=every, unit=unit, n_samples=n_samples).check()
        if getattr(context.noise, "name", None) != "nin":
            raise SettingError("probes.nin_time_scales measures a noise injection node; use it with noise=nin")
        super().__init__(every if every is None or unit == "steps" else every * context.steps_per_epoch)
        self.model, self.loss_fn, self.noise = context.model, context.loss_fn, context.noise
        self.inputs = context.data.train_inputs[:n_samples]
        self.targets = context.loss_targets(context.data.train_targets[:n_samples])

    def measure(self, step: int) -> Measurement:
        was_training = self.model.training
        self.model.eval()  # ε = 0: the clean loss
        try:
            curvature, loss, gradient_norm2 = self._derivatives()
        finally:
            self.model.train(was_training)
        sigma2 = self.noise.sigma**2
        noise_rate = sigma2 * curvature
        return Measurement(
            metrics={
                "tau/noise_theory": 1.0 / noise_rate if noise_rate > 0 else math.inf,
                "tau/loss_theory": loss / gradient_norm2 if gradient_norm2 > 0 else math.inf,
            }
        )

    def _derivatives(self) -> tuple[float, float, float]:
        """ŵᵀ⟨H_z⟩ŵ, the clean loss L and ‖∇θ L‖² over the data weights."""
        weight = self.noise.node.weight.detach()
        direction = weight / weight.norm() if weight.norm() > 0 else weight
        offset = torch.zeros((), dtype=weight.dtype, device=weight.device, requires_grad=True)

        def shift(module, inputs, output):
            shape = (1, -1) + (1,) * (output.dim() - 2)
            return output + offset * direction.reshape(shape)

        parameters = [p for p in self.model.parameters() if p is not self.noise.node.weight and p.requires_grad]
        handle = self.noise.site.register_forward_hook(shift)
        try:
            with torch.enable_grad():
                loss = self.loss_fn(self.model(self.inputs), self.targets)
                first, *gradients = torch.autograd.grad(
                    loss, [offset, *parameters], create_graph=True, allow_unused=True
                )
                second = torch.autograd.grad(first, offset, allow_unused=True)[0] if first.requires_grad else None
        finally:
            handle.remove()
        gradient_norm2 = sum(float(g.detach().pow(2).sum()) for g in gradients if g is not None)
        curvature = 0.0 if second is None else float(second)
        return curvature, float(loss.detach()), gradient_norm2
