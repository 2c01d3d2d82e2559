"""Choosing the evidence from run records: which runs make one condition, and one number per run (its final value,
late mean, late trend, any statistic of its rows).

Only finished runs (completed or diverged) are evidence; a diverged run is counted and left out of the means, an
unfinished one (interrupted, failed, or records without a summary) is counted apart. Every selection must be one
condition: runs that differ in any setting but a seed never pool into one Evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.statistics import Evidence
from noisereg.tracking.records import FINISHED


def is_seed_like(column: str) -> bool:
    """A config key named `seed` at any depth (`seed`, `dataset.seed`, `probes.remainder.seed`): it picks a draw, not
    a condition."""
    return column == "seed" or column.endswith(".seed")


def condition_keys(runs: pd.DataFrame) -> list[str]:
    """The config keys that make a condition: every dotted config column but the seed-like ones and those above."""
    from noisereg.records import config_columns, is_watching_only

    return [c for c in config_columns(runs) if not is_seed_like(c) and not is_watching_only(c)]


def select(runs: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """Runs whose config has these values (keys with dots: write them as `**{"noise.name": "gd"}`)."""
    mask = pd.Series(True, index=runs.index)
    for key, value in where.items():
        if key not in runs:
            return runs.iloc[0:0]
        wanted = tuple(value) if isinstance(value, list) else value
        mask &= runs[key].map(lambda v: v == wanted)
    return runs[mask]


def one_condition(chosen: pd.DataFrame, label: str) -> None:
    """Refuse to pool runs of different conditions (say, σ = 0.1 and σ = 1e30 from two folders) into one Evidence."""
    if chosen.empty:
        return
    firsts = chosen.groupby("run").head(1)
    differing = [key for key in condition_keys(firsts) if firsts[key].map(repr).nunique() > 1]
    if differing:
        shown = "; ".join(f"{key} = {', '.join(sorted(set(firsts[key].map(str))))}" for key in differing[:3])
        raise SettingError(
            f"{label}: runs of different conditions would pool ({shown}); load one sweep's folder, "
            "or records that differ only by seed"
        )


def _evidence_runs(runs: pd.DataFrame, label: str, where: dict[str, Any]):
    """The selected runs, one condition; yields (seed, rows sorted by step) of each finished, not diverged run and
    returns the counts of diverged and unfinished runs through the list it fills."""
    chosen = select(runs, **where)
    one_condition(chosen, label)
    kept, diverged, unfinished = [], 0, 0
    for _, rows in chosen.groupby("run"):
        status = rows["status"].iloc[0]
        if status not in FINISHED:
            unfinished += 1
        elif status == "diverged":
            diverged += 1
        else:
            kept.append((rows["seed"].iloc[0], rows.sort_values("step")))
    seeds = [seed for seed, _ in kept]
    if len(set(map(repr, seeds))) < len(seeds):
        raise SettingError(f"{label}: two finished runs of one condition have the same seed; load each run once")
    return kept, diverged, unfinished


def final(runs: pd.DataFrame, metric: str, name: str | None = None, **where: Any) -> Evidence:
    """Each selected run's last finite value of `metric`, by seed; diverged and unfinished runs are counted, not
    used."""
    label = name or ", ".join(f"{k.split('.')[-1]}={v}" for k, v in where.items())
    kept, diverged, unfinished = _evidence_runs(runs, f"{label} {metric}", where)
    values = {}
    for seed, rows in kept:
        finite = rows[np.isfinite(rows[metric].astype(float))] if metric in rows else rows.iloc[0:0]
        if len(finite):
            values[seed] = float(finite[metric].iloc[-1])
    return Evidence(f"{label} {metric}", values, diverged, unfinished)


def late_mean(
    runs: pd.DataFrame, metric: str, name: str | None = None, fraction: float = 0.1, **where: Any
) -> Evidence:
    """Each selected run's mean of `metric` over the last `fraction` of its evaluations (at least one), by seed: the
    statistic for a last iterate that fluctuates under constant lr and noise."""
    label = name or ", ".join(f"{k.split('.')[-1]}={v}" for k, v in where.items())
    kept, diverged, unfinished = _evidence_runs(runs, f"{label} {metric}", where)
    values = {}
    for seed, rows in kept:
        finite = rows[np.isfinite(rows[metric].astype(float))][metric].astype(float) if metric in rows else []
        if len(finite):
            values[seed] = float(finite.iloc[-max(1, round(fraction * len(finite))) :].mean())
    return Evidence(f"{label} {metric} (mean of the last {fraction:.0%} of evaluations)", values, diverged, unfinished)


def per_run(runs: pd.DataFrame, statistic: Callable[[pd.DataFrame], float], name: str, **where: Any) -> Evidence:
    """`statistic(rows)` of each selected run's rows (sorted by step), by seed, e.g. the step where a metric first
    falls below a threshold; diverged and unfinished runs are counted, not used, and a NaN statistic leaves the run
    out."""
    kept, diverged, unfinished = _evidence_runs(runs, name, where)
    values = {}
    for seed, rows in kept:
        value = statistic(rows)
        if math.isfinite(value):
            values[seed] = float(value)
    return Evidence(name, values, diverged, unfinished)


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of the finished runs (completed or diverged): what a claim computed on all rows at once may use."""
    return runs[runs["status"].isin(FINISHED)]


def mean_final(runs: pd.DataFrame, metric: str) -> float:
    """The mean over runs of each run's last finite value of `metric` (NaN where no run logged it): for gates."""
    if metric not in runs:
        return math.nan
    finite = runs[np.isfinite(runs[metric].astype(float))]
    last = finite.sort_values("step").groupby("run")[metric].last()
    return float(last.astype(float).mean()) if len(last) else math.nan


def final_over_initial(runs: pd.DataFrame, metric: str) -> list[float]:
    """Each run's last over first finite value of `metric` (runs with fewer than two values, or a first value that
    is not positive, left out): how far a loss fell, for gates."""
    ratios = []
    for _, rows in runs.groupby("run"):
        values = rows.sort_values("step")[metric].astype(float).dropna() if metric in rows else pd.Series(dtype=float)
        if len(values) >= 2 and values.iloc[0] > 0:
            ratios.append(float(values.iloc[-1] / values.iloc[0]))
    return ratios


@dataclass(frozen=True)
class LateTrend:
    """How much a metric still moved at the end of the runs: the mean over runs of each run's least-squares slope
    over its last `fraction` of steps × that window's length, relative to the run's mean level there (−0.01: it
    fell by 1 % across the window), with the standard error of that mean (each run's from its own residuals, the
    runs independent), the fewest evaluations any run had in its window, and each run's change over its own
    standard error (`per_run`), so runs drifting in opposite directions cannot cancel into a flat mean."""

    change: float
    error: float
    runs: int
    fraction: float
    fewest: int = 0
    per_run: tuple[float, ...] = ()

    @property
    def rms_in_errors(self) -> float:
        """The root mean square over runs of each run's change / its standard error: about 1 where no run drifts
        beyond its own noise, large where any run drifts, whichever way (a mean of signed changes would let a
        rising run and a falling one cancel)."""
        if not self.per_run:
            return math.nan
        return float(np.sqrt(np.mean(np.square(self.per_run))))

    @property
    def in_errors(self) -> float:
        """|change| / its standard error: how far the drift stands out of the evaluation-to-evaluation noise."""
        if not (math.isfinite(self.change) and math.isfinite(self.error)):
            return math.nan
        return abs(self.change) / self.error if self.error else 0.0 if self.change == 0 else math.inf

    def __str__(self) -> str:
        return (
            f"{self.change:+.2%} ± {self.error:.2%} over the last {self.fraction:.0%} (least-squares slope × "
            f"window, relative to the level; mean of {self.runs} runs)"
        )


def _run_trend(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """One run's relative change across the window by least squares, and its standard error."""
    centred = steps - steps.mean()
    slope = float(centred @ values / (centred @ centred))
    residuals = values - values.mean() - slope * centred
    slope_error = math.sqrt(float(residuals @ residuals) / (len(steps) - 2) / float(centred @ centred))
    scale = (steps[-1] - steps[0]) / abs(values.mean()) if values.mean() else math.nan
    return slope * scale, slope_error * scale


ROUNDING = 1e-9  # a relative change below this is floating-point rounding


def late_trend(runs: pd.DataFrame, metric: str, fraction: float = 0.2) -> LateTrend:
    """The late trend of `metric` (`LateTrend`) over the runs with at least 4 finite values in their last `fraction`
    of steps: whether a slowly moving quantity has stopped moving, judged against its own noise rather than a fixed
    tolerance (under label noise it fluctuates from one evaluation to the next)."""
    trends, counts = [], []
    for _, rows in runs.groupby("run"):
        rows = rows[np.isfinite(rows[metric].astype(float))].sort_values("step") if metric in rows else rows.iloc[0:0]
        if len(rows) < 4:
            counts.append(len(rows))
            continue
        steps, values = rows["step"].to_numpy(float), rows[metric].to_numpy(float)
        window = steps > steps[-1] - fraction * (steps[-1] - steps[0])
        counts.append(int(window.sum()))
        if window.sum() >= 4:
            trends.append(_run_trend(steps[window], values[window]))
    if not trends:
        return LateTrend(math.nan, math.nan, 0, fraction, min(counts, default=0))
    changes, errors = np.array(trends).T
    # A change under 1e-9 of the level is rounding (a constant series), not a trend, whatever its rounded error.
    with np.errstate(divide="ignore", invalid="ignore"):
        per_run = tuple(
            float(z)
            for z in np.where(
                ~(np.isfinite(changes) & np.isfinite(errors)),  # a window whose mean is 0: no relative change
                np.nan,
                np.where(np.abs(changes) < ROUNDING, 0.0, np.where(errors > 0, changes / errors, np.inf)),
            )
        )
    return LateTrend(
        float(changes.mean()),
        float(np.sqrt((errors**2).sum())) / len(trends),
        len(trends),
        fraction,
        min(counts),
        per_run,
    )
