"""Progress of a training run: a tqdm bar on a terminal, plain lines otherwise.

When stderr is not a terminal (a SLURM job's output file, CI, `2> log`), a bar would be a stream of carriage
returns; instead a line `train: step 150/3000 (5%) loss 0.0123 41.2 steps/s eta 1m09s` is printed every 5 % of
the run (at most one a second) and at least once a minute, so `tail -f` on a job's log shows a live job.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY_PERCENT = 5
PLAIN_EVERY_SECONDS = 60.0
PLAIN_MIN_GAP_SECONDS = 1.0  # a run of a few seconds prints a few lines, not twenty


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    def __init__(self, total: int, initial: int = 0, enabled: bool = True, stream: TextIO | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.done = total, initial
        self.enabled = enabled and total > initial
        self.bar = None
        if self.enabled and self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True, file=self.stream
            )
        self.started, self.start_step = time.monotonic(), initial
        self.last_line_time = self.started
        self.next_percent = (
            100 * initial // max(total, 1)
        ) // PLAIN_EVERY_PERCENT * PLAIN_EVERY_PERCENT + PLAIN_EVERY_PERCENT

    def update(self, steps: int, loss: float) -> None:
        if not self.enabled:
            return
        self.done += steps
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            return
        now = time.monotonic()
        percent = 100 * self.done / max(self.total, 1)
        since = now - self.last_line_time
        due = (percent >= self.next_percent and since >= PLAIN_MIN_GAP_SECONDS) or since >= PLAIN_EVERY_SECONDS
        if due or self.done == self.total:
            rate = (self.done - self.start_step) / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            print(
                f"train: step {self.done}/{self.total} ({percent:.0f}%) loss {loss:.4g} {rate:.3g} steps/s "
                f"eta {_duration(eta)}",
                file=self.stream,
                flush=True,
            )
            self.last_line_time = now
            while self.next_percent <= percent:
                self.next_percent += PLAIN_EVERY_PERCENT

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
