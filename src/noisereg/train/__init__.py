"""Training: settings, the batch-by-batch loop, the state a run resumes from, evaluation and progress."""

from noisereg.train.evaluation import evaluate, loss_targets
from noisereg.train.loop import TrainResult, run_loop, train, training_state
from noisereg.train.settings import OptimizerSettings, TrainerSettings, resolve_device
from noisereg.train.state import TrainingState, load_checkpoint

__all__ = [
    "OptimizerSettings",
    "TrainResult",
    "TrainerSettings",
    "TrainingState",
    "evaluate",
    "load_checkpoint",
    "loss_targets",
    "resolve_device",
    "run_loop",
    "train",
    "training_state",
]
