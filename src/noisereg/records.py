"""Reading run records: the one way figures, the claims report and notebooks read them.

    from noisereg.records import load_runs
    runs = load_runs(["multirun/fig3"])          # any folders: sweeps, single runs, any depth

`load_runs` returns a pandas DataFrame with one row per logged step (`metrics.jsonl`, or `metrics.jsonl.gz` once
thinned), the run's config flattened into dotted columns (`noise.name`, `noise.sigma`, `model.widths`,
`trainer.optimizer.lr`, …; lists become tuples so they can be grouped on) and per-run columns: `run` (its folder),
`experiment` (config `name`), `status`, `steps` (steps trained), `seed`, `scale`. A run that logged nothing
(rejected settings) still has one row, with NaN metrics, so figures can count it. Metrics written as "nan"/"inf"
strings come back as floats.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from noisereg.tracking.records import (
    ADDED_LATER,
    FINISHED,
    IDENTITY,
    SUMMARY,
    has_metrics,
    read_identity,
    read_metrics,
    read_summary,
)

RUN_COLUMNS = ("run", "experiment", "status", "steps", "seed", "scale")


def find_runs(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Every run directory (a folder with summary.json or run.json) under the folders, at any depth, each once
    however it was reached (the same folder given as a relative and an absolute path, or inside another folder
    given): named by the first path it was found under."""
    found: dict[Path, Path] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"{folder} does not exist")
        for name in (SUMMARY, IDENTITY):
            for path in sorted(folder.rglob(name)):
                found.setdefault(path.parent.resolve(), path.parent)
    return sorted(set(found.values()))


# Config keys that say how a run was watched, stored or executed, not what it computed: two runs that differ only in
# these (and share their seed) are the same run (members: seeds trained side by side as one batched model, each
# member's records those of its single run).
NOT_A_CONDITION = (
    "logger.",
    "trainer.device",
    "trainer.progress_bar",
    "trainer.resume",
    "trainer.checkpoint",
    "trainer.keep_checkpoint",
    "trainer.members",
    "dataset.root",
    "curvature.chunk_size",
    "hydra.",
    "optimized_metric",
)


def is_config_key(column: str) -> bool:
    """A column that came from the runs' configs (a dotted name), not a metric or a run column."""
    return "." in column and "/" not in column and column not in RUN_COLUMNS


def is_watching_only(key: str) -> bool:
    """A config key in (or below) NOT_A_CONDITION: how a run was watched, stored or executed."""
    return any(key == ignored or key.startswith(ignored) for ignored in NOT_A_CONDITION)


def run_identity(rows: list[dict[str, Any]]) -> str:
    """What makes a run the run it is: its config (seed included) but the keys in NOT_A_CONDITION."""
    first = rows[0]
    kept = {key: repr(value) for key, value in first.items() if is_config_key(key) and not is_watching_only(key)}
    return repr(sorted(kept.items())) + repr(first.get("seed")) + repr(first.get("experiment"))


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"noise": {"sigma": 0.1}} -> {"noise.sigma": 0.1}; lists become tuples."""
    if isinstance(config, dict):
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    if isinstance(config, list):
        config = tuple(config)
    return {prefix[:-1]: config}


def _number(value: Any) -> Any:
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def run_table(directory: Path) -> list[dict[str, Any]]:
    """The rows of one run: its logged steps, each with the run's config and status (a setting the schema gained
    after the run was recorded at the default it ran at, where its group of settings is there: ADDED_LATER)."""
    summary = read_summary(directory) if (directory / SUMMARY).exists() else {}
    identity = read_identity(directory) if (directory / IDENTITY).exists() else {}
    config = summary.get("config") or identity.get("config") or {}
    rows = read_metrics(directory) if has_metrics(directory) else []
    common = flatten(config)
    groups = {key.split(".")[0] for key in common}
    common = {**{k: v for k, v in ADDED_LATER.items() if k.split(".")[0] in groups and k not in common}, **common}
    common.update(
        run=str(directory),
        experiment=config.get("name", summary.get("name")),
        status=summary.get("status", "unfinished"),
        steps=summary.get("steps", rows[-1]["step"] if rows else 0),
        seed=config.get("seed", summary.get("seed")),
        scale=(config.get("scale") or {}).get("name", "paper"),
    )
    if not rows:
        return [{**common, "step": math.nan}]
    return [{**common, **{key: _number(value) for key, value in row.items()}} for row in rows]


def load_runs(folders: Iterable[str | os.PathLike] | str | os.PathLike) -> pd.DataFrame:
    """Every run under the folders, a row per logged step, each run once. A run whose records cannot be read (a
    truncated summary.json, a garbage line inside metrics.jsonl) is skipped with one warning line naming it, and so
    is a second run of the same config and seed (a copied folder; `-m seed=0,1 trainer.members=3` trains seeds 1
    and 2 twice): the skipped directories are in `runs.attrs["damaged"]` and `runs.attrs["duplicates"]`, for the
    report to count."""
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    damaged, duplicates, kept = [], [], {}
    for directory in find_runs(folders):
        try:
            table = run_table(directory)
        except (ValueError, OSError, TypeError, AttributeError, KeyError) as error:  # JSONDecodeError is a ValueError
            damaged.append(str(directory))
            print(
                f"noisereg: warning: skipped the damaged run {directory} ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else 'unreadable'})",
                file=sys.stderr,
            )
            continue
        identity = run_identity(table)
        if identity in kept:  # a copied run folder, a seed trained twice: one seed counted twice would be a verdict
            first = kept[identity]
            if first[0]["status"] not in FINISHED and table[0]["status"] in FINISHED:
                kept[identity], table = table, first  # a finished run is the one to keep
            duplicates.append(table[0]["run"])
            print(
                f"noisereg: warning: skipped the run {table[0]['run']}: the same config and seed as "
                f"{kept[identity][0]['run']} (each run is counted once)",
                file=sys.stderr,
            )
            continue
        kept[identity] = table
    rows = [row for table in kept.values() for row in table]
    frame = pd.DataFrame(rows)
    frame.attrs["damaged"], frame.attrs["duplicates"] = damaged, duplicates
    return frame


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns that came from the runs' configs (dotted names), not metrics or run columns."""
    return [c for c in runs.columns if is_config_key(c)]


def final_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's last logged row (or its only row, for a run that logged nothing)."""
    ordered = runs.sort_values(["run", "step"], na_position="first")
    return ordered.groupby("run", sort=True).tail(1).reset_index(drop=True)
