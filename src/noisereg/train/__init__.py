from noisereg.train.loop import OptimizerSettings, TrainerSettings, TrainResult, evaluate, resolve_device, train

__all__ = ["OptimizerSettings", "TrainResult", "TrainerSettings", "evaluate", "resolve_device", "train"]
