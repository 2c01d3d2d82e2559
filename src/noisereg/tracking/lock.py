"""One writer per run directory: `<run dir>/.lock` names the process that owns it.

The file is created exclusively (O_CREAT | O_EXCL) and holds the owner's pid, host, process start time and SLURM
job. A second process finds it and stops with a one-line error, unless the lock is stale:
- same host, and that pid is gone or is another process now (its start time differs);
- same SLURM job and array task as ours: a requeued job meets the lock of its own earlier, killed incarnation;
- another host, and the owner has not refreshed the file for `STALE_AFTER_S` (the owner touches it every
  `HEARTBEAT_S` from a background thread while it runs).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from noisereg.errors import SettingError

LOCK = ".lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 180.0
WRITING_S = 5.0  # an empty lock younger than this is being written by its owner


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _slurm_job() -> str | None:
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job is None:
        return None
    return f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_owner(directory: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds the directory's lock, or None when it is free or stale."""
    path = Path(directory) / LOCK
    try:
        text, modified = path.read_text(), path.stat().st_mtime
    except FileNotFoundError:
        return None
    if not text.strip() and time.time() - modified < WRITING_S:
        return {"pid": "?", "host": "?", "since": "a moment ago"}  # created this instant, its owner still writing it
    try:
        owner = json.loads(text)
        int(owner.get("pid", -1))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        raise SettingError(
            f"run directory {directory}: its lock {path} is unreadable (not a noisereg lock, or cut "
            f"off by a crash); if no run is writing this directory, remove it (rm {path}) and run "
            "again"
        ) from None
    if owner.get("slurm_job") is not None and owner.get("slurm_job") == _slurm_job():
        return None
    if owner.get("host") == socket.gethostname():
        pid = int(owner.get("pid", -1))
        if not _alive(pid) or (owner.get("process_start") not in (None, _process_start(pid))):
            return None
        return owner
    return None if time.time() - modified > STALE_AFTER_S else owner


def describe(owner: dict[str, Any]) -> str:
    since = owner.get("since")
    return f"pid {owner.get('pid')} on host {owner.get('host')}" + (f" since {since}" if since else "")


class RunLock:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / LOCK
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.created_directory = False

    def acquire(self) -> None:
        if not self.directory.exists():
            self.directory.mkdir(parents=True)
            self.created_directory = True
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "process_start": _process_start(os.getpid()),
            "slurm_job": _slurm_job(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = lock_owner(self.directory)
                if holder is not None:
                    raise SettingError(
                        f"run directory {self.directory} is in use by {describe(holder)}; wait for that run, or "
                        "write this one elsewhere (hydra.run.dir=... or hydra.sweep.dir=...)"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(descriptor, "w") as f:
                json.dump(owner, f)
            self._thread = threading.Thread(target=self._heartbeat, name="noisereg-lock", daemon=True)
            self._thread.start()
            return
        raise SettingError(
            f"run directory {self.directory}: could not take its lock {self.path}; remove it if no run uses it"
        )

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.path.unlink(missing_ok=True)
            if self.created_directory and not any(self.directory.iterdir()):
                self.directory.rmdir()  # nothing was written: leave nothing behind

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
