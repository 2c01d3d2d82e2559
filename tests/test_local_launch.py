"""`hydra/launcher=submitit_local` on the real submitit local executor: at most as many jobs at once as the machine
holds (cores, free memory), the rest queued; a stopped launch ends its jobs, which checkpoint first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, stop_once_training

from noisereg.tracking import read_summary
from noisereg.tracking.local_jobs import JOB_BYTES, job_limit

SMOKE = [
    "-m",
    "+experiment=fig2_synthetic",
    "logger.mode=disabled",
    "model.widths=[50]",
    "noise=gd",
    "hydra/launcher=submitit_local",
    "hydra.sweep.dir=sweep",
]
ENV = dict(os.environ, WANDB_SILENT="true", HYDRA_FULL_ERROR="0")


def test_the_limit_is_the_cores_or_what_the_memory_holds():
    assert job_limit(cores=2, available=24 * 2**30) == 2
    assert job_limit(cores=16, available=3 * JOB_BYTES + 1) == 3  # memory binds before cores
    assert job_limit(cores=16, available=JOB_BYTES // 2) == 1  # always at least one


def running_intervals(sweep: Path) -> list[tuple[float, float]]:
    """Each job's (start, end): its run.json is written when it starts, its summary.json when it ends."""
    return [((path.parent / "run.json").stat().st_mtime, path.stat().st_mtime) for path in sweep.rglob("summary.json")]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:  # an end sorts before a start at the same time
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.skipif(not Path("/usr/bin/taskset").exists(), reason="needs taskset (util-linux) to pin to one core")
def test_a_local_sweep_runs_no_more_jobs_at_once_than_the_machine_holds(tmp_path):
    """Pinned to one core the machine holds one job: three jobs run one after the other, all complete."""
    command = ["/usr/bin/taskset", "-c", "0", sys.executable, str(ROOT / "run.py"), *SMOKE, "scale=smoke", "seed=0,1,2"]
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "submitit_local runs at most 1 job at once on this machine (1 cores" in result.stdout
    assert "hydra.sweeper.max_batch_size" in result.stdout
    intervals = running_intervals(tmp_path / "sweep")
    assert len(intervals) == 3 and most_at_once(intervals) == 1
    assert all(read_summary(p.parent)["status"] == "completed" for p in (tmp_path / "sweep").rglob("summary.json"))


def test_a_stopped_local_sweep_ends_its_jobs_which_checkpoint_first(tmp_path):
    """SIGTERM to the launch: one line, exit 143, no traceback; every job stops after its step with a checkpoint
    (summary `interrupted`), and no process of the sweep is left running."""
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        *SMOKE,
        "trainer.steps=100000000",
        "trainer.eval_every=100000",
        "trainer.checkpoint_every=100000",
        "hydra.sweeper.max_batch_size=2",
        "seed=0,1,2",
    ]
    launch = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr, descendants = stop_once_training(launch, tmp_path / "sweep", 2, signal.SIGTERM)
    assert launch.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if "stopped by SIGTERM" in line]
    assert "2 running jobs" in line and "run the same command to resume" in line
    assert not [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    summaries = [read_summary(p.parent) for p in (tmp_path / "sweep").rglob("summary.json")]
    assert len(summaries) == 2 and {s["status"] for s in summaries} == {"interrupted"}
    assert len(list((tmp_path / "sweep").rglob("checkpoint.pt"))) == 2
