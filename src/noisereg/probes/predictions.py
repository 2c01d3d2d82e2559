"""`probes.predictions`: the model's noise-free outputs on a fixed set of inputs, saved as artifacts.

What the learnt function looks like over training (a 1-D regression's values on its test grid, Blanc Fig. 2), or
a classifier's logits for calibration (Camuto): `artifacts/predictions/<step>.npz` holds `outputs`, `targets`
and the `indices` of the samples in their split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.registry import PROBES

SPLITS = ("train", "test")


@dataclass
class PredictionsSettings(ProbeSettings):
    split: str = "test"  # train | test
    n_samples: int = 256  # the first n samples of the split

    def check(self, group: str = "probes.predictions") -> None:  # also while `every` is unset (config.validate)
        super().check(group)
        if self.split not in SPLITS:
            raise SettingError(f"{group}.split={self.split!r} is unknown; choose one of {list(SPLITS)}")
        if self.n_samples < 1:
            raise SettingError(f"{group}.n_samples={self.n_samples} must be >= 1")


@PROBES.register("predictions", PredictionsSettings)
class PredictionsProbe(Probe):
    name = "predictions"

    def __init__(self, context: ProbeContext, every: int | None, unit: str, split: str, n_samples: int):
        PredictionsSettings(every=every, unit=unit, split=split, n_samples=n_samples).check()
        super().__init__(every if every is None or unit == "steps" else every * context.steps_per_epoch)
        data = context.data
        inputs, targets = (
            (data.train_inputs, data.train_targets) if split == "train" else (data.test_inputs, data.test_targets)
        )
        self.model = context.model
        self.inputs, self.targets = data.model_inputs(inputs[:n_samples]), targets[:n_samples]

    @torch.no_grad()
    def measure(self, step: int) -> Measurement:
        was_training = self.model.training
        self.model.eval()
        try:
            outputs = self.model(self.inputs)
        finally:
            self.model.train(was_training)
        arrays = {
            "outputs": outputs.float().cpu().numpy(),
            "targets": self.targets.cpu().numpy(),
            "indices": torch.arange(self.inputs.shape[0]).numpy(),
        }
        return Measurement(artifacts={self.name: arrays})
