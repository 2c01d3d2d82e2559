"""The factorised matrix model of matrix sensing (Blanc et al. Sec. 1.1, Fig. 1; Li et al. 2018): h(A, U) = ⟨A, UUᵀ⟩
for a measurement matrix A, with U ∈ R^{d×d} the parameters and X = UUᵀ the matrix it represents.

U enters twice, so the model is not piecewise linear in its parameter: the Hessian of the loss has a second term
beyond Gauss–Newton, the exact trace refuses it and `hessian_trace(method="auto")` uses Hutchinson. Its implicit
regularizer under label noise is E‖(A + Aᵀ)U‖²_F = 2(d+1)‖U‖²_F (Eq. 2), and ‖U‖²_F = ‖X‖_*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.registry import MODELS

INITIALISATIONS = ("identity", "gaussian")


@dataclass
class FactorizedMatrixSettings:
    name: str = "factorized_matrix"
    init: str = "identity"  # identity: U₀ = I (Blanc Fig. 1) | gaussian: U₀ entries N(0, init_scale²/d)
    init_scale: float = 1.0

    def check(self, group: str = "model") -> None:
        if self.init not in INITIALISATIONS:
            raise SettingError(f"model.init={self.init!r} is unknown; choose one of {list(INITIALISATIONS)}")
        if not (math.isfinite(self.init_scale) and self.init_scale > 0):
            raise SettingError(f"model.init_scale={self.init_scale} must be finite and > 0")


class FactorizedMatrix(nn.Module):
    piecewise_linear_in_parameters = False  # U enters twice (UUᵀ)

    def __init__(
        self, dimension: int, init: str = "identity", init_scale: float = 1.0, generator: torch.Generator | None = None
    ):
        super().__init__()
        self.factor = nn.Parameter(torch.empty(dimension, dimension))  # U
        if self.factor.is_meta:  # built to be counted (noisereg/memory.py)
            return
        with torch.no_grad():
            if init == "identity":
                self.factor.copy_(torch.eye(dimension) * init_scale)
            else:
                self.factor.normal_(0.0, init_scale / math.sqrt(dimension), generator=generator)

    def matrix(self) -> torch.Tensor:
        """X = UUᵀ."""
        return self.factor @ self.factor.T

    def forward(self, measurements: torch.Tensor) -> torch.Tensor:
        """⟨Aᵢ, UUᵀ⟩ for each measurement matrix Aᵢ of a batch (n, d, d), as (n, 1)."""
        return (measurements * self.matrix()).sum(dim=(-2, -1)).unsqueeze(-1)


@MODELS.register("factorized_matrix", FactorizedMatrixSettings)
def build_factorized_matrix(input_shape: tuple[int, ...], num_outputs: int, generator=None, **settings):
    if len(input_shape) != 2 or input_shape[0] != input_shape[1] or num_outputs != 1:
        raise SettingError(
            f"model=factorized_matrix needs square measurement matrices and one output, but the "
            f"dataset has inputs of shape {tuple(input_shape)}; use dataset=matrix_sensing"
        )
    return FactorizedMatrix(input_shape[0], generator=generator, **settings)
