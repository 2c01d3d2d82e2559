"""The real CLI: default job, Hydra multirun with the basic and submitit launchers, bad input, divergence, W&B."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from noisereg.tracking import read_metrics, read_summary
from noisereg.tracking.wandb_offline import read_offline_run


def single_run_dir(root: Path) -> Path:
    found = [p.parent for p in root.rglob("summary.json")]
    assert len(found) == 1, found
    return found[0]


def test_default_job_runs_and_logs_to_wandb_offline(tmp_path):
    result = run_cli("hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[completed]" in result.stdout and "records:" in result.stdout
    run_dir = tmp_path / "run"
    summary = read_summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["config"]["noise"]["name"] == "layerwise"
    assert summary["config"]["model"] == {
        "name": "mlp", "widths": [50], "activation": "linear", "bias": False, "init": "mean_field"
    }
    rows = read_metrics(run_dir)
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 2000
    assert rows[-1]["train/loss"] < rows[0]["train/loss"] / 10, "the default job learns the planted regression"
    # Real W&B offline run in the run directory, holding the metrics we logged.
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb")), "an offline run for `wandb sync`"
    logged = read_offline_run(offline[0])
    assert logged["group"] == "default" and logged["exit_code"] == 0
    assert logged["config"]["noise"]["name"] == "layerwise"
    assert [row["_step"] for row in logged["history"]] == [row["step"] for row in rows]
    assert logged["history"][-1]["train/loss"] == pytest.approx(rows[-1]["train/loss"])
    assert logged["summary"]["status"] == "completed"


def sweep(tmp_path: Path, *extra: str) -> list[dict]:
    arguments = [
        "-m", "+experiment=fig2_synthetic", "scale=smoke", "logger.mode=disabled",
        "noise=gd,layerwise", "seed=0", "model.widths=[50]", "hydra.sweep.dir=sweep", *extra,
    ]
    result = run_cli(*arguments, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [read_summary(p.parent) for p in sorted((tmp_path / "sweep").rglob("summary.json"))]
    assert len(summaries) == 2, "one job per noise mode"
    assert {s["config"]["noise"]["name"] for s in summaries} == {"gd", "layerwise"}
    assert all(s["status"] == "completed" and s["steps"] == 20 for s in summaries)
    assert all(s["name"] == "fig2_synthetic" for s in summaries)
    return summaries


def test_multirun_with_the_basic_launcher(tmp_path):
    sweep(tmp_path)


def test_multirun_with_the_submitit_local_launcher(tmp_path):
    sweep(tmp_path, "hydra/launcher=submitit_local")
    assert list((tmp_path / "sweep").rglob(".submitit")), "jobs went through submitit"


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("arguments, fragments", [
    (["noise.sigma=-1"], ["noise.sigma"]),
    (["noise=shake"], ["noise=shake", "layerwise"]),
    (["+noise.amplitude=3"], ["noise.amplitude"]),
    (["noise.sigmaa=0.1"], ["noise.sigmaa", "+noise.sigmaa"]),
    (["experiment=fig2_synthetic"], ["+experiment=fig2_synthetic"]),
    (["noise=gni", "noise.sigma=abc"], ["noise.sigma"]),
    (["dataset.n_train=0"], ["dataset.n_train"]),
    (["trainer.optimizer.momentum=-1"], ["trainer.optimizer.momentum"]),
    (["trainer.loss=cross_entropy"], ["trainer.loss", "half_mse"]),
    (["curvature.every=1", "curvature.method=exact", "model.activation=tanh"], ["curvature.method", "hutchinson"]),
    (["trainer.steps=many"], ["trainer.steps"]),
    (["trainer.schedule=linear"], ["trainer.schedule"]),
    (["+experiment=fig99"], ["experiment=fig99"]),
])
def test_bad_input_fails_with_one_line_naming_the_setting(tmp_path, arguments, fragments):
    result = run_cli(*arguments, "logger.mode=disabled", "hydra.run.dir=run", cwd=tmp_path)
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize("setting", ["trainer.schedule=linear", "+noise.amplitude=3"])
def test_bad_input_keeps_a_failed_record(tmp_path, setting):
    run_cli(setting, "logger.mode=disabled", "hydra.run.dir=run", cwd=tmp_path)
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "failed" and setting.lstrip("+").split("=")[0] in summary["reason"]
    assert summary["config"]["noise"]["name"] == "layerwise"


def test_a_bad_job_in_a_sweep_is_recorded_and_the_sweep_goes_on(tmp_path):
    result = run_cli("-m", "noise.sigma=-1,0.1", "trainer.steps=10", "logger.mode=disabled", "hydra.sweep.dir=sweep",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "noise.sigma=-1.0 must be finite and >= 0" in result.stderr
    statuses = [read_summary(tmp_path / "sweep" / job)["status"] for job in ("0", "1")]
    assert statuses == ["failed", "completed"]


def test_a_diverging_run_is_a_result(tmp_path):
    result = run_cli("noise=gd", "trainer.optimizer.lr=50", "trainer.steps=200", "logger.mode=disabled",
                     "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[diverged]" in result.stdout
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "diverged" and summary["steps"] < 200
    assert "non-finite" in summary["reason"]
    assert read_metrics(tmp_path / "run")[-1]["train/batch_loss"] in ("nan", "inf")
