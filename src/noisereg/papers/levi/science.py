"""Levi, Bloch, Freytsis, Volansky (2022), noise injection nodes: the paper's science, apart from drawing and judging.

Every run is put in one of the four phases of Sec. 3 by one rule (`run_phase`), from its records alone:
- divergent: the run diverged (a non-finite loss), or it failed to learn: its training loss ends above its start, or
  (a classifier) below 20 % training accuracy;
- catapult: within the experiment's catapult window (`CATAPULT_WINDOWS`: the first 3 epochs of the MLPs, the first 500
  steps of the linear toy model, whatever the run's length) the clean training loss or ‖W_NI‖ rises above 1.1× its
  start, and the run recovers (it is not divergent);
- decay: ‖W_NI‖ ends below half its start;
- decoupled: otherwise (‖W_NI‖ wanders, the data weights learn as without the node).
Decay time scales are fits y = A e^(−t/τ) + C (fits.py) to ‖W_NI‖, the training loss and the test loss (the latter
up to its minimum), each from its largest value in the first half of the run on; t in steps (linear toy model) or
epochs (MLPs). The predicted ones are `probes.nin_time_scales`' (Eq. 10, App. D), converted to the same unit.
`run_table` gathers one row per run: its phase, fitted and predicted time scales; figures.py draws it and
claims.py judges it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.fits import ExponentialFit, fit_exponential
from noisereg.figures.grouping import phase_counts
from noisereg.records import RUN_COLUMNS, config_columns

PAPER = "Levi et al. 2022"
PHASES = ("decoupled", "decay", "catapult", "divergent")
# The phase rule's thresholds are ours (the paper draws the phases by eye): their rule texts say so.
RISE = 1.1  # catapult: a rise of the loss or of ‖W_NI‖ above this factor of its start, within the catapult window
DECAYED = 0.5  # decay: ‖W_NI‖ ends below this fraction of its start
FAILED_ACCURACY = 0.2  # divergent: a classifier ending below this training accuracy
NIW, LAYER, NEXT = "noise/nin_weight_norm", "noise/nin_layer_weight_norm", "noise/next_layer_weight_norm"
SIGMA2 = "noise/sigma_squared"  # σ², a column of `run_table`
MODES = {"epoch": "re-initialized NIN", "fixed": "fixed NIN", "step": "NIN (fresh ε every step)"}
# Eq. 9 is App. D's continuous-time limit: it holds while the predicted NIW decay takes more than one SGD step
# (ησ²(w⁽¹⁾)² < 1 for the toy model); nearer the catapult boundary the discrete steps overshoot and oscillate.
CONTINUOUS = "theory/continuous_time"
FITTED = {"niw": (NIW, False), "train": ("train/loss", False), "test": ("test/loss", True)}
TABLE1_WIDTH = 1024  # App. B: N_w of Figs 2 (bottom) and 3, at which Table 1 gives its strengths


@dataclass(frozen=True)
class Window:
    """The start of a run where the catapult's rise is looked for, in fixed units of one records column (`step` or
    `epoch`): fixed, so that a longer run does not widen it."""

    unit: str
    length: float

    def __str__(self) -> str:
        return f"the first {self.length:g} {self.unit}s"

    def holds(self, rows: pd.DataFrame) -> np.ndarray:
        return (rows[self.unit].astype(float) <= self.length).to_numpy()


# Ours. The MLPs: their first 3 epochs (10 % of the 30-epoch runs of Figs 2-3), which Figs 2-3 evaluate every 6
# steps (trainer.early_eval_every: a catapult rises and recovers within the first epoch), Fig. 1 once an epoch. The
# linear toy model: 500 steps, 10 % of its configured 5,000 (conf/experiment/levi/fig2_linear_toy.yaml), the window
# its verdicts were judged in when it was 10 % of the run.
CATAPULT_WINDOWS = {
    "levi_fig2_linear_toy": Window("step", 500),
    "levi_fig1_decay_times": Window("epoch", 3),
    "levi_fig2_mlp_mse": Window("epoch", 3),
    "levi_fig3_mlp_ce": Window("epoch", 3),
}


def catapult_window(rows: pd.DataFrame) -> Window:
    experiment = rows["experiment"].iloc[0] if "experiment" in rows and len(rows) else None
    if experiment not in CATAPULT_WINDOWS:
        raise SettingError(f"{experiment}: no catapult window for the phase rule (papers/levi CATAPULT_WINDOWS)")
    return CATAPULT_WINDOWS[experiment]


def run_phase(rows: pd.DataFrame) -> str:
    """The phase of one run (its rows, one per logged step), by the rule in the module's docstring."""
    rows = rows.sort_values("step")
    loss, niw = rows["train/loss"].astype(float).to_numpy(), rows[NIW].astype(float).to_numpy()
    if rows["status"].iloc[0] == "diverged" or not np.isfinite(loss).all() or not np.isfinite(niw).all():
        return "divergent"
    if loss[-1] > loss[0]:
        return "divergent"
    if "train/acc" in rows and rows["train/acc"].notna().any() and float(rows["train/acc"].iloc[-1]) < FAILED_ACCURACY:
        return "divergent"
    early = catapult_window(rows).holds(rows)
    if loss[early].max() > RISE * loss[0] or niw[early].max() > RISE * niw[0]:
        return "catapult"
    return "decay" if niw[-1] < DECAYED * niw[0] else "decoupled"


def decay_fit(rows: pd.DataFrame, x: str, y: str, until_minimum: bool = False) -> ExponentialFit:
    """y = A e^(−x/τ) + C over one run, from the largest value in the first half of the run on (a catapult rises
    first), to the end or to the smallest value after that (a test loss that rises again)."""
    rows = rows.sort_values(x)
    finite = rows[np.isfinite(rows[y].astype(float))] if y in rows else rows.iloc[0:0]
    values = finite[y].astype(float).to_numpy()
    if len(values) < 4:
        return fit_exponential([], [])
    start = int(np.argmax(values[: max(1, len(values) // 2)]))
    end = start + int(np.argmin(values[start:])) + 1 if until_minimum else len(values)
    return fit_exponential(finite[x].astype(float).to_numpy()[start:end], values[start:end])


def steps_per_unit(rows: pd.DataFrame, x: str) -> float:
    """Steps per unit of x: 1 for steps, steps per epoch for epochs."""
    if x == "step":
        return 1.0
    logged = rows[rows["epoch"] > 0]
    return float(logged["step"].iloc[0] / logged["epoch"].iloc[0]) if len(logged) else math.nan


def run_table(runs: pd.DataFrame, x: str) -> pd.DataFrame:
    """One row per run: its config and run columns, σ², phase, fitted time scales (with standard errors) and the
    predicted ones (at the start and at the end of the run), all in units of x."""
    keep = [c for c in (*config_columns(runs), *RUN_COLUMNS) if c in runs]
    table = []
    for _, rows in runs.groupby("run"):
        rows = rows[rows["step"].notna()].sort_values("step")
        if rows.empty or NIW not in rows or rows[NIW].isna().all():  # rejected settings: nothing to place
            continue
        record: dict[str, Any] = {column: rows[column].iloc[0] for column in keep}
        # A report asks for the same runs' table from every claim and figure: each run is measured once.
        key = (rows["run"].iloc[0], x, len(rows), float(rows["step"].iloc[-1]), float(rows[NIW].astype(float).sum()))
        if key not in _MEASURED:
            if len(_MEASURED) >= _MEASURED_LIMIT:  # bounded: a long-lived process reading many sweeps stays small
                _MEASURED.clear()
            _MEASURED[key] = run_measures(rows, x)
        record.update(_MEASURED[key])
        table.append(record)
    return pd.DataFrame(table)


_MEASURED: dict[tuple, dict[str, Any]] = {}  # (run, x, rows, last step, Σ‖W_NI‖) -> run_measures
_MEASURED_LIMIT = 4096  # runs; a report of every committed sweep measures a few hundred


def run_measures(rows: pd.DataFrame, x: str) -> dict[str, Any]:
    """One run's (rows sorted by step) σ², phase, fitted time scales with standard errors and predicted ones, in
    units of x."""
    record: dict[str, Any] = {"step": rows["step"].max(), SIGMA2: float(rows["noise.sigma"].iloc[0]) ** 2}
    record["phase"] = run_phase(rows)
    for name, (metric, until_minimum) in FITTED.items():
        fit = decay_fit(rows, x, metric, until_minimum)
        record[f"fit/tau_{name}"], record[f"fit/tau_{name}_stderr"] = fit.tau, fit.tau_stderr
    # The probe's times are in η·steps (App. D's continuous time); here in units of x.
    lr = float(rows["trainer.optimizer.lr"].iloc[0])
    unit = lr * steps_per_unit(rows, x)
    for metric, name in (("tau/noise_theory", "noise"), ("tau/loss_theory", "loss")):
        values = rows[metric].astype(float) if metric in rows else pd.Series([math.nan])
        values = values[np.isfinite(values)]
        record[f"theory/tau_{name}_start"] = values.iloc[0] / unit if len(values) else math.nan
        record[f"theory/tau_{name}_end"] = values.iloc[-1] / unit if len(values) else math.nan
    start = rows["tau/noise_theory"].astype(float).iloc[0] if "tau/noise_theory" in rows else math.nan
    record[CONTINUOUS] = bool(start / lr > 1)
    return record


def majority_phases(table: pd.DataFrame, x: str) -> dict[Any, str]:
    counts, _ = phase_counts(table, x, PHASES, log_x=False)
    return {value: max(PHASES, key=lambda p: (by_phase[p], PHASES.index(p))) for value, by_phase in counts.items()}


def representatives(table: pd.DataFrame, x: str) -> dict[str, Any]:
    """For each phase, the middle value of x among those whose runs are mostly in it (what the paper plots)."""
    chosen = {}
    for phase in PHASES:
        values = sorted(value for value, majority in majority_phases(table, x).items() if majority == phase)
        if values:
            chosen[phase] = values[(len(values) - 1) // 2]
    return chosen


def decay_fits(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Decay-phase runs with a resolved fit of `column`, in the continuous-time regime of Eq. 9."""
    return table[(table["phase"] == "decay") & np.isfinite(table[column].astype(float)) & table[CONTINUOUS]]


def nin_runs(table: pd.DataFrame) -> pd.DataFrame:
    """Runs with noise (σ > 0); σ = 0 is the baseline without a NIN."""
    return table[table[SIGMA2] > 0]


def sigma_label(value: float) -> str:
    return f"{value:.3g}"


PAPER_TRAIN_IMAGES = 42_000  # App. B: FMNIST's 70,000 images split 60/40 (dataset=fmnist_full, n_train null)
FMNIST_IMAGES = 70_000


def training_images(runs: pd.DataFrame) -> float:
    """The fewest training images over the runs: dataset.n_train, capped by (or, where null, equal to) fmnist_full's
    training share of its 70,000 images."""
    counts = []
    for _, first in runs.groupby("run").head(1).iterrows():
        n_train = first.get("dataset.n_train")
        given = math.inf if n_train is None or pd.isna(n_train) else float(n_train)
        share = math.inf
        if first.get("dataset.name") == "fmnist_full":
            fraction = first.get("dataset.train_fraction")
            share = float(round((0.6 if fraction is None or pd.isna(fraction) else float(fraction)) * FMNIST_IMAGES))
        counts.append(min(given, share))
    return min(counts) if counts and math.isfinite(min(counts)) else math.nan
