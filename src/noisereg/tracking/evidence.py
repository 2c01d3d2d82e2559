"""The committed form of finished runs' records (results/runs/): everything a figure or a claim reads, nothing more.

A finished run (completed or diverged) keeps `run.json`, `summary.json`, its rows as `metrics.jsonl.gz` (gzipped the
same way every time: `records.gzip_bytes`; every reader reads it through `records.read_metrics`) and, of each
artifact, the arrays of its last step (every figure draws a run's last saved arrays: figures/grouping.py
`arrays_at_last_step`, `Canvas.lines` with an artifact); the snapshots before it are dropped. Checkpoints, W&B
folders, Hydra's `.hydra/` and logs stay out of git (.gitignore). An unfinished run is left whole, so that it can
still resume. Thinning a thinned run changes nothing, and thinning the same run twice gives the same bytes.

    python -c "from noisereg.tracking.evidence import thin_records; thin_records('results/runs')"

`scripts/reproduce_cpu.py` thins each sweep as it finishes, so a fresh reproduction and the committed evidence
compare file by file.
"""

from __future__ import annotations

import os
from pathlib import Path

from noisereg.tracking.records import (
    FINISHED,
    METRICS,
    METRICS_GZ,
    SUMMARY,
    artifact_path,
    gzip_bytes,
    list_artifacts,
    read_summary,
    write_atomically,
)


def compress_metrics(directory: str | os.PathLike) -> bool:
    """Replace a run's `metrics.jsonl` by `metrics.jsonl.gz` (the same bytes, gzipped); whether there was one."""
    plain = Path(directory) / METRICS
    if not plain.is_file():
        return False
    write_atomically(Path(directory) / METRICS_GZ, gzip_bytes(plain.read_bytes()))
    plain.unlink()
    return True


def thin_run(directory: str | os.PathLike) -> int:
    """Drop the artifact snapshots of a finished run that no figure reads and gzip its rows; the number of
    snapshots removed."""
    directory = Path(directory)
    try:
        finished = read_summary(directory).get("status") in FINISHED
    except (OSError, ValueError):
        return 0  # no or a damaged summary: an unfinished run, left whole
    if not finished:
        return 0
    removed = 0
    for name, steps in list_artifacts(directory).items():
        for step in steps[:-1]:
            artifact_path(directory, name, step).unlink()
            removed += 1
    compress_metrics(directory)
    return removed


def thin_records(folder: str | os.PathLike) -> int:
    """`thin_run` for every run directory under `folder`, at any depth."""
    return sum(thin_run(summary.parent) for summary in sorted(Path(folder).rglob(SUMMARY)))
