"""A job's lifecycle in one wrapper (lightning-hydra-template's `task_wrapper` idea): settings checked before
anything is written, the run directory's plan (start, resume, or leave a finished run alone), its lock, the
records, W&B, signals, and the final status.

    summary = run_job(cfg, output_dir, prepare=..., build=...)
    summaries = run_jobs(cfgs, output_dirs, prepare, build, names, train_together=...)  # members, side by side

`prepare(cfg)` validates the settings and returns the resolved config (a `SettingError` names the setting);
`build(cfg)` constructs the experiment — an object with a `state` (train/state.py), `train(log, checkpoint,
should_stop) -> TrainResult` and `summary() -> dict` — also before anything is written.

Run-directory rules (`trainer.resume`):
- a directory without records: a fresh run;
- `auto` (default): an unfinished run (no summary, or `failed`/`interrupted`) continues from `checkpoint.pt`, or
  from its start when it has none; rows after the checkpoint's step are dropped from `metrics.jsonl` and the W&B
  run continues under its id, so the records equal an uninterrupted run's. A finished run (`completed`,
  `diverged`) is left alone and reported. Records of other settings stop the job with a one-line error;
- `never`: a directory that holds records is refused; `restart`: its records are discarded first.
SIGINT/SIGTERM stop the job at the end of the current step: checkpoint, records and an `interrupted` summary are
written, and the caller exits with 130/143 (`summary["signal"]`). SIGUSR2, where a launcher handles it (submitit:
SLURM's warning before a time limit), stops the job the same way and is then handed to that handler, which
requeues the job.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from noisereg.errors import SettingError
from noisereg.tracking.lock import RunLock, describe, lock_owner
from noisereg.tracking.provenance import PROVENANCE, provenance
from noisereg.tracking.records import (
    ADDED_LATER,
    CHECKPOINT,
    FINISHED,
    IDENTITY,
    RESTART,
    SUMMARY,
    RunRecord,
    discard_records,
    has_metrics,
    holds_records,
    metrics_file,
    read_identity,
    read_metrics,
    read_summary,
    write_json,
)
from noisereg.tracking.wandb_logger import WandbLogger, check_wandb
from noisereg.train.state import load_checkpoint

# Settings that may change between the segments of one run: they change how it is watched, not what it computes.
NOT_PART_OF_THE_RUN = (
    "trainer.resume",
    "trainer.progress_bar",
    "trainer.checkpoint_every",
    "trainer.checkpoint_unit",
    "trainer.keep_checkpoint",
    "logger",
    "dataset.root",
    "dataset.download",
    "optimized_metric",
)


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys (`trainer.optimizer.lr`)."""
    if isinstance(config, dict):
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat.update(flatten_config(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: config}


def is_part_of_the_run(key: str) -> bool:
    """Whether a dotted setting changes what a run computes (not one of NOT_PART_OF_THE_RUN or below it)."""
    return not any(key == ignored or key.startswith(ignored + ".") for ignored in NOT_PART_OF_THE_RUN)


def config_difference(recorded: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The setting that tells a recorded run from this one, as `key: this vs recorded`: a config group's choice
    (`noise.name`) before the settings that come with it (a mode's own keys, e.g. `noise.groups`), a setting both
    have before one that only one of them has."""
    ours, theirs = flatten_config(config), flatten_config(recorded)
    theirs = {**{key: value for key, value in ADDED_LATER.items() if key in ours}, **theirs}  # recorded before them
    differing = [
        key
        for key in set(ours) | set(theirs)
        if is_part_of_the_run(key) and ours.get(key, "<unset>") != theirs.get(key, "<unset>")
    ]
    if not differing:
        return None
    key = min(differing, key=lambda k: (not k.endswith(".name"), not (k in ours and k in theirs), k))
    return f"{key}={ours.get(key, '<unset>')} here, {theirs.get(key, '<unset>')} there"


def launch_position() -> dict[str, Any]:
    """Where a sweep put this job (W&B config keys `sweep_dir`, `job_number`), so that its run can be found among
    its sweep's; nothing outside a Hydra sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {}
    hydra = HydraConfig.get()
    return {"sweep_dir": str(hydra.sweep.dir), "job_number": int(hydra.job.num)}


def resume_hint(directory: Path) -> str:
    """How to resume the run in `directory`. Under Hydra, a single run: the exact command (its overrides without
    trainer.resume=restart, and its folder named: a default folder has a time stamp, so the same command would start
    a new run elsewhere); a sweep's job: its sweep with the sweep's folder named. Outside Hydra (the library): the
    same call with the same folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return f"run the same call with the same folder ({directory}) to resume"
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        return f"run the same command with hydra.sweep.dir={hydra.sweep.dir} to resume the sweep"
    overrides = [o for o in hydra.overrides.task if not o.startswith("trainer.resume=")]
    return "resume with: python run.py " + " ".join(shlex.quote(o) for o in [*overrides, f"hydra.run.dir={directory}"])


class Plan:
    """What a job does with its run directory."""

    def __init__(
        self,
        action: str,
        summary: dict[str, Any] | None = None,
        wandb_id: str | None = None,
        checkpoint: dict[str, Any] | None = None,
    ):
        self.action = action  # start | resume | finished
        self.summary = summary  # of a finished run
        self.wandb_id = wandb_id
        self.checkpoint = checkpoint  # the contents of the checkpoint a resumed run continues from


def plan_run_directory(directory: Path, config: dict[str, Any]) -> Plan:
    """Decide, reading only, what to do with `directory`; a `SettingError` when the job must not touch it."""
    policy = config["trainer"]["resume"]
    owner = lock_owner(directory)
    if owner is not None:
        raise SettingError(
            f"run directory {directory} is in use by {describe(owner)}; wait for that run, or write "
            "this one elsewhere (hydra.run.dir=... or hydra.sweep.dir=...)"
        )
    if not holds_records(directory) or policy == "restart":
        return Plan("start")
    if policy == "never":
        raise SettingError(
            f"run directory {directory} already holds a run's records and trainer.resume=never; "
            "use a new directory (hydra.run.dir=...) or trainer.resume=auto to continue it"
        )
    summary = read_summary(directory) if (directory / SUMMARY).exists() else None
    identity = read_identity(directory) if (directory / IDENTITY).exists() else {}
    if not identity and summary is not None and summary.get("status") == "failed" and "steps" not in summary:
        return Plan("start")  # only the reason an earlier attempt was rejected: nothing of a run to keep
    recorded = identity.get("config") or (summary or {}).get("config")
    difference = "its settings are unknown (no run.json)" if recorded is None else config_difference(recorded, config)
    if difference is not None:
        raise SettingError(
            f"run directory {directory} holds a run with other settings ({difference}); use a new "
            "directory (hydra.run.dir=... or hydra.sweep.dir=...) or trainer.resume=restart to "
            "discard it"
        )
    if summary is not None and summary.get("status") in FINISHED:
        return Plan("finished", summary=summary)
    checkpoint = load_checkpoint(directory / CHECKPOINT) if (directory / CHECKPOINT).exists() else None
    rows = read_metrics(directory) if has_metrics(directory) else []
    logged = (checkpoint or {}).get("last_row", {}).get("step")
    if logged is not None and not any(row["step"] == logged for row in rows):  # the records were cut short
        last = f"ends at step {rows[-1]['step']}" if rows else "holds no rows"
        raise SettingError(
            f"{metrics_file(directory)} {last}, but the checkpoint at step {checkpoint['step']} "
            f"follows a row logged at step {logged}: rows were lost; {RESTART}"
        )
    return Plan("resume", wandb_id=identity.get("wandb_id"), checkpoint=checkpoint)


class StopOnSignals:
    """SIGINT/SIGTERM set a flag the training loop checks after each step; a second signal acts as usual
    (Ctrl-C twice stops at once). Only the main thread can install handlers; elsewhere this does nothing.

    SIGUSR2 is taken over only where a handler is installed for it: submitit's, on the warning SLURM sends before a
    job's time limit, checkpoints its own state, requeues the job and exits, mid-step if left alone. Here it stops
    the job after the step like SIGTERM, and `hand_on()` then calls that handler, once the records are written.
    A repeated SIGUSR2 is absorbed: SLURM's warning was seen to arrive twice within 0.1 s."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    HANDED_ON = (signal.SIGUSR2,)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if signum in self.HANDED_ON and self.received == signum:
            return
        self.received = signum
        if signum not in self.HANDED_ON:
            signal.signal(signum, self._previous[signum])
        again = "" if signum in self.HANDED_ON else " (send it again to stop at once)"
        print(
            f"noisereg: {signal.Signals(signum).name} received: stopping after this step and writing a checkpoint"
            f"{again}",
            flush=True,
        )

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            for signum in self.HANDED_ON:
                if callable(signal.getsignal(signum)):
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def hand_on(self, step: int) -> None:
        """Call the launcher's handler of a signal this stopped the job for (submitit's requeue: it exits).
        SIGTERM is ignored meanwhile: the requeue makes SLURM send SIGTERM to every process of the job, the
        `scontrol requeue` that the handler runs included, which would die before it confirms (a child inherits
        an ignored signal, not a Python handler)."""
        handler = self._previous.get(self.received) if self.received in self.HANDED_ON else None
        if handler is None:
            return
        print(
            f"noisereg: {signal.Signals(self.received).name} at step {step}, checkpoint written: handing the signal "
            "to the launcher",
            flush=True,
        )
        previous_sigterm = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            handler(self.received, None)
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)


def prepare_job(
    cfg: DictConfig, prepare: Callable[[DictConfig], DictConfig], build: Callable[[DictConfig], Any], output_dir: Path
) -> tuple[DictConfig, Plan, Any]:
    """The checks every job makes before writing anything: settings, W&B, the run directory, the experiment's
    construction and, for a resumed run, its checkpoint restored. Returns the prepared config, the plan and the
    experiment (None for a run that had finished)."""
    cfg = prepare(cfg)
    check_wandb(cfg.logger.mode)
    plan = plan_run_directory(output_dir, OmegaConf.to_container(cfg, resolve=True))
    if plan.action == "finished":
        return cfg, plan, None
    experiment = build(cfg)
    if plan.checkpoint is not None:
        experiment.state.restore(output_dir / CHECKPOINT, plan.checkpoint)
    return cfg, plan, experiment


def run_job(
    cfg: DictConfig,
    output_dir: str | Path,
    prepare: Callable[[DictConfig], DictConfig],
    build: Callable[[DictConfig], Any],
    run_name: str | None = None,
    in_sweep: bool = False,
) -> dict[str, Any]:
    """Run one job into `output_dir`; returns its summary (`finished_before: True` when the directory already held
    a finished run, which is left untouched). Bad settings raise `SettingError` with nothing written, except that
    a job of a sweep (`in_sweep`) records them as a `failed` summary in a directory without records, and returns,
    so the sweep goes on; other exceptions likewise in a sweep, and are raised otherwise."""
    return run_jobs([cfg], [output_dir], prepare, build, [run_name], in_sweep)[0]


def run_jobs(
    cfgs: list[DictConfig],
    output_dirs: list[str | Path],
    prepare: Callable[[DictConfig], DictConfig],
    build: Callable[[DictConfig], Any],
    run_names: list[str | None],
    in_sweep: bool = False,
    train_together: Callable[..., list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run jobs, each into its own directory with the lifecycle of `run_job`, trained together in one process by
    `train_together(experiments, logs, checkpoints, should_stop) -> results` (the members of a batched job:
    train/members.py), or, for one job, by its experiment's `train`. Every job is checked and built before any is
    written to; returns their summaries, in order."""
    started = time.time()
    jobs = [_Job(cfg, Path(directory), name) for cfg, directory, name in zip(cfgs, output_dirs, run_names)]
    for job in jobs:
        job.prepare(prepare, build, in_sweep, started)
    training = [job for job in jobs if job.experiment is not None]
    if not training:
        return [job.summary for job in jobs]
    with contextlib.ExitStack() as stack:
        for job in training:
            stack.enter_context(RunLock(job.directory))
        stop = stack.enter_context(StopOnSignals())
        try:
            for job in training:
                job.open(alongside=len(training) > 1)
            should_stop = lambda: stop.received is not None  # noqa: E731
            if train_together is None:
                (job,) = training
                results = [job.experiment.train(job.log, job.checkpoint, should_stop)]
            else:
                results = train_together(
                    [job.experiment for job in training],
                    [job.log for job in training],
                    [job.checkpoint for job in training],
                    should_stop,
                )
            for job, result in zip(training, results):
                job.trained(result, stop.received)
        except KeyboardInterrupt:  # a second Ctrl-C: stopped mid-step; resumes from the last checkpoint
            for job in training:
                job.stopped_mid_step("SIGINT twice: stopped mid-step", signal_name="SIGINT")
        except SystemExit:  # a launcher's handler exiting mid-step (submitit's, on a second SIGUSR2): the same
            for job in training:
                job.stopped_mid_step("exited mid-step")
            raise
        except BaseException as error:
            for job in training:
                job.summary["reason"] = _reason(error)
            if not (in_sweep and isinstance(error, Exception)):
                raise
        finally:
            for job in training:
                job.close(started)
    interrupted = [job.summary["steps"] for job in training if job.summary["status"] == "interrupted"]
    if interrupted:
        stop.hand_on(min(interrupted))  # submitit's requeue after SIGUSR2: it exits
    return [job.summary for job in jobs]


class _Job:
    """One run directory's part of `run_jobs`: its plan, experiment, records, W&B run and summary."""

    def __init__(self, cfg: DictConfig, directory: Path, run_name: str | None):
        self.cfg, self.directory, self.run_name = cfg, directory, run_name
        self.summary: dict[str, Any] = {
            "status": "failed",
            "seed": cfg.get("seed"),
            "name": cfg.get("name"),
            "config": OmegaConf.to_container(cfg),
        }
        self.experiment = self.plan = self.record = self.logger = None
        self.config: dict[str, Any] = {}

    def prepare(self, prepare: Callable, build: Callable, in_sweep: bool, started: float) -> None:
        """Checks and construction (`prepare_job`), nothing written; a finished run's summary is kept as is."""
        try:
            self.cfg, self.plan, experiment = prepare_job(self.cfg, prepare, build, self.directory)
            self.config = OmegaConf.to_container(self.cfg, resolve=True)
            self.summary["config"] = self.config
            if self.plan.action == "finished":
                self.summary = {**self.plan.summary, "finished_before": True}
                return
            self.experiment = experiment
        except Exception as error:
            if in_sweep and not holds_records(self.directory):  # say why in the job's own folder, never over records
                self.summary.update(reason=_reason(error), wall_time_s=round(time.time() - started, 3))
                self.directory.mkdir(parents=True, exist_ok=True)
                write_json(self.directory / SUMMARY, self.summary)
                return
            raise

    def open(self, alongside: bool = False) -> None:
        """The records and the W&B run, under the directory's lock (`alongside`: other jobs' W&B runs stay open
        beside this one's)."""
        cfg, config, directory = self.cfg, self.config, self.directory
        if cfg.trainer.resume == "restart":
            discard_records(directory)
        resume_step = self.experiment.state.step if self.plan.checkpoint is not None else None
        wandb_id = self.plan.wandb_id or WandbLogger.new_id()
        self.logger = WandbLogger(
            mode=cfg.logger.mode,
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            # smoke, cpu and paper runs of an experiment share its group; the tag tells them apart
            tags=[*cfg.logger.tags, cfg.noise.name, f"scale:{cfg.scale.name}"],
            group=cfg.logger.group or cfg.name,
            name=self.run_name,
            notes=cfg.logger.notes,
            job_type=cfg.noise.name,
            config={**config, **launch_position()},
            directory=directory,
            run_id=wandb_id,
            alongside=alongside,
            x_axis="epoch" if cfg.trainer.eval_unit == "epochs" else None,  # the epoch-evaluated experiments
        )
        self.record = RunRecord(directory, resume_step=resume_step)
        if self.plan.action == "start":
            self.record.write_identity(
                {
                    "config": config,
                    "wandb_id": wandb_id,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    PROVENANCE: provenance(),
                }
            )
        if resume_step is not None:
            self.logger.log_again(self.record.kept_rows)  # rows W&B had not written when the run was killed
            print(f"noisereg: resuming {directory} from its checkpoint at step {resume_step}", flush=True)

    def log(self, row: dict[str, Any], artifacts: dict[str, Any]) -> None:
        self.record.log(row)
        self.record.save_artifacts(row["step"], artifacts)
        self.logger.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def checkpoint(self, state: Any) -> None:
        state.save(self.directory / CHECKPOINT)

    def trained(self, result: Any, received: int | None) -> None:
        self.summary.update(
            status=result.status, steps=result.steps, final_metrics=result.final_metrics, **self.experiment.summary()
        )
        if result.reason:
            self.summary["reason"] = result.reason
        if result.status == "interrupted" and received is not None:
            self.summary["signal"] = signal.Signals(received).name
            self.summary["reason"] = f"{self.summary['signal']} at step {result.steps}; {resume_hint(self.directory)}"

    def stopped_mid_step(self, why: str, signal_name: str | None = None) -> None:
        state = self.experiment.state
        self.summary.update(
            status="interrupted",
            steps=state.step,
            final_metrics=state.last_row,
            reason=f"{why}; {resume_hint(self.directory)} (from the last checkpoint)",
        )
        if signal_name is not None:
            self.summary["signal"] = signal_name

    def close(self, started: float) -> None:
        """The summary and the end of the W&B run, whatever happened; the checkpoint of a finished run removed."""
        summary = self.summary
        summary["wall_time_s"] = round(time.time() - started, 3)
        if self.record is not None:
            try:
                self.record.write_summary(summary)
                self.record.close()
            except OSError:  # a full disk: the error on its way up says so; what was written stays
                pass
        if self.logger is not None:
            self.logger.summary({"status": summary["status"], **summary.get("final_metrics", {})})
            self.logger.finish(exit_code=0 if summary["status"] in FINISHED else 1)
        if summary["status"] in FINISHED and not self.cfg.trainer.keep_checkpoint:
            (self.directory / CHECKPOINT).unlink(missing_ok=True)


def _reason(error: BaseException) -> str:
    return str(error) if isinstance(error, SettingError) else f"{type(error).__name__}: {error}"
