"""`probes.function_1d`: the learnt function of a 1-D regression (Blanc et al. Figs 2-3), on a grid over the range
of the training inputs [x₁, xₙ].

| metric | what |
|---|---|
| `function/curve_length` | ∫√(1 + f′²) dx ≈ Σ √(Δx² + Δf²) over the grid (Fig. 3) |
| `function/interpolant_curve_length` | the same for the piecewise-linear interpolant of the training points |
| `function/max_deviation` | max |f − PL| on the grid, PL that interpolant (Theorem 2: f = PL on co-linear points) |

The artifact `function_1d/<step>.npz` holds `grid` and `outputs` (f there, at `saved_points` of the grid's points,
evenly spread), `interval_deviation` (max |f − PL| on each interval [xⱼ, xⱼ₊₁]), the training points (`inputs`,
`targets`) and, for a model with `kinks()`, where its units bend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from noisereg.data.points import piecewise_linear
from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings, steps_between
from noisereg.registry import PROBES


@dataclass
class Function1dSettings(ProbeSettings):
    grid_points: int = 4001  # where the metrics are measured
    saved_points: int = 401  # how many of them the artifact keeps (evenly spread), enough to draw the function

    def check(self, group: str = "probes.function_1d") -> None:  # also while `every` is unset (config.validate)
        super().check(group)
        if not 2 <= self.saved_points <= self.grid_points:
            raise SettingError(
                f"{group}.saved_points={self.saved_points} must lie in [2, {group}.grid_points={self.grid_points}]"
            )


def curve_length(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.sqrt(torch.diff(x.double()) ** 2 + torch.diff(y.double()) ** 2).sum())


@PROBES.register("function_1d", Function1dSettings)
class Function1dProbe(Probe):
    name = "function_1d"

    def __init__(self, context: ProbeContext, every: int | None, unit: str, grid_points: int, saved_points: int):
        data = context.data
        if data.input_shape != (1,) or data.num_outputs != 1:
            raise SettingError(
                f"probes.function_1d needs a regression with 1-D inputs and one output (the dataset has "
                f"inputs of shape {data.input_shape}); use dataset=points_1d"
            )
        Function1dSettings(every=every, unit=unit, grid_points=grid_points, saved_points=saved_points).check()
        super().__init__(steps_between(every, unit, context))
        self.model = context.model
        order = torch.argsort(data.train_inputs[:, 0])
        self.knots_x, self.knots_y = data.train_inputs[order, 0], data.train_targets[order, 0]
        self.grid = torch.linspace(
            float(self.knots_x[0]), float(self.knots_x[-1]), grid_points, device=self.knots_x.device
        )
        self.interpolant = piecewise_linear(self.grid, self.knots_x, self.knots_y)
        self.interpolant_length = curve_length(self.grid, self.interpolant)
        # The interval [xⱼ, xⱼ₊₁] of each grid point (a knot belongs to the intervals on both sides).
        last_interval = len(self.knots_x) - 2
        intervals = torch.searchsorted(self.knots_x, self.grid, right=True) - 1
        self.interval_of_grid_point = intervals.clamp(0, last_interval)
        self.saved = torch.linspace(0, grid_points - 1, saved_points, device=self.grid.device).round().long()

    @torch.no_grad()
    def measure(self, step: int) -> Measurement:
        was_training = self.model.training
        self.model.eval()
        try:
            outputs = self.model(self.grid.unsqueeze(1))[:, 0]
        finally:
            self.model.train(was_training)
        deviation = (outputs - self.interpolant).abs()
        per_interval = torch.zeros(len(self.knots_x) - 1, dtype=deviation.dtype, device=deviation.device)
        per_interval.scatter_reduce_(0, self.interval_of_grid_point, deviation, reduce="amax")
        metrics = {
            "function/curve_length": curve_length(self.grid, outputs),
            "function/interpolant_curve_length": self.interpolant_length,
            "function/max_deviation": float(deviation.max()),
        }
        arrays = {
            "grid": self.grid[self.saved].cpu().numpy(),
            "outputs": outputs[self.saved].float().cpu().numpy(),
            "interval_deviation": per_interval.float().cpu().numpy(),
            "inputs": self.knots_x.cpu().numpy(),
            "targets": self.knots_y.cpu().numpy(),
        }
        if hasattr(self.model, "kinks"):
            arrays["kinks"] = self.model.kinks().float().cpu().numpy()
        return Measurement(metrics=metrics, artifacts={self.name: arrays})
