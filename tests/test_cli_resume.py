"""The real CLI stopped by signals and started again: SIGKILL, SIGTERM and Ctrl-C mid-run, a finished run left
alone, and a sweep launched again into its folder."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from noisereg.tracking import read_metrics, read_summary
from noisereg.tracking.wandb_offline import read_offline_run

RUN = ["trainer.steps=4000", "trainer.eval_every=50"]


def start(*arguments: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, WANDB_SILENT="true")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *arguments],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(directory: Path, step: int, process: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be stopped"
        try:
            rows = read_metrics(directory)
        except (FileNotFoundError, json.JSONDecodeError):
            rows = []
        if rows and rows[-1]["step"] >= step:
            return rows[-1]["step"]
        time.sleep(0.02)
    raise TimeoutError(f"no row at step {step} in {timeout} s")


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli("hydra.run.dir=D", *RUN, "logger.mode=disabled", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "D"


def test_sigkill_halfway_then_the_same_command_twice(tmp_path, reference):
    # This process uses W&B first, as a notebook or a driver script might: its W&B service (WANDB_SERVICE in the
    # environment) is inherited by the runs below, and must not own them, or the killed run stays "in use" there.
    import wandb

    wandb.init(mode="offline", dir=str(tmp_path), settings=wandb.Settings(silent=True)).finish()
    assert os.environ.get("WANDB_SERVICE"), "a process that used W&B keeps its service for its children"
    command = ["hydra.run.dir=D", *RUN]  # W&B offline, as a user's default
    process = start(*command, cwd=tmp_path)
    wait_for_step(tmp_path / "D", 1500, process)
    process.kill()
    process.wait()
    assert (tmp_path / "D" / "checkpoint.pt").exists() and not (tmp_path / "D" / "summary.json").exists()
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "from its checkpoint at step" in result.stdout
    assert (tmp_path / "D" / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    logged = read_offline_run(tmp_path / "D")["history"]  # W&B lost what it had not written at the kill
    rows = [json.loads(line) for line in (tmp_path / "D" / "metrics.jsonl").read_text().splitlines()]
    assert [row["_step"] for row in logged] == [row["step"] for row in rows]
    assert [row["train/loss"] for row in logged] == pytest.approx([row["train/loss"] for row in rows])
    before = snapshot(tmp_path / "D")
    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0 and "had finished in D after 4000 steps; nothing to do" in again.stdout
    assert snapshot(tmp_path / "D") == before, "a finished run is left exactly as it was"


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_after_its_step_and_the_same_command_resumes(tmp_path, reference, signum, code):
    command = ["hydra.run.dir=D", *RUN, "logger.mode=disabled"]
    process = start(*command, cwd=tmp_path)
    wait_for_step(tmp_path / "D", 500, process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "[interrupted]" in stdout
    summary = read_summary(tmp_path / "D")
    assert summary["status"] == "interrupted" and summary["signal"] == signal.Signals(signum).name
    assert 500 <= summary["steps"] < 4000 and summary["final_metrics"]["step"] <= summary["steps"]
    hint = f"resume with: python run.py {' '.join(RUN)} logger.mode=disabled hydra.run.dir={tmp_path / 'D'}"
    assert hint in summary["reason"] and hint in stderr, (summary["reason"], stderr)
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"from its checkpoint at step {summary['steps']}" in result.stdout
    assert (tmp_path / "D" / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    assert read_summary(tmp_path / "D")["status"] == "completed"


# The job process as submitit's SLURM launcher makes it: a SIGUSR2 handler (submitit's checkpoints its own state,
# runs `scontrol requeue` and exits) installed before the job runs. Here the handler notes what it found and exits.
LAUNCHER_WITH_A_SIGUSR2_HANDLER = """
import json, os, runpy, signal, sys

def requeue(signum, frame):
    found = {"summary": json.load(open("D/summary.json")), "checkpoint": os.path.exists("D/checkpoint.pt"),
             "sigterm_ignored": signal.getsignal(signal.SIGTERM) == signal.SIG_IGN}
    json.dump(found, open("handed_on.json", "w"))
    sys.exit(-1)

signal.signal(signal.SIGUSR2, requeue)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_resume_command_names_a_default_folder_and_leaves_out_restart(tmp_path):
    """A run in its default, time-stamped folder, started with trainer.resume=restart and stopped: the command it
    prints names that folder and drops the restart, and typed as printed it resumes there."""
    process = start(*RUN, "logger.mode=disabled", "trainer.resume=restart", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("outputs/*/*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (folder,) = [path.parent for path in tmp_path.glob("outputs/*/*/metrics.jsonl")]
    wait_for_step(folder, 500, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    (line,) = [line for line in stderr.splitlines() if "resume with: python run.py " in line]
    command = shlex.split(line.split("resume with: python run.py ", 1)[1])
    assert f"hydra.run.dir={folder}" in command and not any(a.startswith("trainer.resume=") for a in command)
    resumed = run_cli(*command, cwd=tmp_path)
    assert resumed.returncode == 0 and "from its checkpoint at step" in resumed.stdout, resumed.stderr
    assert read_summary(folder)["status"] == "completed" and len(list(tmp_path.glob("outputs/*/*"))) == 1


def test_sigusr2_for_a_launcher_stops_after_the_step_then_goes_to_its_handler(tmp_path, reference):
    command = ["hydra.run.dir=D", *RUN, "logger.mode=disabled"]
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER_WITH_A_SIGUSR2_HANDLER, str(ROOT / "run.py"), *command],
        cwd=tmp_path,
        env=dict(os.environ, WANDB_SILENT="true"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_step(tmp_path / "D", 500, process)
    process.send_signal(signal.SIGUSR2)
    process.send_signal(signal.SIGUSR2)  # SLURM's warning comes twice (to the task and through srun): one stop
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 255, stderr  # the handler's own exit, after the records were written
    assert "noisereg: SIGUSR2 received: stopping after this step and writing a checkpoint" in stdout
    assert "noisereg: SIGUSR2 at step" in stdout and "handing the signal to the launcher" in stdout
    found = json.loads((tmp_path / "handed_on.json").read_text())
    assert found["checkpoint"] and found["sigterm_ignored"], found
    summary = found["summary"]
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGUSR2" and 500 <= summary["steps"] < 4000
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"from its checkpoint at step {summary['steps']}" in result.stdout
    assert (tmp_path / "D" / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()


def test_a_sweep_launched_again_skips_finished_jobs_and_completes_the_rest(tmp_path):
    command = [
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "model.widths=[50]",
        "noise=gd,layerwise",
        "seed=0,1",
        "trainer.checkpoint_every=8",
        "logger.mode=disabled",
        "hydra.sweep.dir=sweep",
    ]
    first = run_cli(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    jobs = sorted((tmp_path / "sweep").glob("[0-9]*"), key=lambda p: int(p.name))
    assert len(jobs) == 4
    finished = {job.name: (job / "metrics.jsonl").read_bytes() for job in jobs}
    # As after a cluster killed the sweep: job 1 lost its summary and last rows, job 2 never started.
    (jobs[1] / "summary.json").unlink()
    rows = (jobs[1] / "metrics.jsonl").read_text().splitlines(keepends=True)
    (jobs[1] / "metrics.jsonl").write_text("".join(rows[:2]))
    shutil.rmtree(jobs[2])
    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "4 of 4 jobs completed or diverged (2 had finished before and were left alone)" in again.stdout
    assert {job.name: (job / "metrics.jsonl").read_bytes() for job in jobs} == finished


def test_a_second_process_cannot_write_a_directory_in_use(tmp_path):
    command = ["hydra.run.dir=D", "trainer.steps=400000", "logger.mode=disabled"]  # runs until stopped
    first = start(*command, cwd=tmp_path)
    try:
        wait_for_step(tmp_path / "D", 100, first)
        second = run_cli(*command, cwd=tmp_path)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"is in use by pid {first.pid}" in lines[0] and "hydra.run.dir" in lines[0]
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    steps = [row["step"] for row in read_metrics(tmp_path / "D")]
    assert steps == sorted(set(steps)), "one writer: strictly increasing steps"
