"""Read an offline W&B run (`wandb/offline-run-*/run-*.wandb`) without uploading it.

The file is W&B's 7-byte header followed by a LevelDB-style log of protobuf `Record`s: 32 KiB blocks, each
chunk a 7-byte header (CRC32C, little-endian length, type: 1 full, 2 first, 3 middle, 4 last). We use it to
check what a job logged (tests) and to let figures read runs that were never synced.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterator

BLOCK_SIZE = 32 * 1024
FILE_HEADER_SIZE = 7
CHUNK_HEADER_SIZE = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(data: bytes) -> Iterator[bytes]:
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file (missing ':W&B' header)")
    position, pending = FILE_HEADER_SIZE, b""
    while position + CHUNK_HEADER_SIZE <= len(data):
        room = BLOCK_SIZE - position % BLOCK_SIZE
        if room < CHUNK_HEADER_SIZE:  # the rest of a block too small for a header is zero padding
            position += room
            continue
        _checksum, length, kind = struct.unpack_from("<IHB", data, position)
        position += CHUNK_HEADER_SIZE
        chunk = data[position : position + length]
        position += length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""
        elif kind == 0 and length == 0:
            break  # preallocated zeros at the end of the file


def _item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _segments(path: Path) -> list[Path]:
    """The `.wandb` files behind `path`: a file, an `offline-run-*` folder, a run directory (every segment of a
    resumed run, oldest first) or its `wandb/` folder."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"read_offline_run: {path} does not exist")
    if path.name.startswith("offline-run-"):
        files = sorted(path.glob("run-*.wandb"))
    else:
        folder = path / "wandb" if (path / "wandb").is_dir() else path
        files = [f for run in sorted(folder.glob("offline-run-*")) for f in sorted(run.glob("run-*.wandb"))]
    if not files:
        raise FileNotFoundError(
            f"read_offline_run: no offline W&B run (offline-run-*/run-*.wandb) under {path}; "
            "was the job run with logger.mode=offline?"
        )
    return files


def read_offline_run(path: str | Path) -> dict[str, Any]:
    """`path`: an `offline-run-*` folder, its `.wandb` file, or a run directory. Returns group, name, config,
    history, summary, exit code, run id, tags, notes, job type and the metrics' declared x axes (`define_metric`). The segments of a resumed run are joined the way `wandb sync` joins
    them: each segment's rows after the last step already seen."""
    from wandb.proto import wandb_internal_pb2

    run: dict[str, Any] = {
        "group": None,
        "name": None,
        "config": {},
        "history": [],
        "summary": {},
        "exit_code": None,
        "id": None,
        "tags": [],
        "notes": None,
        "job_type": None,
        "metrics": {},
    }
    for segment in _segments(Path(path)):
        last_step = run["history"][-1].get("_step", -1) if run["history"] else -1
        for raw in _records(segment.read_bytes()):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["group"], run["name"], run["id"] = record.run.run_group, record.run.display_name, record.run.run_id
                run["tags"], run["notes"] = list(record.run.tags), record.run.notes or None
                run["job_type"] = record.run.job_type or None
                run["config"].update({_item_key(i): json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "config":
                run["config"].update({_item_key(i): json.loads(i.value_json) for i in record.config.update})
            elif kind == "history":
                row = {_item_key(i): json.loads(i.value_json) for i in record.history.item}
                if row.get("_step", last_step + 1) > last_step:
                    run["history"].append(row)
            elif kind == "summary":
                run["summary"].update({_item_key(i): json.loads(i.value_json) for i in record.summary.update})
            elif kind == "metric":  # define_metric: a metric's x axis (step_metric)
                run["metrics"][record.metric.name or record.metric.glob_name] = record.metric.step_metric or None
            elif kind == "exit":
                run["exit_code"] = record.exit.exit_code
    return run
