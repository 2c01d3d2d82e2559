"""Job states for submitit's SLURM launcher on a cluster that keeps no accounting.

submitit asks `sacct -o JobID,State,NodeList --parsable2 -j <ids>` whether the jobs of a sweep are still pending or
running. Where SLURM has no accounting database (`AccountingStorageType=accounting_storage/none`, as on the
single-node cluster of scripts/slurm.sh), sacct fails on every poll: submitit prints a warning each time, and it
cannot tell that a job ended without a result (cancelled, killed), so it would wait for that job forever. There,
`use_squeue_where_no_accounting()` has submitit read the same states from `squeue`, which lists a job until
`MinJobAge` after it ended. Imported by the sweeper only when the SLURM launcher is used.
"""

from __future__ import annotations

import re
import subprocess

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob


class SqueueWatcher(SlurmInfoWatcher):
    """submitit's SLURM watcher, reading `squeue` (this user's jobs, one line per array task) instead of sacct.

    submitit stops waiting for a job in any state it does not list as unfinished, then gives the job 15 s to leave
    its result; so only SLURM's final states end the wait here, and squeue's passing ones (SIGNALING, STAGE_OUT, ...)
    read as RUNNING. A job squeue does not list is looked up (`scontrol show job`): a cancelled array task that
    never started leaves no record at all."""

    COLUMNS = "JobID|State|NodeList"  # what submitit asks sacct for, and reads by these names
    FINAL = {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
    UNFINISHED = {"PENDING", "RUNNING", "REQUEUED", "COMPLETING"}  # as submitit knows them
    GONE = "ENDED"  # no record left: not unfinished for submitit either

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        return ["squeue", "--me", "--noheader", "--array", "--states=all", "--format=%i|%T|%N"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        info = super().read_info(f"{self.COLUMNS}\n{text}")
        for job in self._registered - self._finished - set(info):
            info[job] = {"JobID": job, "State": self._recorded_state(job), "NodeList": ""}
        for job, fields in info.items():
            if fields["State"] not in self.FINAL | self.UNFINISHED | {self.GONE}:
                info[job] = {**fields, "State": "RUNNING"}
        return info

    def _recorded_state(self, job: str) -> str:
        shown = subprocess.run(["scontrol", "show", "job", "--oneliner", job], capture_output=True, text=True)
        state = re.search(r"\bJobState=(\S+)", shown.stdout)
        return state.group(1) if shown.returncode == 0 and state else self.GONE


def accounting_disabled() -> bool:
    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(r"^AccountingStorageType\s*=\s*accounting_storage/none\s*$", config, re.MULTILINE) is not None


def use_squeue_where_no_accounting() -> bool:
    """Give submitit's SLURM jobs a watcher that polls squeue if this cluster keeps no accounting; says whether."""
    if not isinstance(SlurmJob.watcher, SqueueWatcher) and accounting_disabled():
        SlurmJob.watcher = SqueueWatcher(delay_s=600)  # submitit's own: one watcher shared by all its SLURM jobs
    return isinstance(SlurmJob.watcher, SqueueWatcher)
