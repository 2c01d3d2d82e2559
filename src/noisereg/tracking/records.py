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

STATUSES = ("completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")  # a result: a run directory holding one is left alone
METRICS, SUMMARY, IDENTITY, CHECKPOINT, ARTIFACTS = "metrics.jsonl", "summary.json", "run.json", "checkpoint.pt", "artifacts"
RECORD_FILES = (IDENTITY, METRICS, SUMMARY, CHECKPOINT)


def _json_number(value: Any) -> Any:
    """JSON has no NaN/inf; a diverged metric is written as a string so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file renamed over the target)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, default=_json_number) + "\n", encoding="utf-8")
    partial.replace(path)


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
        self.last_step = self._keep_rows_through(-1 if resume_step is None else resume_step)
        self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")

    def _keep_rows_through(self, step: int) -> int:
        """Drop rows and artifacts after `step` (a resumed run logs them again); return the last kept step."""
        kept = [row for row in read_metrics(self.directory) if row["step"] <= step] if self.metrics_path.exists() else []
        partial = self.metrics_path.with_name(METRICS + ".partial")
        with open(partial, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in kept)
        partial.replace(self.metrics_path)
        for name, steps in list_artifacts(self.directory).items():
            for later in (s for s in steps if s > step):
                artifact_path(self.directory, name, later).unlink()
        return kept[-1]["step"] if kept else -1

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
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(buffer.getvalue())
            partial.replace(path)

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


def _parse_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    rows = []
    lines = list(lines)
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) - 1 and not line.endswith("\n"):
                break  # the last line of a run killed mid-write
            raise
    return rows


def read_metrics(directory: str | os.PathLike) -> list[dict[str, Any]]:
    with open(Path(directory) / METRICS, encoding="utf-8") as f:
        return _parse_lines(f)


def read_summary(directory: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(directory) / SUMMARY).read_text(encoding="utf-8"))


def read_identity(directory: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(directory) / IDENTITY).read_text(encoding="utf-8"))
