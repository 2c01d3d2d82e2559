"""Run records: the contract between training, figures, tests and dashboards.

A run directory belongs to one run and holds:

| file | what |
|---|---|
| `run.json` | the run's identity: resolved config, W&B run id, when it started (written once, at the start) |
| `metrics.jsonl` | one JSON object per logged step (`step`, `epoch`, slash-named metrics), strictly increasing `step` |
| `metrics.jsonl.gz` | the same rows, gzipped, in place of `metrics.jsonl` once a finished run is thinned (evidence.py) |
| `summary.json` | `status` (completed, diverged, failed, interrupted), final metrics, steps, seed, wall time, config |
| `artifacts/<name>/<step>.npz` | arrays a figure needs that are not scalars (model outputs on a grid, spectra) |
| `checkpoint.pt` | the training state to resume from (train/state.py), replaced atomically |
| `.lock` | who is writing the directory (tracking/lock.py) |
| `wandb/` | the W&B run, one `offline-run-*` folder per segment of a resumed run, one run id |

Every file is replaced atomically or appended line by line and flushed, so a reader never sees half a summary; a
reader of `metrics.jsonl` skips a last line cut off by a crash. Every reader goes through `read_metrics` and
`has_metrics`, which read either form: training appends to the plain file, the committed evidence holds the gzip.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from noisereg.errors import RESTART, DamagedRecord, SettingError  # noqa: F401  (re-exported: readers catch them here)

STATUSES = ("completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")  # a result: a run directory holding one is left alone
# Settings added to the schema after runs were recorded, with the default those runs ran at: a record without one of
# them is the same run as a config holding the default (resuming it, grouping it with newer runs of its condition).
ADDED_LATER = {"trainer.members": 1, "trainer.early_eval_every": 0, "trainer.early_eval_until": 0}
METRICS, SUMMARY, IDENTITY, CHECKPOINT, ARTIFACTS = (
    "metrics.jsonl",
    "summary.json",
    "run.json",
    "checkpoint.pt",
    "artifacts",
)
METRICS_GZ = METRICS + ".gz"  # the rows of a finished run in the committed form (tracking/evidence.py)
RECORD_FILES = (IDENTITY, METRICS, METRICS_GZ, SUMMARY, CHECKPOINT)


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
        (self.directory / METRICS_GZ).unlink(missing_ok=True)  # the rows now live in the plain file, appended to
        self.last_step = self.kept_rows[-1]["step"] if self.kept_rows else -1
        self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")

    def _keep_rows_through(self, step: int) -> list[dict[str, Any]]:
        """Drop rows and artifacts after `step` (a resumed run logs them again); return the kept rows."""
        rows = read_metrics(self.directory) if has_metrics(self.directory) else []
        kept = [row for row in rows if row["step"] <= step]
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


def metrics_file(directory: str | os.PathLike) -> Path:
    """The file holding a run's rows: `metrics.jsonl` (written while it trains, and read first where both are
    there), else `metrics.jsonl.gz` (a thinned run), else the path `metrics.jsonl` would have."""
    plain = Path(directory) / METRICS
    if plain.exists():
        return plain
    compressed = Path(directory) / METRICS_GZ
    return compressed if compressed.exists() else plain


def has_metrics(directory: str | os.PathLike) -> bool:
    """Whether a run directory holds its rows, in either form."""
    return metrics_file(directory).exists()


def gzip_bytes(content: bytes) -> bytes:
    """`content` gzipped the same way every time (no file name, time stamp 0, level 9): re-thinning a run, or thinning
    the same run on another machine, gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buffer, mtime=0) as f:
        f.write(content)
    return buffer.getvalue()


def _read_gzipped_text(path: Path) -> str:
    try:
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:  # not gzip, cut short, not text
        raise DamagedRecord(path, type(error).__name__) from None


def read_metrics(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """A run's rows, from `metrics.jsonl` or, in a thinned run, `metrics.jsonl.gz`."""
    path = metrics_file(directory)
    text = _read_gzipped_text(path) if path.name == METRICS_GZ else _read_text(path)
    return _parse_lines(text.splitlines(keepends=True), path)


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
