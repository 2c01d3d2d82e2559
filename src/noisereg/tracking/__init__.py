from noisereg.tracking.records import RunRecord, read_metrics, read_summary
from noisereg.tracking.wandb_logger import WandbLogger

__all__ = ["RunRecord", "WandbLogger", "read_metrics", "read_summary"]
