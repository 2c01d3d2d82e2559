"""The Fashion-MNIST experiments that need the papers' widths, on one GPU, in one call: `make reproduce-gpu`.

    python scripts/reproduce_gpu.py [--scale paper|smoke] [--budget-minutes 8] [--seeds 3] [--out DIR]
                                    [--data-root DIR] [--only EXPERIMENT ...] [--plan-only] [--no-images]
    (make reproduce-gpu ARGS="--scale smoke" passes options)

Orvieto et al. Figs 3, 4, 7, 8, 9, 10 and Levi et al.'s MLPs (Figs 1, 2 bottom, 3) at the paper's sizes with
`--seeds` seeds, in the order below: the claims that the CPU runs of results/ checked furthest from the paper's
sizes come first. Before anything runs, the plan: each experiment's jobs, how many are done, and its estimated time
(noisereg/cost.py: FLOPs counted on the meta device at speeds measured here, scaled by the measured times of the
runs already finished here when there are some), fitted into `--budget-minutes` in that order (an experiment that
does not fit is left out and said so; a later, smaller one may still fit). Each experiment is one sweep into
<out>/runs/<experiment>/, a folder per job named by its swept settings (noise=gd,seed=0): launched again, with the
same or more seeds, it skips the jobs that finished and resumes the others from their checkpoints; a job counts as
done only where a finished run holds its config, and an experiment whose jobs are all done is skipped. At the end of
the budget, or when this script is stopped (Ctrl-C, SIGTERM: exit 130 or 143), the running sweep gets SIGTERM (its
job checkpoints and stops), and what finished is reported. A sweep with failed or refused jobs makes the exit status 1. Then the figures and <out>/REPORT.md
(scripts/report.py) from everything under <out>/runs/.

Runs from a bare GPU machine with the bundle (scripts/gpu_bundle.sh; docs/clusters.md, "On a GPU"): Fashion-MNIST from
`--data-root` (a folder holding FashionMNIST/raw/), no W&B (logger.mode=disabled).
"""

from __future__ import annotations

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy, see noisereg/__init__.py)

# isort: split

import argparse
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from noisereg.cost import DeviceSpeed, describe, job_cost, measure_speed
from noisereg.errors import SettingError
from noisereg.tracking.evidence import thin_records

ROOT = Path(__file__).resolve().parents[1]
# Most changed by scale first: Orvieto's 5000-wide MLPs ran at a tenth of their width on the CPU (Figs 3, 8, 10 and
# Fig. 4's wide net), Levi's Fig. 1 at a quarter width; then what ran at the paper's size on the CPU already (Fig. 9,
# Levi's Figs 3 and 2 bottom, Fig. 7), the GPU's records a check of the CPU's.
PLAN = [
    ("orvieto", "fig3_fmnist_sigma"),
    ("orvieto", "fig8_mlp2"),
    ("orvieto", "fig10_mlp4"),
    ("orvieto", "fig4_deep_mlp"),
    ("levi", "levi_fig1_decay_times"),
    ("orvieto", "fig9_mlp3"),
    ("levi", "levi_fig3_mlp_ce"),
    ("levi", "levi_fig2_mlp_mse"),
    ("orvieto", "fig7_mlp1"),
]
FINISHED = ("completed", "diverged")
STOP_GRACE_S = 120  # after SIGTERM: the running job checkpoints and writes its records
REPORT_S_PER_EXPERIMENT = 10  # drawing a figure and checking its claims (CPU side), reserved in the budget


@dataclass
class Planned:
    experiment: str
    overrides: list[str]
    folder: Path
    jobs: int
    done: int
    seconds: float  # estimated, for the jobs not done
    source: str  # how the estimate was made
    included: bool = False
    reasons: list[str] = field(default_factory=list)


class Composer:
    """Configs as `run.py OVERRIDES` composes them, fast enough to plan a few hundred jobs: Hydra composes each
    combination of config-group choices once; plain settings (seed=1, noise.sigma=0.1) are set on a copy."""

    def __init__(self):
        from hydra import initialize_config_dir
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from noisereg.config import register_with_hydra

        register_with_hydra()
        self._context = initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3")
        self._context.__enter__()
        self.parser = OverridesParser.create()
        self._composed: dict[tuple[str, ...], object] = {}

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def _is_group(self, override: str) -> bool:
        """A config-group choice (noise=gd_noise, experiment=orvieto/fig4_deep_mlp, orvieto/fig4_width=wide): a folder
        of conf/ or a group the registries put into Hydra's ConfigStore."""
        from hydra.core.config_store import ConfigStore

        key = override.partition("=")[0]
        return (
            key.startswith(("+", "~"))
            or (ROOT / "conf" / key).is_dir()
            or isinstance(ConfigStore.instance().repo.get(key), dict)
        )

    def compose(self, overrides: list[str], return_hydra_config: bool = False):
        from hydra import compose
        from omegaconf import OmegaConf, open_dict

        from noisereg.config import translate_overrides

        overrides = translate_overrides(overrides, ROOT / "conf")  # as run.py: +experiment=<name> is experiment=...
        groups = tuple(o for o in overrides if self._is_group(o))
        key = (*groups, str(return_hydra_config))
        if key not in self._composed:
            self._composed[key] = compose(
                config_name="config", overrides=list(groups), return_hydra_config=return_hydra_config
            )
        cfg = self._composed[key].copy()
        with open_dict(cfg):
            for override in self.parser.parse_overrides([o for o in overrides if not self._is_group(o)]):
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        return cfg

    def sweep_jobs(self, overrides: list[str]) -> list[list[str]]:
        """The override lists of the sweep `run.py -m OVERRIDES` launches: the experiment's hydra.sweeper.params
        with the command line's settings replacing those of the same key (`seed=0` sweeps one seed), as Hydra's
        basic sweeper combines them."""
        from noisereg.config import translate_overrides

        overrides = translate_overrides(overrides, ROOT / "conf")  # the experiment's sweep names today's groups
        composed = self.compose([o for o in overrides if "," not in o], return_hydra_config=True)
        params = {key: str(value) for key, value in (composed.hydra.sweeper.params or {}).items()}
        fixed = []
        for override in overrides:
            key, _, value = override.partition("=")
            if "," in value or key in params:  # a sweep, or a value that replaces the experiment's sweep of it
                params[key] = value
            else:
                fixed.append(override)
        axes = [
            [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
            if o.is_sweep_override()
            else [o.input_line]
            for o in self.parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
        ]
        return [fixed + list(combination) for combination in itertools.product(*axes)]


def finished_runs(folder: Path) -> list[dict]:
    summaries = []
    for path in sorted(folder.rglob("summary.json")):  # a paper's group swept (orvieto/fig4_width=...) nests a level
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a damaged record: its job runs again (run.py says why)
        if isinstance(summary, dict) and summary.get("status") in FINISHED:
            summaries.append(summary)
    return summaries


class Estimator:
    """Estimated seconds of a job's config on this device, computed once per distinct cost (seeds cost alike)."""

    def __init__(self, speed: DeviceSpeed):
        self.speed, self.device = speed, torch.device(speed.device.split(" ")[0])
        self._seconds: dict[str, float] = {}

    def seconds(self, cfg) -> float:
        from omegaconf import OmegaConf

        from noisereg.app import prepare

        parts = {
            k: OmegaConf.to_container(cfg[k], resolve=True)
            for k in ("dataset", "model", "trainer", "curvature", "scale")
        }
        parts["dataset"].pop("seed", None)
        key = json.dumps(parts, sort_keys=True, default=str)
        if key not in self._seconds:
            self._seconds[key] = self.speed.seconds(job_cost(prepare(cfg), self.device))
        return self._seconds[key]


def estimate(experiment: str, overrides: list[str], folder: Path, composer: Composer, estimator: Estimator) -> Planned:
    """The experiment's jobs, those done (a finished run here whose config is the job's: records of another scale,
    seed count or setting do not count) and the estimated time of the others."""
    from omegaconf import OmegaConf

    from noisereg.app import prepare
    from noisereg.tracking.job import config_difference

    jobs = composer.sweep_jobs(overrides)
    finished = finished_runs(folder)
    configs = [OmegaConf.to_container(prepare(composer.compose(job)), resolve=True) for job in jobs]
    to_run = [
        job
        for job, config in zip(jobs, configs)
        if not any(config_difference(s.get("config", {}), config) is None for s in finished)
    ]
    seconds = sum(estimator.seconds(composer.compose(job)) for job in to_run)
    source = "FLOP count"
    device = estimator.speed.device.split(":")[0]
    here = [s for s in finished if str(s.get("device", "")).split(":")[0] == device and s.get("wall_time_s")]
    if here and to_run:
        # a record's config names the data where it ran: counted here with this plan's dataset settings
        dataset = composer.compose(jobs[0]).dataset
        counted = sum(estimator.seconds(OmegaConf.merge(s["config"], {"dataset": dataset})) for s in here)
        ratio = sum(s["wall_time_s"] for s in here) / counted
        seconds *= ratio
        source = f"FLOP count × {ratio:.2f}, the ratio measured on {len(here)} finished runs here"
    return Planned(experiment, overrides, folder, len(jobs), len(jobs) - len(to_run), seconds, source)


def fit(plans: list[Planned], budget_s: float) -> None:
    left = budget_s
    for plan in plans:
        if plan.done >= plan.jobs:
            plan.reasons.append("done: every job finished (skipped)")
            continue
        needed = plan.seconds + REPORT_S_PER_EXPERIMENT
        if needed <= left:
            plan.included, left = True, left - needed
        else:
            plan.reasons.append(f"left out: needs {describe(needed)}, {describe(max(left, 0))} of the budget left")


def print_plan(plans: list[Planned], speed: DeviceSpeed, budget_s: float, scale: str) -> None:
    how = "assumed" if "assumed" in speed.device else "measured here"
    print(
        f"reproduce-gpu: plan at scale={scale} on {speed.device} ({how}: {speed.bf16_flops_per_s / 1e12:.1f} "
        f"TFLOP/s bf16, {speed.fp32_flops_per_s / 1e12:.1f} TFLOP/s fp32 matmuls; a step's floor "
        f"{speed.floor_s * 1e6:.0f} µs + {speed.floor_per_tensor_s * 1e6:.0f} µs per parameter tensor), "
        f"budget {describe(budget_s)}:"
    )
    total = 0.0
    for index, plan in enumerate(plans, 1):
        if plan.included:
            total += plan.seconds
        what = "runs" if plan.included else "; ".join(plan.reasons)
        print(
            f"  {index}. {plan.experiment}: {plan.jobs} jobs ({plan.done} done), estimated {describe(plan.seconds)} "
            f"({plan.source}): {what}"
        )
    print(f"reproduce-gpu: estimated {describe(total)} of training in all, then the figures and the report")


# Each job's folder is named by the settings its sweep gives it (noise=gd,seed=0), not by Hydra's job number, which
# another --seeds renumbers: a relaunch with more seeds finds each finished job in its own folder. A paper's group in
# the sweep names a folder a level deeper (noise=gd,orvieto/fig4_width=narrow,seed=0): finished_runs looks at any depth.
JOB_FOLDERS = [
    "hydra.sweep.subdir=${hydra.job.override_dirname}",
    "hydra.job.config.override_dirname.exclude_keys=[experiment,scale,trainer.device,logger.mode,"
    "trainer.progress_bar,dataset.root]",
]


def run_sweep(plan: Planned, deadline: float) -> tuple[str, bool]:
    """The experiment's sweep, stopped by SIGTERM at the deadline or when this script is stopped (its running job
    checkpoints); its outcome line, and whether every job it ran completed or diverged."""
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        *plan.overrides,
        f"hydra.sweep.dir={plan.folder}",
        *JOB_FOLDERS,
    ]
    log = plan.folder.parent / f"{plan.experiment}.log"
    plan.folder.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as output:
        # its own session: a Ctrl-C reaches this script alone, which stops the sweep as the deadline does
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
            stopped = ""
        except subprocess.TimeoutExpired:
            stop(process)
            stopped = " (stopped at the end of the budget; launch again to resume)"
        except KeyboardInterrupt:
            stop(process)
            raise
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("noisereg: sweep")]
    outcome = (lines[-1] if lines else f"exit status {process.returncode}, see {log}") + stopped
    return outcome, bool(stopped) or process.returncode == 0


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the sweep's processes (the running job checkpoints and stops), SIGKILL after STOP_GRACE_S."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def assumed_speed(text: str) -> DeviceSpeed:
    usage = "give four numbers, BF16_TFLOPS,FP32_TFLOPS,STEP_US,TENSOR_US, e.g. 600,50,150,20"
    try:
        bf16, fp32, step, tensor = (float(v) for v in text.split(","))
    except ValueError:
        raise SettingError(f"--assume {text}: {usage}") from None
    if not all(math.isfinite(v) for v in (bf16, fp32, step, tensor)) or min(bf16, fp32) <= 0 or min(step, tensor) < 0:
        raise SettingError(
            f"--assume {text}: the speeds must be finite and above 0, the times finite and at least 0; {usage}"
        )
    return DeviceSpeed("cuda (assumed)", bf16 * 1e12, fp32 * 1e12, step * 1e-6, tensor * 1e-6)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        choices=["paper", "smoke"],
        default="paper",
        help="paper (default): the papers' "
        "sizes; smoke: the same plan shrunk to seconds per job (the test suite's check)",
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=8.0,
        help="the time the plan is fitted into (default 8: one 10-minute command with the report)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 … N-1 of every experiment (default 3)")
    parser.add_argument(
        "--out",
        default=None,
        help="records, figures and REPORT.md (default results/gpu at "
        "scale=paper, outputs/reproduce_gpu_smoke at scale=smoke)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="a folder holding FashionMNIST/raw/ (dataset.root); "
        "default: the dataset's own (data/, then Debian's package)",
    )
    parser.add_argument("--device", default="auto", help="trainer.device (default auto: cuda where there is one)")
    parser.add_argument("--only", nargs="+", metavar="EXPERIMENT", help="plan only these experiments")
    parser.add_argument("--plan-only", action="store_true", help="print the plan and stop")
    parser.add_argument("--no-images", action="store_true", help="the report and the figures' data, no PNGs")
    parser.add_argument(
        "--assume",
        metavar="BF16,FP32,STEP,TENSOR",
        help="with --plan-only: plan for a GPU of "
        "these speeds instead of measuring this machine (dense-matmul TFLOP/s in bf16 and fp32; a "
        "step's floor in µs, and µs more per parameter tensor), e.g. --assume 600,50,150,20",
    )
    arguments = parser.parse_args(argv)
    known = [experiment for _, experiment in PLAN]
    unknown = [e for e in arguments.only or [] if e not in known]
    if unknown:
        print(
            f"reproduce-gpu: error: --only {unknown[0]} is not in the plan; choose from: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    if arguments.assume and not arguments.plan_only:
        print("reproduce-gpu: error: --assume plans for another machine: use it with --plan-only", file=sys.stderr)
        return 2
    if arguments.seeds < 1 or not math.isfinite(arguments.budget_minutes) or arguments.budget_minutes <= 0:
        print(
            f"reproduce-gpu: error: --seeds {arguments.seeds} --budget-minutes {arguments.budget_minutes:g}: both "
            "must be finite and positive, e.g. --seeds 3 --budget-minutes 8",
            file=sys.stderr,
        )
        return 2
    out = Path(arguments.out or ("results/gpu" if arguments.scale == "paper" else "outputs/reproduce_gpu_smoke"))
    out = out if out.is_absolute() else ROOT / out
    from noisereg.train.settings import resolve_device

    started = time.monotonic()
    budget_s = arguments.budget_minutes * 60
    try:
        device = resolve_device(arguments.device)
        speed = measure_speed(device) if not arguments.assume else assumed_speed(arguments.assume)
        common = [
            f"scale={arguments.scale}",
            f"seed={','.join(str(s) for s in range(arguments.seeds))}",
            f"trainer.device={arguments.device}",
            "logger.mode=disabled",
            "trainer.progress_bar=false",
            *([f"dataset.root={Path(arguments.data_root).resolve()}"] if arguments.data_root else []),
        ]
        composer, estimator = Composer(), Estimator(speed)
        plans = [
            estimate(experiment, [f"+experiment={experiment}", *common], out / "runs" / experiment, composer, estimator)
            for _, experiment in PLAN
            if not arguments.only or experiment in arguments.only
        ]
        composer.close()
    except SettingError as error:
        print(f"reproduce-gpu: error: {error}", file=sys.stderr)
        return 2
    fit(plans, budget_s - (time.monotonic() - started))
    print_plan(plans, speed, budget_s, arguments.scale)
    if arguments.plan_only:
        return 0
    deadline = started + budget_s
    received = {}

    def on_signal(signum: int, frame) -> None:  # SIGTERM reads as Ctrl-C: the running sweep is stopped either way
        received["signal"] = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failed = []
    try:
        for plan in plans:
            if not plan.included:
                continue
            if time.monotonic() >= deadline:
                print(f"reproduce-gpu: {plan.experiment} not started: the budget is spent")
                continue
            tic = time.monotonic()
            print(f"reproduce-gpu: {plan.experiment} ({plan.jobs - plan.done} jobs to run)...", flush=True)
            outcome, ok = run_sweep(plan, deadline)
            failed += [] if ok else [plan.experiment]
            removed = thin_records(plan.folder) if plan.folder.exists() else 0  # the committed form (evidence.py)
            print(
                f"reproduce-gpu: {plan.experiment} took {describe(time.monotonic() - tic)} (estimated "
                f"{describe(plan.seconds)}; {removed} artifact snapshots no figure reads dropped): {outcome}",
                flush=True,
            )
    except KeyboardInterrupt:
        signum = received.get("signal", signal.SIGINT)
        print(
            f"reproduce-gpu: stopped by {signal.Signals(signum).name}: the running sweep was told to stop and its "
            "job wrote its checkpoint; launch the same command again to resume",
            file=sys.stderr,
            flush=True,
        )
        return 128 + int(signum)
    if not any((out / "runs").rglob("summary.json")):
        print(f"reproduce-gpu: no finished records under {out / 'runs'}: no report")
        return 1
    # Relative paths inside the checkout, as a reader of any clone types them: the figures' JSON names runs by them.
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    report = subprocess.run(
        [
            sys.executable,
            "scripts/report.py",
            str(shown / "runs"),
            "--out",
            str(shown / "REPORT.md"),
            *(["--no-images"] if arguments.no_images else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print(report.stdout + report.stderr, end="")
    print(f"reproduce-gpu: all done in {describe(time.monotonic() - started)}")
    if failed:
        print(
            f"reproduce-gpu: jobs failed or were refused in {', '.join(failed)}: their sweep lines above say where "
            "to read why",
            file=sys.stderr,
        )
        return 1
    return report.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
