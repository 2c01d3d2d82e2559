"""scripts/sync_wandb.py (`make sync DIR=...`): which offline W&B runs it would upload, and its refusals. A real
upload needs W&B credentials and the network, which the test machine has not: that part is not run here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, run_cli

SCRIPT = ROOT / "scripts" / "sync_wandb.py"


def sync(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **(env or {})},
    )


def test_sync_lists_the_runs_not_yet_synced_and_refuses_without_a_server(tmp_path):
    result = run_cli(
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "model.widths=[50]",
        "noise=gd",
        "seed=0,1",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / "sweep").rglob("offline-run-*"))
    assert len(runs) == 2
    for wandb_file in runs[0].glob("run-*.wandb"):  # what `wandb sync` leaves beside a run it uploaded
        Path(f"{wandb_file}.synced").write_text("")
    listed = sync(str(tmp_path / "sweep"), "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[:-1] == [f"would sync {runs[1]}"]
    assert "1 offline runs to sync, 1 already synced" in listed.stdout
    before = sorted(p.name for p in runs[1].iterdir())
    refused = sync(str(tmp_path / "sweep"), env={"WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "0" * 40})
    assert refused.returncode == 2 and "nothing synced" in refused.stderr and "cannot be reached" in refused.stderr
    assert sorted(p.name for p in runs[1].iterdir()) == before
    missing = sync(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
