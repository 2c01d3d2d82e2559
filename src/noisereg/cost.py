"""What a job will cost before it runs: its floating-point operations, counted on the meta device, and the seconds
they take on this machine at the speeds measured here (scripts/reproduce_gpu.py plans a GPU loan with it).

An estimate, not a promise: the count is exact for what it covers (the training steps' forward and backward, the
evaluations' forward passes, the exact Hessian trace's one backward pass per output and sample), and the time adds
a per-step floor for what no FLOP count sees (kernel launches, Python, one per parameter tensor and step), measured
by timing tiny steps. Probes, checkpoints and the host's waits are left out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from noisereg.train.settings import autocast_dtype, interval_in_steps, resolve_device, total_steps

EFFICIENCY = 0.5  # the share of a dense matmul's speed that training's mix of kernels reaches (an assumption)
STARTUP_S = 2.0  # a job's own start beyond loading its data: building the model, CUDA's first calls


@dataclass(frozen=True)
class JobCost:
    steps: int
    step_flops: float  # one training step: forward and backward at the batch size
    eval_flops: float  # one evaluation: forward passes over the training and test sets
    evaluations: int
    curvature_flops: float  # one exact Hessian trace (plus the regularisers it shares its passes with)
    curvature_measurements: int
    parameter_tensors: int
    low_precision: bool  # bf16 autocast (CUDA's default); the curvature is always float32
    data_seconds: float  # loading its data, measured here

    @property
    def flops(self) -> float:
        return (
            self.steps * self.step_flops
            + self.evaluations * self.eval_flops
            + self.curvature_measurements * self.curvature_flops
        )


@dataclass(frozen=True)
class DeviceSpeed:
    """Dense-matmul FLOP/s in bf16 and float32, and the floor of a training step: seconds per step and per
    parameter tensor."""

    device: str
    bf16_flops_per_s: float
    fp32_flops_per_s: float
    floor_s: float
    floor_per_tensor_s: float

    def seconds(self, cost: JobCost) -> float:
        train_rate = (self.bf16_flops_per_s if cost.low_precision else self.fp32_flops_per_s) * EFFICIENCY
        floor = self.floor_s + self.floor_per_tensor_s * cost.parameter_tensors
        return (
            cost.steps * max(cost.step_flops / train_rate, floor)
            + cost.evaluations * max(cost.eval_flops / train_rate, floor)
            + cost.curvature_measurements * cost.curvature_flops / (self.fp32_flops_per_s * EFFICIENCY)
            + cost.data_seconds
            + STARTUP_S
        )


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(device: torch.device, work, repeats: int = 1) -> float:
    """The best of `repeats` wall-clock times of `work()`, synchronised on CUDA (a timing, not a FLOP count)."""
    best = float("inf")
    for _ in range(repeats):
        _synchronise(device)
        start = time.perf_counter()
        work()
        _synchronise(device)
        best = min(best, time.perf_counter() - start)
    return best


def measure_speed(device: torch.device) -> DeviceSpeed:
    """A second or two of timing on `device`: matmuls for the FLOP rates, tiny SGD steps of a 2- and a 20-tensor
    MLP for the per-tensor floor."""
    n = 4096 if device.type == "cuda" else 512
    rates = {}
    for dtype in (torch.bfloat16, torch.float32):
        a = torch.randn(n, n, device=device, dtype=dtype)
        a @ a  # first-call costs
        rates[dtype] = 2 * n**3 / best_seconds(device, lambda: a @ a, repeats=5)
    floors = []
    for layers in (1, 10):
        model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(layers)]).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.randn(8, 8, device=device)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            optimizer.step()

        step()
        floors.append(best_seconds(device, step, repeats=20))
    per_tensor = max((floors[1] - floors[0]) / 18, 0.0)
    return DeviceSpeed(
        str(device), rates[torch.bfloat16], rates[torch.float32], max(floors[0] - 2 * per_tensor, 0.0), per_tensor
    )


_DATA: dict[str, tuple[tuple[int, ...], int, int, int, float]] = {}  # dataset settings → shapes, sizes, seconds


def _data_facts(dataset: DictConfig) -> tuple[tuple[int, ...], int, int, int, float]:
    """(input shape, outputs, training and test set sizes, seconds to load) of a dataset config, loaded once."""
    from noisereg.registry import DATASETS

    key = json.dumps(OmegaConf.to_container(dataset, resolve=True), sort_keys=True)
    if key not in _DATA:
        start = time.perf_counter()
        data = DATASETS.build(OmegaConf.to_container(dataset, resolve=True))
        _DATA[key] = (
            data.input_shape,
            data.num_outputs,
            data.n_train,
            data.test_inputs.shape[0],
            time.perf_counter() - start,
        )
    return _DATA[key]


def _flops(model: nn.Module, inputs: torch.Tensor, backward: bool) -> float:
    with FlopCounterMode(display=False) as counter:
        outputs = model(inputs)
        if backward:
            outputs.float().sum().backward()
    return float(counter.get_total_flops())


def job_cost(cfg: DictConfig, device: torch.device | None = None) -> JobCost:
    """The cost of a prepared config (noisereg.app.prepare: validated, scale applied), counted without training,
    on `device` (default: the one trainer.device picks here)."""
    import noisereg.data  # noqa: F401  (the registries the config names)
    import noisereg.models  # noqa: F401
    from noisereg.registry import MODELS

    input_shape, num_outputs, n_train, n_test, data_seconds = _data_facts(cfg.dataset)
    trainer, curvature = cfg.trainer, cfg.curvature
    batch = trainer.batch_size or n_train
    with torch.device("meta"):
        model = MODELS.build(
            OmegaConf.to_container(cfg.model, resolve=True),
            input_shape=input_shape,
            num_outputs=num_outputs,
            generator=None,
        )
        step_flops = _flops(model, torch.empty(batch, *input_shape), backward=True)
        sample_flops = _flops(model, torch.empty(1, *input_shape), backward=False)
    steps = total_steps(OmegaConf.to_object(trainer), n_train)
    eval_every = interval_in_steps(trainer.eval_every, trainer.eval_unit, n_train, trainer.batch_size)
    curvature_every = interval_in_steps(curvature.every, curvature.unit, n_train, trainer.batch_size)
    samples = min(curvature.n_samples or n_train, n_train)
    device = device or resolve_device(trainer.device)
    return JobCost(
        steps=steps,
        step_flops=step_flops,
        eval_flops=sample_flops * (n_train + n_test),
        evaluations=steps // eval_every + 1 if eval_every else 1,
        # the exact trace: one forward and one backward per output column and sample (Orvieto et al. Eq. 5)
        curvature_flops=3 * sample_flops * samples * (num_outputs + 1),
        curvature_measurements=steps // curvature_every + 1 if curvature_every else 0,
        parameter_tensors=sum(1 for _ in model.parameters()),
        low_precision=autocast_dtype(OmegaConf.to_object(trainer), device) is not None,
        data_seconds=data_seconds,
    )


def describe(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


__all__ = ["DeviceSpeed", "JobCost", "best_seconds", "describe", "job_cost", "measure_speed"]
