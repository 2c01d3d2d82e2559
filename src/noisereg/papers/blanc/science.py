"""Blanc, Gupta, Valiant, Valiant (COLT 2020), SGD with label noise: the paper's science, apart from drawing and
judging.

Every experiment sweeps the label-noise std δ: δ = 0 is SGD without label noise, δ > 0 SGD with it (Eq. 5). Seeds
aggregate as mean ± 1 std (the paper shows single runs, or every initialisation, as Fig. 2's panels do here too).
Here: the sweep's selections (`with_noise`, `NO_NOISE`), the noisy phase of a run (`noisy_phase`: full δ, before it
is stopped or annealed), the statistics read off a run (the first step below a level, the time to 0.1‖X*‖²_F of
Fig. 1's time scale, reg/blanc once fitted and once settled for Fig. 3's two time scales) and the final functions of
Figs 2-3 (the piecewise-linear interpolant and curve length themselves are the probes' records). figures.py draws
them, claims.py judges them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from noisereg.figures.grouping import arrays_at_last_step
from noisereg.figures.selection import select

PAPER = "Blanc et al. 2020"
NO_NOISE = {"noise.delta": 0.0}


def by_noise(config: dict) -> str:
    delta = config.get("noise.delta")
    return "SGD" if delta == 0 else f"SGD + label noise (δ = {delta:g})"


def noise_levels(runs: pd.DataFrame) -> list[float]:
    return sorted(float(d) for d in runs["noise.delta"].unique())


def with_noise(runs: pd.DataFrame) -> dict:
    """The selection of the runs with label noise (the largest δ of the sweep)."""
    return {"noise.delta": noise_levels(runs)[-1]}


def first_step_below(metric: str, threshold: float):
    """The first logged step at which `metric` is below `threshold` (NaN if never): a statistic for `per_run`."""

    def statistic(rows: pd.DataFrame) -> float:
        hits = rows[rows[metric].astype(float) < threshold] if metric in rows else rows.iloc[0:0]
        return float(hits["step"].iloc[0]) if len(hits) else math.nan

    return statistic


def value_at(metric: str, fraction: float):
    """`metric` at the first logged step at or after `fraction` of the run's length."""

    def statistic(rows: pd.DataFrame) -> float:
        rows = rows[np.isfinite(rows[metric].astype(float))]
        later = rows[rows["step"] >= fraction * rows["step"].max()]
        return float(later[metric].iloc[0]) if len(later) else math.nan

    return statistic


def noisy_phase(condition: pd.DataFrame) -> pd.DataFrame:
    """The rows at the full label noise δ: before `noise.stop_step`, after which the runs settle without noise, and
    before δ's annealing to 0 over the last `noise.anneal_steps` of it, which takes the noise's jitter out of the
    iterate on purpose (all rows where neither is set)."""
    first = condition.iloc[0]
    stop = first.get("noise.stop_step")
    if stop is None or not np.isfinite(float(stop)):
        return condition
    anneal = first.get("noise.anneal_steps")
    anneal = float(anneal) if anneal is not None and np.isfinite(float(anneal)) else 0.0
    return condition[condition["step"] <= float(stop) - anneal]


# -- Fig. 1's time scale: the learning-rate sweep --------------------------------------------------------------------


THRESHOLD = 0.1  # ours: the relative test error the time scale is read at (the paper reads no level)


def time_to_threshold(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's first step with ‖UUᵀ − X*‖²_F < 0.1‖X*‖²_F, as a column (constant within a run)."""
    times = {
        run: first_step_below("matrix/relative_test_error", THRESHOLD)(rows.sort_values("step"))
        for run, rows in runs.groupby("run")
    }
    return runs.assign(**{"steps to 0.1‖X*‖²": runs["run"].map(times)})


# -- Figs 2 and 3: two-layer ReLU network on 1-D points --------------------------------------------------------------


def last_functions(runs: pd.DataFrame, delta: float) -> list[dict]:
    """The function_1d arrays every run with this δ saved last."""
    chosen = select(runs, **{"noise.delta": delta})
    saved = [arrays_at_last_step(run, "function_1d") for run in sorted(chosen["run"].unique())]
    return [arrays for _, arrays in filter(None, saved)]


def spread_across_initialisations(runs: pd.DataFrame, delta: float) -> float:
    """The mean over the grid of the std of f(x) across initialisations."""
    functions = np.array([arrays["outputs"] for arrays in last_functions(runs, delta)])
    return float(functions.std(axis=0, ddof=1).mean()) if len(functions) > 1 else math.nan


FIT = 1e-3  # ours: "close to zero training error" is train/mse below this


def reg_after_fitting(rows: pd.DataFrame) -> float:
    """reg/blanc at the first measurement after the training loss fell below 1e-3."""
    fitted = first_step_below("train/mse", FIT)(rows)
    measured = rows[np.isfinite(rows["reg/blanc"].astype(float)) & (rows["step"] >= fitted)]
    return float(measured["reg/blanc"].iloc[0]) if len(measured) else math.nan


def steps_until_reg_settles(rows: pd.DataFrame) -> float:
    """The first step from which reg/blanc stays within 10 % of its final value."""
    measured = rows[np.isfinite(rows["reg/blanc"].astype(float))]
    values, steps = measured["reg/blanc"].to_numpy(float), measured["step"].to_numpy(float)
    outside = np.nonzero(np.abs(values / values[-1] - 1) > 0.1)[0]
    return float(steps[outside[-1] + 1]) if len(outside) else float(steps[0])
