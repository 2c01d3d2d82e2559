"""One job: config → dataset, model, noise → trainer → run records (metrics.jsonl, summary.json, W&B)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from noisereg.config import apply_scale, validate
from noisereg.curvature.during_training import CurvatureMetrics
from noisereg.data import TensorDataset, build_dataset
from noisereg.errors import SettingError
from noisereg.models import build_model
from noisereg.noise import NOISE_MODES, NoiseMode
from noisereg.losses import build_loss
from noisereg.tracking import RunRecord, WandbLogger
from noisereg.train import resolve_device, train
from noisereg.train.loop import loss_targets, steps_per_epoch

# Distinct random streams per job, so e.g. GD and layer-wise runs with one seed share init and batch order.
INIT_STREAM, SHUFFLE_STREAM, NOISE_STREAM, MONTE_CARLO_STREAM = 0, 1, 2, 3


def stream_seed(seed: int, stream: int) -> int:
    return seed * 1000 + stream


def noise_factory(cfg: DictConfig, model: torch.nn.Module, data: TensorDataset) -> Callable[[int], NoiseMode]:
    """`seed -> noise mode` as the config describes it (not yet attached to the model)."""
    options: dict[str, Any] = OmegaConf.to_container(cfg.noise, resolve=True)
    name = options.pop("name")
    if name in ("gd", "label_noise"):
        options.pop("sigma")  # GD and label noise have no σ; an experiment's σ is ignored for them
    schedule = {"stop_step": options.pop("stop_step"), "stop_epoch": options.pop("stop_epoch")}
    if name == "gd":
        return lambda seed: NoiseMode(**schedule)
    if name in ("gd_noise", "layerwise"):
        options["model"] = model
    elif name == "label_noise":
        options["num_classes"] = data.num_outputs if data.task == "classification" else None
    elif name == "nin":
        options["n_train"] = data.n_train
    return lambda seed: NOISE_MODES[name](seed=seed, **options, **schedule)


def curvature_interval(cfg: DictConfig, n_train: int) -> int | None:
    """`curvature.every` in steps."""
    if cfg.curvature.every is None or cfg.curvature.unit == "steps":
        return cfg.curvature.every
    return cfg.curvature.every * steps_per_epoch(n_train, cfg.trainer.batch_size)


def prepare(cfg: DictConfig) -> DictConfig:
    """Validate and apply the scale caps: the config the job actually runs, as recorded in summary.json."""
    return apply_scale(validate(cfg))


def run(cfg: DictConfig, output_dir: str | os.PathLike, run_name: str | None = None) -> dict[str, Any]:
    """Run one job and write its records into `output_dir`. Returns the summary.

    Bad settings raise `SettingError` before anything is trained; a diverging run returns status `diverged`.
    """
    started = time.time()
    record = RunRecord(Path(output_dir))
    summary: dict[str, Any] = {"status": "failed", "seed": cfg.get("seed"), "name": cfg.get("name"),
                               "config": OmegaConf.to_container(cfg)}  # fmt: skip
    logger = None
    try:
        cfg = prepare(cfg)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        summary["config"] = resolved
        device = resolve_device(cfg.trainer.device)
        torch.manual_seed(cfg.seed)  # anything not given its own generator below
        dataset_options = OmegaConf.to_container(cfg.dataset, resolve=True)
        data = build_dataset(dataset_options.pop("name"), **dataset_options).to(device)
        model_options = OmegaConf.to_container(cfg.model, resolve=True)
        model = build_model(
            model_options.pop("name"),
            data.input_shape,
            data.num_outputs,
            generator=torch.Generator().manual_seed(stream_seed(cfg.seed, INIT_STREAM)),
            **model_options,
        ).to(device)
        if data.task == "regression" and cfg.trainer.loss == "cross_entropy":
            raise SettingError(f"trainer.loss=cross_entropy needs class labels but dataset={cfg.dataset.name} is a "
                               "regression; use trainer.loss=half_mse or mse")  # fmt: skip
        make_noise = noise_factory(cfg, model, data)
        noise = make_noise(stream_seed(cfg.seed, NOISE_STREAM))
        noise.attach(model)
        settings = OmegaConf.to_object(cfg.trainer)
        curvature = None
        if cfg.curvature.every is not None:
            curvature = CurvatureMetrics(
                model,
                build_loss(settings.loss),
                lambda targets: loss_targets(targets, settings.loss, data.num_outputs),
                data,
                noise,
                OmegaConf.to_object(cfg.curvature),
                make_noise=lambda: make_noise(stream_seed(cfg.seed, MONTE_CARLO_STREAM)),
            )
        logger = WandbLogger(
            mode=cfg.logger.mode,
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            tags=list(cfg.logger.tags) + [cfg.noise.name],
            group=cfg.name,
            name=run_name,
            config=resolved,
            directory=record.directory,
        )

        def log(row: dict[str, Any]) -> None:
            record.log(row)
            logger.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

        result = train(
            model,
            data,
            noise,
            settings,
            log,
            seed=stream_seed(cfg.seed, SHUFFLE_STREAM),
            extra_metrics=curvature,
            extra_metrics_every=curvature_interval(cfg, data.n_train),
        )
        summary.update(
            status=result.status,
            steps=result.steps,
            final_metrics=result.final_metrics,
            device=str(device),
            n_parameters=sum(p.numel() for p in model.parameters()),
        )
        if result.reason:
            summary["reason"] = result.reason
    except BaseException as error:
        summary["reason"] = str(error) if isinstance(error, SettingError) else f"{type(error).__name__}: {error}"
        raise
    finally:
        summary["wall_time_s"] = round(time.time() - started, 3)
        record.write_summary(summary)
        record.close()
        if logger is not None:
            logger.summary({"status": summary["status"], **summary.get("final_metrics", {})})
            logger.finish(exit_code=0 if summary["status"] != "failed" else 1)
    return summary
