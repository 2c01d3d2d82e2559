"""The figure layer: run records -> the paper's figure (PNG) and its data (JSON).

Each paper has one module in this package with one function per figure, registered under the name of the
experiment whose runs it draws:

    @figure("fig2_synthetic", paper=ORVIETO, title="Fig. 2: original and regularised loss, widths 50 and 300")
    def fig2_synthetic(runs: pd.DataFrame, canvas: Canvas) -> None:
        canvas.lines((0, 0), runs, "train/loss", by="noise.name")

`plot_experiment(name, folders, out)` finds the experiment's runs (noisereg.records.load_runs), groups them by
their config minus the seed, lets the figure function draw, and writes `<out>/<name>.png` and `<out>/<name>.json`:
every plotted series with its config values, and per x value n, mean, std and SEM over seeds, the runs that
diverged (where they stopped) and the count of runs that failed. Diverged and failed runs are results: they are
marked and counted, never dropped silently.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.claims import condition_keys
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


@dataclass
class FigureSpec:
    experiment: str
    paper: str
    title: str
    draw: Callable[[pd.DataFrame, "Canvas"], None]
    spread: str  # the band drawn around a mean: std (Orvieto App. F) or sem (Orvieto Fig. 6)
    panels: tuple[int, int]


FIGURES: dict[str, FigureSpec] = {}


def figure(experiment: str, paper: str, title: str, spread: str = "std", panels: tuple[int, int] = (1, 1)):
    def register(draw: Callable[[pd.DataFrame, Canvas], None]) -> Callable[[pd.DataFrame, Canvas], None]:
        FIGURES[experiment] = FigureSpec(experiment, paper, title, draw, spread, panels)
        return draw

    return register


def group_keys(runs: pd.DataFrame) -> list[str]:
    """The config keys whose values differ between the runs: what tells their conditions apart (a seed-like key
    never)."""
    firsts = runs.groupby("run").head(1) if "run" in runs else runs
    return [column for column in condition_keys(firsts) if firsts[column].map(repr).nunique() > 1]


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars to Python, tuples to lists, NaN to None."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
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
        return {key: _plain(value) for key, value in self.__dict__.items()}


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


class Canvas:
    """A grid of matplotlib panels and the series drawn on them, saved together as PNG and JSON."""

    def __init__(self, spec: FigureSpec, caption: str, varying: Sequence[str] = ()):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.spec, self.caption = spec, caption
        self.varying = list(varying)  # the config keys that tell the experiment's groups apart
        rows, columns = spec.panels
        self.figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.5 * rows), squeeze=False)
        self.axes = axes
        self.panels: dict[tuple[int, int], dict[str, Any]] = {}

    def _panel(self, where: tuple[int, int], x: str, y: str, title: str | None, log_x: bool, log_y: bool):
        axis = self.axes[where]
        panel = self.panels.setdefault(where, {"row": where[0], "column": where[1], "title": title, "x": x, "y": y,
                                               "log_x": log_x, "log_y": log_y, "series": []})  # fmt: skip
        if title:
            axis.set_title(title, fontsize=9)
        axis.set_xlabel(x, fontsize=8)
        axis.set_ylabel(y, fontsize=8)
        if log_x:
            axis.set_xscale("log")
        if log_y:
            axis.set_yscale("log")
        axis.tick_params(labelsize=7)
        return axis, panel

    def _groups(self, runs: pd.DataFrame, by: Sequence[str], pooled: Sequence[str] = ()
                ) -> Iterable[tuple[dict[str, Any], pd.DataFrame, str]]:  # fmt: skip
        """The runs by the `by` keys, each group split further by any other condition key that varies inside it
        (runs of two folders that differ in σ never pool into one series; `pooled`: keys a panel spreads along its
        x axis); yields (config, group, suffix naming the extra keys' values for the label)."""
        by = list(by)
        extra = [k for k in self.varying if k not in by and k not in pooled and k in runs]
        for values, group in (runs.groupby(by, sort=True, dropna=False) if by else [((), runs)]):
            values = values if isinstance(values, tuple) else (values,)
            config = dict(zip(by, values))
            inside = [k for k in extra if group[k].map(repr).nunique() > 1]
            if not inside:
                yield config, group, ""
                continue
            for _, part in group.groupby(group[inside].apply(lambda row: "\x1f".join(map(repr, row)), axis=1)):
                split = {k: part[k].iloc[0] for k in inside}
                yield {**config, **split}, part, " (" + ", ".join(f"{k}={v}" for k, v in split.items()) + ")"

    def _name(self, label, config: dict[str, Any], suffix: str, fallback: str) -> str:
        return (label(config) if label else (", ".join(f"{k}={v}" for k, v in config.items()) or fallback)) + suffix

    def lines(
        self,
        where: tuple[int, int],
        runs: pd.DataFrame,
        y: str,
        by: Sequence[str] | str = (),
        label: Callable[[dict[str, Any]], str] | None = None,
        x: str = "step",
        title: str | None = None,
        log_y: bool = False,
    ) -> list[Series]:
        """y over x for each group of runs (`by`: the config keys that tell groups apart), mean ± spread over seeds,
        with a marker where a diverged run stopped."""
        by = [by] if isinstance(by, str) else list(by)
        require_metric(runs, y)
        axis, panel = self._panel(where, x, y, title, False, log_y)
        drawn = []
        for config, group, suffix in self._groups(runs, by):
            series = self._series(config, group, x, y, label, suffix=suffix)
            xs, means, spread = np.array(series.x, float), np.array(series.mean), np.array(getattr(series, self.spec.spread))
            (line,) = axis.plot(xs, means, lw=1.3, label=self._legend(series))
            lower = np.maximum(means - spread, means / 10) if log_y else means - spread  # a log axis has no 0
            axis.fill_between(xs, lower, means + spread, color=line.get_color(), alpha=0.2, lw=0)
            for stop in series.diverged:
                axis.plot([stop["x"]], [stop["value"]], marker="x", ms=7, mew=2, color=line.get_color())
            panel["series"].append(series.as_json())
            drawn.append(series)
        axis.legend(fontsize=7)
        return drawn

    def points(
        self,
        where: tuple[int, int],
        runs: pd.DataFrame,
        x: str,
        y: str,
        by: Sequence[str] | str = (),
        label: Callable[[dict[str, Any]], str] | None = None,
        title: str | None = None,
        log_x: bool = False,
        log_y: bool = False,
        x_value: Callable[[Any], float] | None = None,
    ) -> list[Series]:
        """Each run's final y against a config value x (e.g. σ, width), mean ± spread over seeds per x and group."""
        by = [by] if isinstance(by, str) else list(by)
        require_metric(runs, y)
        axis, panel = self._panel(where, x, y, title, log_x, log_y)
        final = last_values(runs, y)
        final = final.assign(**{x: final[x].map(x_value) if x_value else final[x]})
        drawn = []
        for config, group, suffix in self._groups(final, by, pooled=[x]):
            # A diverged run's last value is not a final one: it is marked at the bottom, not averaged.
            series = self._series(config, group, x, y, label, average_diverged=False, suffix=suffix)
            (line, *_) = axis.errorbar(series.x, series.mean, yerr=getattr(series, self.spec.spread), marker="o", ms=4,
                                       capsize=3, lw=1.2, label=self._legend(series))  # fmt: skip
            for stop in series.diverged:
                axis.plot([stop["x"]], [0], marker="x", ms=8, mew=2, color=line.get_color(), clip_on=False,
                          transform=axis.get_xaxis_transform())  # fmt: skip
            panel["series"].append(series.as_json())
            drawn.append(series)
        axis.legend(fontsize=7)
        return drawn

    def scatter(
        self,
        where: tuple[int, int],
        runs: pd.DataFrame,
        x: str,
        y: str,
        by: Sequence[str] | str = (),
        label: Callable[[dict[str, Any]], str] | None = None,
        step: int | None = 0,
        y_error: str | None = None,
        title: str | None = None,
        log_x: bool = False,
        log_y: bool = False,
        identity_line: bool = False,
        magnitude: bool = False,
    ) -> list[dict[str, Any]]:
        """One point per run: metric y against metric x at `step` (None: each run's last row with y), coloured by
        group. `magnitude` plots |y| (negative values as open markers, so a log axis can show them); the JSON keeps
        the signed values and, with `y_error`, each point's error. `identity_line` draws y = x."""
        by = [by] if isinstance(by, str) else list(by)
        require_metric(runs, x)
        require_metric(runs, y)
        axis, panel = self._panel(where, x, y if not magnitude else f"|{y}|", title, log_x, log_y)
        rows = runs[np.isfinite(runs[y].astype(float)) & np.isfinite(runs[x].astype(float))]
        rows = rows[rows["step"] == step] if step is not None else rows.sort_values("step").groupby("run").tail(1)
        drawn = []
        for config, group, suffix in self._groups(rows, by):
            name = self._name(label, config, suffix, y)
            points = [{"run": r["run"], "seed": _plain(r["seed"]), "step": _plain(r["step"]), "x": _plain(r[x]),
                       "y": _plain(r[y]), **({"y_error": _plain(r[y_error])} if y_error and y_error in r else {})}
                      for _, r in group.iterrows()]  # fmt: skip
            xs = np.array([p["x"] for p in points], float)
            ys = np.array([p["y"] for p in points], float)
            shown = np.abs(ys) if magnitude else ys
            negative = ys < 0
            (marks,) = axis.plot(xs[~negative], shown[~negative], "o", ms=3.5, alpha=0.75,
                                 label=f"{name} (n={len(points)})")  # fmt: skip
            if magnitude and negative.any():
                axis.plot(xs[negative], shown[negative], "o", ms=3.5, mfc="none", color=marks.get_color())
            series = {"label": name, "config": {k: _plain(v) for k, v in config.items()}, "runs": len(points),
                      "points": points}  # fmt: skip
            panel["series"].append(series)
            drawn.append(series)
        if identity_line and len(rows):
            values = np.concatenate([rows[x].astype(float).to_numpy(), np.abs(rows[y].astype(float).to_numpy())])
            values = values[values > 0] if (log_x or log_y) else values
            if values.size:
                low, high = float(values.min()), float(values.max())
                axis.plot([low, high], [low, high], ":", color="red", lw=1, label="y = x")
        if magnitude:
            axis.plot([], [], "o", ms=3.5, mfc="none", color="gray", label=f"{y} < 0")
        axis.legend(fontsize=6)
        return drawn

    def heatmap(
        self,
        where: tuple[int, int],
        runs: pd.DataFrame,
        ys: Sequence[str],
        columns: Sequence[Any],
        title: str | None = None,
        x_label: str = "",
        value_range: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        """Metrics `ys` (one column each, named by `columns`) against the step (rows), mean over the runs, as an
        image; the JSON holds the steps, the columns, the mean matrix (unclipped) and the runs per step."""
        for y in ys:
            require_metric(runs, y)
        axis, panel = self._panel(where, x_label, "step", title, False, False)
        rows = runs[runs[list(ys)].notna().all(axis=1)]
        means = rows.groupby("step")[list(ys)].mean()
        counts = rows.groupby("step")["run"].nunique()
        matrix = means.to_numpy(dtype=float)
        low, high = value_range if value_range else (np.nanmin(matrix), np.nanmax(matrix))
        extent = (-0.5, len(ys) - 0.5, float(means.index.min()), float(means.index.max()))
        image = axis.imshow(np.clip(matrix, low, high), aspect="auto", origin="lower", vmin=low, vmax=high,
                            cmap="viridis", interpolation="nearest", extent=extent)  # fmt: skip
        axis.set_xticks(range(len(ys)), [str(c) for c in columns], fontsize=6)
        self.figure.colorbar(image, ax=axis, fraction=0.05)
        series = {"label": title or "", "columns": [_plain(c) for c in columns], "metrics": list(ys),
                  "steps": [_plain(s) for s in means.index], "n": [int(counts[s]) for s in means.index],
                  "runs": int(rows["run"].nunique()), "mean": [[_plain(v) for v in row] for row in matrix],
                  "value_range": [_plain(low), _plain(high)]}  # fmt: skip
        panel["series"].append(series)
        return series

    def curves(
        self,
        where: tuple[int, int],
        runs: pd.DataFrame,
        artifact: str,
        x: str,
        y: str,
        by: Sequence[str] | str = (),
        label: Callable[[dict[str, Any]], str] | None = None,
        step: int | None = None,
        title: str | None = None,
        identity_line: bool = False,
        individual: bool = False,
    ) -> list[Series]:
        """Arrays saved by a probe (artifacts/<artifact>/<step>.npz): y against x at `step` (None: each run's last
        saved step), mean ± spread over the runs of each group per x value — or, with `individual`, every run's
        curve on its own (e.g. learnt functions whose targets differ by seed). `identity_line` draws y = x (a
        reliability diagram's perfect calibration)."""
        by = [by] if isinstance(by, str) else list(by)
        axis, panel = self._panel(where, x, y, title, False, False)
        drawn = []
        for config, group, suffix in self._groups(runs, by):
            name = self._name(label, config, suffix, y)
            frames = []
            for run in group["run"].unique():
                saved = list_artifacts(run).get(artifact, [])
                at = saved[-1] if step is None and saved else step
                if at is None or at not in saved:
                    continue
                arrays = read_artifact(run, artifact, at)
                frames.append(pd.DataFrame({"run": run, x: arrays[x].astype(float), y: arrays[y].astype(float)}))
            if not frames:
                raise SettingError(f"{group['experiment'].iloc[0]}: no run saved the artifact {artifact!r}; run them "
                                   f"with probes.{artifact}.every set")  # fmt: skip
            values = pd.concat(frames, ignore_index=True)
            if individual:
                for run, rows in values.groupby("run", sort=False):
                    axis.plot(rows[x], rows[y], lw=1.0, label=name)
            series = Series(name, {k: _plain(v) for k, v in config.items()}, len(frames), metric=f"{artifact}/{y}")
            series.x, series.n, series.mean, series.std, series.sem = aggregate(values, x, y)
            if not individual:
                xs, means = np.array(series.x, float), np.array(series.mean)
                spread = np.array(getattr(series, self.spec.spread))
                (line,) = axis.plot(xs, means, marker=".", lw=1.2, label=self._legend(series))
                axis.fill_between(xs, means - spread, means + spread, color=line.get_color(), alpha=0.2, lw=0)
            panel["series"].append(series.as_json())
            drawn.append(series)
        if identity_line:
            axis.plot([0, 1], [0, 1], ":", color="gray", lw=1)
        axis.legend(fontsize=6)
        return drawn

    def run_curves(
        self,
        where: tuple[int, int],
        runs: pd.DataFrame,
        artifact: str,
        xy: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]],
        by: Sequence[str] | str = (),
        label: Callable[[dict[str, Any]], str] | None = None,
        x: str = "x",
        y: str = "y",
        title: str | None = None,
        log_y: bool = False,
        points: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]] | None = None,
        points_label: str = "data",
    ) -> list[dict[str, Any]]:
        """One line per run, drawn from the arrays it saved last under `artifact` (a probe's artifacts, e.g. the
        learnt function on a grid): `xy(arrays) -> (x, y)`. Runs of one group (`by`) share a colour. `points(arrays)`
        adds markers from the first run's arrays (e.g. the training points). Each run's curve, its config, seed and
        step, goes into the JSON; a run that saved no such artifact is counted as failed."""
        by = [by] if isinstance(by, str) else list(by)
        axis, panel = self._panel(where, x, y, title, False, log_y)
        colours = iter(["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"])
        drawn, first_arrays = [], None
        for config, group, suffix in self._groups(runs, by):
            colour, name = next(colours), self._name(label, config, suffix, "")
            values = {k: _plain(v) for k, v in config.items()}
            saved = [(run, arrays_at_last_step(run, artifact)) for run in sorted(group["run"].unique())]
            found = [(run, step_arrays) for run, step_arrays in saved if step_arrays is not None]
            failed = len(saved) - len(found)
            legend = f"{name} (n={len(found)}{f', {failed} failed' if failed else ''})"
            for index, (run, (step, arrays)) in enumerate(found):
                first_arrays = first_arrays or arrays
                xs, ys = (np.asarray(values, dtype=float) for values in xy(arrays))
                axis.plot(xs, ys, lw=1.0, alpha=0.8, color=colour, label=legend if index == 0 else None)
                rows = group[group["run"] == run]
                curve = {"label": name, "config": values, "run": run, "artifact": artifact, "step": int(step),
                         "seed": _plain(rows["seed"].iloc[0]), "status": rows["status"].iloc[0],
                         "x": _plain(list(xs)), "y": _plain(list(ys))}  # fmt: skip
                panel["series"].append(curve)
                drawn.append(curve)
            if failed:
                panel["series"].append({"label": name, "config": values, "failed": failed})
        if points is not None and first_arrays is not None:
            xs, ys = (np.asarray(values, dtype=float) for values in points(first_arrays))
            axis.plot(xs, ys, "k--o", ms=4, lw=0.8, label=points_label, zorder=5)
            panel["series"].append({"label": points_label, "x": _plain(list(xs)), "y": _plain(list(ys))})
        axis.legend(fontsize=7)
        return drawn

    def note(self, where: tuple[int, int], text: str, title: str | None = None, x: str = "", y: str = "") -> None:
        """A panel with nothing to plot (e.g. no fit resolved at smoke scale) says why, in the figure and in the JSON
        (`note`); `x` and `y` name the axes it would have had."""
        axis, panel = self._panel(where, x, y, title, False, False)
        axis.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True, transform=axis.transAxes)
        panel["note"] = text

    def _series(self, config, group, x, y, label, average_diverged: bool = True, suffix: str = "") -> Series:
        name = self._name(label, config, suffix, y)
        with_values = group[np.isfinite(group[y].astype(float))] if y in group else group.iloc[0:0]
        runs = group["run"].unique()
        # The group's config: every key that varies across the experiment and is single-valued here (the panel's
        # selection too, e.g. the width of a Fig. 2 column), so a reader can find the runs behind each series.
        fixed = {k: group[k].iloc[0] for k in self.varying
                 if k in group and group[k].notna().all() and group[k].map(repr).nunique() == 1}  # fmt: skip
        series = Series(name, {k: _plain(v) for k, v in {**fixed, **config}.items()}, len(runs), metric=y)
        series.failed = sum(1 for run in runs if run not in set(with_values["run"]))
        for run, rows in with_values.groupby("run"):
            if rows["status"].iloc[0] == "diverged":
                last = rows.sort_values(x).iloc[-1]
                series.diverged.append({"run": run, "x": _plain(last[x]), "value": _plain(last[y]),
                                        "step": _plain(rows["steps"].iloc[0])})  # fmt: skip
        if not average_diverged:
            with_values = with_values[with_values["status"] != "diverged"]
        series.x, series.n, series.mean, series.std, series.sem = aggregate(with_values, x, y)
        return series

    def phase_bar(
        self,
        row: int,
        cells: pd.DataFrame,
        x: str,
        order: Sequence[str],
        colors: dict[str, str],
        title: str | None = None,
        log_x: bool = True,
    ) -> None:
        """One axis across the whole row: for each value of x (e.g. σ), the phase most of its runs are in, as
        coloured regions meeting halfway between neighbouring values, a marker per value and the runs' count.
        `cells` has one row per run with columns x and `phase`; the JSON holds one series per phase: per x value
        the number of runs in that phase (n) and their fraction of the runs at x (mean)."""
        grid = self.axes[row, 0].get_gridspec()
        for axis in self.axes[row, :]:
            axis.remove()
        axis = self.figure.add_subplot(grid[row, :])
        self.axes[row, 0] = axis
        self.axes[row, 1:] = None
        _, panel = self._panel((row, 0), x, "phase", title, log_x, False)
        axis.set_yticks([])
        counts, spans = phase_counts(cells, x, order, log_x)
        for phase, low, high in spans:
            axis.axvspan(low, high, color=colors[phase], alpha=0.35, lw=0)
            axis.text(math.sqrt(low * high) if log_x else (low + high) / 2, 0.5, phase, ha="center", va="center",
                      fontsize=8)  # fmt: skip
        for x_value, by_phase in counts.items():
            majority = max(order, key=lambda p: (by_phase.get(p, 0), order.index(p)))
            axis.plot([x_value], [0.15], marker="*", ms=9, color=colors[majority])
            axis.text(x_value, 0.85, "/".join(str(by_phase.get(p, 0)) for p in order if by_phase.get(p)), ha="center",
                      fontsize=6)  # fmt: skip
        axis.set_ylim(0, 1)
        if spans:
            axis.set_xlim(spans[0][1], spans[-1][2])
        for phase in order:
            xs = [x_value for x_value, by_phase in counts.items() if by_phase.get(phase)]
            totals = [sum(counts[x_value].values()) for x_value in xs]
            numbers = [counts[x_value][phase] for x_value in xs]
            series = Series(phase, {"phase": phase}, sum(numbers), x=xs, n=numbers, metric="phase",
                            mean=[n / total for n, total in zip(numbers, totals)])  # fmt: skip
            panel["series"].append(series.as_json())
        panel["spans"] = [{"phase": phase, "from": low, "to": high} for phase, low, high in spans]

    def shade(self, where: tuple[int, int], cells: pd.DataFrame, x: str, order: Sequence[str],
              colors: dict[str, str], log_x: bool = True) -> None:  # fmt: skip
        """Shade a panel's x axis by phase (as `phase_bar` draws them), recorded as the panel's `spans`."""
        axis = self.axes[where]
        _, spans = phase_counts(cells, x, order, log_x)
        for phase, low, high in spans:
            axis.axvspan(low, high, color=colors[phase], alpha=0.15, lw=0)
        self.panels.setdefault(where, {"row": where[0], "column": where[1], "title": None, "x": x, "y": None,
                                       "log_x": log_x, "log_y": False, "series": []})  # fmt: skip
        self.panels[where]["spans"] = [{"phase": phase, "from": low, "to": high} for phase, low, high in spans]

    @staticmethod
    def _legend(series: Series) -> str:
        notes = [f"n={series.runs}"]
        if series.diverged:
            notes.append(f"{len(series.diverged)} diverged (x)")
        if series.failed:
            notes.append(f"{series.failed} failed")
        return f"{series.label} ({', '.join(notes)})"

    def save(self, out: Path, name: str, image: bool = True) -> tuple[Path, Path]:
        """`<out>/<name>.json`, the figure's data, and `<out>/<name>.png` unless `image` is false (the data alone:
        rendering is most of a figure's time)."""
        out.mkdir(parents=True, exist_ok=True)
        for where, axis in np.ndenumerate(self.axes):  # a grid cell the figure left empty is not drawn
            if axis is not None and where not in self.panels:
                axis.set_visible(False)
        png, data = out / f"{name}.png", out / f"{name}.json"
        if image:
            self.figure.suptitle(f"{self.spec.title}\n{self.caption}", fontsize=9)
            self.figure.tight_layout()
            self.figure.savefig(png, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(self.figure)
        payload = {"experiment": name, "paper": self.spec.paper, "title": self.spec.title, "caption": self.caption,
                   "spread": self.spec.spread, "panels": list(self.panels.values())}  # fmt: skip
        data.write_text(json.dumps(payload, indent=1) + "\n")
        return png, data


def phase_counts(
    cells: pd.DataFrame, x: str, order: Sequence[str], log_x: bool
) -> tuple[dict[Any, dict[str, int]], list[tuple[str, float, float]]]:
    """Per value of x, how many runs are in each phase; and the regions of the majority phases, neighbouring
    values' regions meeting halfway (geometrically on a log axis, where values <= 0 are left out)."""
    cells = cells[cells[x] > 0] if log_x else cells
    counts: dict[Any, dict[str, int]] = {}
    for x_value, group in cells.groupby(x, sort=True):
        counts[_plain(x_value)] = {phase: int((group["phase"] == phase).sum()) for phase in order}
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


def arrays_at_last_step(run: str, artifact: str) -> tuple[int, dict[str, np.ndarray]] | None:
    """The arrays a run saved last under `artifact`, with their step; None if it saved none."""
    steps = list_artifacts(run).get(artifact)
    return (steps[-1], read_artifact(run, artifact, steps[-1])) if steps else None


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
        raise SettingError(f"runs of {experiment} at mixed scales ({where}) under {', '.join(folders)}: plot one "
                           "scale at a time (pass the folder of one sweep)")  # fmt: skip
    return scales[0]


def runs_of(experiment: str, folders: Sequence[str | os.PathLike], runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The runs of one experiment under the folders; a one-line error naming what was found instead."""
    if runs is None:
        runs = load_runs(folders)
    shown = ", ".join(str(f) for f in folders)
    if runs.empty:
        raise SettingError(f"no run records (summary.json or run.json) under {shown}")
    # Only the columns this experiment's runs logged: nothing loaded beside it can change its figure.
    selected = runs[runs["experiment"] == experiment].dropna(axis=1, how="all")
    if selected.empty:
        found = runs.groupby("experiment")["run"].nunique()
        listing = ", ".join(f"{name} ({count} runs)" for name, count in found.items())
        raise SettingError(f"no runs of {experiment} under {shown}; found: {listing}")
    return selected


def caption(runs: pd.DataFrame, scale: str) -> str:
    seeds = runs.groupby("run")["seed"].first().nunique()
    statuses = runs.groupby("run")["status"].first().value_counts()
    counted = ", ".join(f"{count} {status}" for status, count in statuses.items())
    return f"scale={scale}; {runs['run'].nunique()} runs ({counted}); {seeds} seeds"


def plot_experiment(
    experiment: str, folders: Sequence[str | os.PathLike], out: str | os.PathLike | None = None,
    runs: pd.DataFrame | None = None, image: bool = True,
) -> tuple[Path, Path]:
    """Draw `experiment`'s figure from the runs under `folders` into `out` (default results/<experiment>/); `image`:
    false writes its data (JSON) alone."""
    import noisereg.figures  # noqa: F401  (registers every paper's figures)

    if experiment not in FIGURES:
        raise SettingError(f"no figure is defined for {experiment}; figures exist for: {', '.join(sorted(FIGURES))}")
    folders = [str(f) for f in folders]
    selected = runs_of(experiment, folders, runs)
    scale = scale_of(selected, experiment, folders)
    spec = FIGURES[experiment]
    canvas = Canvas(spec, caption(selected, scale), group_keys(selected))
    spec.draw(selected, canvas)
    return canvas.save(Path(out) if out is not None else Path("results") / experiment, experiment, image=image)
