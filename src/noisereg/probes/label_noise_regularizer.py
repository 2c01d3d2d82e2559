"""`probes.label_noise_regularizer`: Blanc et al.'s implicit regularizer reg(θ) = (1/n) Σᵢ ‖∇θ h(xᵢ, θ)‖² (Eq. 1),
logged as `reg/blanc` for any run, with or without label noise, so both curves can be compared.

Label noise drives SGD towards the minima of reg on the zero-training-error manifold (Theorem 1); without it, reg
stays where fitting left it. Measured on the first `n_samples` training points (all by default), in eval mode;
with ReLU, the derivative at a kink is 0, as Theorem 2 takes it (for Blanc's 1-D network this is Eq. 16 over n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from noisereg.curvature.regularizers import output_gradient_norm_squared
from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings, steps_between
from noisereg.registry import PROBES


@dataclass
class LabelNoiseRegularizerSettings(ProbeSettings):
    n_samples: Optional[int] = None  # the first n training points; None: all

    def check(self, group: str = "probes.label_noise_regularizer") -> None:  # also while `every` is unset
        super().check(group)
        if self.n_samples is not None and self.n_samples < 1:
            raise SettingError(f"{group}.n_samples={self.n_samples} must be >= 1, or null for all")


@PROBES.register("label_noise_regularizer", LabelNoiseRegularizerSettings)
class LabelNoiseRegularizerProbe(Probe):
    name = "label_noise_regularizer"

    def __init__(self, context: ProbeContext, every: int | None, unit: str, n_samples: int | None):
        LabelNoiseRegularizerSettings(every=every, unit=unit, n_samples=n_samples).check()
        super().__init__(steps_between(every, unit, context))
        self.model = context.model
        self.inputs = context.data.train_inputs[:n_samples]

    def measure(self, step: int) -> Measurement:
        return Measurement(metrics={"reg/blanc": output_gradient_norm_squared(self.model, self.inputs)})
