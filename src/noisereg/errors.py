"""The errors a user can act on: bad settings and damaged records, each a one-line message."""

from __future__ import annotations

from pathlib import Path


class SettingError(ValueError):
    """Bad input from the user: the message is one line that names the setting and the fix."""


# How a damaged record's message ends: what discards the run's records and runs it again.
RESTART = "trainer.resume=restart discards this run's records and runs it again"


class DamagedRecord(SettingError):
    """A record file that cannot be read as ours: one line naming the file (a `SettingError`, so a job stops with
    exit 2 before touching the directory, and a reader of many runs can skip this one)."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path} is damaged or not a noisereg record ({why}); {RESTART}")
        self.path = path
