"""Run records: the contract between training, figures, tests and dashboards (DESIGN.md).

`metrics.jsonl`: one JSON object per logged step (`step`, `epoch`, slash-named metrics), flushed as it goes.
`summary.json`: `status` (completed | diverged | failed), final metrics, seed, wall time, resolved config.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

STATUSES = ("completed", "diverged", "failed")


def _json_number(value: Any) -> Any:
    """JSON has no NaN/inf; a diverged metric is written as a string so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class RunRecord:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.directory / "metrics.jsonl"
        self.summary_path = self.directory / "summary.json"
        self._metrics_file = open(self.metrics_path, "a", encoding="utf-8")

    def log(self, row: dict[str, Any]) -> None:
        self._metrics_file.write(json.dumps({k: _json_number(v) for k, v in row.items()}) + "\n")
        self._metrics_file.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        if summary.get("status") not in STATUSES:
            raise ValueError(f"summary status must be one of {STATUSES}")
        partial = self.summary_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(summary, indent=2, default=_json_number) + "\n", encoding="utf-8")
        partial.replace(self.summary_path)

    def close(self) -> None:
        self._metrics_file.close()


def read_metrics(directory: str | os.PathLike) -> list[dict[str, Any]]:
    with open(Path(directory) / "metrics.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_summary(directory: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(directory) / "summary.json").read_text(encoding="utf-8"))
