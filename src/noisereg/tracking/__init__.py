"""Run records (records.py), the job's lifecycle (job.py), its lock (lock.py), W&B (wandb_logger.py,
wandb_offline.py) and what a sweep reports when its jobs are done (sweep.py)."""

from noisereg.tracking.records import (
    RunRecord,
    list_artifacts,
    read_artifact,
    read_identity,
    read_metrics,
    read_summary,
)
from noisereg.tracking.wandb_logger import WandbLogger

__all__ = [
    "RunRecord",
    "WandbLogger",
    "list_artifacts",
    "read_artifact",
    "read_identity",
    "read_metrics",
    "read_summary",
]
