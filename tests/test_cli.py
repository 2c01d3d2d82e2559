"""The real CLI: default job, Hydra multirun with the basic and submitit launchers, bad input, divergence, W&B."""

from __future__ import annotations

import gzip
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FMNIST_SYSTEM_DIR, ROOT, run_cli, run_cli_in_process

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
        "name": "mlp",
        "widths": [50],
        "activation": "linear",
        "bias": False,
        "init": "mean_field",
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
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "logger.mode=disabled",
        "noise=gd,layerwise",
        "seed=0",
        "model.widths=[50]",
        "hydra.sweep.dir=sweep",
        *extra,
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
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    "arguments, fragments",
    [
        (["noise.sigma=-1"], ["noise.sigma"]),
        (["noise=shake"], ["noise=shake", "layerwise"]),
        (["+noise.amplitude=3"], ["noise.amplitude"]),
        (["noise.sigmaa=0.1"], ["noise.sigmaa", "+noise.sigmaa"]),
        (["experiment=orvieto/fig99"], ["experiment=orvieto/fig99", "orvieto/fig2_synthetic"]),
        (["noise=gni", "noise.sigma=abc"], ["noise.sigma"]),
        (["dataset.n_train=0"], ["dataset.n_train"]),
        (["trainer.optimizer.momentum=-1"], ["trainer.optimizer.momentum"]),
        (["trainer.loss=cross_entropy"], ["trainer.loss", "half_mse"]),
        (["curvature.every=1", "curvature.method=exact", "model.activation=tanh"], ["curvature.method", "hutchinson"]),
        (["trainer.steps=many"], ["trainer.steps"]),
        (["trainer.schedule=linear"], ["trainer.schedule"]),
        (["+experiment=fig99"], ["experiment=fig99"]),
        (["trainer.optimizer.lr=nan"], ["trainer.optimizer.lr=nan", "e.g."]),
        (["trainer.optimizer.lr=inf"], ["trainer.optimizer.lr=inf", "e.g."]),
        (["trainer.optimizer.weight_decay=nan"], ["trainer.optimizer.weight_decay=nan", "e.g."]),
        (["model.widths=[0]"], ["model.widths=[0]", "positive"]),
        (["model.widths=[50,-3]"], ["model.widths=[50, -3]", "positive"]),
        (["seed=abc"], ["seed", "abc"]),
        (["seed=1.5"], ["seed", "1.5"]),
        (["trainer.device=bogus"], ["trainer.device='bogus'", "cpu"]),
        (["model.widths=[100000,100000]"], ["model.widths=[100000, 100000]", "GB", "smaller widths"]),
        (["curvature.method=exakt"], ["curvature.method='exakt'", "exact"]),
        (["trainer.resume=sometimes"], ["trainer.resume", "auto"]),
        (["noise=nin", "noise.layer=7"], ["noise.layer=7", "out of range"]),
        (["noise.stop_step=-2"], ["noise.stop_step"]),
        (["--config-name", "nope"], ["nope"]),
        # a paper's own part without its experiment: Hydra's advice (a `+`) would graft it onto the default run
        (["fig4_width=wide"], ["orvieto/fig4_width=wide", "python run.py experiment=orvieto/fig4_deep_mlp"]),
        (["-m", "orvieto/fig4_width=narrow,wide"], ["python run.py -m experiment=orvieto/fig4_deep_mlp"]),
        (["experiment=orvieto/fig7_mlp1", "camuto/task=diabetes"], ["camuto/fig2_remainder", "has no camuto/task"]),
    ],
)
def test_bad_input_fails_with_one_line_naming_the_setting_and_writes_nothing(
    tmp_path, arguments, fragments, capsys, monkeypatch
):
    result = run_cli_in_process(
        *arguments, "logger.mode=disabled", "hydra.run.dir=run", cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch
    )
    assert_one_line_error(result, *fragments)
    assert written(tmp_path) == [], "bad input writes nothing"


def test_online_logging_without_credentials_is_refused_before_anything_is_written(tmp_path):
    env = {"HOME": str(tmp_path / "home"), "WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc")}
    result = run_cli("logger.mode=online", "hydra.run.dir=run", cwd=tmp_path, env=env)
    assert_one_line_error(result, "logger.mode=online", "wandb login", "logger.mode=offline", "wandb sync")
    assert not (tmp_path / "run").exists() and not list(tmp_path.rglob("wandb"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_an_unreachable_wandb_server_is_a_one_line_error_within_30_seconds(tmp_path, server):
    listener = None
    if server == "silent":  # accepts connections and never answers
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
    port = listener.getsockname()[1] if listener else closed_port()
    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{port}"}
    started = time.monotonic()
    try:
        result = run_cli("logger.mode=online", "hydra.run.dir=run", cwd=tmp_path, env=env, timeout=120)
    finally:
        if listener:
            listener.close()
    assert time.monotonic() - started < 30
    assert_one_line_error(result, "cannot be reached", "logger.mode=offline", "wandb sync")
    assert not (tmp_path / "run").exists() and not list(tmp_path.rglob("wandb"))


@pytest.mark.parametrize("problem", ["truncated", "corrupt", "empty"])
def test_damaged_fashion_mnist_files_are_a_one_line_error(tmp_path, problem, fmnist_available):
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    real = gzip.decompress((FMNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").read_bytes())
    damaged = {"truncated": real[: len(real) // 3], "empty": b""}
    if problem == "corrupt":
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)
    else:
        (raw / "train-images-idx3-ubyte").write_bytes(damaged[problem])
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(FMNIST_SYSTEM_DIR / f"{name}.gz", raw)  # a named root holds all four files
    before = written(tmp_path)
    result = run_cli(
        "+experiment=fig7_mlp1",
        "scale=smoke",
        "dataset.root=data",
        "logger.mode=disabled",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert_one_line_error(result, "train-images-idx3-ubyte", "dataset.root")
    assert written(tmp_path) == before, "no run folder and no .partial file"


def test_a_bad_job_in_a_sweep_is_recorded_the_sweep_goes_on_and_its_exit_status_says_so(tmp_path):
    result = run_cli(
        "-m", "noise.sigma=-1,0.1", "trainer.steps=10", "logger.mode=disabled", "hydra.sweep.dir=sweep", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "noise.sigma=-1.0 must be finite and >= 0" in result.stderr
    statuses = [read_summary(tmp_path / "sweep" / job)["status"] for job in ("0", "1")]
    assert statuses == ["failed", "completed"]
    counts = [line for line in result.stderr.splitlines() if line.startswith("noisereg: sweep")]
    assert len(counts) == 1 and "1 of 2 jobs completed or diverged; 1 failed" in counts[0]
    assert str(tmp_path / "sweep" / "0" / "summary.json") in counts[0]


def test_hydra_flags_work_as_documented(tmp_path):
    for flags in (["--cfg", "job"], ["-c", "job"]):
        result = run_cli(*flags, "noise=gd_noise", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "name: gd_noise" in result.stdout and "stop_epoch: null" in result.stdout
    result = run_cli("--info", cwd=tmp_path)
    assert result.returncode == 0 and "Hydra" in result.stdout
    result = run_cli(
        "--config-name", "config", "trainer.steps=4", "logger.mode=disabled", "hydra.run.dir=run", cwd=tmp_path
    )
    assert result.returncode == 0 and read_summary(tmp_path / "run")["steps"] == 4
    assert written(tmp_path) == sorted(written(tmp_path)) and not (tmp_path / "outputs").exists()


def test_every_mode_takes_stop_step_without_a_plus_and_progress_shows_in_logs(tmp_path):
    result = run_cli(
        "-m",
        "noise=gd,gd_noise,layerwise,label_noise,nin,gni",
        "noise.stop_step=3",
        "trainer.steps=6",
        "trainer.eval_every=3",
        "logger.mode=disabled",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for job in range(6):
        assert [row["noise/active"] for row in read_metrics(tmp_path / "sweep" / str(job))] == [1.0, 1.0, 0.0]
    assert "noisereg: sweep sweep: 6 of 6 jobs completed or diverged" in result.stdout
    # stderr is not a terminal here: plain progress lines, as a SLURM log shows them
    assert "train: step 6/6 (100%) loss" in result.stderr and "\r" not in result.stderr


def test_a_diverging_run_is_a_result(tmp_path):
    result = run_cli(
        "noise=gd",
        "trainer.optimizer.lr=50",
        "trainer.steps=200",
        "logger.mode=disabled",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "[diverged]" in result.stdout
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "diverged" and summary["steps"] < 200
    assert "non-finite" in summary["reason"]
    assert read_metrics(tmp_path / "run")[-1]["train/batch_loss"] in ("nan", "inf")


def test_the_slurm_launcher_without_slurm_says_so_in_one_line(tmp_path):
    """No sbatch or srun on PATH (a laptop, a login shell without the cluster's module): one line naming the
    launcher and what to do instead, exit 2, no folder (submitit raised a traceback)."""
    result = run_cli(
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "model.widths=[50]",
        "seed=0",
        "logger.mode=disabled",
        "hydra/launcher=slurm",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        env={"PATH": str(Path(sys.executable).parent)},
    )
    assert_one_line_error(result, "hydra/launcher=slurm: no SLURM here", "not found on PATH", "submitit_local")
    assert not (tmp_path / "sweep").exists()


def test_a_question_mark_lists_a_groups_options(tmp_path):
    listed = run_cli("noise=?", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].startswith("noise options")
    assert {line.strip() for line in listed.stdout.splitlines()[1:]} >= {"gd", "gd_noise", "layerwise", "nin"}
    assert_one_line_error(run_cli("bogus=?", cwd=tmp_path), "bogus is not a config group", "noise", "--cfg job")
    assert not list(tmp_path.iterdir()), "nothing written"


def test_help_read_in_part_ends_quietly(tmp_path):
    """`python run.py --help | head -1`: the reader closes the pipe early; no BrokenPipeError traceback."""
    piped = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' '{ROOT / 'run.py'}' --help | head -1; exit ${{PIPESTATUS[0]}}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    assert piped.stdout.startswith("noisereg")


def test_jobs_of_a_sweep_that_fail_alike_say_why_once(tmp_path):
    """Three jobs with the same impossible setting (checked when the model is built, job by job): the reason once,
    the sweep's line counting the three, exit 1, each job's summary holding the reason."""
    result = run_cli(
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "logger.mode=disabled",
        "noise=nin",
        "noise.layer=7",
        "seed=0,1,2",
        "model.widths=[50]",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("noisereg: error")]
    assert errors == ["noisereg: error: noise.layer=7 is out of range: the model has 2 layers (0..1)"], errors
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("noisereg: sweep")]
    assert "0 of 3 jobs" in line and "3 failed (all for the reason printed above)" in line
    assert all("noise.layer=7" in read_summary(p.parent)["reason"] for p in (tmp_path / "sweep").rglob("summary.json"))


def test_a_refused_relaunch_leaves_hydras_files_as_they_were(tmp_path):
    """seed=0,1 then seed=1,2 into the same folder: job 0 now asks for seed 1 where seed 0 ran, job 1 for seed 2 where
    seed 1 ran; both refuse, and every file of the first sweep, Hydra's .hydra/*.yaml and multirun.yaml included,
    is byte for byte as it was."""
    base = [
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "logger.mode=disabled",
        "noise=gd",
        "model.widths=[50]",
        "hydra.sweep.dir=sweep",
    ]
    assert run_cli(*base, "seed=0,1", cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "sweep").rglob("*") if p.is_file()}
    assert any(p.parent.name == ".hydra" for p in before) and tmp_path / "sweep" / "multirun.yaml" in before
    again = run_cli(*base, "seed=1,2", cwd=tmp_path)
    assert again.returncode == 1 and "2 refused" in again.stderr, again.stderr
    after = {p: p.read_bytes() for p in (tmp_path / "sweep").rglob("*") if p.is_file()}
    assert after == before


def test_submitit_slurm_by_its_own_name_is_refused_for_the_preset(tmp_path):
    """The plugin's own name asks SLURM for no GPU and no requeue: one line naming hydra/launcher=slurm, exit 2."""
    result = run_cli(
        "-m", "+experiment=fig6_resnet", "scale=smoke", "hydra/launcher=submitit_slurm", "--cfg", "hydra", cwd=tmp_path
    )
    assert_one_line_error(result, "hydra/launcher=submitit_slurm", "use hydra/launcher=slurm", "gpus_per_node=0")
    preset = run_cli("+experiment=fig6_resnet", "scale=smoke", "hydra/launcher=slurm", "--cfg", "hydra", cwd=tmp_path)
    assert preset.returncode == 0, preset.stderr
    assert "gpus_per_node: 1" in preset.stdout and "max_num_timeout: 5" in preset.stdout


def test_a_machines_own_settings_in_conf_local_apply_and_are_optional(tmp_path):
    """conf/local/default.yaml (git-ignored) holds one machine's settings, e.g. a cluster's partition; without it
    nothing changes."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    plain = run_cli("--config-dir", str(conf), "hydra/launcher=slurm", "--cfg", "hydra", cwd=tmp_path)
    assert plain.returncode == 0 and "partition: null" in plain.stdout, plain.stderr
    (conf / "local").mkdir()
    (conf / "local" / "default.yaml").write_text("# @package _global_\nhydra:\n  launcher:\n    partition: gpu_a100\n")
    local = run_cli("--config-dir", str(conf), "hydra/launcher=slurm", "--cfg", "hydra", cwd=tmp_path)
    assert local.returncode == 0 and "partition: gpu_a100" in local.stdout, local.stderr
    assert "/conf/local/" in (ROOT / ".gitignore").read_text().splitlines()


def test_wandb_runs_carry_scale_group_notes_tags_and_their_place_in_the_sweep(tmp_path):
    """Offline W&B runs of a two-job sweep evaluated by epochs, read back: the group and notes as set, the tags
    as set plus the noise mode and `scale:smoke` (none of them in the run name), the sweep folder and job number in
    the config, and `epoch` declared as the other metrics' x axis."""
    result = run_cli(
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "model.widths=[50]",
        "noise=gd",
        "seed=0,1",
        "trainer.eval_unit=epochs",
        "trainer.eval_every=1",
        "trainer.steps=null",
        "trainer.epochs=2",
        "trainer.batch_size=20",
        "logger.group=my_group",
        "logger.notes=first try",
        "logger.tags=[alpha,beta]",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    folders = sorted(path.parent for path in (tmp_path / "sweep").rglob("summary.json"))
    runs = [read_offline_run(folder) for folder in folders]
    assert [run["config"]["job_number"] for run in runs] == [int(folder.name) for folder in folders] == [0, 1]
    for run, folder in zip(runs, folders):
        assert run["group"] == "my_group" and run["notes"] == "first try"
        assert set(run["tags"]) == {"alpha", "beta", "gd", "scale:smoke"}
        assert "logger" not in run["name"] and "alpha" not in run["name"], run["name"]
        assert run["config"]["sweep_dir"] == "sweep"
        assert run["metrics"].get("*") == "epoch" and "epoch" in run["metrics"]
        assert [row["epoch"] for row in run["history"]] == [row["epoch"] for row in read_metrics(folder)]
        assert len(run["history"]) >= 2


def test_a_two_trial_optuna_sweep_tunes_the_optimized_metric(tmp_path):
    """hydra/sweeper=optuna (hydra-optuna-sweeper, the `optuna` extra) with optimized_metric=train/loss: each job
    returns that metric's final value, Optuna prints its best, and the sweep's outcome line still counts the jobs
    (a Hydra callback: the sweeper is not ours)."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = run_cli(
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "model.widths=[50]",
        "noise=gd",
        "seed=0",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.direction=minimize",
        "trainer.optimizer.lr=interval(0.001,0.01)",
        "optimized_metric=train/loss",
        "logger.mode=disabled",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    best = float(output.split("Best value: ")[1].split()[0])
    finals = [read_summary(p.parent)["final_metrics"]["train/loss"] for p in (tmp_path / "sweep").rglob("summary.json")]
    assert len(finals) == 2 and best == pytest.approx(min(finals))
    assert "noisereg: sweep sweep: 2 of 2 jobs completed or diverged" in output


def test_optimized_metric_must_name_a_metric(tmp_path):
    assert_one_line_error(run_cli("optimized_metric=3", cwd=tmp_path), "optimized_metric=3", "test/acc")
