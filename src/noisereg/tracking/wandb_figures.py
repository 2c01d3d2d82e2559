"""The paper's figures in W&B, made from the same records as results/ (scripts/wandb_figures.py).

Per experiment and scale:
- a figure run: `job_type=figure` in the experiment's group, tagged `scale:<name>`, logging the figure's PNG
  (`wandb.Image`), its data (`wandb.Table`, one row per plotted point: panel, series, metric, x, n, mean, spread) and
  its claims (`wandb.Table`: claim, verdict, numbers, rule); offline by default, synced with the rest;
- a saved workspace (W&B's `wandb-workspaces`): a section per figure whose line plots are the figure's metrics
  against step or epoch, grouped by the figure's conditions (mean ± standard error over seeds), its runs filtered to
  the experiment and the scale. Offline its spec is written as JSON beside the figure; online it is saved and its
  URL printed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

FIGURE_JOB_TYPE = "figure"
# A figure's condition keys as the runs' top-level chart keys (tracking/wandb_logger.chart_keys). The other keys of a
# noise mode or model that differ between conditions come with its name (noise.groups with noise.name) and are left
# out of the grouping.
CHART_KEYS = {
    "noise.name": "noise_mode",
    "noise.sigma": "sigma",
    "noise.variance": "variance",
    "model.widths": "width",
    "model.name": "model_name",
}
TIME_AXES = {"step": "Step", "epoch": "epoch"}  # a figure's x column -> W&B's x axis (our step is W&B's Step)


def _number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def figure_rows(figure: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A figure's data (its JSON) as one table: a row per plotted point of every panel's series."""
    columns = ["panel", "series", "metric", "x", "n", "mean", "std"]
    rows = []
    for panel in figure["panels"]:
        title = panel.get("title") or f"panel {panel['row']},{panel['column']}"
        for series in panel["series"]:
            label, metric = series.get("label", ""), series.get("metric") or panel.get("y")
            if isinstance(series.get("x"), list) and isinstance(series.get("mean"), list):
                stds = series.get("std") or [None] * len(series["x"])
                ns = series.get("n") or [None] * len(series["x"])
                for x, n, mean, std in zip(series["x"], ns, series["mean"], stds):
                    if not isinstance(mean, list):
                        rows.append([title, label, metric, _number(x), n, _number(mean), _number(std)])
            for point in series.get("points", []):  # one point per run
                rows.append([title, label, metric, _number(point.get("x")), 1, _number(point.get("y")), None])
            if isinstance(series.get("steps"), list) and isinstance(series.get("metrics"), list):  # a heat map
                for step, n, means in zip(series["steps"], series.get("n", []), series.get("mean", [])):
                    for name, mean in zip(series["metrics"], means):
                        rows.append([title, label, name, _number(step), n, _number(mean), None])
    return columns, rows


def claim_rows(rows: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """The report's rows of one experiment and scale (figures.report.ReportRow) as one table."""
    columns = ["figure", "claim", "verdict", "numbers", "rule", "what would settle it"]
    return columns, [[r.claim.figure, r.claim.quote, r.shown, r.numbers, r.rule, r.settle] for r in rows]


def time_panels(figure: dict[str, Any]) -> list[tuple[str, str, list[str], bool]]:
    """The figure's panels drawn over training: (title, W&B x axis, metrics, log y)."""
    found = []
    for panel in figure["panels"]:
        if panel.get("x") not in TIME_AXES:
            continue
        metrics = sorted({s.get("metric") or panel.get("y") for s in panel["series"]} - {None, ""})
        if metrics:
            found.append(
                (panel.get("title") or ", ".join(metrics), TIME_AXES[panel["x"]], metrics, bool(panel.get("log_y")))
            )
    return found


def grouping(conditions: Sequence[str]) -> list[str]:
    """The W&B config keys a figure's runs are grouped by: its condition keys, as chart keys where there is one."""
    charted = [CHART_KEYS[key] for key in conditions if key in CHART_KEYS]
    return charted + [key for key in conditions if key not in CHART_KEYS and not key.startswith(("noise.", "model."))]


def workspace(
    experiment: str,
    scale: str,
    figure: dict[str, Any],
    conditions: Sequence[str],
    entity: str,
    project: str,
    title: str,
):
    """The figure's saved view (wandb_workspaces.workspaces.Workspace): its time panels as line plots, mean ±
    standard error over the runs of each condition, runs filtered to the experiment and the scale."""
    import wandb_workspaces.reports.v2 as reports
    import wandb_workspaces.workspaces as workspaces

    panels = [
        reports.LinePlot(
            title=name, x=x, y=list(metrics), log_y=log_y or None, groupby_aggfunc="mean", groupby_rangefunc="stderr"
        )
        for name, x, metrics, log_y in time_panels(figure)
    ]
    settings = workspaces.RunsetSettings(
        filters=[workspaces.Config("experiment") == experiment, workspaces.Tags("tags").isin([f"scale:{scale}"])],
        groupby=[workspaces.Config(key) for key in grouping(conditions)],
    )
    section = workspaces.Section(name=title, panels=panels, is_open=True)
    return workspaces.Workspace(
        entity=entity, project=project, name=f"{experiment} ({scale})", sections=[section], runset_settings=settings
    )


def workspace_spec(view) -> dict[str, Any]:
    """A workspace as the JSON W&B saves (its view), built without the network."""
    return json.loads(view._to_model().model_dump_json())


def log_figure_run(
    experiment: str,
    scale: str,
    png: Path,
    figure: dict[str, Any],
    claims: Sequence[Any],
    directory: Path,
    mode: str = "offline",
    project: str = "noisereg",
    entity: str | None = None,
) -> str:
    """The figure run of one experiment and scale (see the module's docstring); returns its run id."""
    import wandb

    run = wandb.init(
        mode=mode,
        project=project,
        entity=entity,
        group=experiment,
        job_type=FIGURE_JOB_TYPE,
        name=f"{experiment} figure ({scale})",
        tags=[f"scale:{scale}", FIGURE_JOB_TYPE],
        config={"experiment": experiment, "scale_name": scale},
        dir=str(directory),
        reinit="create_new",
        settings=wandb.Settings(console="off", silent=True),
    )
    figure_columns, figure_data = figure_rows(figure)
    claim_columns, claim_data = claim_rows(claims)
    run.log(
        {
            "figure": wandb.Image(str(png), caption=figure.get("caption")),
            "figure_data": wandb.Table(columns=figure_columns, data=figure_data),
            "claims": wandb.Table(columns=claim_columns, data=claim_data),
        }
    )
    run_id = run.id
    run.finish()
    return run_id
