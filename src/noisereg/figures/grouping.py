"""From run records to what a figure plots: the runs of an experiment, grouped by their config minus the seed, and
per group and x value the n, mean, std and SEM over runs (`Series`), the runs that diverged (where they stopped)
and the count of runs that failed. Diverged and failed runs are results: they are marked and counted, never
dropped silently. Drawing them is canvas.py's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.selection import condition_keys
from noisereg.records import load_runs
from noisereg.tracking.records import list_artifacts, read_artifact

SCALES = ("smoke", "cpu", "cpu_quarter", "paper")  # from smallest to largest
# Which setting makes a run log a metric, for the error that names it.
METRIC_SETTINGS = {
    "theory/R_sigma_mc": "curvature.every and curvature.monte_carlo_repeats",
    "hessian/": "curvature.every",
    "reg/": "curvature.every",
    "loss/regularized": "curvature.every",
    "theory/": "curvature.every",
    "tau/": "probes.nin_time_scales.every",
}


def group_keys(runs: pd.DataFrame) -> list[str]:
    """The config keys whose values differ between the runs: what tells their conditions apart (a seed-like key
    never)."""
    firsts = runs.groupby("run").head(1) if "run" in runs else runs
    return [column for column in condition_keys(firsts) if firsts[column].map(repr).nunique() > 1]


def plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars to Python, tuples to lists, NaN to None."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


@dataclass
class Series:
    label: str
    config: dict[str, Any]
    runs: int
    x: list[float] = field(default_factory=list)
    n: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    sem: list[float] = field(default_factory=list)
    diverged: list[dict[str, Any]] = field(default_factory=list)  # where each diverged run's curve stops
    failed: int = 0  # runs that logged no value of this metric (rejected settings, crashed before training)
    metric: str = ""  # the y it plots (a panel may hold several metrics, e.g. one line per layer)

    def as_json(self) -> dict[str, Any]:
        return {key: plain(value) for key, value in self.__dict__.items()}


def aggregate(values: pd.DataFrame, x: str, y: str) -> tuple[list, list, list, list, list]:
    """Per x value: n, mean, std (ddof 1; 0 for one run) and SEM over runs of the finite values of y."""
    finite = values[np.isfinite(values[y].astype(float))]
    xs, ns, means, stds, sems = [], [], [], [], []
    for x_value, group in finite.groupby(x, sort=True):
        column = group[y].astype(float).to_numpy()
        n = len(column)
        std = float(column.std(ddof=1)) if n > 1 else 0.0
        xs.append(x_value)
        ns.append(n)
        means.append(float(column.mean()))
        stds.append(std)
        sems.append(std / math.sqrt(n))
    return xs, ns, means, stds, sems


def groups(
    runs: pd.DataFrame, by: Sequence[str] | str, varying: Sequence[str], pooled: Sequence[str] = ()
) -> Iterable[tuple[dict[str, Any], pd.DataFrame, str]]:
    """The runs by the `by` key or keys, each group split further by any other condition key (`varying`: those of
    the experiment) that varies inside it (runs of two folders that differ in σ never pool into one series;
    `pooled`: keys a panel spreads along its x axis); yields (config, group, suffix naming the extra keys' values for
    the label)."""
    by = [by] if isinstance(by, str) else list(by)
    extra = [k for k in varying if k not in by and k not in pooled and k in runs]
    for values, group in runs.groupby(by, sort=True, dropna=False) if by else [((), runs)]:
        values = values if isinstance(values, tuple) else (values,)
        config = dict(zip(by, values))
        inside = [k for k in extra if group[k].map(repr).nunique() > 1]
        if not inside:
            yield config, group, ""
            continue
        for _, part in group.groupby(group[inside].apply(lambda row: "\x1f".join(map(repr, row)), axis=1)):
            split = {k: part[k].iloc[0] for k in inside}
            yield {**config, **split}, part, " (" + ", ".join(f"{k}={v}" for k, v in split.items()) + ")"


def series_of_rows(
    name: str,
    config: dict[str, Any],
    group: pd.DataFrame,
    x: str,
    y: str,
    varying: Sequence[str],
    average_diverged: bool = True,
) -> Series:
    """The metric y of a group's rows against x, aggregated over its runs; where each diverged run stopped, averaged
    in or (`average_diverged` false: a last value that is not a final one) left out."""
    with_values = group[np.isfinite(group[y].astype(float))] if y in group else group.iloc[0:0]
    runs = group["run"].unique()
    # The group's config: every key that varies across the experiment and is single-valued here (the panel's
    # selection too, e.g. the width of a Fig. 2 column), so a reader can find the runs behind each series.
    fixed = {
        k: group[k].iloc[0]
        for k in varying
        if k in group and group[k].notna().all() and group[k].map(repr).nunique() == 1
    }
    series = Series(name, {k: plain(v) for k, v in {**fixed, **config}.items()}, len(runs), metric=y)
    series.failed = sum(1 for run in runs if run not in set(with_values["run"]))
    for run, rows in with_values.groupby("run"):
        if rows["status"].iloc[0] == "diverged":
            last = rows.sort_values(x).iloc[-1]
            series.diverged.append(
                {"run": run, "x": plain(last[x]), "value": plain(last[y]), "step": plain(rows["steps"].iloc[0])}
            )
    if not average_diverged:
        with_values = with_values[with_values["status"] != "diverged"]
    series.x, series.n, series.mean, series.std, series.sem = aggregate(with_values, x, y)
    return series


def saved_arrays(group: pd.DataFrame, artifact: str, x: str, y: str, step: int | None) -> list[pd.DataFrame]:
    """The arrays x and y that each run of the group saved under `artifact` at `step` (None: its last saved step),
    one frame per run that saved them; a one-line error when none did."""
    frames = []
    for run in group["run"].unique():
        saved = list_artifacts(run).get(artifact, [])
        at = saved[-1] if step is None and saved else step
        if at is None or at not in saved:
            continue
        arrays = read_artifact(run, artifact, at)
        frames.append(pd.DataFrame({"run": run, x: arrays[x].astype(float), y: arrays[y].astype(float)}))
    if not frames:
        raise SettingError(
            f"{group['experiment'].iloc[0]}: no run saved the artifact {artifact!r}; run them "
            f"with probes.{artifact}.every set"
        )
    return frames


def series_of_arrays(
    name: str, config: dict[str, Any], frames: Sequence[pd.DataFrame], artifact: str, x: str, y: str
) -> Series:
    """Saved arrays (`saved_arrays`) of y against x, aggregated over the runs that saved them."""
    series = Series(name, {k: plain(v) for k, v in config.items()}, len(frames), metric=f"{artifact}/{y}")
    series.x, series.n, series.mean, series.std, series.sem = aggregate(pd.concat(frames, ignore_index=True), x, y)
    return series


def phase_counts(
    cells: pd.DataFrame, x: str, order: Sequence[str], log_x: bool
) -> tuple[dict[Any, dict[str, int]], list[tuple[str, float, float]]]:
    """Per value of x, how many runs are in each phase; and the regions of the majority phases, neighbouring
    values' regions meeting halfway (geometrically on a log axis, where values <= 0 are left out)."""
    cells = cells[cells[x] > 0] if log_x else cells
    counts: dict[Any, dict[str, int]] = {}
    for x_value, group in cells.groupby(x, sort=True):
        counts[plain(x_value)] = {phase: int((group["phase"] == phase).sum()) for phase in order}
    xs = list(counts)
    if not xs:
        return counts, []
    middle = (lambda a, b: math.sqrt(a * b)) if log_x else (lambda a, b: (a + b) / 2)
    edges = [middle(a, b) for a, b in zip(xs[:-1], xs[1:])]
    if len(xs) == 1:
        first, last = (xs[0] / 2, xs[0] * 2) if log_x else (xs[0] - 0.5, xs[0] + 0.5)
    else:
        first = xs[0] ** 2 / edges[0] if log_x else 2 * xs[0] - edges[0]
        last = xs[-1] ** 2 / edges[-1] if log_x else 2 * xs[-1] - edges[-1]
    bounds = [first, *edges, last]
    spans = []
    for index, x_value in enumerate(xs):
        majority = max(order, key=lambda p: (counts[x_value].get(p, 0), order.index(p)))
        if spans and spans[-1][0] == majority:
            spans[-1] = (majority, spans[-1][1], bounds[index + 1])
        else:
            spans.append((majority, bounds[index], bounds[index + 1]))
    return counts, spans


def phase_series(counts: dict[Any, dict[str, int]], order: Sequence[str]) -> list[Series]:
    """One series per phase of `phase_counts`: per x value the number of runs in that phase (n) and their fraction
    of the runs at x (mean)."""
    series = []
    for phase in order:
        xs = [x_value for x_value, by_phase in counts.items() if by_phase.get(phase)]
        totals = [sum(counts[x_value].values()) for x_value in xs]
        numbers = [counts[x_value][phase] for x_value in xs]
        series.append(
            Series(
                phase,
                {"phase": phase},
                sum(numbers),
                x=xs,
                n=numbers,
                metric="phase",
                mean=[n / total for n, total in zip(numbers, totals)],
            )
        )
    return series


def arrays_at_last_step(run: str, artifact: str) -> tuple[int, dict[str, np.ndarray]] | None:
    """The arrays a run saved last under `artifact`, with their step; None if it saved none."""
    steps = list_artifacts(run).get(artifact)
    return (steps[-1], read_artifact(run, artifact, steps[-1])) if steps else None


def last_arrays(group: pd.DataFrame, artifact: str) -> tuple[list[tuple[str, tuple[int, dict[str, np.ndarray]]]], int]:
    """Each run of the group that saved arrays under `artifact`, in the order of their names, with its last step and
    arrays; and how many runs saved none."""
    saved = [(run, arrays_at_last_step(run, artifact)) for run in sorted(group["run"].unique())]
    found = [(run, step_arrays) for run, step_arrays in saved if step_arrays is not None]
    return found, len(saved) - len(found)


def rows_at(runs: pd.DataFrame, x: str, y: str, step: int | None) -> pd.DataFrame:
    """Each run's row at `step` where both x and y are finite (None: its last such row)."""
    rows = runs[np.isfinite(runs[y].astype(float)) & np.isfinite(runs[x].astype(float))]
    return rows[rows["step"] == step] if step is not None else rows.sort_values("step").groupby("run").tail(1)


def run_points(rows: pd.DataFrame, x: str, y: str, y_error: str | None = None) -> list[dict[str, Any]]:
    """One point per row (`rows_at`): its run, seed, step, x and y, and with `y_error` that metric as its error."""
    return [
        {
            "run": r["run"],
            "seed": plain(r["seed"]),
            "step": plain(r["step"]),
            "x": plain(r[x]),
            "y": plain(r[y]),
            **({"y_error": plain(r[y_error])} if y_error and y_error in r else {}),
        }
        for _, r in rows.iterrows()
    ]


def step_means(runs: pd.DataFrame, ys: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The rows that hold every metric of `ys`; per step, the mean of each over those rows and the number of runs."""
    rows = runs[runs[list(ys)].notna().all(axis=1)]
    return rows, rows.groupby("step")[list(ys)].mean(), rows.groupby("step")["run"].nunique()


def last_values(runs: pd.DataFrame, y: str) -> pd.DataFrame:
    """Each run's last finite value of y (a run without one keeps a NaN row, so it is counted as failed)."""
    finite = runs[np.isfinite(runs[y].astype(float))] if y in runs else runs.iloc[0:0]
    last = finite.sort_values("step").groupby("run").tail(1)
    missing = runs[~runs["run"].isin(last["run"])].groupby("run").tail(1).assign(**{y: math.nan})
    return pd.concat([last, missing], ignore_index=True)


def require_metric(runs: pd.DataFrame, metric: str) -> None:
    if metric in runs and runs[metric].notna().any():
        return
    setting = next((s for prefix, s in METRIC_SETTINGS.items() if metric.startswith(prefix)), None)
    fix = f"; run them with {setting} set" if setting else ""
    experiment = runs["experiment"].iloc[0] if len(runs) else "these runs"
    raise SettingError(f"{experiment}: no run logged {metric}{fix}")


def scale_of(runs: pd.DataFrame, experiment: str, folders: Sequence[str]) -> str:
    scales = sorted(runs["scale"].unique(), key=lambda s: SCALES.index(s) if s in SCALES else -1)
    if len(scales) > 1:
        where = "; ".join(f"{s}: {runs[runs['scale'] == s]['run'].nunique()} runs" for s in scales)
        raise SettingError(
            f"runs of {experiment} at mixed scales ({where}) under {', '.join(folders)}: plot one "
            "scale at a time (pass the folder of one sweep)"
        )
    return scales[0]


def experiment_rows(runs: pd.DataFrame, experiment: str, reads_also: Sequence[str] = ()) -> pd.DataFrame:
    """The rows an experiment's figure and claims read, with only the columns those runs logged or configured (so
    nothing loaded beside it can change them): its own runs, or where it has none, those of the experiments in
    `reads_also` (a figure the paper draws from another figure's networks), labelled as its own."""
    if runs.empty:
        return runs
    selected = runs[runs["experiment"] == experiment]
    if selected.empty and reads_also:
        selected = runs[runs["experiment"].isin(reads_also)].assign(experiment=experiment)
    return selected.dropna(axis=1, how="all")


def runs_of(
    experiment: str,
    folders: Sequence[str | os.PathLike],
    runs: pd.DataFrame | None = None,
    reads_also: Sequence[str] = (),
) -> pd.DataFrame:
    """`experiment_rows` of the runs under the folders; a one-line error naming what was found instead."""
    if runs is None:
        runs = load_runs(folders)
    shown = ", ".join(str(f) for f in folders)
    if runs.empty:
        raise SettingError(f"no run records (summary.json or run.json) under {shown}")
    selected = experiment_rows(runs, experiment, reads_also)
    if selected.empty:
        found = runs.groupby("experiment")["run"].nunique()
        listing = ", ".join(f"{name} ({count} runs)" for name, count in found.items())
        also = f" (nor of {', '.join(reads_also)}, whose runs it also reads)" if reads_also else ""
        raise SettingError(f"no runs of {experiment}{also} under {shown}; found: {listing}")
    return selected


def caption(runs: pd.DataFrame, scale: str) -> str:
    seeds = runs.groupby("run")["seed"].first().nunique()
    statuses = runs.groupby("run")["status"].first().value_counts()
    counted = ", ".join(f"{count} {status}" for status, count in statuses.items())
    return f"scale={scale}; {runs['run'].nunique()} runs ({counted}); {seeds} seeds"
