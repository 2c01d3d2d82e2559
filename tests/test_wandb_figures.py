"""scripts/wandb_figures.py on a real smoke sweep of fig7_mlp1 with W&B offline: the figure run and the workspace
spec, read back from disk (the offline run's records; the spec as W&B would save it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

from noisereg.papers import CLAIMS
from noisereg.tracking.wandb_offline import read_offline_run

pytest.importorskip("wandb_workspaces")


def test_a_smoke_sweep_and_the_figure_step_leave_a_figure_run_and_a_workspace(tmp_path):
    sweep = run_cli("-m", "+experiment=fig7_mlp1", "scale=smoke", "seed=0,1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "wandb_figures.py"), "sweep"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert "fig7_mlp1 (smoke): figure run" in made.stdout

    figure_run = read_offline_run(tmp_path / "sweep")  # <sweep>/wandb/: the figure run's folder
    assert figure_run["job_type"] == "figure" and figure_run["group"] == "fig7_mlp1"
    assert "scale:smoke" in figure_run["tags"]
    (row,) = figure_run["history"]
    assert row["figure/_type"] == "image-file" and row["figure/format"] == "png"
    assert row["figure_data/_type"] == row["claims/_type"] == "table-file"
    figure = json.loads((tmp_path / "sweep" / "figures" / "fig7_mlp1" / "fig7_mlp1.json").read_text())
    points = sum(len(s.get("x", [])) for panel in figure["panels"] for s in panel["series"])
    assert row["figure_data/nrows"] == points and row["claims/ncols"] == 6
    assert row["claims/nrows"] == sum(1 for claim in CLAIMS if claim.experiment == "fig7_mlp1")

    jobs = [read_offline_run(path.parent) for path in (tmp_path / "sweep").glob("[0-9]*/summary.json")]
    assert len(jobs) == 6 and all("scale:smoke" in job["tags"] for job in jobs)

    spec = json.loads((tmp_path / "sweep" / "figures" / "fig7_mlp1" / "fig7_mlp1-smoke.workspace.json").read_text())
    text = json.dumps(spec)
    metrics = {s["metric"] for panel in figure["panels"] if panel["x"] == "step" for s in panel["series"]}
    assert metrics and all(f'"{metric}"' in text for metric in metrics)
    filters = spec["spec"]["section"]["runSets"][0]["filters"] if "runSets" in spec["spec"]["section"] else text
    assert "fig7_mlp1" in json.dumps(filters) and "scale:smoke" in json.dumps(filters)
    assert '"name": "noise_mode.value"' in text, "grouped by the figure's condition (the noise mode)"
