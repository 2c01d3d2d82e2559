"""Where a run's numbers came from: the code's git commit (and whether its tracked files had uncommitted changes), the
noisereg, torch and Python versions. Recorded in every new run's `run.json` (`provenance`), named in the claims
report's header.

    provenance()  # {"git_commit": "3f2c…" or None, "git_dirty": False or None, "noisereg": "0.1.0",
                  #  "torch": "2.…", "python": "3.11.7"}

The commit is that of the repository holding the imported noisereg (not of the working directory), read once per
process: the code a process runs is the code it imported. Without git, or outside a repository, the git fields are
None; provenance never stops a run.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 10
PROVENANCE = "provenance"  # the key in run.json


def _git(*arguments: str) -> str | None:
    """A git command's stdout in the folder of the noisereg package; None where git is missing, fails or hangs."""
    try:
        done = subprocess.run(
            ["git", *arguments],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            # `git status` may take .git/index.lock to refresh the index: many jobs at once would fail the user's git
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the code's repository: dirty when a tracked file differs from the commit (untracked files,
    such as run records, do not count); (None, None) outside a repository or without git."""
    commit = _git("rev-parse", "HEAD")
    if commit is None or not commit.strip():
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit.strip(), (None if status is None else bool(status.strip()))


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # not installed, or broken: a run that got this far does not need it
        return None


def provenance() -> dict[str, Any]:
    """What run.json records under `provenance`."""
    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "noisereg": _version("noisereg"),
        "torch": _version("torch"),
        "python": platform.python_version(),
    }


def describe_provenance(recorded: list[dict[str, Any] | None]) -> str:
    """One sentence for a report: the commits the runs were recorded at, with how many runs each (a dirty tree
    marked), and how many runs were recorded before provenance (no `provenance` in their run.json)."""
    counts: dict[str, int] = {}
    before = 0
    for entry in recorded:
        if not isinstance(entry, dict):
            before += 1
            continue
        commit = entry.get("git_commit")
        name = (
            "no git commit"
            if commit is None
            else f"`{str(commit)[:12]}`" + (" with uncommitted changes" if entry.get("git_dirty") else "")
        )
        counts[name] = counts.get(name, 0) + 1
    parts = [f"{name} ({n} run{'s' if n != 1 else ''})" for name, n in sorted(counts.items())]
    if before:
        parts.append(f"{before} run{'s' if before != 1 else ''} recorded before provenance")
    return "Provenance: " + ("; ".join(parts) if parts else "no runs") + "."
