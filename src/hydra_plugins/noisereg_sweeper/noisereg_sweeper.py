"""`hydra/sweeper=noisereg` (the default in conf/config.yaml): Hydra's basic sweeper, plus a one-line account of
the sweep's jobs once they have run, and an exit status that says whether every job completed or diverged
(noisereg/tracking/sweep.py). On submitit's local launcher it hands over at most as many jobs at once as the machine
holds and ends them when the launch is stopped (noisereg/tracking/local_jobs.py); a relaunch's refused jobs keep
their Hydra files. Kept in `hydra_plugins`, where Hydra looks for plugins, and light to import.
No `from __future__ import annotations`: Hydra runs this module before it is in sys.modules, where dataclasses
would look its string annotations up."""

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class NoiseregSweeperConf:
    _target_: str = "hydra_plugins.noisereg_sweeper.noisereg_sweeper.NoiseregSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="noisereg", node=NoiseregSweeperConf, provider="noisereg")


class NoiseregSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        from noisereg.tracking.sweep import hydra_files, new_sweep

        new_sweep()
        saved = hydra_files(str(self.config.hydra.sweep.dir))  # put back for the jobs that refuse their folder
        if type(self.launcher).__name__ == "SlurmLauncher":  # submitit's; job states without sacct where need be
            from noisereg.tracking.slurm_states import use_squeue_where_no_accounting
            from noisereg.tracking.sweep import refuse, slurm_missing

            missing = slurm_missing()
            if missing:
                refuse(missing)
                return []
            use_squeue_where_no_accounting()
        stopping: Any = nullcontext()
        if type(self.launcher).__name__ == "LocalLauncher":  # submitit's, which starts all it is given at once
            from noisereg.tracking import local_jobs

            if self.max_batch_size is None:
                cores, available = local_jobs.cores(), local_jobs.free_bytes()
                self.max_batch_size = local_jobs.job_limit(cores, available)
                print(local_jobs.limit_line(self.max_batch_size, cores, available), flush=True)
            stopping = local_jobs.ended_on_interrupt(str(self.config.hydra.sweep.dir))
        try:
            with stopping:
                returns = super().sweep(arguments)
        except Exception as error:  # submitit's: the cluster refused the jobs, or one of them ended without a result
            if type(error).__module__.split(".")[0] != "submitit":
                raise
            from noisereg.tracking.sweep import report_launcher_error

            report_launcher_error(error, str(self.config.hydra.sweep.dir))
            return []
        from noisereg.tracking.sweep import report, restore_hydra_files

        jobs = [job for batch in returns for job in batch]
        restore_hydra_files(saved, jobs)
        report(jobs, str(self.config.hydra.sweep.dir))
        return returns
