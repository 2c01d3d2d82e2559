"""Run records: the contract between training, figures, tests and dashboards.

A run directory belongs to one run and holds:

| file | what |
|---|---|
| `run.json` | the run's identity: resolved config, W&B run id, when it started (written once, at the start) |
| `metrics.jsonl` | one JSON object per logged step (`step`, `epoch`, slash-named metrics), strictly increasing `step` |
| `summary.json` | `status` (completed, diverged, failed, interrupted), final metrics, steps, seed, wall time, config |
| `artifacts/<name>/<step>.npz` | arrays a figure needs that are not scalars (model outputs on a grid, spectra) |
| `checkpoint.pt` | the training state to resume from (train/state.py), replaced atomically |
| `.lock` | who is writing the directory (tracking/lock.py) |
| `wandb/` | the W&B run, one `offline-run-*` folder per segment of a resumed run, one run id |

Every file is replaced atomically or appended line by line and flushed, so a reader never sees half a summary; a
reader of `metrics.jsonl` skips a last line cut off by a crash.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from noisereg.errors import SettingError

STATUSES = ("completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")  # a result: a run directory holding one is left alone
# Settings added to the schema after runs were recorded, with the default those runs ran at: a record without one of
# them is the same run as a config holding the default (resuming it, grouping it with newer runs of its condition).
ADDED_LATER = {"trainer.members": 1, "trainer.early_eval_every": 0, "trainer.early_eval_until": 0}
METRICS, SUMMARY, IDENTITY, CHECKPOINT, ARTIFACTS = "metrics.jsonl", "summary.json", "run.json", "checkpoint.pt", "artifacts"
RECORD_FILES = (IDENTITY, METRICS, SUMMARY, CHECKPOINT)
RESTART = "trainer.resume=restart discards this run's records and runs it again"


class DamagedRecord(SettingError):
    """A record file that cannot be read as ours: one line naming the file (a `SettingError`, so a job stops with
    exit 2 before touching the directory, and a reader of many runs can skip this one)."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path} is damaged or not a noisereg record ({why}); {RESTART}")
        self.path = path


def _json_number(value: Any) -> Any:
    """JSON has no NaN/inf; a diverged metric is written as a string so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_atomically(path: Path, content: bytes) -> None:
    """Write a file atomically: a temporary file renamed over the target. When the write fails (a full disk), the
    temporary file is removed and the target is left as it was."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as f:
            f.write(content)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


def write_lines(path: Path, lines: list[str]) -> None:
    write_atomically(path, "".join(lines).encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_atomically(path, (json.dumps(data, indent=2, default=_json_number) + "\n").encode("utf-8"))


def holds_records(directory: str | os.PathLike) -> bool:
    directory = Path(directory)
    return any((directory / name).exists() for name in RECORD_FILES) or (directory / ARTIFACTS).exists()


class RunRecord:
    """The writer of one run directory's records. `resume_step`: keep the rows (and artifacts) up to this step
    of an earlier segment of the same run and append after them; None starts the records afresh."""

    def __init__(self, directory: str | os.PathLike, resume_step: int | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.directory / METRICS
        self.summary_path = self.directory / SUMMARY
        self.kept_rows = self._keep_rows_through(-1 if resume_step is None else resume_step)
        self.last_step = self.kept_rows[-1]["step"] if self.kept_rows else -1
        self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")

    def _keep_rows_through(self, step: int) -> list[dict[str, Any]]:
        """Drop rows and artifacts after `step` (a resumed run logs them again); return the kept rows."""
        kept = [row for row in read_metrics(self.directory) if row["step"] <= step] if self.metrics_path.exists() else []
        write_lines(self.metrics_path, [json.dumps(row) + "\n" for row in kept])
        for name, steps in list_artifacts(self.directory).items():
            for later in (s for s in steps if s > step):
                artifact_path(self.directory, name, later).unlink()
        return kept

    def log(self, row: dict[str, Any]) -> None:
        if row["step"] <= self.last_step:
            raise ValueError(f"metrics rows must have increasing steps: {row['step']} after {self.last_step}")
        self._metrics_file.write(json.dumps({k: _json_number(v) for k, v in row.items()}) + "\n")
        self._metrics_file.flush()
        self.last_step = row["step"]

    def save_artifacts(self, step: int, artifacts: dict[str, dict[str, np.ndarray]]) -> None:
        for name, arrays in artifacts.items():
            path = artifact_path(self.directory, name, step)
            path.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            write_atomically(path, buffer.getvalue())

    def write_summary(self, summary: dict[str, Any]) -> None:
        if summary.get("status") not in STATUSES:
            raise ValueError(f"summary status must be one of {STATUSES}")
        write_json(self.summary_path, summary)

    def write_identity(self, identity: dict[str, Any]) -> None:
        write_json(self.directory / IDENTITY, identity)

    def close(self) -> None:
        self._metrics_file.close()


def discard_records(directory: str | os.PathLike) -> None:
    """Remove a run's records (trainer.resume=restart): its files, artifacts and W&B runs."""
    directory = Path(directory)
    for name in RECORD_FILES:
        (directory / name).unlink(missing_ok=True)
    for folder in (directory / ARTIFACTS, directory / "wandb"):
        shutil.rmtree(folder, ignore_errors=True)


def artifact_path(directory: str | os.PathLike, name: str, step: int) -> Path:
    return Path(directory) / ARTIFACTS / name / f"{step:09d}.npz"


def list_artifacts(directory: str | os.PathLike) -> dict[str, list[int]]:
    """Artifact name → the steps it was saved at, in order."""
    root = Path(directory) / ARTIFACTS
    if not root.is_dir():
        return {}
    return {
        folder.name: sorted(int(path.stem) for path in folder.glob("*.npz"))
        for folder in sorted(root.iterdir())
        if folder.is_dir()
    }


def read_artifact(directory: str | os.PathLike, name: str, step: int) -> dict[str, np.ndarray]:
    with np.load(artifact_path(directory, name, step), allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _parse_lines(lines: list[str], path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1 and not line.endswith("\n"):
                break  # the last line of a run killed mid-write
            raise DamagedRecord(path, f"line {number + 1} is not JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise DamagedRecord(path, f"line {number + 1} is not a row with an integer step")
        rows.append(row)
    return rows


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:  # not there (yet): not damaged
        raise
    except (OSError, UnicodeDecodeError) as error:  # a directory, unreadable, not text
        raise DamagedRecord(path, type(error).__name__) from None


def read_metrics(directory: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(directory) / METRICS
    return _parse_lines(_read_text(path).splitlines(keepends=True), path)


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DamagedRecord(path, f"not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(data, dict):
        raise DamagedRecord(path, f"a JSON {type(data).__name__}, not an object")
    return data


def read_summary(directory: str | os.PathLike) -> dict[str, Any]:
    return _read_object(Path(directory) / SUMMARY)


def read_identity(directory: str | os.PathLike) -> dict[str, Any]:
    return _read_object(Path(directory) / IDENTITY)
