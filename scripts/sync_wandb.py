"""Upload every offline W&B run under a folder (a sweep's, results/runs, ...): `make sync DIR=<folder>`.

    python scripts/sync_wandb.py FOLDER [--jobs 4] [--dry-run]

Each `offline-run-*` folder (one per segment of a run; a resumed run's segments share its id and W&B joins them) is
handed to `wandb sync`, `--jobs` at a time. A segment `wandb sync` already uploaded carries its marker
(`run-*.wandb.synced`) and is skipped, so the command can be typed again after a failure or a longer sweep. It ends
with one line: how many it synced, skipped and could not sync (with the first reason), exit 1 if any failed.
Needs `wandb login` (or WANDB_API_KEY); `--dry-run` lists what it would sync and touches nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SYNC_TIMEOUT_S = 600  # one offline run's upload; W&B retries an unreachable server for longer


def offline_runs(folder: Path) -> tuple[list[Path], list[Path]]:
    """The offline-run folders under `folder`: (to sync, already synced)."""
    found = sorted(path for path in folder.rglob("offline-run-*") if path.is_dir() and any(path.glob("run-*.wandb")))
    synced = [path for path in found if all(Path(f"{w}.synced").exists() for w in path.glob("run-*.wandb"))]
    return [path for path in found if path not in synced], synced


def sync(run: Path) -> str | None:
    """`wandb sync` one offline run; None when it went up, else the first line of its complaint."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wandb", "sync", str(run)], capture_output=True, text=True, timeout=SYNC_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {SYNC_TIMEOUT_S} s"
    if done.returncode == 0 and all(Path(f"{w}.synced").exists() for w in run.glob("run-*.wandb")):
        return None
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return next((line for line in lines if "rror" in line), lines[-1] if lines else f"exit {done.returncode}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--jobs", type=int, default=4, help="uploads at once (default 4)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be synced, sync nothing")
    arguments = parser.parse_args(argv)
    if not arguments.folder.is_dir():
        print(
            f"sync: error: {arguments.folder} is not a folder; give a sweep's or run's folder, e.g. "
            "make sync DIR=multirun/fig3",
            file=sys.stderr,
        )
        return 2
    if arguments.jobs < 1:
        print(f"sync: error: --jobs {arguments.jobs}: give at least 1", file=sys.stderr)
        return 2
    to_sync, synced = offline_runs(arguments.folder)
    if to_sync and not arguments.dry_run:
        from noisereg.errors import SettingError
        from noisereg.tracking.wandb_logger import check_wandb

        try:  # credentials and a server that answers, in seconds, before any upload starts retrying
            check_wandb("online")
        except SettingError as error:
            reason = (
                str(error).replace("logger.mode=online needs", "uploading needs").replace("logger.mode=online: ", "")
            )
            print(
                f"sync: error: nothing synced: {reason.split('; or ')[0].split('; use logger.mode')[0]}",
                file=sys.stderr,
            )
            return 2
    if arguments.dry_run:
        for run in to_sync:
            print(f"would sync {run}")
        print(f"sync: {len(to_sync)} offline runs to sync, {len(synced)} already synced, under {arguments.folder}")
        return 0
    with ThreadPoolExecutor(max_workers=arguments.jobs) as pool:
        problems = [(run, problem) for run, problem in zip(to_sync, pool.map(sync, to_sync)) if problem]
    line = (
        f"sync: {len(to_sync) - len(problems)} offline runs synced, {len(synced)} skipped (synced before), "
        f"{len(problems)} failed under {arguments.folder}"
    )
    if problems:
        line += f"; first: {problems[0][0]}: {problems[0][1]}"
    print(line, file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
