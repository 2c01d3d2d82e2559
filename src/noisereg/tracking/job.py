"""A job's lifecycle in one wrapper (lightning-hydra-template's `task_wrapper` idea): settings checked before
anything is written, the run directory's plan (start, resume, or leave a finished run alone), its lock, the
records, W&B, signals, and the final status.

    summary = run_job(cfg, output_dir, prepare=..., build=...)

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

import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from noisereg.errors import SettingError
from noisereg.tracking.lock import RunLock, describe, lock_owner
from noisereg.tracking.records import (
    CHECKPOINT,
    FINISHED,
    IDENTITY,
    SUMMARY,
    RunRecord,
    discard_records,
    holds_records,
    read_identity,
    read_summary,
    write_json,
)
from noisereg.tracking.wandb_logger import WandbLogger, check_wandb

# Settings that may change between the segments of one run: they change how it is watched, not what it computes.
NOT_PART_OF_THE_RUN = ("trainer.resume", "trainer.progress_bar", "trainer.checkpoint_every", "trainer.checkpoint_unit",
                       "trainer.keep_checkpoint", "logger", "dataset.root", "dataset.download")  # fmt: skip


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: config}


def config_difference(recorded: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The first setting that differs between a recorded run and this one, as `key: this vs recorded`."""
    ours, theirs = _flatten(config), _flatten(recorded)
    for key in sorted(set(ours) | set(theirs)):
        if any(key == ignored or key.startswith(ignored + ".") for ignored in NOT_PART_OF_THE_RUN):
            continue
        if ours.get(key, "<unset>") != theirs.get(key, "<unset>"):
            return f"{key}={ours.get(key, '<unset>')} here, {theirs.get(key, '<unset>')} there"
    return None


class Plan:
    """What a job does with its run directory."""

    def __init__(self, action: str, summary: dict[str, Any] | None = None, wandb_id: str | None = None):
        self.action = action  # start | resume | finished
        self.summary = summary  # of a finished run
        self.wandb_id = wandb_id


def plan_run_directory(directory: Path, config: dict[str, Any]) -> Plan:
    """Decide, reading only, what to do with `directory`; a `SettingError` when the job must not touch it."""
    policy = config["trainer"]["resume"]
    owner = lock_owner(directory)
    if owner is not None:
        raise SettingError(f"run directory {directory} is in use by {describe(owner)}; wait for that run, or write "
                           "this one elsewhere (hydra.run.dir=... or hydra.sweep.dir=...)")  # fmt: skip
    if not holds_records(directory) or policy == "restart":
        return Plan("start")
    if policy == "never":
        raise SettingError(f"run directory {directory} already holds a run's records and trainer.resume=never; "
                           "use a new directory (hydra.run.dir=...) or trainer.resume=auto to continue it")  # fmt: skip
    summary = read_summary(directory) if (directory / SUMMARY).exists() else None
    identity = read_identity(directory) if (directory / IDENTITY).exists() else {}
    if not identity and summary is not None and summary.get("status") == "failed" and "steps" not in summary:
        return Plan("start")  # only the reason an earlier attempt was rejected: nothing of a run to keep
    recorded = identity.get("config") or (summary or {}).get("config")
    difference = "its settings are unknown (no run.json)" if recorded is None else config_difference(recorded, config)
    if difference is not None:
        raise SettingError(f"run directory {directory} holds a run with other settings ({difference}); use a new "
                           "directory (hydra.run.dir=... or hydra.sweep.dir=...) or trainer.resume=restart to "
                           "discard it")  # fmt: skip
    if summary is not None and summary.get("status") in FINISHED:
        return Plan("finished", summary=summary)
    return Plan("resume", wandb_id=identity.get("wandb_id"))


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
        print(f"noisereg: {signal.Signals(signum).name} received: stopping after this step and writing a checkpoint"
              f"{again}", flush=True)  # fmt: skip

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
        print(f"noisereg: {signal.Signals(self.received).name} at step {step}, checkpoint written: handing the signal "
              "to the launcher", flush=True)  # fmt: skip
        previous_sigterm = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            handler(self.received, None)
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)


def prepare_job(cfg: DictConfig, prepare: Callable[[DictConfig], DictConfig], output_dir: Path) -> tuple[DictConfig, Plan]:
    """The checks every job makes before writing anything: settings, W&B, the run directory."""
    cfg = prepare(cfg)
    check_wandb(cfg.logger.mode)
    return cfg, plan_run_directory(output_dir, OmegaConf.to_container(cfg, resolve=True))


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
    started = time.time()
    directory = Path(output_dir)
    summary: dict[str, Any] = {"status": "failed", "seed": cfg.get("seed"), "name": cfg.get("name"),
                               "config": OmegaConf.to_container(cfg)}  # fmt: skip
    try:
        cfg, plan = prepare_job(cfg, prepare, directory)
        config = OmegaConf.to_container(cfg, resolve=True)
        summary["config"] = config
        if plan.action == "finished":
            return {**plan.summary, "finished_before": True}
        experiment = build(cfg)
    except Exception as error:
        if in_sweep and not holds_records(directory):  # say why in the job's own folder, never over a run's records
            summary.update(reason=_reason(error), wall_time_s=round(time.time() - started, 3))
            directory.mkdir(parents=True, exist_ok=True)
            write_json(directory / SUMMARY, summary)
            return summary
        raise

    checkpoint_path = directory / CHECKPOINT
    record = logger = None
    with RunLock(directory), StopOnSignals() as stop:
        try:
            if cfg.trainer.resume == "restart":
                discard_records(directory)
            resume_step = None
            if plan.action == "resume" and checkpoint_path.exists():
                experiment.state.restore(checkpoint_path)
                resume_step = experiment.state.step
            wandb_id = plan.wandb_id or WandbLogger.new_id()
            logger = WandbLogger(
                mode=cfg.logger.mode,
                project=cfg.logger.project,
                entity=cfg.logger.entity,
                tags=list(cfg.logger.tags) + [cfg.noise.name],
                group=cfg.name,
                name=run_name,
                job_type=cfg.noise.name,
                config=config,
                directory=directory,
                run_id=wandb_id,
            )
            record = RunRecord(directory, resume_step=resume_step)
            if plan.action == "start":
                record.write_identity({"config": config, "wandb_id": wandb_id, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            if resume_step is not None:
                print(f"noisereg: resuming {directory} from its checkpoint at step {resume_step}", flush=True)

            def log(row: dict[str, Any], artifacts: dict[str, Any]) -> None:
                record.log(row)
                record.save_artifacts(row["step"], artifacts)
                logger.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

            result = experiment.train(log, lambda state: state.save(checkpoint_path), lambda: stop.received is not None)
            summary.update(status=result.status, steps=result.steps, final_metrics=result.final_metrics,
                           **experiment.summary())  # fmt: skip
            if result.reason:
                summary["reason"] = result.reason
            if result.status == "interrupted" and stop.received is not None:
                summary["signal"] = signal.Signals(stop.received).name
                summary["reason"] = f"{summary['signal']} at step {result.steps}; run the same command to resume"
        except KeyboardInterrupt:  # a second Ctrl-C: stopped mid-step; resumes from the last checkpoint
            summary.update(status="interrupted", signal="SIGINT", steps=experiment.state.step,
                           final_metrics=experiment.state.last_row,
                           reason="SIGINT twice: stopped mid-step; run the same command to resume from the last "
                                  "checkpoint")  # fmt: skip
        except SystemExit:  # a launcher's handler exiting mid-step (submitit's, on a second SIGUSR2): the same
            summary.update(status="interrupted", steps=experiment.state.step, final_metrics=experiment.state.last_row,
                           reason="exited mid-step; run the same command to resume from the last "
                                  "checkpoint")  # fmt: skip
            raise
        except BaseException as error:
            summary["reason"] = _reason(error)
            if not (in_sweep and isinstance(error, Exception)):
                raise
        finally:
            summary["wall_time_s"] = round(time.time() - started, 3)
            if record is not None:
                record.write_summary(summary)
                record.close()
            if logger is not None:
                logger.summary({"status": summary["status"], **summary.get("final_metrics", {})})
                logger.finish(exit_code=0 if summary["status"] in FINISHED else 1)
            if summary["status"] in FINISHED and not cfg.trainer.keep_checkpoint:
                checkpoint_path.unlink(missing_ok=True)
    if summary["status"] == "interrupted":
        stop.hand_on(summary["steps"])  # submitit's requeue after SIGUSR2: it exits
    return summary


def _reason(error: BaseException) -> str:
    return str(error) if isinstance(error, SettingError) else f"{type(error).__name__}: {error}"
