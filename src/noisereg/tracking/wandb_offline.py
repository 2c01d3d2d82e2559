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


def read_offline_run(path: str | Path) -> dict[str, Any]:
    """`path`: an `offline-run-*` folder or its `.wandb` file. Returns group, name, config, history, summary."""
    from wandb.proto import wandb_internal_pb2

    path = Path(path)
    if path.is_dir():
        path = next(path.glob("run-*.wandb"))
    run: dict[str, Any] = {"group": None, "name": None, "config": {}, "history": [], "summary": {}, "exit_code": None}
    for raw in _records(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["group"], run["name"] = record.run.run_group, record.run.display_name
            run["config"].update({_item_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run["config"].update({_item_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run["history"].append({_item_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run["summary"].update({_item_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run
