"""The committed evidence is what its command runs: every folder of results/runs/ comes from one entry of
scripts/reproduce_cpu.py's PLAN (`python run.py -m +experiment=<figure> scale=<scale> <overrides>`; for the figures run
at the paper's sizes no override: the experiment's own file is the recipe), and that command's sweep composes, job by
job, to exactly the committed runs' configs (run.json): no run missing, none extra, no setting different."""

from __future__ import annotations

import importlib.util
import itertools
import json

import pytest
from conftest import ROOT, compose
from omegaconf import OmegaConf

from noisereg.app import member_config, prepare
from noisereg.tracking.job import flatten_config, is_part_of_the_run
from noisereg.tracking.records import ADDED_LATER as RECORDED_LATER

RUNS = ROOT / "results" / "runs"


def reproduce_cpu():
    spec = importlib.util.spec_from_file_location("reproduce_cpu", ROOT / "scripts" / "reproduce_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPRODUCE = reproduce_cpu()
entry_folder = REPRODUCE.entry_folder


def is_sweep(override: str) -> bool:
    key, _, value = override.partition("=")
    return "," in value and not key.startswith("+")


def sweep_jobs(experiment: str, scale: str, overrides: list[str]) -> list[tuple[list[str], list[int]]]:
    """The sweep's jobs, as Hydra's basic sweeper makes them (the experiment's `hydra.sweeper.params` with the command
    line's sweeps in their place, every combination): each combination of the other settings with its seeds."""
    fixed = [f"+experiment={experiment}", f"scale={scale}", *[o for o in overrides if not is_sweep(o)]]
    params = dict(compose(*fixed, return_hydra_config=True).hydra.sweeper.params or {})
    for override in fixed:  # as Hydra: a setting the command line fixes is not swept (Fig. 4 one width at a time)
        params.pop(override.split("=", 1)[0], None)
    params.update(dict(o.split("=", 1) for o in overrides if is_sweep(o)))
    seeds = [int(seed) for seed in str(params.pop("seed", "")).split(",") if seed]
    choices = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
    return [(fixed + list(job), seeds) for job in itertools.product(*choices)]


def part_of_the_run(config: dict) -> dict:
    """A config's dotted settings but those that only say how a run was watched or stored."""
    return {key: value for key, value in flatten_config(config).items() if is_part_of_the_run(key)}


def composed_runs(jobs: list[tuple[list[str], list[int]]]) -> list[dict]:
    """Each job's config as its run records it (`prepare`), one per member where a job trains seeds as members.
    Hydra composes each combination once (about a second each); its seeds are set on the composed config, as the
    `seed=` override would (interpolations such as dataset.seed: ${seed} follow)."""
    configs = []
    for overrides, seeds in jobs:
        composed = compose(*overrides)
        members = int(composed.trainer.get("members") or 1)
        for job_seed in seeds or [int(composed.seed)]:
            for seed in range(job_seed, job_seed + members):  # as app.run: each member the single run of its seed
                cfg = member_config(composed, seed) if members > 1 else OmegaConf.merge(composed, {"seed": seed})
                configs.append(part_of_the_run(OmegaConf.to_container(prepare(cfg), resolve=True)))
    return configs


# Settings some committed runs' run.json lacks, beyond tracking.records.ADDED_LATER (read at their defaults): the
# noise modes' schema keys that older records of those modes were written without (each one's default is what those
# runs did). Any other setting a job has and its run lacks is a difference.
ADDED_LATER = {
    *RECORDED_LATER,
    "model.output_scale",
    "noise.anneal_steps",
    "noise.groups",
    "noise.kind",
    "noise.noise_input",
    "noise.order",
    "noise.variance",
}


def same_run(job: dict, run: dict) -> bool:
    return set(job) - set(run) <= ADDED_LATER and all(job.get(k, "<unset>") == v for k, v in run.items())


def unmatched(made: list[dict], committed: list[dict]) -> tuple[list[dict], list[dict]]:
    """Pair each committed run with a job of the same settings (but those ADDED_LATER, where its run.json lacks
    them); the jobs and runs left without a partner."""
    left = list(made)
    alone = []
    for run in committed:
        partner = next((i for i, job in enumerate(left) if same_run(job, run)), None)
        if partner is None:
            alone.append(run)
        else:
            left.pop(partner)
    return left, alone


PLAN = [entry for entry in REPRODUCE.PLAN if entry_folder(entry[1], list(entry[3:])).exists()]


def test_every_committed_folder_has_its_command():
    folders = {entry_folder(entry[1], list(entry[3:])) for entry in PLAN}
    for summary in RUNS.rglob("summary.json"):
        assert any(folder in summary.parents for folder in folders), f"{summary}: no PLAN entry makes it"


@pytest.mark.parametrize("entry", PLAN, ids=lambda entry: " ".join(entry[1:]))
def test_the_command_composes_to_the_committed_runs(entry):
    _, experiment, scale, *overrides = entry
    folder = entry_folder(experiment, overrides)
    committed = [part_of_the_run(json.loads(path.read_text())["config"]) for path in sorted(folder.rglob("run.json"))]
    jobs, runs = unmatched(composed_runs(sweep_jobs(experiment, scale, overrides)), committed)
    if jobs or runs:
        example = ""
        if jobs and committed:
            run = min(committed, key=lambda c: sum(jobs[0].get(k, "<unset>") != v for k, v in c.items()))
            example = "; e.g. " + ", ".join(
                f"{k}={jobs[0].get(k, '<unset>')!r} in the command, {v!r} committed"
                for k, v in sorted(run.items())
                if jobs[0].get(k, "<unset>") != v
            )
        pytest.fail(
            f"{folder}: {len(jobs)} job(s) of the command have no committed run, {len(runs)} committed run(s) "
            f"come from no job{example[:600]}"
        )


def test_a_selection_the_plan_does_not_hold_is_refused_before_anything_is_touched(tmp_path, monkeypatch, capsys):
    """`--fresh --only fig99` (a typo) once deleted all of results/ and then failed; `--only` without a name started
    the whole plan."""
    monkeypatch.setattr(REPRODUCE, "RESULTS", tmp_path)
    (tmp_path / "runs" / "fig2_synthetic" / "0").mkdir(parents=True)
    (tmp_path / "runs" / "fig2_synthetic" / "0" / "summary.json").write_text("{}")
    (tmp_path / "REPORT.md").write_text("report")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for argv in (
        ["--fresh", "--only", "fig99"],
        ["--fresh", "--paper", "orvietto"],
        ["--only"],
        ["--fresh", "--paper"],
    ):
        assert REPRODUCE.main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and ("--only" in lines[0] or "--paper" in lines[0]), lines
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_fresh_on_a_part_clears_only_that_part(tmp_path, monkeypatch):
    monkeypatch.setattr(REPRODUCE, "RESULTS", tmp_path)
    for folder in ("runs/fig2_synthetic/0", "runs/fig1_variance/0", "fig2_synthetic", "fig1_variance"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "file").write_text("x")
    REPRODUCE.clear(REPRODUCE.selected(None, ["fig2_synthetic"]), everything=False)
    assert not (tmp_path / "runs" / "fig2_synthetic").exists() and not (tmp_path / "fig2_synthetic").exists()
    assert (tmp_path / "runs" / "fig1_variance" / "0" / "file").exists() and (tmp_path / "fig1_variance").exists()
