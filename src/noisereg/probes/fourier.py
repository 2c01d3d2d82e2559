"""`probes.fourier`: the amplitude spectrum of the learnt function at the target's frequencies (Camuto Fig. 4).

For a 1-D regression on the grid tⱼ = j/N of [0, 1) (data/sines.py), the discrete Fourier transform of the
noise-free network output f on that grid, at each frequency k, relative to the target's:

    `fourier/amplitude_k<k>` = |F[f](k)| / |F[y](k)|   (= 2|F[f](k)| / (N Aₖ) for y = Σ Aₖ sin(2πkt + φₖ))

1 means the network has learnt that component's amplitude, 0 that it has not. The learnt function itself (grid,
outputs, targets) is saved as the artifact `fourier/<step>.npz`, for the figure's second row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.registry import PROBES


@dataclass
class FourierSettings(ProbeSettings):
    frequencies: list[int] = field(default_factory=lambda: list(range(5, 55, 5)))  # cycles on [0, 1)

    def check(self, group: str = "probes.fourier") -> None:  # also while `every` is unset (config.validate)
        super().check(group)
        if not self.frequencies or min(self.frequencies) < 1:  # the upper bound, N/2, depends on the data
            raise SettingError(
                f"{group}.frequencies={list(self.frequencies)} must be a non-empty list of whole "
                "cycles on [0, 1), each >= 1, e.g. [5, 10, 15]"
            )


@PROBES.register("fourier", FourierSettings)
class FourierProbe(Probe):
    name = "fourier"

    def __init__(self, context: ProbeContext, every: int | None, unit: str, frequencies: list[int]):
        FourierSettings(every=every, unit=unit, frequencies=list(frequencies)).check()
        super().__init__(every if every is None or unit == "steps" else every * context.steps_per_epoch)
        data = context.data
        inputs = data.train_inputs
        n = inputs.shape[0]
        grid = torch.arange(n, dtype=torch.float64, device=inputs.device) / n
        if inputs.dim() != 2 or inputs.shape[1] != 1 or not torch.allclose(inputs[:, 0].double(), grid, atol=1e-6):
            raise SettingError("probes.fourier needs a 1-D regression on the grid j/N of [0, 1) (dataset=sum_of_sines)")
        self.frequencies = [int(k) for k in frequencies]
        if not self.frequencies or min(self.frequencies) < 1 or max(self.frequencies) >= n / 2:
            raise SettingError(f"probes.fourier.frequencies={self.frequencies} must lie in [1, {n / 2}) for {n} points")
        self.model, self.inputs = context.model, inputs
        self.targets = data.train_targets[:, 0]
        self.target_spectrum = torch.fft.rfft(self.targets.double()).abs()[self.frequencies]
        if (self.target_spectrum < 1e-9 * n).any():
            raise SettingError(f"probes.fourier: the target has no component at some of {self.frequencies}")

    @torch.no_grad()
    def measure(self, step: int) -> Measurement:
        was_training = self.model.training
        self.model.eval()
        try:
            outputs = self.model(self.inputs)[:, 0]
        finally:
            self.model.train(was_training)
        spectrum = torch.fft.rfft(outputs.double()).abs()[self.frequencies] / self.target_spectrum
        metrics = {f"fourier/amplitude_k{k}": float(a) for k, a in zip(self.frequencies, spectrum)}
        arrays = {
            "inputs": self.inputs[:, 0].cpu().numpy(),
            "outputs": outputs.float().cpu().numpy(),
            "targets": self.targets.cpu().numpy(),
            "frequencies": torch.tensor(self.frequencies).numpy(),
            "amplitudes": spectrum.cpu().numpy(),
        }
        return Measurement(metrics=metrics, artifacts={self.name: arrays})
