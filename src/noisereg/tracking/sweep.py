"""What a sweep tells its user when its jobs are done: one line counting them by outcome, naming where the reasons
of the failed ones are, and the exit status of `python run.py -m ...` (0 only if every job completed or diverged).

Each job returns `{"status", "directory", "reason"}` (run.py); statuses are the summary's (completed, diverged,
failed) plus `refused` (the job did not touch a directory that holds another run's records, or one in use) and
`skipped` (a finished run found in its directory and left alone, as when a sweep is launched again)."""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

OK = ("completed", "diverged", "skipped")


@dataclass
class SweepOutcome:
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # where to read why, one per failed or refused job

    @property
    def ok(self) -> bool:
        return all(status in OK for status in self.counts)


LAST: SweepOutcome | None = None  # the last sweep of this process, read by run.py for its exit status


def report(job_returns: Iterable[Any], sweep_dir: str) -> SweepOutcome:
    global LAST
    outcome = SweepOutcome()
    for job in job_returns:
        value = job.return_value if isinstance(job.return_value, dict) else {"status": "failed", "reason": "no record"}
        status = value.get("status", "failed")
        outcome.counts[status] += 1
        if status not in OK:
            where = value.get("directory") or str(getattr(job, "working_dir", "?"))
            outcome.problems.append(f"{where}/summary.json" if status == "failed" else f"{where} ({value.get('reason', status)})")
    total = sum(outcome.counts.values())
    finished = sum(outcome.counts[s] for s in OK)
    line = f"noisereg: sweep {sweep_dir}: {finished} of {total} jobs completed or diverged"
    if outcome.counts["skipped"]:
        line += f" ({outcome.counts['skipped']} had finished before and were left alone)"
    if not outcome.ok:
        others = ", ".join(f"{n} {s}" for s, n in sorted(outcome.counts.items()) if s not in OK)
        shown = "; ".join(outcome.problems[:5]) + ("; ..." if len(outcome.problems) > 5 else "")
        line += f"; {others}: see {shown}"
    print(line, file=sys.stderr if not outcome.ok else sys.stdout, flush=True)
    LAST = outcome
    return outcome
