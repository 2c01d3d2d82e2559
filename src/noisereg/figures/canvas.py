"""Drawing on a canvas: a figure's grid of matplotlib panels, each drawn by one method from runs that grouping.py
groups and aggregates — `lines` (a mean line with a band: a metric over steps or epochs, or a probe's saved arrays),
`points`, `scatter`, `heatmap`, `run_curves`, `note`, and from phase_panels.py `phase_bar` and `shade` — and
`save`: `<name>.png` and `<name>.json`, every plotted series with its config values and, per x value, n, mean, std
and SEM over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from noisereg.figures.grouping import (
    Series,
    groups,
    last_arrays,
    last_values,
    plain,
    require_metric,
    rows_at,
    run_points,
    saved_arrays,
    series_of_arrays,
    series_of_rows,
    step_means,
)
from noisereg.figures.phase_panels import PhasePanels

if TYPE_CHECKING:
    from noisereg.figures.registry import FigureSpec

Panel = tuple[int, int]  # (row, column) in the grid
Keys = Sequence[str] | str  # the config keys that tell a panel's groups of runs apart
Label = Callable[[dict[str, Any]], str] | None  # a group's legend from its config (None: key=value, ...)
Arrays = dict[str, np.ndarray]  # the arrays of one saved artifact
XY = tuple[np.ndarray, np.ndarray]  # a curve's x and y values


class Canvas(PhasePanels):
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

    def _panel(self, where: Panel, x: str, y: str, title: str | None, log_x: bool, log_y: bool):
        axis = self.axes[where]
        new = where not in self.panels
        panel = self.panels.setdefault(
            where,
            {
                "row": where[0],
                "column": where[1],
                "title": title,
                "x": x,
                "y": y,
                "log_x": log_x,
                "log_y": log_y,
                "series": [],
            },
        )
        if title:
            axis.set_title(title, fontsize=9)
        if new:  # the axes name the panel's quantity: its first series' (a later one, e.g. a closed-form minimum
            axis.set_xlabel(x, fontsize=8)  # drawn over a loss, is told apart by its legend)
            axis.set_ylabel(y, fontsize=8)
        if log_x:
            axis.set_xscale("log")
        if log_y:
            axis.set_yscale("log")
        axis.tick_params(labelsize=7)
        return axis, panel

    def _name(self, label, config: dict[str, Any], suffix: str, fallback: str) -> str:
        return (label(config) if label else (", ".join(f"{k}={v}" for k, v in config.items()) or fallback)) + suffix

    def lines(
        self,
        where: Panel,
        runs: pd.DataFrame,
        y: str,
        by: Keys = (),
        label: Label = None,
        x: str = "step",
        title: str | None = None,
        log_y: bool = False,
        artifact: str | None = None,
        step: int | None = None,
        individual: bool = False,
        identity_line: bool = False,
    ) -> list[Series]:
        """y over x for each group of runs (`by`: the config keys that tell groups apart), mean ± spread over its
        runs, with a marker where a diverged run stopped. x and y are the metrics the runs logged or, with
        `artifact`, arrays a probe saved (artifacts/<artifact>/<step>.npz) at `step` (None: each run's last saved
        step), a dot at each of their points; `individual` draws every run's arrays on their own instead of the
        mean (e.g. learnt functions whose targets differ by seed). `identity_line` draws y = x (a reliability
        diagram's perfect calibration)."""
        if artifact is None:
            require_metric(runs, y)
        axis, panel = self._panel(where, x, y, title, False, log_y)
        drawn = []
        for config, group, suffix in groups(runs, by, self.varying):
            name = self._name(label, config, suffix, y)
            if artifact is None:
                series = series_of_rows(name, config, group, x, y, self.varying)
            else:
                frames = saved_arrays(group, artifact, x, y, step)
                series = series_of_arrays(name, config, frames, artifact, x, y)
                for frame in frames if individual else ():
                    axis.plot(frame[x], frame[y], lw=1.0, label=name)
            if not individual:
                self._mean_and_band(axis, series, log_y, marked=artifact is not None)
            panel["series"].append(series.as_json())
            drawn.append(series)
        if identity_line:
            axis.plot([0, 1], [0, 1], ":", color="gray", lw=1)
        axis.legend(fontsize=7 if artifact is None else 6)
        return drawn

    def _mean_and_band(self, axis, series: Series, log_y: bool, marked: bool) -> None:
        """The series' mean line, the band of its spread and an x where each diverged run stopped; `marked`: a dot
        at each point (a probe's arrays, a few points each)."""
        xs, means = np.array(series.x, float), np.array(series.mean)
        spread = np.array(getattr(series, self.spec.spread))
        style = {"marker": ".", "lw": 1.2} if marked else {"lw": 1.3}
        (line,) = axis.plot(xs, means, label=self._legend(series), **style)
        lower = np.maximum(means - spread, means / 10) if log_y else means - spread  # a log axis has no 0
        axis.fill_between(xs, lower, means + spread, color=line.get_color(), alpha=0.2, lw=0)
        for stop in series.diverged:
            axis.plot([stop["x"]], [stop["value"]], marker="x", ms=7, mew=2, color=line.get_color())

    def points(
        self,
        where: Panel,
        runs: pd.DataFrame,
        x: str,
        y: str,
        by: Keys = (),
        label: Label = None,
        title: str | None = None,
        log_x: bool = False,
        log_y: bool = False,
        x_value: Callable[[Any], float] | None = None,
    ) -> list[Series]:
        """Each run's final y against a config value x (e.g. σ, width), mean ± spread over seeds per x and group."""
        require_metric(runs, y)
        axis, panel = self._panel(where, x, y, title, log_x, log_y)
        final = last_values(runs, y)
        final = final.assign(**{x: final[x].map(x_value) if x_value else final[x]})
        drawn = []
        for config, group, suffix in groups(final, by, self.varying, pooled=[x]):
            # A diverged run's last value is not a final one: it is marked at the bottom, not averaged.
            series = series_of_rows(
                self._name(label, config, suffix, y), config, group, x, y, self.varying, average_diverged=False
            )
            (line, *_) = axis.errorbar(
                series.x,
                series.mean,
                yerr=getattr(series, self.spec.spread),
                marker="o",
                ms=4,
                capsize=3,
                lw=1.2,
                label=self._legend(series, per_point=True),
            )
            bottom = axis.get_xaxis_transform()  # x in data, y in the axes: 0 is the panel's bottom edge
            for stop in series.diverged:
                axis.plot(
                    [stop["x"]], [0], marker="x", ms=8, mew=2, color=line.get_color(), clip_on=False, transform=bottom
                )
            panel["series"].append(series.as_json())
            drawn.append(series)
        axis.legend(fontsize=7)
        return drawn

    def scatter(
        self,
        where: Panel,
        runs: pd.DataFrame,
        x: str,
        y: str,
        by: Keys = (),
        label: Label = None,
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
        require_metric(runs, x)
        require_metric(runs, y)
        axis, panel = self._panel(where, x, y if not magnitude else f"|{y}|", title, log_x, log_y)
        rows = rows_at(runs, x, y, step)
        drawn = []
        for config, group, suffix in groups(rows, by, self.varying):
            name = self._name(label, config, suffix, y)
            points = run_points(group, x, y, y_error)
            xs = np.array([p["x"] for p in points], float)
            ys = np.array([p["y"] for p in points], float)
            shown = np.abs(ys) if magnitude else ys
            negative = ys < 0
            (marks,) = axis.plot(
                xs[~negative], shown[~negative], "o", ms=3.5, alpha=0.75, label=f"{name} (n={len(points)})"
            )
            if magnitude and negative.any():
                axis.plot(xs[negative], shown[negative], "o", ms=3.5, mfc="none", color=marks.get_color())
            series = {
                "label": name,
                "config": {k: plain(v) for k, v in config.items()},
                "runs": len(points),
                "points": points,
            }
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
        where: Panel,
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
        rows, means, counts = step_means(runs, ys)
        matrix = means.to_numpy(dtype=float)
        low, high = value_range if value_range else (np.nanmin(matrix), np.nanmax(matrix))
        extent = (-0.5, len(ys) - 0.5, float(means.index.min()), float(means.index.max()))
        image = axis.imshow(
            np.clip(matrix, low, high),
            aspect="auto",
            origin="lower",
            vmin=low,
            vmax=high,
            cmap="viridis",
            interpolation="nearest",
            extent=extent,
        )
        axis.set_xticks(range(len(ys)), [str(c) for c in columns], fontsize=6)
        self.figure.colorbar(image, ax=axis, fraction=0.05)
        series = {
            "label": title or "",
            "columns": [plain(c) for c in columns],
            "metrics": list(ys),
            "steps": [plain(s) for s in means.index],
            "n": [int(counts[s]) for s in means.index],
            "runs": int(rows["run"].nunique()),
            "mean": [[plain(v) for v in row] for row in matrix],
            "value_range": [plain(low), plain(high)],
        }
        panel["series"].append(series)
        return series

    def run_curves(
        self,
        where: Panel,
        runs: pd.DataFrame,
        artifact: str,
        xy: Callable[[Arrays], XY],
        by: Keys = (),
        label: Label = None,
        x: str = "x",
        y: str = "y",
        title: str | None = None,
        log_y: bool = False,
        points: Callable[[Arrays], XY] | None = None,
        points_label: str = "data",
    ) -> list[dict[str, Any]]:
        """One line per run, drawn from the arrays it saved last under `artifact` (a probe's artifacts, e.g. the
        learnt function on a grid): `xy(arrays) -> (x, y)`. Runs of one group (`by`) share a colour. `points(arrays)`
        adds markers from the first run's arrays (e.g. the training points). Each run's curve, its config, seed and
        step, goes into the JSON; a run that saved no such artifact is counted as failed."""
        axis, panel = self._panel(where, x, y, title, False, log_y)
        colours = iter(["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"])
        drawn, first_arrays = [], None
        for config, group, suffix in groups(runs, by, self.varying):
            colour, name = next(colours), self._name(label, config, suffix, "")
            values = {k: plain(v) for k, v in config.items()}
            found, failed = last_arrays(group, artifact)
            legend = f"{name} (n={len(found)}{f', {failed} failed' if failed else ''})"
            for index, (run, (step, arrays)) in enumerate(found):
                first_arrays = first_arrays or arrays
                xs, ys = (np.asarray(values, dtype=float) for values in xy(arrays))
                axis.plot(xs, ys, lw=1.0, alpha=0.8, color=colour, label=legend if index == 0 else None)
                rows = group[group["run"] == run]
                curve = {
                    "label": name,
                    "config": values,
                    "run": run,
                    "artifact": artifact,
                    "step": int(step),
                    "seed": plain(rows["seed"].iloc[0]),
                    "status": rows["status"].iloc[0],
                    "x": plain(list(xs)),
                    "y": plain(list(ys)),
                }
                panel["series"].append(curve)
                drawn.append(curve)
            if failed:
                panel["series"].append({"label": name, "config": values, "failed": failed})
        if points is not None and first_arrays is not None:
            xs, ys = (np.asarray(values, dtype=float) for values in points(first_arrays))
            axis.plot(xs, ys, "k--o", ms=4, lw=0.8, label=points_label, zorder=5)
            panel["series"].append({"label": points_label, "x": plain(list(xs)), "y": plain(list(ys))})
        axis.legend(fontsize=7)
        return drawn

    def note(self, where: Panel, text: str, title: str | None = None, x: str = "", y: str = "") -> None:
        """A panel with nothing to plot (e.g. no fit resolved at smoke scale) says why, in the figure and in the JSON
        (`note`); `x` and `y` name the axes it would have had."""
        axis, panel = self._panel(where, x, y, title, False, False)
        axis.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True, transform=axis.transAxes)
        panel["note"] = text

    @staticmethod
    def _legend(series: Series, per_point: bool = False) -> str:
        """The series' label with its n: its runs, or (`per_point`: one point per x, each a mean over the runs at
        that x, e.g. seeds per width) the runs behind each point."""
        low, high = (min(series.n), max(series.n)) if series.n else (0, 0)
        per = f"n={low} per point" if low == high else f"n={low}–{high} per point"
        notes = [per if per_point else f"n={series.runs}"]
        if series.diverged:
            notes.append(f"{len(series.diverged)} diverged (x)")
        if series.failed:
            notes.append(f"{series.failed} failed")
        return f"{series.label} ({', '.join(notes)})"

    def _without_empty_last_rows(self, title: Any) -> Any:
        """The part of the figure (in inches) above its last rows with no panel drawn (Fig. 4's other net, not in
        these records), to be saved alone; None, the whole figure, where the last row has one."""
        if not self.panels or max(row for row, _ in self.panels) == len(self.axes) - 1:
            return None
        from matplotlib.transforms import Bbox

        renderer = self.figure.canvas.get_renderer()
        drawn = [axis.get_tightbbox(renderer) for axis in self.figure.axes if axis.get_visible()]
        box = Bbox.union([*drawn, title.get_window_extent(renderer)])
        return box.transformed(self.figure.dpi_scale_trans.inverted()).padded(0.1)

    def save(self, out: Path, name: str, image: bool = True) -> tuple[Path, Path]:
        """`<out>/<name>.json`, the figure's data, and `<out>/<name>.png` unless `image` is false (the data alone:
        rendering is most of a figure's time)."""
        out.mkdir(parents=True, exist_ok=True)
        for where, axis in np.ndenumerate(self.axes):  # a grid cell the figure left empty is not drawn
            if axis is not None and where not in self.panels:
                axis.set_visible(False)
        png, data = out / f"{name}.png", out / f"{name}.json"
        if image:
            title = self.figure.suptitle(f"{self.spec.title}\n{self.caption}", fontsize=9)
            self.figure.tight_layout()
            self.figure.savefig(png, dpi=110, bbox_inches=self._without_empty_last_rows(title))
        import matplotlib.pyplot as plt

        plt.close(self.figure)
        payload = {
            "experiment": name,
            "paper": self.spec.paper,
            "title": self.spec.title,
            "caption": self.caption,
            "spread": self.spec.spread,
            "panels": list(self.panels.values()),
        }
        data.write_text(json.dumps(payload, indent=1) + "\n")
        return png, data
