"""Members (`trainer.members=N`): N seeds trained as one batched model write N ordinary run directories, each
agreeing with the run of its seed alone, resuming byte for byte, and diverging on its own."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from conftest import _cli_module, compose, run_cli, run_cli_in_process

import noisereg.app as app
from noisereg.app import run
from noisereg.errors import SettingError
from noisereg.records import load_runs
from noisereg.tracking import read_metrics, read_summary
from noisereg.tracking.wandb_offline import read_offline_run
from noisereg.train.state import load_checkpoint

# Blanc et al.'s 1-D ReLU net under label noise, SGD with batch 1, with momentum so the buffers are batched too.
RUN = [
    "+experiment=blanc_fig2_relu_interpolation",
    "trainer.steps=240",
    "trainer.eval_every=40",
    "trainer.checkpoint_every=60",
    "probes.function_1d.every=80",
    "probes.label_noise_regularizer.every=80",
    "trainer.optimizer.momentum=0.5",
    "trainer.compile=false",
    "logger.mode=disabled",
    "trainer.keep_checkpoint=true",
]
# Agreement of a member's metrics with its seed's single run: batched arithmetic rounds differently in the last
# bits (docs/training.md, "Members"), and a loss near zero (one point's residual squared) shows that difference magnified.
TOLERANCE, LOSS_NEAR_ZERO = 1e-4, 1e-6


def close(a: float, b: float) -> bool:
    if isinstance(a, str) or isinstance(b, str):  # "nan", "inf" as records write them
        return a == b
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=LOSS_NEAR_ZERO)


def assert_rows_agree(member: list[dict], alone: list[dict]) -> None:
    assert [row["step"] for row in member] == [row["step"] for row in alone]
    for ours, theirs in zip(member, alone):
        assert ours.keys() == theirs.keys()
        for key, value in ours.items():
            if isinstance(value, (int, float, str)):
                assert close(value, theirs[key]), f"step {ours['step']} {key}: {value} batched, {theirs[key]} alone"


# Orvieto Fig. 2's linear net under parameter noise, full batch, one step per call (the noise is drawn each step).
FIG2 = [
    "+experiment=fig2_synthetic",
    "trainer.steps=200",
    "trainer.eval_every=50",
    "curvature.every=100",
    "trainer.checkpoint_every=50",
    "logger.mode=disabled",
    "trainer.keep_checkpoint=true",
]
# Label noise annealed to 0 (noise.anneal_steps): δ_t changes within a block of steps.
ANNEALED = ["noise.delta=0.2", "noise.stop_step=200", "noise.anneal_steps=120"]
AGREEMENT = {
    "label noise, one step per call": [*RUN, "trainer.steps_per_call=1"],
    "label noise, blocks of 50": [*RUN, "trainer.steps_per_call=50"],
    "annealed label noise, one step per call": [*RUN, *ANNEALED, "trainer.steps_per_call=1"],
    "annealed label noise, blocks of 50": [*RUN, *ANNEALED, "trainer.steps_per_call=50"],
    "GD+noise": [*FIG2, "noise=gd_noise"],
    "layer-wise": [*FIG2, "noise=layerwise"],
}


@pytest.mark.parametrize("case", sorted(AGREEMENT))
def test_each_member_agrees_with_its_seed_run_alone(tmp_path, case):
    overrides = [*AGREEMENT[case], "seed=4"]
    summary = run(compose(*overrides, "trainer.members=2"), tmp_path / "members")
    assert summary["status"] == "completed" and len(summary["members"]) == 2
    for seed in (4, 5):
        member = tmp_path / "members" / f"seed_{seed}"
        alone = tmp_path / f"alone_{seed}"
        single = compose(*[o for o in overrides if not o.startswith("seed=")], f"seed={seed}", "trainer.members=1")
        assert run(single, alone)["status"] == "completed"
        assert read_metrics(member)[0] == read_metrics(alone)[0], "the step-0 row, before any batched step, is bitwise"
        assert_rows_agree(read_metrics(member), read_metrics(alone))
        recorded, single = (json.loads((d / "run.json").read_text())["config"] for d in (member, alone))
        assert recorded == single, "a member's run.json is its seed's single run's"
        ours, theirs = (load_checkpoint(d / "checkpoint.pt")["model"] for d in (member, alone))
        for name in theirs:
            torch.testing.assert_close(ours[name], theirs[name], rtol=TOLERANCE, atol=1e-7)
    first, second = (read_metrics(tmp_path / "members" / f"seed_{s}") for s in (4, 5))
    assert first[-1]["train/loss"] != second[-1]["train/loss"], "members differ in their seeds"


def test_members_draw_annealed_label_noise_on_its_schedule(tmp_path):
    """Each member's blocks tell its label noise how many steps they draw for: the records' δ_t, that of the last
    step drawn before the row, is δ·min(1, (stop_step − t)/anneal_steps) at t = step − 1, not at the block's start
    (the statistics of the draws against δ_t: test_noise_statistics.py)."""
    run(compose(*AGREEMENT["annealed label noise, blocks of 50"], "trainer.members=2"), tmp_path)
    for seed in (0, 1):
        rows = read_metrics(tmp_path / f"seed_{seed}")[1:]
        assert [row["step"] for row in rows] == [40, 80, 120, 160, 200, 240]
        for row in rows:
            expected = 0.2 * min(1.0, max(0.0, (200 - (row["step"] - 1)) / 120))
            assert row["noise/delta"] == pytest.approx(expected), row["step"]


def crashing_at(step: int, monkeypatch):
    """The members' training raising, as a killed process would stop, once the first member reaches `step`."""

    class Crash(BaseException):
        pass

    real = app.train_members

    def train_members(experiments, logs, checkpoints, should_stop):
        def stop() -> bool:
            if experiments[0].state.step >= step:
                raise Crash()
            return False

        return real(experiments, logs, checkpoints, stop)

    monkeypatch.setattr(app, "train_members", train_members)
    return Crash


def test_a_killed_batched_job_resumes_to_identical_records_per_member(tmp_path, monkeypatch):
    overrides = [*RUN, "trainer.steps_per_call=20", "trainer.members=3"]
    assert run(compose(*overrides), tmp_path / "reference")["status"] == "completed"
    with monkeypatch.context() as patch:
        crash = crashing_at(150, patch)
        with pytest.raises(crash):
            run(compose(*overrides), tmp_path / "resumed")
    assert read_metrics(tmp_path / "resumed" / "seed_0")[-1]["step"] > 120, "rows past the checkpoint at step 120"
    assert run(compose(*overrides), tmp_path / "resumed")["status"] == "completed"
    for seed in (0, 1, 2):
        resumed, reference = (tmp_path / d / f"seed_{seed}" for d in ("resumed", "reference"))
        assert (resumed / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
        for artifact in sorted((reference / "artifacts").rglob("*.npz")):
            assert (resumed / artifact.relative_to(reference)).read_bytes() == artifact.read_bytes()


def test_members_resumed_at_different_steps_catch_up_and_match(tmp_path, monkeypatch):
    """A member whose checkpoint is older than the others' (a job killed while it wrote them) advances alone until
    it meets them, cutting the blocks its single run would."""
    overrides = [*RUN, "trainer.steps_per_call=20", "trainer.members=2"]
    assert run(compose(*overrides), tmp_path / "reference")["status"] == "completed"
    job, kept = tmp_path / "resumed", tmp_path / "kept"
    for step in (80, 150):  # checkpoints at 60, then at 120
        with monkeypatch.context() as patch:
            with pytest.raises(crashing_at(step, patch)):
                run(compose(*overrides), job)
        if step == 80:
            kept.mkdir()
            for name in ("checkpoint.pt", "metrics.jsonl"):
                (kept / name).write_bytes((job / "seed_1" / name).read_bytes())
    for name in ("checkpoint.pt", "metrics.jsonl"):  # member 1 back at its step-60 checkpoint
        (job / "seed_1" / name).write_bytes((kept / name).read_bytes())
    assert load_checkpoint(job / "seed_1" / "checkpoint.pt")["step"] == 60
    assert load_checkpoint(job / "seed_0" / "checkpoint.pt")["step"] == 120
    assert run(compose(*overrides), job)["status"] == "completed"
    for seed in (0, 1):
        assert (job / f"seed_{seed}" / "metrics.jsonl").read_bytes() == (
            tmp_path / "reference" / f"seed_{seed}" / "metrics.jsonl"
        ).read_bytes()


def diverging_member(monkeypatch, seed: int) -> None:
    """The member of `seed` starts far from the others: its SGD steps overflow and it diverges mid-run."""
    real_build = app.build

    def build(cfg, members=None):
        experiment = real_build(cfg, members)
        if cfg.seed == seed:
            with torch.no_grad():
                for parameter in experiment.model.parameters():
                    parameter.mul_(1e3)
        return experiment

    monkeypatch.setattr(app, "build", build)


def test_one_member_diverging_leaves_the_others_completed(tmp_path, monkeypatch):
    diverging_member(monkeypatch, seed=1)
    summary = run(
        compose(*RUN, "trainer.members=3", "trainer.steps_per_call=20", "trainer.divergence_check_every=20"), tmp_path
    )
    statuses = [read_summary(tmp_path / f"seed_{seed}")["status"] for seed in (0, 1, 2)]
    assert statuses == ["completed", "diverged", "completed"] and summary["status"] == "diverged"
    assert read_metrics(tmp_path / "seed_0")[-1]["step"] == 240 == read_metrics(tmp_path / "seed_2")[-1]["step"]
    assert 0 < read_metrics(tmp_path / "seed_1")[-1]["step"] < 240, "it diverged mid-run, then left the batch"
    assert read_summary(tmp_path / "seed_1")["reason"].startswith("non-finite training loss")


def test_load_runs_reads_a_batched_job_as_its_runs_and_wandb_gets_one_run_per_member(tmp_path):
    result = run_cli(
        *RUN,
        "trainer.members=3",
        "seed=7",
        "logger.mode=offline",
        "trainer.steps=80",
        "hydra.run.dir=job",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert sum("[completed]" in line for line in result.stdout.splitlines()) == 3
    runs = load_runs(tmp_path / "job")
    assert runs["run"].nunique() == 3 and sorted(runs.groupby("run")["seed"].first()) == [7, 8, 9]
    for seed in (7, 8, 9):
        directory = tmp_path / "job" / f"seed_{seed}"
        (offline,) = sorted((directory / "wandb").glob("offline-run-*"))
        history = read_offline_run(offline)["history"]
        assert [row["_step"] for row in history] == [row["step"] for row in read_metrics(directory)]


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["noise=gni", "noise.sigma=0.1"], ["trainer.members=2", "noise=gni", "seed=0,1,2 -m"]),  # inside the forward
        (["noise=gd_noise", "trainer.steps_per_call=10"], ["noise=gd_noise", "trainer.steps_per_call=1"]),  # every step
    ],
)
def test_what_cannot_be_batched_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, overrides, named):
    result = run_cli_in_process(
        *overrides,
        "trainer.members=2",
        "trainer.steps=5",
        "logger.mode=disabled",
        "hydra.run.dir=job",
        cwd=tmp_path,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert all(words in line for words in named), line
    assert not (tmp_path / "job").exists()


@pytest.mark.parametrize("seeds, overlap", [("0,1", "1…2"), ("0,2", "2…2"), ("range(0,9,3)", None), ("0,3", None)])
def test_seeds_that_overlap_the_members_of_another_job_are_found(seeds, overlap):
    """trainer.members=3 trains seeds s, s+1, s+2 in a job: seed=0,1 would train seeds 1 and 2 twice."""
    overrides = ["+experiment=fig2_synthetic", "scale=smoke", f"seed={seeds}", "trainer.members=3"]
    cfg = compose(*[o if not o.startswith("seed=") else "seed=0" for o in overrides], return_hydra_config=True)
    problem = _cli_module().overlapping_members(cfg, overrides)
    assert (problem is None) if overlap is None else (f"train seeds {overlap}" in problem and "seed=0,3" in problem)


def test_a_sweep_whose_seeds_overlap_its_members_is_refused_before_any_job(tmp_path, capsys, monkeypatch):
    result = run_cli_in_process(
        "-m",
        "+experiment=fig2_synthetic",
        "scale=smoke",
        "logger.mode=disabled",
        "seed=0,1",
        "trainer.members=3",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "seed=0,1 with trainer.members=3" in line and "give seeds 3 apart, e.g. seed=0,3" in line, line
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["trainer.members=300000"], ["trainer.members=300000 needs about", "GB a member", "use fewer members"]),
        (
            ["trainer.members=3", "seed=9223372036854774"],
            ["seed=9223372036854774 with trainer.members=3", "up to 9223372036854776", "smaller seed"],
        ),
    ],
)
def test_members_the_machine_cannot_hold_or_seed_are_one_line_before_any_folder(
    tmp_path, capsys, monkeypatch, overrides, named
):
    """The memory check counts every member (its weights, optimizer state, activations and data); the members'
    seeds are checked against the largest seed, naming the two settings the user typed."""
    result = run_cli_in_process(
        "+experiment=fig7_mlp1",
        "scale=smoke",
        "logger.mode=disabled",
        *overrides,
        "hydra.run.dir=job",
        cwd=tmp_path,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert all(words in line for words in named), line
    assert not (tmp_path / "job").exists()


def test_the_progress_follows_the_batch_when_the_first_member_leaves_it(tmp_path, monkeypatch, capsys):
    """Member 0 diverges early and leaves the batch; the progress lines (stderr is not a terminal here) go on to the
    last step with the members still training, not stop where member 0 did."""
    diverging_member(monkeypatch, seed=0)
    capsys.readouterr()
    run(
        compose(
            *RUN,
            "trainer.members=3",
            "trainer.steps_per_call=20",
            "trainer.divergence_check_every=20",
            "trainer.progress_bar=true",
        ),
        tmp_path,
    )
    assert read_summary(tmp_path / "seed_0")["status"] == "diverged"
    assert read_metrics(tmp_path / "seed_0")[-1]["step"] < 240
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: step")]
    assert lines and lines[-1].startswith("train: step 240/240"), lines


def test_a_damaged_member_is_named_and_deleting_it_restarts_that_member_alone(tmp_path, monkeypatch):
    """One member's checkpoint is damaged: the refusal names that member's folder and says to delete it (not
    trainer.resume=restart, which would discard every member); deleted, that member starts again and catches up
    while the other resumes, and both end with the records of an uninterrupted job."""
    overrides = [*RUN, "trainer.steps_per_call=20", "trainer.members=2"]
    assert run(compose(*overrides), tmp_path / "reference")["status"] == "completed"
    job = tmp_path / "job"
    with monkeypatch.context() as patch:
        with pytest.raises(crashing_at(150, patch)):
            run(compose(*overrides), job)
    (job / "seed_1" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    kept = (job / "seed_0" / "metrics.jsonl").read_bytes()
    with pytest.raises(SettingError) as refusal:
        run(compose(*overrides), job)
    assert f"delete {job / 'seed_1'} and run the same command" in str(refusal.value)
    assert "trainer.resume=restart" not in str(refusal.value)
    assert (job / "seed_0" / "metrics.jsonl").read_bytes() == kept
    shutil.rmtree(job / "seed_1")
    assert run(compose(*overrides), job)["status"] == "completed"
    for seed in (0, 1):
        assert (job / f"seed_{seed}" / "metrics.jsonl").read_bytes() == (
            tmp_path / "reference" / f"seed_{seed}" / "metrics.jsonl"
        ).read_bytes()
