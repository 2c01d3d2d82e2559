"""One job: construction (config → dataset, model, noise, probes, training state) plus training.

The job's lifecycle — checks before anything is written, the run directory (resume, lock), records, W&B,
signals, status — is `tracking/job.py`'s; `run(cfg, output_dir)` hands it the two steps below.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from noisereg.config import apply_scale, validate
from noisereg.data.tensors import TensorDataset
from noisereg.errors import RESTART, SettingError
from noisereg.losses import build_loss
from noisereg.memory import check_fits
from noisereg.noise.base import NoiseMode
from noisereg.probes.base import ProbeContext
from noisereg.probes.curvature import CurvatureProbe
from noisereg.registry import DATASETS, MODELS, NOISE_MODES, PROBES
from noisereg.tracking.job import run_jobs
from noisereg.train.evaluation import loss_targets
from noisereg.train.loop import TrainResult, run_loop, training_state
from noisereg.train.members import check_members_apply, member_seeds, run_members
from noisereg.train.settings import TrainerSettings, resolve_device, steps_per_epoch, uses_channels_last
from noisereg.train.state import TrainingState

# Distinct random streams per job, so e.g. GD and layer-wise runs with one seed share init and batch order.
# (The curvature probe's Monte-Carlo noise draws from stream 3: probes/curvature.py.)
INIT_STREAM, SHUFFLE_STREAM, NOISE_STREAM = 0, 1, 2


def stream_seed(seed: int, stream: int) -> int:
    return seed * 1000 + stream


def prepare(cfg: DictConfig) -> DictConfig:
    """Validate and apply the scale caps: the config the job actually runs, as recorded in summary.json."""
    return apply_scale(validate(cfg))


@dataclass
class Experiment:
    """Everything a job trains, built from its config; `state` is what a checkpoint saves and restores."""

    device: torch.device
    data: TensorDataset
    model: nn.Module
    noise: NoiseMode
    loss_fn: nn.Module
    settings: TrainerSettings
    state: TrainingState

    def train(self, log: Callable, checkpoint: Callable, should_stop: Callable[[], bool]) -> TrainResult:
        return run_loop(self.state, self.data, self.loss_fn, self.settings, log, checkpoint, should_stop)

    def summary(self) -> dict[str, Any]:
        return {"device": str(self.device), "n_parameters": sum(p.numel() for p in self.model.parameters())}


def _options(node: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True)


def build(cfg: DictConfig, members: int | None = None) -> Experiment:
    """Construct a prepared config's experiment. Raises `SettingError` for settings that do not fit together (a
    model too large for memory, or `members` of it (default trainer.members), a noise layer the model lacks, a loss
    the data cannot take); writes nothing."""
    device = resolve_device(cfg.trainer.device)
    torch.manual_seed(cfg.seed)  # anything not given its own generator below
    settings: TrainerSettings = OmegaConf.to_object(cfg.trainer)
    channels_last = uses_channels_last(settings, device)
    data = DATASETS.build(_options(cfg.dataset)).to(device, channels_last=channels_last)
    if data.task == "regression" and settings.loss == "cross_entropy":
        raise SettingError(
            f"trainer.loss=cross_entropy needs class labels but dataset={cfg.dataset.name} is a "
            "regression; use trainer.loss=half_mse or mse"
        )

    def make_model(generator: torch.Generator | None) -> nn.Module:
        return MODELS.build(
            _options(cfg.model), input_shape=data.input_shape, num_outputs=data.num_outputs, generator=generator
        )

    with torch.device("meta"):  # count parameters and activations without allocating them
        check_fits(make_model(None), data, cfg, device, members or int(cfg.trainer.get("members") or 1))
    model = make_model(torch.Generator().manual_seed(stream_seed(cfg.seed, INIT_STREAM)))
    model = model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)

    def make_noise(stream: int) -> NoiseMode:
        return NOISE_MODES.build(_options(cfg.noise), seed=stream_seed(cfg.seed, stream))

    noise = make_noise(NOISE_STREAM)
    noise.attach(model, data)
    loss_fn = build_loss(settings.loss)
    context = ProbeContext(
        model=model,
        data=data,
        loss_fn=loss_fn,
        loss_targets=lambda targets: loss_targets(targets, settings.loss, data.num_outputs),
        noise=noise,
        steps_per_epoch=steps_per_epoch(data.n_train, settings.batch_size),
        make_noise=make_noise,
    )
    probes = [CurvatureProbe(context, OmegaConf.to_object(cfg.curvature))] if cfg.curvature.every is not None else []
    probes += [
        PROBES.build({"name": name, **_options(node)}, context=context)
        for name, node in cfg.probes.items()
        if node.every is not None
    ]
    state = training_state(model, data, noise, settings, stream_seed(cfg.seed, SHUFFLE_STREAM), probes)
    check_members_apply(model, noise, state, settings)
    return Experiment(device, data, model, noise, loss_fn, settings, state)


def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The config of the member with `seed`: the single run's with that seed, so its records are that run's."""
    return OmegaConf.merge(cfg, {"seed": seed, "trainer": {"members": 1}})


def build_member(cfg: DictConfig, members: int) -> Experiment:
    """A member's experiment, checked for training in a batch of `members` (build checks a config's own count)."""
    experiment = build(cfg, members)
    settings = dataclasses.replace(experiment.settings, members=members)
    check_members_apply(experiment.model, experiment.noise, experiment.state, settings)
    return experiment


def train_members(experiments: list[Experiment], logs: list, checkpoints: list, should_stop) -> list[TrainResult]:
    first = experiments[0]
    return run_members(
        [e.state for e in experiments],
        [e.data for e in experiments],
        first.loss_fn,
        first.settings,
        logs,
        checkpoints,
        should_stop,
    )


def run(cfg: DictConfig, output_dir: str | os.PathLike, run_name: str | None = None, in_sweep: bool = False) -> dict:
    """Run one job and write its records into `output_dir`; returns the summary (tracking/job.py says how a run
    directory that already holds records is treated). Bad settings raise `SettingError` before anything is
    written; a diverging run returns status `diverged`. With `trainer.members=N`, N runs (seeds seed ... seed+N-1)
    trained as one batched model (train/members.py) write `output_dir/seed_<s>/` each; the summary returned then
    holds theirs under `members`."""
    members = int(cfg.trainer.get("members", 1))
    if members == 1:
        return run_jobs([cfg], [Path(output_dir)], prepare, build, [run_name], in_sweep)[0]
    seeds = member_seeds(int(cfg.seed), members)
    directories = [Path(output_dir) / f"seed_{seed}" for seed in seeds]
    try:
        summaries = run_jobs(
            [member_config(cfg, seed) for seed in seeds],
            directories,
            prepare,
            functools.partial(build_member, members=members),
            [None if run_name is None else f"{run_name}/seed_{seed}" for seed in seeds],
            in_sweep,
            train_together=train_members,
        )
    except SettingError as error:  # one member's records damaged: restarting the job would discard every member's
        damaged = next((d for d in directories if str(d) in str(error)), None)
        if damaged is None or RESTART not in str(error):
            raise
        raise SettingError(
            str(error).replace(
                RESTART,
                f"delete {damaged} and run the same command: that member "
                "starts again and catches up, the others resume",
            )
        ) from None
    return members_summary([{**summary, "directory": str(d)} for summary, d in zip(summaries, directories)])


def members_summary(summaries: list[dict]) -> dict:
    """One summary for a batched job's caller: the members' under `members`; its status the most pressing of
    theirs (interrupted, failed, then diverged when any member diverged, else completed)."""
    statuses = [summary["status"] for summary in summaries]
    status = next((s for s in ("interrupted", "failed", "diverged") if s in statuses), "completed")
    combined = {
        "status": status,
        "members": summaries,
        "finished_before": all(summary.get("finished_before") for summary in summaries),
    }
    for summary in summaries:  # the reason and signal of the first member in that state
        if summary["status"] == status:
            combined.update({k: summary[k] for k in ("reason", "signal", "steps") if k in summary})
            break
    return combined
