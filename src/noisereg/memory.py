"""Will a model fit? Checked before it is built, from its parameter count (the model built on the meta device)."""
from __future__ import annotations

import math
import os

import torch
from omegaconf import DictConfig
from torch import nn

from noisereg.errors import SettingError


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def training_bytes(parameters: int, cfg: DictConfig) -> int:
    """Weights, gradients, the copy parameter noise restores from and the optimizer's buffers (SGD's momentum,
    Adam's two moments), in float32."""
    optimizer = cfg.trainer.optimizer
    copies = 3 + (2 if optimizer.get("name", "sgd") == "adam" else int(optimizer.momentum > 0))
    return parameters * 4 * copies


def _gigabytes(n: float) -> str:
    return f"{n / 2**30:.3g} GB"


def check_fits(model: nn.Module, cfg: DictConfig, device: torch.device) -> None:
    parameters = sum(math.prod(p.shape) for p in model.parameters())
    needed, available = training_bytes(parameters, cfg), available_bytes(device)
    if needed > available:
        shape = f"model.widths={list(cfg.model.widths)}" if "widths" in cfg.model else f"model={cfg.model.name}"
        raise SettingError(f"{shape} has {parameters:.3g} parameters and needs about {_gigabytes(needed)} to train, "
                           f"but {_gigabytes(available)} is free on {device.type}; use smaller widths or scale=smoke")  # fmt: skip
