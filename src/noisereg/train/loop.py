"""The training loop: full-batch GD or minibatch SGD over tensors already on the device.

The loop only steps: batches come from a `BatchIterator` (data/batches.py), everything that changes lives in a
`TrainingState` (train/state.py, so a run can be checkpointed and resumed exactly), measurements are `Probe`s
(probes/base.py), and every noise mode is driven through the same protocol (noise/base.py). What to do with the
rows it logs, and when to stop early, is the caller's (tracking/job.py).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from noisereg.data.batches import BatchIterator
from noisereg.data.tensors import TensorDataset
from noisereg.losses import build_loss
from noisereg.noise.base import NoiseMode
from noisereg.probes.base import Probe
from noisereg.train.evaluation import evaluate, loss_targets, parameter_norms
from noisereg.train.fused import StepBlocks, block_end, block_intervals, check_blocks_apply, uses_blocks
from noisereg.train.optimizers import build_optimizer, build_schedule
from noisereg.train.progress import Progress
from noisereg.train.settings import TrainerSettings, autocast_dtype, interval_in_steps, total_steps
from noisereg.train.state import TrainingState

Row = dict[str, Any]
Artifacts = dict[str, dict[str, np.ndarray]]


@dataclass
class TrainResult:
    status: str  # completed | diverged | interrupted
    steps: int
    final_metrics: dict[str, Any]
    reason: str = ""


def is_finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _diverged(row: Row) -> bool:
    return not is_finite([v for k, v in row.items() if k.endswith("/loss") and isinstance(v, float)])


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to `threads` inside, restored after (None: left as they are)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_loop(
    state: TrainingState,
    data: TensorDataset,
    loss_fn: nn.Module,
    settings: TrainerSettings,
    log: Callable[[Row, Artifacts], None],
    checkpoint: Callable[[TrainingState], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Train from `state` (fresh or restored) to the end of the run, on `settings.threads` CPU threads; see
    `_run_loop`."""
    with intra_op_threads(settings.threads):
        return _run_loop(state, data, loss_fn, settings, log, checkpoint, should_stop)


def _run_loop(
    state: TrainingState,
    data: TensorDataset,
    loss_fn: nn.Module,
    settings: TrainerSettings,
    log: Callable[[Row, Artifacts], None],
    checkpoint: Callable[[TrainingState], None] | None,
    should_stop: Callable[[], bool],
) -> TrainResult:
    """Train from `state` (fresh or restored) to the end of the run: measure where due (`Run`), advance by one step
    (`eager_step`) or by a block of steps in one call (`StepBlocks`, with `steps_per_call` > 1)."""
    run = Run(state, data, loss_fn, settings, log, checkpoint)
    run.progress = Progress(run.n_steps, state.step, settings.progress_bar)
    try:
        ended = run.start()
        blocks = StepBlocks(state, data, loss_fn, settings) if uses_blocks(settings) else None
        while ended is None and not run.done:
            if should_stop():
                return run.interrupt()
            before = state.step
            if blocks is not None:
                loss = blocks.run(run.block_end())[-1]
            else:
                loss = eager_step(state, data, run.network, loss_fn, settings, run.precision)
            ended = run.after_advance(before, loss)
    finally:
        run.progress.close()
    return ended or run.completed()


def eager_step(
    state: TrainingState,
    data: TensorDataset,
    network: nn.Module,
    loss_fn: nn.Module,
    settings: TrainerSettings,
    precision: torch.dtype | None,
) -> torch.Tensor:
    """One step of the trainer, every noise mode's hooks called as noise/base.py lays out; returns the batch loss
    (the objective minimised, explicit penalty included) without waiting for the device."""
    noise, optimizer = state.noise, state.optimizer
    batch = next(state.batches)
    noise.begin_step(state.step, batch.epoch, batch.indices)
    targets = loss_targets(noise.targets(batch.inputs, batch.targets), settings.loss, data.num_outputs)
    optimizer.zero_grad(set_to_none=True)
    device_type = batch.inputs.device.type
    with noise.perturbed():
        with torch.autocast(device_type, dtype=precision or torch.bfloat16, enabled=precision is not None):
            outputs = network(batch.inputs)
            loss = loss_fn(outputs, targets)
            penalty = noise.penalty(outputs, targets, loss_fn)  # an explicit regulariser (gni_explicit)
            if penalty is not None:
                loss = loss + penalty  # the objective minimised; train/batch_loss reports it
        loss.backward()
    optimizer.step()
    state.schedule.step()
    state.step += 1
    state.pending_losses.append(loss.detach())
    return loss


class Run:
    """One training state's run as seen between advances: the rows it measures and records, the divergence checks
    and the checkpoints. `run_loop` drives one; train/members.py drives several, advanced together.

    A metrics row is logged at step 0, every `eval_every` steps (or epochs), whenever a probe is due, and at the
    last step. Forward passes run under bf16 autocast where `trainer.precision` says so, through
    `torch.compile(model)` with `trainer.compile`; the host waits for the device only every
    `divergence_check_every` steps and at evaluations. `checkpoint(state)` is called every `checkpoint_every`
    steps (or epochs) and on `interrupt()`, which ends the run with status `interrupted`. A NaN or inf loss ends
    it with status `diverged`: a result, not an error."""

    def __init__(
        self,
        state: TrainingState,
        data: TensorDataset,
        loss_fn: nn.Module,
        settings: TrainerSettings,
        log: Callable[[Row, Artifacts], None],
        checkpoint: Callable[[TrainingState], None] | None,
    ):
        self.state, self.data, self.loss_fn, self.settings = state, data, loss_fn, settings
        self.log, self.checkpoint = log, checkpoint
        self.n_steps = total_steps(settings, data.n_train)
        self.per_epoch = state.batches.steps_per_epoch
        self.eval_interval = interval_in_steps(
            settings.eval_every, settings.eval_unit, data.n_train, settings.batch_size
        )
        self.early_until = interval_in_steps(
            settings.early_eval_until, settings.eval_unit, data.n_train, settings.batch_size
        )
        self.checkpoint_interval = interval_in_steps(
            settings.checkpoint_every, settings.checkpoint_unit, data.n_train, settings.batch_size
        )
        self.intervals = block_intervals(settings, state.probes)
        model = state.model
        device = next(model.parameters()).device
        self.precision = autocast_dtype(settings, device)
        # The compiled module shares the model's parameters and buffers; checkpoints and probes use `model` itself.
        # Runs in blocks compile their block of steps instead (train/fused.py) and evaluate eagerly.
        self.network = torch.compile(model, dynamic=False) if settings.compile and not uses_blocks(settings) else model
        self.progress: Progress | None = None

    @property
    def done(self) -> bool:
        return self.state.step >= self.n_steps

    def block_end(self) -> int:
        """Where a block of steps from the current step ends (train/fused.py)."""
        intervals = [*self.intervals, self.settings.early_eval_every if self.state.step < self.early_until else None]
        return block_end(self.state.step, self.n_steps, self.settings, intervals, self.state.noise, self.per_epoch)

    def evaluates_at(self, step: int) -> bool:
        """A row at every `eval_every`, every `early_eval_every` steps up to `early_eval_until`, the last step, and
        whenever a probe is due."""
        early = self.settings.early_eval_every
        return (
            step % self.eval_interval == 0
            or step == self.n_steps
            or bool(early and step <= self.early_until and step % early == 0)
            or any(p.due(step, self.n_steps) for p in self.state.probes)
        )

    def measure(self, step: int, batch_loss: float | None) -> tuple[Row, Artifacts]:
        state, data, settings = self.state, self.data, self.settings
        row: Row = {"step": step, "epoch": step / self.per_epoch}
        for split, x, y in (
            ("train", data.train_inputs, data.train_targets),
            ("test", data.test_inputs, data.test_targets),
        ):
            metrics = evaluate(
                self.network,
                self.loss_fn,
                settings.loss,
                x,
                y,
                data.num_outputs,
                settings.eval_batch_size,
                prepare=data.model_inputs,
                autocast_dtype=self.precision,
            )
            for key, value in metrics.items():
                row[f"{split}/{key}"] = value
        row.update(parameter_norms(state.model))
        row["lr"] = state.optimizer.param_groups[0]["lr"]
        if batch_loss is not None:
            row["train/batch_loss"] = batch_loss
        row["noise/active"] = float(state.noise.active)
        row.update(state.noise.metrics())
        artifacts: Artifacts = {}
        for probe in state.probes:
            if probe.due(step, self.n_steps):
                measurement = probe.measure(step)
                row.update(measurement.metrics)
                artifacts.update(measurement.artifacts)
        return row, artifacts

    def record(self, row: Row, artifacts: Artifacts) -> None:
        self.log(row, artifacts)
        self.state.last_row = row

    def start(self) -> TrainResult | None:
        """The step-0 row of a fresh run; a `diverged` result when the loss at initialisation is not finite."""
        self.state.model.train()
        if self.state.started:
            return None
        row, artifacts = self.measure(0, None)
        self.record(row, artifacts)
        self.state.started = True
        return TrainResult("diverged", 0, row, "non-finite loss at initialisation") if _diverged(row) else None

    def after_advance(self, before: int, loss: torch.Tensor) -> TrainResult | None:
        """After the steps from `before` to the state's step (`loss`: the last one's): the divergence check, the
        row, the checkpoint that are due. A `diverged` result ends the run."""
        state, settings, step = self.state, self.settings, self.state.step
        every = settings.divergence_check_every
        if step // every > before // every or step == self.n_steps:
            losses = torch.cat([pending.reshape(-1) for pending in state.pending_losses]).tolist()
            state.pending_losses.clear()
            if self.progress is not None:
                self.progress.update(len(losses), losses[-1])
            if not is_finite(losses):
                row = {"step": step, "epoch": step / self.per_epoch, "train/batch_loss": losses[-1]}
                self.record(row, {})
                return TrainResult("diverged", step, row, f"non-finite training loss at step {step}")
        if self.evaluates_at(step):
            row, artifacts = self.measure(step, float(loss.detach()))
            self.record(row, artifacts)
            if _diverged(row):
                return TrainResult("diverged", step, row, f"non-finite evaluation loss at step {step}")
        # (A block may run past a multiple of the interval: checkpoint at its end.)
        interval = self.checkpoint_interval
        crossed = interval and step // interval > before // interval
        if self.checkpoint is not None and crossed and step < self.n_steps:
            self.checkpoint(state)
        return None

    def interrupt(self) -> TrainResult:
        if self.checkpoint is not None:
            self.checkpoint(self.state)
        return TrainResult(
            "interrupted", self.state.step, self.state.last_row, f"interrupted at step {self.state.step}"
        )

    def completed(self) -> TrainResult:
        return TrainResult("completed", self.state.step, self.state.last_row)


def training_state(
    model: nn.Module,
    data: TensorDataset,
    noise: NoiseMode,
    settings: TrainerSettings,
    seed: int,
    probes: Sequence[Probe] = (),
) -> TrainingState:
    """A fresh state: the optimizer over the model's parameters (noise already attached: NIN adds W_NI), the
    learning-rate schedule over the run's length and the batch iterator seeded with `seed`. A `SettingError` when
    `steps_per_call`/`compile` ask for blocks this run cannot take (train/fused.py)."""
    optimizer = build_optimizer(model, settings.optimizer)
    schedule = build_schedule(optimizer, settings.schedule, total_steps(settings, data.n_train))
    batches = BatchIterator(data.train_inputs, data.train_targets, settings.batch_size, seed, data.pipeline)
    check_blocks_apply(model, noise, batches, settings)
    return TrainingState(model, optimizer, schedule, batches, noise, list(probes))


def train(
    model: nn.Module,
    data: TensorDataset,
    noise: NoiseMode,
    settings: TrainerSettings,
    log: Callable[[Row], None],
    seed: int = 0,
    probes: Sequence[Probe] = (),
) -> TrainResult:
    """Train `model` (noise already attached) and call `log(row)` with every metrics row: the library's one-call
    entry point, without records, checkpoints or W&B (those are the job's: tracking/job.py)."""
    settings.check()
    state = training_state(model, data, noise, settings, seed, probes)
    return run_loop(state, data, build_loss(settings.loss), settings, lambda row, artifacts: log(row))
