"""The cluster path on a real single-node SLURM (scripts/slurm.sh; started for these tests when it is not running,
and stopped after them): sweeps through `hydra/launcher=slurm` with the records of the basic launcher, the preset's
settings as SLURM granted them, a job requeued mid-run, a job at its time limit, and a sweep whose submitting
process was killed. Where no cluster can start here, the test header says why and these tests are skipped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SLURM_SCRIPT, run_cli

from noisereg.tracking import read_metrics, read_summary

LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
]
SMOKE = ["-m", "+experiment=fig2_synthetic", "scale=smoke", "model.widths=[50]", "seed=0", "logger.mode=disabled"]


@pytest.fixture(scope="module")
def cluster():
    """The environment that points SLURM's commands at the cluster."""
    started = False
    if subprocess.run([str(SLURM_SCRIPT), "status"]).returncode != 0:
        up = subprocess.run([str(SLURM_SCRIPT), "up"], capture_output=True, text=True, timeout=600)
        if up.returncode == 3:
            pytest.skip(up.stdout.strip())
        assert up.returncode == 0, up.stdout + up.stderr
        started = True
    setting = subprocess.run([str(SLURM_SCRIPT), "env"], capture_output=True, text=True, check=True).stdout.strip()
    name, _, value = setting.partition("=")
    yield {name: value}
    if started:
        subprocess.run([str(SLURM_SCRIPT), "down"], check=True)


def slurm(*command: str, env: dict) -> str:
    return subprocess.run(command, env=dict(os.environ, **env), capture_output=True, text=True, check=True).stdout


def start(*arguments: str, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *arguments],
        cwd=cwd,
        env=dict(os.environ, WANDB_SILENT="true", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def records(sweep: Path) -> dict[str, bytes]:
    return {job.name: (job / "metrics.jsonl").read_bytes() for job in sorted(sweep.glob("[0-9]*"))}


def array_job(sweep: Path) -> str:
    """The SLURM job id of the sweep's array (submitit's folders are named <array>_<task>)."""
    return next(p.name.split("_")[0] for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))


def job_log(sweep: Path, task: int) -> str:
    folder = sweep / ".submitit" / f"{array_job(sweep)}_{task}"
    return "".join(path.read_text() for path in sorted(folder.glob("*_log.*")))


def wait_for(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what}: not within {timeout} s")


def last_step(directory: Path) -> int:
    try:
        rows = read_metrics(directory)
    except (FileNotFoundError, json.JSONDecodeError):
        return -1
    return rows[-1]["step"] if rows else -1


def finished(directory: Path) -> bool:
    try:
        return read_summary(directory)["status"] == "completed"
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def in_queue(job: str, env: dict) -> bool:
    """Whether a task of array `job` is still pending or running."""
    listed = slurm("squeue", "--noheader", "--array", "--states=all", "--format=%i %T", env=env)
    return re.search(rf"^{job}_\d+ (PENDING|CONFIGURING|RUNNING|COMPLETING|REQUEUED)", listed, re.MULTILINE) is not None


@pytest.fixture(scope="module")
def basic_smoke(tmp_path_factory):
    """The smoke sweep's records as Hydra's basic launcher writes them; computed beside the first SLURM sweep."""
    folder = tmp_path_factory.mktemp("basic")
    process = start(*SMOKE, "hydra.sweep.dir=sweep", cwd=folder, env={})
    result: dict[str, bytes] = {}

    def records_of_the_basic_launcher() -> dict[str, bytes]:
        if not result:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr
            result.update(records(folder / "sweep"))
        return result

    return records_of_the_basic_launcher


def test_a_sweep_through_slurm_completes_with_the_records_of_the_basic_launcher(cluster, basic_smoke, tmp_path):
    setup_log = tmp_path / "setup.log"
    result = run_cli(
        *SMOKE,
        *LAUNCHER,
        "hydra.sweep.dir=sweep",
        "hydra.launcher.timeout_min=7",
        "hydra.launcher.array_parallelism=2",
        f'hydra.launcher.setup=["echo $SLURM_ARRAY_TASK_ID $SLURM_CPUS_PER_TASK >> {setup_log}"]',
        cwd=tmp_path,
        env=cluster,
    )
    assert result.returncode == 0, result.stderr
    assert "noisereg: sweep sweep: 3 of 3 jobs completed or diverged" in result.stdout
    assert "sacct" not in result.stdout + result.stderr, "job states come from squeue on a cluster without accounting"
    assert len(basic_smoke()) == 3 and records(tmp_path / "sweep") == basic_smoke()
    assert sorted(setup_log.read_text().splitlines()) == ["0 1", "1 1", "2 1"], "setup lines run in every job"
    job = array_job(tmp_path / "sweep")
    for task in range(3):  # what SLURM granted each job, as the preset's fields asked
        granted = slurm("scontrol", "show", "job", f"{job}_{task}", env=cluster)
        for field in (
            "Partition=debug",
            "TimeLimit=00:07:00",
            "NumCPUs=1",
            "CPUs/Task=1",
            "MinMemoryNode=2G",
            "TresPerNode=gres:gpu:0",
            "ArrayTaskThrottle=2",
        ):
            assert field in granted, f"{field} not in the record of {job}_{task}:\n{granted}"


def test_settings_the_cluster_cannot_meet_are_one_line_and_exit_2(cluster, tmp_path):
    # The preset asks for one GPU per job; this cluster has none, and sbatch says so.
    result = run_cli(
        "-m",
        "seed=0,1",
        "logger.mode=disabled",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        env=cluster,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("noisereg:")]
    assert len(ours) == 1 and "the cluster refused the jobs" in ours[0] and "gpus_per_node" in ours[0], result.stderr
    assert "Invalid generic resource" in ours[0]
    assert not list((tmp_path / "sweep").glob("[0-9]*")), "no job ran"


# Two runs stopped mid-run: job 0 of one sweep by `scontrol requeue` in its first seconds, and the job of another by
# SLURM's warning before its one-minute time limit. SLURM checks time limits every 30 s and sends the warning
# (SIGUSR2, `signal_delay_s` before the limit) at the first check after limit - delay - 30 s: with 60 - 20 - 30,
# between 10 and 40 s after the job starts. So that job trains for 55 s (the other for 8 s): a margin over 40 s, as
# a job under SLURM can run faster than the speed measured first (a quiet machine: 2000 against 1800 steps/s);
# how many steps that is on this machine is measured first.
TRAINING_S = {"requeued": 8, "time-limited": 55}


@pytest.fixture(scope="module")
def steps_per_second(tmp_path_factory) -> float:
    """Training speed here, as the progress line of a short run reports it."""
    result = run_cli(
        "hydra.run.dir=run",
        "trainer.steps=6000",
        "trainer.eval_every=500",
        "logger.mode=disabled",
        cwd=tmp_path_factory.mktemp("speed"),
    )
    assert result.returncode == 0, result.stderr
    return float(re.findall(r"train: step 6000/6000 .* ([\d.e+]+) steps/s", result.stderr)[-1])


@pytest.fixture(scope="module")
def preempted(cluster, steps_per_second, tmp_path_factory):
    """Both sweeps through SLURM, and the same runs by the basic launcher beside them, uninterrupted."""
    folder = tmp_path_factory.mktemp("preempted")
    steps = {name: int(steps_per_second * seconds) // 1000 * 1000 for name, seconds in TRAINING_S.items()}
    run = ["trainer.eval_every=500", "logger.mode=disabled"]
    requeued = ["-m", f"trainer.steps={steps['requeued']},200", *run]  # two jobs: an array
    limited = ["-m", f"trainer.steps={steps['time-limited']}", *run]  # one job
    reference = start(
        "-m",
        f"trainer.steps={steps['requeued']},200,{steps['time-limited']}",
        *run,
        "hydra.sweep.dir=basic",
        "trainer.progress_bar=false",
        cwd=folder,
        env={},
    )
    submitters = {
        "requeued": start(*requeued, *LAUNCHER, "hydra.sweep.dir=requeued", cwd=folder, env=cluster),
        "time-limited": start(
            *limited,
            *LAUNCHER,
            "hydra.sweep.dir=time-limited",
            "hydra.launcher.timeout_min=1",
            "hydra.launcher.signal_delay_s=20",
            "hydra.launcher.max_num_timeout=10",
            cwd=folder,
            env=cluster,
        ),  # warned 10-40 s into each run: a busy machine may need over 5 runs
    }
    job = folder / "requeued" / "0"
    requeued_at = wait_for(lambda: max(last_step(job), 0) // 2000 * 2000, 120, "job 0 training")
    slurm("scontrol", "requeue", f"{array_job(folder / 'requeued')}_0", env=cluster)
    outcomes = {name: process.communicate(timeout=300) + (process.returncode,) for name, process in submitters.items()}
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    basic = {"requeued": folder / "basic" / "0", "time-limited": folder / "basic" / "2"}
    return {"folder": folder, "outcomes": outcomes, "requeued_at": requeued_at, "steps": steps, "basic": basic}


def resumed_steps(log: str) -> list[int]:
    return [int(step) for step in re.findall(r"noisereg: resuming \S+ from its checkpoint at step (\d+)", log)]


def test_a_job_requeued_mid_run_resumes_from_its_checkpoint(preempted):
    stdout, stderr, returncode = preempted["outcomes"]["requeued"]
    assert returncode == 0, stderr
    assert "noisereg: sweep requeued: 2 of 2 jobs completed or diverged" in stdout
    sweep = preempted["folder"] / "requeued"
    log = job_log(sweep, 0)
    # SIGTERM from the requeue: the job stops after its step with a checkpoint; SLURM starts it again.
    assert "DUE TO JOB REQUEUE" in log
    assert "noisereg: SIGTERM received: stopping after this step and writing a checkpoint" in log
    assert resumed_steps(log)[0] >= preempted["requeued_at"]
    assert (sweep / "0" / "metrics.jsonl").read_bytes() == (
        preempted["basic"]["requeued"] / "metrics.jsonl"
    ).read_bytes()
    summary = read_summary(sweep / "0")
    assert summary["status"] == "completed" and summary["steps"] == preempted["steps"]["requeued"]
    assert not (sweep / "0" / "checkpoint.pt").exists()


def test_a_job_at_its_time_limit_is_requeued_by_submitit_and_resumes(preempted, cluster):
    stdout, stderr, returncode = preempted["outcomes"]["time-limited"]
    assert returncode == 0, stderr
    assert "noisereg: sweep time-limited: 1 of 1 jobs completed or diverged" in stdout
    sweep = preempted["folder"] / "time-limited"
    job = next(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    log = "".join(path.read_text() for path in sorted((sweep / ".submitit" / job).glob("*_log.*")))
    # SIGUSR2 before the time limit: the job stops after its step with a checkpoint, then submitit requeues it.
    assert "noisereg: SIGUSR2 received: stopping after this step and writing a checkpoint" in log, (
        "no time-limit warning reached the job: it trained for less than the 40 s it can take"
    )
    assert "Caught signal SIGUSR2" in log and "this job is timed-out" in log
    assert f"Requeued job {job} (9 remaining timeouts)" in log
    steps = resumed_steps(log)
    assert steps and steps == sorted(steps) and steps[-1] < preempted["steps"]["time-limited"]
    stopped = [int(step) for step in re.findall(r"noisereg: SIGUSR2 at step (\d+), checkpoint written", log)]
    assert stopped and set(stopped) <= set(steps), "each run continues from the step where the warning stopped it"
    granted = slurm("scontrol", "show", "job", job, env=cluster)
    assert int(re.search(r"Restarts=(\d+)", granted).group(1)) >= len(steps)  # a warning at startup: no resume line
    assert (sweep / "0" / "metrics.jsonl").read_bytes() == (
        preempted["basic"]["time-limited"] / "metrics.jsonl"
    ).read_bytes()
    summary = read_summary(sweep / "0")
    assert summary["status"] == "completed" and summary["steps"] == preempted["steps"]["time-limited"]


def test_a_sweep_whose_submitting_process_was_killed_is_finished_by_the_same_command(cluster, basic_smoke, tmp_path):
    command = [*SMOKE, *LAUNCHER, "hydra.launcher.array_parallelism=1", "hydra.sweep.dir=sweep"]
    sweep = tmp_path / "sweep"
    submitter = start(*command, cwd=tmp_path, env=cluster)
    wait_for(lambda: finished(sweep / "0"), 120, "job 0 completed")
    submitter.send_signal(signal.SIGKILL)  # as a lost login session: the cluster's jobs go on without it
    submitter.communicate()
    job = array_job(sweep)
    slurm("scancel", job, env=cluster)  # and then cancelled: what is left of the sweep is in its folder
    wait_for(lambda: not in_queue(job, cluster), 60, "the cancelled jobs leaving the queue")
    done = [name for name in ("0", "1", "2") if finished(sweep / name)]
    assert len(done) < 3
    before = {name: (sweep / name / "metrics.jsonl").stat().st_mtime_ns for name in done}
    again = run_cli(*command, cwd=tmp_path, env=cluster)
    assert again.returncode == 0, again.stderr
    assert f"3 of 3 jobs completed or diverged ({len(done)} had finished before and were left alone)" in again.stdout, (
        again.stdout
    )
    assert records(sweep) == basic_smoke()
    assert {name: (sweep / name / "metrics.jsonl").stat().st_mtime_ns for name in done} == before
