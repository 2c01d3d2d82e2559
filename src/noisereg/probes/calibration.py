"""`probes.calibration`: how well a classifier's confidence matches its accuracy (Camuto et al. Sec. 4, Fig. F.7).

On a split (the test set by default), noise-free: the confidence p̂(x) = max softmax probability and the
prediction ŷ(x) = argmax, in `bins` equal-width bins of confidence (Guo et al. 2017: 15),

    `calibration/ece` = Σ_b (|B_b| / N) |acc(B_b) − conf(B_b)|      (expected calibration error)

and `calibration/mce` = max_b |acc(B_b) − conf(B_b)| over non-empty bins; `calibration/overconfidence` =
mean confidence − accuracy, signed (Σ_b (|B_b| / N)(conf(B_b) − acc(B_b))): Guo et al.'s miscalibration of modern
networks is overconfidence (> 0), the premise of Camuto et al.'s calibration claim. The reliability diagram's data — bin
edges and centres, counts, accuracy and mean confidence per bin (NaN where a bin is empty) — is the artifact
`calibration/<step>.npz`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.registry import PROBES

SPLITS = ("train", "test")


@dataclass
class CalibrationSettings(ProbeSettings):
    split: str = "test"  # train | test
    bins: int = 15
    batch_size: int = 4096  # evaluation batch

    def check(self, group: str = "probes.calibration") -> None:  # also while `every` is unset (config.validate)
        super().check(group)
        if self.split not in SPLITS:
            raise SettingError(f"{group}.split={self.split!r} is unknown; choose one of {list(SPLITS)}")
        for key in ("bins", "batch_size"):
            if getattr(self, key) < 1:
                raise SettingError(f"{group}.{key}={getattr(self, key)} must be >= 1")


def reliability(probabilities: torch.Tensor, labels: torch.Tensor, bins: int) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: edges, centres, count, accuracy and mean confidence (NaN for empty bins)."""
    confidence, prediction = probabilities.max(dim=1)
    correct = (prediction == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    # Bin b holds confidences in (edge_b, edge_{b+1}]; a confidence of exactly 0 cannot occur (max of a softmax).
    index = torch.bucketize(confidence.double().cpu(), edges[1:-1], right=False)
    counts = torch.bincount(index, minlength=bins).double()
    hits = torch.bincount(index, weights=correct.cpu(), minlength=bins)
    sums = torch.bincount(index, weights=confidence.double().cpu(), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = (hits / counts).numpy()
        mean_confidence = (sums / counts).numpy()
    return {
        "edges": edges.numpy(),
        "counts": counts.numpy(),
        "accuracy": accuracy,
        "confidence": mean_confidence,
        "bin_centers": ((edges[1:] + edges[:-1]) / 2).numpy(),
    }


def overconfidence(table: dict[str, np.ndarray]) -> float:
    """Mean confidence − accuracy from a reliability table: > 0 overconfident, < 0 underconfident."""
    filled = table["counts"] > 0
    weights = table["counts"][filled] / table["counts"].sum()
    return float((weights * (table["confidence"][filled] - table["accuracy"][filled])).sum())


def expected_calibration_error(table: dict[str, np.ndarray]) -> tuple[float, float]:
    """(ECE, MCE) from a reliability table."""
    filled = table["counts"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    weights = table["counts"][filled] / table["counts"].sum()
    return float((weights * gaps).sum()), float(gaps.max()) if gaps.size else 0.0


@PROBES.register("calibration", CalibrationSettings)
class CalibrationProbe(Probe):
    name = "calibration"

    def __init__(self, context: ProbeContext, every: int | None, unit: str, split: str, bins: int, batch_size: int):
        super().__init__(every if every is None or unit == "steps" else every * context.steps_per_epoch)
        CalibrationSettings(every=every, unit=unit, split=split, bins=bins, batch_size=batch_size).check()
        data = context.data
        if data.task != "classification":
            raise SettingError("probes.calibration needs a classification dataset (class labels)")
        self.inputs, self.labels = (
            (data.train_inputs, data.train_targets) if split == "train" else (data.test_inputs, data.test_targets)
        )
        self.model, self.bins, self.batch_size = context.model, bins, batch_size

    @torch.no_grad()
    def measure(self, step: int) -> Measurement:
        was_training = self.model.training
        self.model.eval()
        try:
            probabilities = torch.cat(
                [
                    self.model(self.inputs[start : start + self.batch_size]).softmax(dim=1)
                    for start in range(0, self.inputs.shape[0], self.batch_size)
                ]
            )
        finally:
            self.model.train(was_training)
        table = reliability(probabilities, self.labels, self.bins)
        ece, mce = expected_calibration_error(table)
        metrics = {"calibration/ece": ece, "calibration/mce": mce, "calibration/overconfidence": overconfidence(table)}
        return Measurement(metrics=metrics, artifacts={self.name: table})
