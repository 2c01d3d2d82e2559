"""What a sweep tells its user when its jobs are done: one line counting them by outcome, naming where the reasons
of the failed ones are, and the exit status of `python run.py -m ...` (0 only if every job completed or diverged).

Each job returns `{"status", "directory", "reason"}` (run.py); statuses are the summary's (completed, diverged,
failed) plus `refused` (the job did not touch a directory that holds another run's records, or one in use) and
`skipped` (a finished run found in its directory and left alone, as when a sweep is launched again)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hydra.experimental.callback import Callback

OK = ("completed", "diverged", "skipped")


@dataclass
class SweepOutcome:
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # where to read why, one per failed or refused job
    bad_settings: bool = False  # the cluster refused the jobs: exit status 2

    @property
    def ok(self) -> bool:
        return all(status in OK for status in self.counts)


LAST: SweepOutcome | None = None  # the last sweep of this process, read by run.py for its exit status
_SAID: set[str] = set()  # the error lines the jobs of this process's sweep printed


def say_once(line: str, in_sweep: bool) -> None:
    """A job's error line; in a sweep, once: its jobs that fail alike (CIFAR-10 missing for all 30) say it once, and
    the sweep's last line counts them."""
    if in_sweep and line in _SAID:
        return
    _SAID.add(line)
    print(line, file=sys.stderr, flush=True)


def new_sweep() -> None:
    """A sweep starts: no error line said yet (the sweeper calls it)."""
    _SAID.clear()


class JobResult(float):
    """A job's return value where `optimized_metric` is set: that metric's final value, a float for a sweeper that
    optimises it (Optuna's), carrying the job's status, directory and reason for the sweep's outcome line."""

    def __new__(cls, value: float, status: str, directory: str, reason: str = ""):
        result = super().__new__(cls, value)
        result.status, result.directory, result.reason = status, directory, reason
        return result

    def __reduce__(self):  # pickled back from a submitit job
        return JobResult, (float(self), self.status, self.directory, self.reason)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "directory": self.directory, "reason": self.reason}


def job_outcome(value: Any) -> dict[str, Any]:
    """A job's return value as the outcome line reads it: run.py's dict, or a `JobResult`."""
    if isinstance(value, JobResult):
        return value.as_dict()
    return value if isinstance(value, dict) else {"status": "failed", "reason": "no record"}


def report(job_returns: Iterable[Any], sweep_dir: str) -> SweepOutcome:
    global LAST
    outcome = SweepOutcome()
    job_returns = list(job_returns)
    values = [job_outcome(getattr(job, "return_value", None)) for job in job_returns]
    for job, value in zip(job_returns, values):
        status = value.get("status", "failed")
        outcome.counts[status] += 1
        if status not in OK:
            where = value.get("directory") or str(getattr(job, "working_dir", "?"))
            outcome.problems.append(
                f"{where}/summary.json" if status == "failed" else f"{where} ({value.get('reason', status)})"
            )
    total = sum(outcome.counts.values())
    finished = sum(outcome.counts[s] for s in OK)
    line = f"noisereg: sweep {sweep_dir}: {finished} of {total} jobs completed or diverged"
    if outcome.counts["skipped"]:
        line += f" ({outcome.counts['skipped']} had finished before and were left alone)"
    if not outcome.ok:
        others = ", ".join(f"{n} {s}" for s, n in sorted(outcome.counts.items()) if s not in OK)
        shown = "; ".join(outcome.problems[:5]) + ("; ..." if len(outcome.problems) > 5 else "")
        reasons = {value.get("reason") for value in values if value.get("status") not in OK}
        alike = " (all for the reason printed above)" if len(reasons) == 1 and len(outcome.problems) > 1 else ""
        line += f"; {others}{alike}: see {shown}"
    print(line, file=sys.stderr if not outcome.ok else sys.stdout, flush=True)
    LAST = outcome
    return outcome


def hydra_files(sweep_dir: str) -> dict[Path, bytes]:
    """Hydra's own files already in a sweep folder: its multirun.yaml and each job folder's .hydra/*.yaml."""
    root = Path(sweep_dir)
    paths = [root / "multirun.yaml", *root.glob("*/.hydra/*.yaml")] if root.is_dir() else []
    return {path: path.read_bytes() for path in paths if path.is_file()}


class OutcomeLine(Callback):
    """The outcome line and exit status for a sweep by any Hydra sweeper (`hydra/sweeper=optuna` included), from the
    return values of the jobs this process ran (the basic launcher's). `hydra/sweeper=noisereg`, the default, prints
    the line itself, with the returns of any launcher (submitit's jobs run in other processes)."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.jobs: list[Any] = []

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        if hasattr(self, "jobs"):
            self.jobs.append(job_return)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if "NoiseregSweeper" in str(config.hydra.sweeper.get("_target_", "")):
            return
        report(getattr(self, "jobs", []), str(config.hydra.sweep.dir))


def restore_hydra_files(saved: dict[Path, bytes], job_returns: Iterable[Any]) -> None:
    """Hydra rewrites the .hydra/*.yaml of every job it launches, and the sweep's multirun.yaml, before a job can
    refuse its folder: the files of each job that was refused or skipped (its records say what ran there) are put
    back as they were, and multirun.yaml too when no job of this launch trained."""
    values = [job_outcome(getattr(job, "return_value", None)) for job in job_returns]
    kept = {
        Path(v["directory"]).resolve()
        for v in values
        if v.get("status") in ("refused", "skipped") and v.get("directory")
    }
    trained = any(v.get("status") not in ("refused", "skipped") for v in values)
    for path, content in saved.items():
        if (path.name == "multirun.yaml" and not trained) or path.parent.parent.resolve() in kept:
            if not path.is_file() or path.read_bytes() != content:
                path.write_bytes(content)


def slurm_missing() -> str | None:
    """One line when SLURM's commands are not on this machine's PATH (submitit would raise with a traceback)."""
    import shutil

    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if not missing:
        return None
    return (
        f"hydra/launcher=slurm: no SLURM here ({' and '.join(missing)} not found on PATH); launch from a machine "
        "of the cluster, or run the sweep here with hydra/launcher=submitit_local (or without hydra/launcher)"
    )


def refuse(line: str) -> SweepOutcome:
    """A sweep that cannot start: its line, and exit status 2."""
    global LAST
    print(f"noisereg: error: {line}", file=sys.stderr, flush=True)
    LAST = SweepOutcome(Counter({"refused": 1}), [line], bad_settings=True)
    return LAST


def report_launcher_error(error: Exception, sweep_dir: str) -> SweepOutcome:
    """The cluster launcher gave up on the sweep: sbatch refused its jobs (its message says why), or a job ended on
    the cluster without a result (cancelled, killed, or out of requeues), which ends submitit's wait for all of them."""
    global LAST
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    lost = re.match(r"Job (\S+) \(task: \d+\) with path", first)  # submitit: no result file where the job ended
    if lost:
        state = re.search(r"\(state: ([^)]*)\)", str(error))
        first = (
            f"job {lost.group(1)} ended on the cluster without a result ({state.group(1) if state else 'ended'}: "
            "cancelled or killed there)"
        )
    refused = first.startswith("sbatch:")
    if refused and re.search(r"contact slurm controller|Connection refused|connect failure", str(error), re.I):
        line = (
            f"noisereg: error: no SLURM controller answers (sweep {sweep_dir}: {first}): slurmctld is not "
            "running or not reachable from here (`scontrol ping` says which); start it, or launch from a "
            "machine of the cluster"
        )
    elif refused:
        line = (
            f"noisereg: error: the cluster refused the jobs of sweep {sweep_dir}: {first}; check hydra.launcher."
            "partition, gpus_per_node, cpus_per_task, mem_gb and timeout_min against `sinfo`"
        )
    else:
        line = (
            f"noisereg: sweep {sweep_dir}: {first}; its other jobs may still run (squeue); once they are done, "
            "launch the same command again to finish the sweep"
        )
    print(line, file=sys.stderr, flush=True)
    LAST = SweepOutcome(Counter({"lost": 1}), [first], bad_settings=refused)
    return LAST
