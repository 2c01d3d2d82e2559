"""The sum-of-sines regression of Camuto et al. Fig. 4 (after Rahaman et al. 2019, "On the spectral bias"):

    λ(t) = Σₖ Aₖ sin(2π rₖ t + 2π φₖ),   rₖ ∈ {5, 10, …, 50},   Aₖ = 1,   φₖ ~ U[0, 1)

sampled on the grid tⱼ = j/N, j = 0 … N−1 (N = 200, the authors' code), one period of every component, so the
discrete Fourier transform of a function on the grid reads off its amplitude at each rₖ exactly
(probes/fourier.py). The phases are drawn from `seed`; the experiments tie it to the run's seed, as the authors
draw a new target per run. The test set is a finer grid of the same interval, for drawing the learnt function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.registry import DATASETS


@dataclass
class SumOfSinesSettings:
    name: str = "sum_of_sines"
    n_train: int = 200  # grid points tⱼ = j/n_train on [0, 1)
    n_test: int = 1000  # a finer grid, for drawing the learnt function
    frequencies: list[int] = field(default_factory=lambda: list(range(5, 55, 5)))
    amplitudes: list[float] = field(default_factory=lambda: [1.0])  # one per frequency, or one for all
    seed: int = 0  # the phases φₖ


def grid(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) / n).unsqueeze(1)


@DATASETS.register("sum_of_sines", SumOfSinesSettings)
def sum_of_sines(
    n_train: int = 200, n_test: int = 1000, frequencies=tuple(range(5, 55, 5)), amplitudes=(1.0,), seed: int = 0
) -> TensorDataset:
    frequencies, amplitudes = [int(k) for k in frequencies], [float(a) for a in amplitudes]
    if not frequencies or min(frequencies) < 1:
        raise SettingError(f"dataset.frequencies={frequencies} must be positive integers (cycles on [0, 1))")
    if len(amplitudes) not in (1, len(frequencies)):
        raise SettingError(
            f"dataset.amplitudes has {len(amplitudes)} values for {len(frequencies)} frequencies; "
            "give one or one per frequency"
        )
    if n_train <= 2 * max(frequencies) or n_test < 1:
        raise SettingError(
            f"dataset.n_train={n_train} must exceed twice the highest frequency ({max(frequencies)}) "
            "so the grid resolves it, and dataset.n_test must be >= 1"
        )
    amplitudes = amplitudes * len(frequencies) if len(amplitudes) == 1 else amplitudes
    phases = torch.rand(len(frequencies), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def target(t: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(t)
        for k, amplitude, phase in zip(frequencies, amplitudes, phases):
            total += amplitude * torch.sin(2 * math.pi * k * t + 2 * math.pi * phase)
        return total

    train_t, test_t = grid(n_train), grid(n_test)
    return TensorDataset(
        train_t.float(),
        target(train_t).float(),
        test_t.float(),
        target(test_t).float(),
        task="regression",
        num_outputs=1,
    )
