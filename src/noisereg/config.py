"""Schemas for every config group: an unknown key or a wrong type is an error that names the key.

Hydra composes the YAML in conf/; `validate` merges each group's node into the schema its `name` selects.
`apply_scale` applies the `scale` group's caps (scale=smoke) in one place, for every experiment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from noisereg.curvature.during_training import CurvatureSettings
from noisereg.errors import SettingError
from noisereg.train.loop import TrainerSettings


# -- dataset ---------------------------------------------------------------------------------------------------------
@dataclass
class SyntheticSparseConfig:
    name: str = "synthetic_sparse"
    n_train: int = 40
    n_test: int = 1000
    input_dim: int = 10
    coefficients: list[float] = field(default_factory=lambda: [1.0, -1.0])
    label_noise_std: float = 0.0
    seed: int = 0


@dataclass
class FmnistSubsetConfig:
    name: str = "fmnist_subset"
    n_train: int = 1024
    n_test: Optional[int] = None  # None: the full 10k test set
    root: str = "data"
    seed: int = 0  # which training subset; fixed across runs, as the paper varies only init and noise


# -- model -----------------------------------------------------------------------------------------------------------
@dataclass
class MlpConfig:
    name: str = "mlp"
    widths: list[int] = field(default_factory=lambda: [500, 500, 500])
    activation: str = "relu"
    bias: bool = True
    init: str = "default"


@dataclass
class DiagonalNetConfig:
    name: str = "diagonal_net"
    init_scale: float = 0.1


# -- noise -----------------------------------------------------------------------------------------------------------
@dataclass
class GdConfig:
    name: str = "gd"
    # GD ignores σ; the key exists so that an experiment's σ composes with noise=gd in a sweep.
    sigma: float = 0.0
    stop_step: Optional[int] = None  # noise off from this step on
    stop_epoch: Optional[int] = None  # noise off from this epoch on (the ResNet recipe: 135 of 150)


@dataclass
class GdNoiseConfig(GdConfig):
    name: str = "gd_noise"
    sigma: float = 0.05
    groups: str = "tensor"


@dataclass
class LayerwiseConfig(GdConfig):
    name: str = "layerwise"
    sigma: float = 0.05
    order: str = "random"
    groups: str = "tensor"


@dataclass
class LabelNoiseConfig(GdConfig):
    name: str = "label_noise"
    delta: float = 0.1
    flip_probability: float = 0.1
    distribution: str = "gaussian"


@dataclass
class NinConfig(GdConfig):
    name: str = "nin"
    sigma: float = 0.1
    layer: int = 0
    resample: str = "step"
    init_std: float = 0.01


@dataclass
class GniConfig(GdConfig):
    name: str = "gni"
    sigma: Any = 0.1  # one number, or a list with one σ_k per hidden layer
    kind: str = "additive"
    noise_input: bool = False


# -- trainer, curvature, logger, scale -------------------------------------------------------------------------------
@dataclass
class TrainerConfig(TrainerSettings):
    device: str = "auto"  # auto: CUDA when present, else CPU


@dataclass
class LoggerConfig:
    mode: str = "offline"
    project: str = "noisereg"
    entity: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ScaleConfig:
    name: str = "paper"
    width_factor: float = 1.0  # widths are multiplied by this (rounded, at least 1), then capped at max_width
    max_width: Optional[int] = None
    max_train: Optional[int] = None
    max_test: Optional[int] = None
    max_steps: Optional[int] = None
    max_epochs: Optional[int] = None


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"synthetic_sparse": SyntheticSparseConfig, "fmnist_subset": FmnistSubsetConfig},
    "model": {"mlp": MlpConfig, "diagonal_net": DiagonalNetConfig},
    "noise": {
        "gd": GdConfig,
        "gd_noise": GdNoiseConfig,
        "layerwise": LayerwiseConfig,
        "label_noise": LabelNoiseConfig,
        "nin": NinConfig,
        "gni": GniConfig,
    },
}
# The library's own settings dataclasses are the schemas where they exist: one definition of each setting.
FIXED_SCHEMAS: dict[str, type] = {
    "trainer": TrainerConfig,
    "curvature": CurvatureSettings,
    "logger": LoggerConfig,
    "scale": ScaleConfig,
}
TOP_LEVEL_KEYS = {"name", "seed"} | set(SCHEMAS) | set(FIXED_SCHEMAS)


def _merge(group: str, schema: type, node: Any) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        key = f"{group}.{error.full_key}" if getattr(error, "full_key", None) else group
        raise SettingError(f"invalid setting {key}: {message}") from None


def validate(cfg: DictConfig) -> DictConfig:
    """Return a copy of `cfg` with every group checked against its schema and defaults filled in."""
    cfg = cfg.copy()
    unknown = set(cfg.keys()) - TOP_LEVEL_KEYS
    if unknown:
        raise SettingError(f"unknown top-level setting(s) {sorted(unknown)}; known: {sorted(TOP_LEVEL_KEYS)}")
    with open_dict(cfg):
        for group, options in SCHEMAS.items():
            node = cfg.get(group)
            name = node.get("name") if isinstance(node, DictConfig) else None
            if name not in options:
                raise SettingError(f"{group}.name={name!r} is unknown; choose one of {sorted(options)}")
            cfg[group] = _merge(group, options[name], node)
        for group, schema in FIXED_SCHEMAS.items():
            cfg[group] = _merge(group, schema, cfg.get(group, {}))
    return cfg


def _cap(value: Optional[int], limit: Optional[int]) -> Optional[int]:
    if limit is None:
        return value
    return limit if value is None else min(value, limit)


def apply_scale(cfg: DictConfig) -> DictConfig:
    """Shrink widths, data and length to the `scale` caps, keeping the structure (depth, modes, schedule)."""
    scale = cfg.scale
    cfg = cfg.copy()
    with open_dict(cfg):
        if "widths" in cfg.model:
            scaled = [max(1, round(int(w) * scale.width_factor)) for w in cfg.model.widths]
            cfg.model.widths = [_cap(w, scale.max_width) for w in scaled]
        if "n_train" in cfg.dataset:
            cfg.dataset.n_train = _cap(cfg.dataset.n_train, scale.max_train)
        if "n_test" in cfg.dataset:
            cfg.dataset.n_test = _cap(cfg.dataset.n_test, scale.max_test)
        if cfg.trainer.steps is not None:
            cfg.trainer.steps = _cap(cfg.trainer.steps, scale.max_steps)
        if cfg.trainer.epochs is not None:
            cfg.trainer.epochs = _cap(cfg.trainer.epochs, scale.max_epochs)
    return cfg
