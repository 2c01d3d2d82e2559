"""`probes.matrix_recovery`: how far a matrix model is from the planted matrix of matrix sensing (Blanc et al.
Fig. 1), in closed form.

| metric | what |
|---|---|
| `matrix/test_error` | ‖X − X*‖²_F: the expected squared error E⟨A, X − X*⟩² on a fresh measurement A ~ N(0, 1)^{d×d} |
| `matrix/relative_test_error` | ‖X − X*‖²_F / ‖X*‖²_F |
| `matrix/nuclear_norm` | ‖X‖_*: for X = UUᵀ this is ‖U‖²_F, what label noise minimises (Eq. 2: reg = 2(d+1)‖U‖²_F) |
| `matrix/planted_nuclear_norm` | ‖X*‖_* (= r for our planted matrices) |

Needs a model with `matrix()` (models/factorized.py) and a dataset with `truth["planted_matrix"]`
(data/matrix_sensing.py).
"""

from __future__ import annotations

import torch

from noisereg.errors import SettingError
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings, steps_between
from noisereg.registry import PROBES


@PROBES.register("matrix_recovery", ProbeSettings)  # every, unit: nothing else
class MatrixRecoveryProbe(Probe):
    name = "matrix_recovery"

    def __init__(self, context: ProbeContext, every: int | None, unit: str):
        if "planted_matrix" not in context.data.truth or not hasattr(context.model, "matrix"):
            raise SettingError(
                "probes.matrix_recovery needs a planted matrix and a matrix model; use "
                "dataset=matrix_sensing model=factorized_matrix"
            )
        super().__init__(steps_between(every, unit, context))
        self.model = context.model
        self.planted = context.data.truth["planted_matrix"].double()
        self.planted_norm = float(self.planted.pow(2).sum())
        self.planted_nuclear_norm = float(torch.linalg.matrix_norm(self.planted, "nuc"))

    @torch.no_grad()
    def measure(self, step: int) -> Measurement:
        matrix = self.model.matrix().double()
        error = float((matrix - self.planted).pow(2).sum())
        return Measurement(
            metrics={
                "matrix/test_error": error,
                "matrix/relative_test_error": error / self.planted_norm,
                "matrix/nuclear_norm": float(torch.linalg.matrix_norm(matrix, "nuc")),
                "matrix/planted_nuclear_norm": self.planted_nuclear_norm,
            }
        )
