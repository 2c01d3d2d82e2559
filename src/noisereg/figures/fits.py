"""Exponential decay fits, y = A e^(−t/τ) + C, with the standard error of τ (Levi Fig. 1: "fits to exponential decays").

For a fixed rate 1/τ the model is linear in (A, C), so the fit minimises the residual sum of squares over log τ alone
(variable projection): a grid over log τ, then a golden-section search in the best grid cell. The standard errors
are those of a least-squares fit with unknown noise level: s² (JᵀJ)⁻¹ at the optimum, J the Jacobian of the model
in (A, C, τ) and s² = RSS / (n − 3), as scipy's `curve_fit` reports them by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GRID = 200  # log-spaced values of τ tried before refining
GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass
class ExponentialFit:
    amplitude: float  # A
    offset: float  # C
    tau: float  # τ, in the units of t; NaN when the data do not determine it
    tau_stderr: float
    rss: float
    n: int
    reason: str = ""  # why τ is NaN

    @property
    def resolved(self) -> bool:
        return math.isfinite(self.tau) and math.isfinite(self.tau_stderr)


def _linear_part(t: np.ndarray, y: np.ndarray, taus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, C, RSS) of the best fit for each fixed τ in `taus`: the 2×2 normal equations in (A, C), solved in closed
    form (C alone where e^(−t/τ) is numerically constant)."""
    decay = np.exp(-t[:, None] / np.asarray(taus, dtype=float)[None, :])
    n = len(t)
    sum_e, sum_ee = decay.sum(axis=0), (decay * decay).sum(axis=0)
    sum_y, sum_ey = y.sum(), (decay * y[:, None]).sum(axis=0)
    determinant = n * sum_ee - sum_e**2
    usable = determinant > 1e-12 * n * sum_ee
    amplitude = np.where(usable, (n * sum_ey - sum_e * sum_y) / np.where(usable, determinant, 1.0), 0.0)
    offset = (sum_y - amplitude * sum_e) / n
    residual = y[:, None] - amplitude * decay - offset
    return amplitude, offset, (residual * residual).sum(axis=0)


def _at(t: np.ndarray, y: np.ndarray, tau: float) -> tuple[float, float, float]:
    amplitude, offset, rss = _linear_part(t, y, np.array([tau]))
    return float(amplitude[0]), float(offset[0]), float(rss[0])


def fit_exponential(t, y) -> ExponentialFit:
    """Least-squares fit of y = A e^(−t/τ) + C to the finite points (t, y); τ is searched between a tenth of the
    smallest spacing of t and a hundred times its span, and is NaN (with a reason) when the best τ lies on the upper
    end of that range or below the spacing (a decay within one sampling interval is not measured), when fewer than
    four points are finite, or when the data are flat."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    n = len(t)
    if n < 4:
        return ExponentialFit(math.nan, math.nan, math.nan, math.nan, math.nan, n, "fewer than 4 points")
    t = t - t.min()  # A is the value above C at the first point
    span, spacing = float(t.max()), float(np.diff(np.unique(t)).min())
    if np.ptp(y) == 0:
        return ExponentialFit(0.0, float(y[0]), math.nan, math.nan, 0.0, n, "flat data")
    grid = np.exp(np.linspace(math.log(spacing / 10), math.log(span * 100), GRID))
    best = int(np.argmin(_linear_part(t, y, grid)[2]))
    if best in (0, GRID - 1):
        amplitude, offset, rss = _at(t, y, grid[best])
        edge = "shorter than the sampling" if best == 0 else "longer than the data"
        return ExponentialFit(amplitude, offset, math.nan, math.nan, rss, n, f"decay {edge}")
    low, high = math.log(grid[best - 1]), math.log(grid[best + 1])
    for _ in range(60):  # golden section on log τ: the bracket shrinks by 0.618 per step
        a, b = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
        cost_a, cost_b = _linear_part(t, y, np.exp([a, b]))[2]
        if cost_a <= cost_b:
            high = b
        else:
            low = a
    tau = math.exp((low + high) / 2)
    amplitude, offset, rss = _at(t, y, tau)
    if tau < spacing:
        return ExponentialFit(amplitude, offset, math.nan, math.nan, rss, n, "decay shorter than the sampling")
    decay = np.exp(-t / tau)
    jacobian = np.column_stack([decay, np.ones_like(t), amplitude * t / tau**2 * decay])
    dof = n - 3
    try:
        covariance = np.linalg.inv(jacobian.T @ jacobian) * (rss / dof if dof > 0 else math.nan)
        stderr = math.sqrt(covariance[2, 2]) if covariance[2, 2] >= 0 else math.nan
    except np.linalg.LinAlgError:
        stderr = math.nan
    return ExponentialFit(amplitude, offset, tau, stderr, rss, n, "" if math.isfinite(stderr) else "singular fit")
