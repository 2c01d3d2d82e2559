"""Resumable runs: a run stopped part-way and started again ends with records identical, byte for byte, to an
uninterrupted run's, for every noise mode; run directories are never shared or silently reused."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose

from noisereg.app import build, prepare, run
from noisereg.errors import SettingError
from noisereg.tracking import read_metrics, read_summary
from noisereg.tracking.job import run_job
from noisereg.tracking.lock import LOCK, STALE_AFTER_S, RunLock
from noisereg.tracking.records import RunRecord, list_artifacts, read_artifact
from noisereg.tracking.wandb_offline import read_offline_run

# Minibatch SGD with momentum and a cosine schedule, so the batch order, the optimizer's buffers and the schedule
# all have to be restored; curvature with Monte-Carlo draws and a predictions probe, so probes and artifacts too.
RUN = [
    "trainer.steps=37",
    "trainer.batch_size=8",
    "trainer.eval_every=5",
    "trainer.optimizer.momentum=0.9",
    "trainer.schedule=cosine",
    "trainer.checkpoint_every=10",
    "model=mlp",
    "model.widths=[12,12]",
    "curvature.every=9",
    "+probes.predictions.every=7",
    "logger.mode=disabled",
    "seed=5",
]
MODES = {
    "gd": ["noise=gd"],
    "gd_noise": ["noise=gd_noise", "noise.sigma=0.1", "curvature.monte_carlo_repeats=3"],
    "layerwise": ["noise=layerwise", "noise.sigma=0.1", "curvature.monte_carlo_repeats=3"],
    "layerwise_cyclic": ["noise=layerwise", "noise.sigma=0.1", "noise.order=cyclic"],
    "label_noise": ["noise=label_noise", "noise.delta=0.3"],
    "nin_step": ["noise=nin", "noise.sigma=0.5"],
    "nin_epoch": ["noise=nin", "noise.sigma=0.5", "noise.resample=epoch"],
    "nin_fixed": ["noise=nin", "noise.sigma=0.5", "noise.resample=fixed"],
    "gni": [
        "noise=gni",
        "noise.sigma=0.2",
        "noise.noise_input=true",
        "+probes.remainder.every=9",
        "+probes.remainder.draws=20",
        "+probes.remainder.n_samples=8",
    ],
    "gni_explicit": ["noise=gni_explicit", "noise.variance=0.05"],
}


class Crash(BaseException):
    """Stands in for a process killed mid-run: nothing after it runs, only the periodic checkpoint survives."""


def stopping_at(step: int, crash: bool = False):
    """`build` whose experiment stops (as on SIGTERM) or crashes (as on SIGKILL) once it reaches `step`."""

    def build_and_stop(cfg):
        experiment = build(cfg)
        train = experiment.train

        def should_stop() -> bool:
            if experiment.state.step >= step and crash:
                raise Crash()
            return experiment.state.step >= step

        experiment.train = lambda log, checkpoint, _: train(log, checkpoint, should_stop)
        return experiment

    return build_and_stop


def records(directory: Path) -> dict[str, bytes]:
    """metrics.jsonl and every artifact, as bytes."""
    found = {"metrics.jsonl": (directory / "metrics.jsonl").read_bytes()}
    for name, steps in list_artifacts(directory).items():
        for step in steps:
            found[f"{name}/{step}"] = {k: v.tobytes() for k, v in read_artifact(directory, name, step).items()}
    return found


def summary_without_timing(directory: Path) -> dict:
    summary = read_summary(directory)
    summary.pop("wall_time_s")
    return summary


@pytest.fixture(scope="module", params=sorted(MODES))
def uninterrupted(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"uninterrupted-{request.param}")
    overrides = RUN + MODES[request.param]
    summary = run(compose(*overrides), folder)
    assert summary["status"] == "completed"
    return request.param, overrides, folder


def test_a_stopped_run_resumes_to_identical_records(uninterrupted, tmp_path):
    mode, overrides, reference = uninterrupted
    summary = run_job(compose(*overrides), tmp_path, prepare=prepare, build=stopping_at(23))
    assert summary["status"] == "interrupted" and summary["steps"] == 23
    assert summary["final_metrics"]["step"] == read_metrics(tmp_path)[-1]["step"] <= 23
    assert (tmp_path / "checkpoint.pt").exists()
    assert run(compose(*overrides), tmp_path)["status"] == "completed"
    assert records(tmp_path) == records(reference), f"{mode}: resumed records differ"
    assert summary_without_timing(tmp_path) == summary_without_timing(reference)
    assert not (tmp_path / "checkpoint.pt").exists(), "a finished run keeps no checkpoint by default"


def test_a_killed_run_resumes_from_its_last_checkpoint(uninterrupted, tmp_path):
    mode, overrides, reference = uninterrupted
    with pytest.raises(Crash):
        run_job(compose(*overrides), tmp_path, prepare=prepare, build=stopping_at(27, crash=True))
    assert read_metrics(tmp_path)[-1]["step"] > 20, "rows past the checkpoint (step 20) exist before resuming"
    assert run(compose(*overrides), tmp_path)["status"] == "completed"
    steps = [row["step"] for row in read_metrics(tmp_path)]
    assert steps == sorted(set(steps)), "strictly increasing steps"
    assert records(tmp_path) == records(reference), f"{mode}: resumed records differ"


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    overrides = RUN + MODES["layerwise"]
    with pytest.raises(Crash):
        run_job(compose(*overrides), tmp_path / "run", prepare=prepare, build=stopping_at(6, crash=True))
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and read_metrics(tmp_path / "run")
    run(compose(*overrides), tmp_path / "run")
    run(compose(*overrides), tmp_path / "reference")
    assert records(tmp_path / "run") == records(tmp_path / "reference")


def test_the_predictions_probe_saves_the_models_outputs(tmp_path):
    cfg = compose(
        "model=mlp",
        "model.widths=[6]",
        "trainer.steps=0",
        "+probes.predictions.every=1",
        "+probes.predictions.n_samples=9",
        "logger.mode=disabled",
    )
    run(cfg, tmp_path)
    saved = read_artifact(tmp_path, "predictions", 0)
    experiment = build(prepare(cfg))  # the same seed builds the same initial model
    with torch.no_grad():
        expected = experiment.model(experiment.data.test_inputs[:9])
    np.testing.assert_array_equal(saved["outputs"], expected.numpy())
    np.testing.assert_array_equal(saved["targets"], experiment.data.test_targets[:9].numpy())


def test_resume_continues_the_wandb_run_by_its_id(tmp_path):
    overrides = [o for o in RUN if not o.startswith("logger")] + MODES["gd_noise"]  # W&B offline
    run_job(compose(*overrides), tmp_path / "run", prepare=prepare, build=stopping_at(23))
    run(compose(*overrides), tmp_path / "run")
    run(compose(*overrides), tmp_path / "reference")
    segments = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    # the id from each segment's own records: a segment started in the same second as the last one is named
    # offline-run-<time>-<id>-1 by W&B
    assert len(segments) == 2 and len({read_offline_run(path)["id"] for path in segments}) == 1, "one id, two segments"
    resumed, reference = read_offline_run(tmp_path / "run"), read_offline_run(tmp_path / "reference")
    assert resumed["id"] == json.loads((tmp_path / "run" / "run.json").read_text())["wandb_id"]
    assert [row["_step"] for row in resumed["history"]] == [row["step"] for row in read_metrics(tmp_path / "run")]
    assert [row["train/loss"] for row in resumed["history"]] == [row["train/loss"] for row in reference["history"]]


# -- run directories ---------------------------------------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


QUICK = ["trainer.steps=6", "trainer.eval_every=3", "logger.mode=disabled"]


def test_a_finished_run_is_left_alone(tmp_path):
    first = run(compose(*QUICK), tmp_path)
    before = snapshot(tmp_path)
    again = run(compose(*QUICK), tmp_path)
    assert again["finished_before"] and again["status"] == first["status"] == "completed"
    assert snapshot(tmp_path) == before


def test_records_of_other_settings_are_never_mixed(tmp_path):
    run(compose(*QUICK), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SettingError, match=r"noise.sigma=0.2 here, 0.05 there.*trainer.resume=restart"):
        run(compose(*QUICK, "noise.sigma=0.2"), tmp_path)
    assert snapshot(tmp_path) == before


def test_a_refusal_names_the_group_choice_not_a_key_that_comes_with_it(tmp_path):
    """noise=gd against noise=layerwise: the records differ in noise.name and in keys one mode has and the other
    lacks (noise.groups, which sorts first); the refusal names noise.name, what the user typed."""
    run(compose(*QUICK, "noise=layerwise"), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SettingError, match=r"noise.name=gd here, layerwise there"):
        run(compose(*QUICK, "noise=gd"), tmp_path)
    assert snapshot(tmp_path) == before


def test_resume_never_refuses_and_restart_discards(tmp_path):
    run(compose(*QUICK), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SettingError, match=str(tmp_path)):
        run(compose(*QUICK, "trainer.resume=never"), tmp_path)
    assert snapshot(tmp_path) == before
    summary = run(compose(*QUICK, "noise.sigma=0.2", "trainer.resume=restart"), tmp_path)
    assert summary["status"] == "completed" and not summary.get("finished_before")
    assert read_summary(tmp_path)["config"]["noise"]["sigma"] == 0.2
    assert [row["step"] for row in read_metrics(tmp_path)] == [0, 3, 6]


def write_lock(directory: Path, **owner) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "process_start": None, **owner}))
    return path


def test_a_directory_in_use_is_refused(tmp_path):
    write_lock(tmp_path)  # this very process, alive
    with pytest.raises(SettingError, match=rf"in use by pid {os.getpid()}"):
        run(compose(*QUICK), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK], "nothing written"


def test_a_lock_on_another_host_holds_until_it_goes_stale(tmp_path):
    path = write_lock(tmp_path, host="elsewhere", pid=1)
    with pytest.raises(SettingError, match="in use by pid 1 on host elsewhere"):
        run(compose(*QUICK), tmp_path)
    old = time.time() - STALE_AFTER_S - 1
    os.utime(path, (old, old))
    assert run(compose(*QUICK), tmp_path)["status"] == "completed"
    assert not path.exists(), "released when the run ends"


@pytest.mark.parametrize(
    "owner",
    [
        {"pid": 2**22 + 12345},  # a pid that is not running
        {"process_start": "0"},  # our pid, reused by another process than the owner
        {"host": "elsewhere", "slurm_job": "77_3"},  # this job's own earlier incarnation, requeued
    ],
)
def test_stale_locks_are_taken_over(tmp_path, monkeypatch, owner):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    write_lock(tmp_path, **owner)
    assert run(compose(*QUICK), tmp_path)["status"] == "completed"


def test_the_lock_holds_while_the_run_writes(tmp_path):
    with RunLock(tmp_path):
        lock = json.loads((tmp_path / LOCK).read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
        with pytest.raises(SettingError, match="in use"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK).exists()


def test_metrics_steps_only_increase_and_a_cut_off_last_line_is_skipped(tmp_path):
    record = RunRecord(tmp_path)
    record.log({"step": 0, "x": 1.0})
    with pytest.raises(ValueError, match="increasing"):
        record.log({"step": 0, "x": 2.0})
    record.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "x"')  # a crash mid-write
    assert read_metrics(tmp_path) == [{"step": 0, "x": 1.0}]


def test_a_bad_job_in_a_sweep_never_writes_over_a_runs_records(tmp_path):
    run(compose(*QUICK), tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SettingError):
        run(compose(*QUICK, "noise.sigma=-1"), tmp_path, in_sweep=True)
    assert snapshot(tmp_path) == before


def test_read_offline_run_says_plainly_when_a_folder_holds_no_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no offline W&B run .* logger.mode=offline"):
        read_offline_run(tmp_path)


def test_a_sweep_job_rejected_for_its_settings_runs_once_they_are_fixed(tmp_path):
    rejected = run(compose(*QUICK, "noise.sigma=-1"), tmp_path, in_sweep=True)
    assert rejected["status"] == "failed" and "noise.sigma" in rejected["reason"]
    assert run(compose(*QUICK), tmp_path, in_sweep=True)["status"] == "completed"
