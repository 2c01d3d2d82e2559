"""Sweeps on `hydra/launcher=submitit_local`, bounded to the machine and ended with their launch.

Submitit's local executor starts every job it is handed at once: 60 jobs of a smoke sweep once filled 24 GB and the
kernel killed some. The sweeper (hydra_plugins/noisereg_sweeper) hands it batches of at most `job_limit()` jobs,
one batch after the other (Hydra's own `hydra.sweeper.max_batch_size`, which a user sets to choose otherwise).
Each job is a submitit controller process (`python -m submitit.local._local`) that runs the task and forwards
SIGTERM to it; a launch stopped by SIGTERM or Ctrl-C sends SIGTERM to its controllers, so each job stops after its
step and writes its checkpoint (the same command resumes it), waits for them, and kills what is left.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

JOB_BYTES = 2**30  # ours: the memory one local job is counted at (measured: ~400 MB of torch and data per process,
# with its W&B service; the larger CPU-scale jobs more), the unit the free memory is divided by
STOP_GRACE_S = 60.0  # how long stopped jobs get to write their checkpoint before they are killed


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def free_bytes() -> int:
    import torch

    from noisereg.memory import available_bytes

    return available_bytes(torch.device("cpu"))


def job_limit(cores: int, available: int) -> int:
    """How many local jobs run at once: one per core, as many as the free memory holds at `JOB_BYTES` each, at
    least one."""
    return max(1, min(cores, available // JOB_BYTES))


def limit_line(limit: int, cores: int, available: int) -> str:
    jobs = f"{limit} job{'s' if limit != 1 else ''}"
    return (
        f"noisereg: submitit_local runs at most {jobs} at once on this machine ({cores} cores, "
        f"{available / 2**30:.1f} GB free, {JOB_BYTES / 2**30:g} GB counted a job), the rest queued; "
        "hydra.sweeper.max_batch_size=N sets another number"
    )


def _controllers() -> list:
    import psutil

    found = []
    for child in psutil.Process().children(recursive=False):
        try:
            if "submitit.local._local" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def end_jobs(grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM to every running job's controller (which forwards it to the job: it checkpoints and stops); after
    `grace_s` seconds, SIGKILL to what is left of each, its job included. Returns how many jobs were running."""
    import psutil

    controllers = _controllers()
    for controller in controllers:
        try:
            controller.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(controllers, timeout=grace_s)
    for controller in alive:
        try:
            for process in [*controller.children(recursive=True), controller]:
                process.kill()
        except psutil.Error:
            pass
    return len(controllers)


@contextmanager
def ended_on_interrupt(sweep_dir: str) -> Iterator[None]:
    """SIGTERM to the launching process reads as Ctrl-C; either ends the running jobs (`end_jobs`) and exits with
    128 + the signal's number, after one line, without a traceback."""
    received = {"signal": signal.SIGINT}

    def on_sigterm(signum: int, frame) -> None:
        received["signal"] = signal.SIGTERM
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except KeyboardInterrupt:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the wait for the checkpoints
        count = end_jobs()
        print(
            f"noisereg: sweep {sweep_dir} stopped by {received['signal'].name}: {count} running jobs told to stop "
            "and write their checkpoints; run the same command to resume them",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(128 + int(received["signal"])) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
