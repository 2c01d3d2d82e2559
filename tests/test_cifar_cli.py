"""The real CLI on CIFAR-10 (the fixture root): a smoke ResNet18 run killed mid-way resumes to an uninterrupted run's
records, and a bad dataset root is one line with nothing written."""

from __future__ import annotations

import pytest
from conftest import run_cli
from test_cli_resume import start, wait_for_step

from noisereg.tracking import read_summary

# 8 steps per epoch (128 smoke images, batch 16), 8 epochs, a checkpoint every epoch (the experiment's setting).
SMOKE_RESNET = [
    "+experiment=fig6_resnet",
    "scale=smoke",
    "scale.max_epochs=8",
    "trainer.batch_size=16",
    "logger.mode=disabled",
    "hydra.run.dir=D",
]


@pytest.fixture(scope="module")
def uninterrupted(cifar10_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli(*SMOKE_RESNET, f"dataset.root={cifar10_root}", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "D"


def test_a_smoke_resnet_killed_mid_way_resumes_to_the_records_of_an_uninterrupted_run(
    cifar10_root, uninterrupted, tmp_path
):
    command = [*SMOKE_RESNET, f"dataset.root={cifar10_root}"]
    process = start(*command, cwd=tmp_path)
    wait_for_step(tmp_path / "D", 24, process)  # the end of epoch 3: its checkpoint is written
    process.kill()
    process.wait()
    assert not (tmp_path / "D" / "summary.json").exists()
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "from its checkpoint at step" in result.stdout
    assert (tmp_path / "D" / "metrics.jsonl").read_bytes() == (uninterrupted / "metrics.jsonl").read_bytes()
    summary = read_summary(tmp_path / "D")
    assert summary["status"] == "completed" and summary["steps"] == 64
    assert {"test/acc", "hessian/trace"} <= set(summary["final_metrics"])


def test_a_missing_cifar_root_is_one_line_and_writes_nothing(tmp_path):
    result = run_cli(
        "+experiment=fig6_resnet", f"dataset.root={tmp_path / 'nowhere'}", "dataset.download=false", cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CIFAR-10 not found" in lines[0] and "dataset.root=" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no run folder, no W&B run"
