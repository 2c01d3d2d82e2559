"""Members (`trainer.members=N`): N runs of one small model, differing only in their seeds, trained as one batched
model at about the cost of one.

Each member is an ordinary training state of its own — built with seed `seed + k`, so its initialisation, batch
order and noise draws are those of the single run with that seed — and keeps its own records, checkpoints and
probes (`Run`, train/loop.py). Only the advance is shared: a block of steps (train/fused.py) draws every member's
batches and noise from that member's own streams, as the single run's block would, stacks the members'
parameters along a leading member axis (the layout of `torch.func.stack_module_state`) and runs the functional SGD step
under `vmap` — a loop in eager mode, one compiled `scan` with `trainer.compile=true`. With `steps_per_call=1` each
step is a block of one, which draws as the one-step loop does. So member k's records agree with the run of seed
k alone to float tolerance: batched arithmetic may round differently in the last bits (docs/training.md, "Members").

A member that diverges is recorded `diverged` and leaves the batch; the others go on. Members resumed at different
steps (a job killed while writing their checkpoints) are advanced in groups of equal step until they meet: block
ends depend on the step and the settings alone, so each member cuts the blocks its single run would.
What can be batched is what can run in blocks (train/fused.py: noise through the targets alone — GD, label noise
— and a model whose forward depends on its parameters alone), and parameter noise (GD+noise, layer-wise) one step
per call: each member's mode perturbs its own model around the step, as in its single run, and the gradient is
taken at the members' perturbed parameters while the update applies to the restored ones.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import vmap

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.noise.base import NoiseMode
from noisereg.noise.parameter_noise import ParameterNoise
from noisereg.train.fused import BlockRunner, StepBlocks, check_blocks_apply, compile_scan
from noisereg.train.loop import Artifacts, Row, Run, TrainResult, intra_op_threads
from noisereg.train.progress import Progress
from noisereg.train.settings import TrainerSettings
from noisereg.train.state import TrainingState

AS_A_SWEEP = "run the seeds as a sweep instead (seed=0,1,2 -m, trainer.members=1)"


def check_members_apply(model: nn.Module, noise: NoiseMode, state: TrainingState, settings: TrainerSettings) -> None:
    """A one-line `SettingError` when this run's members cannot be trained as one batched model."""
    if settings.members > 1:
        check_blocks_apply(
            model,
            noise,
            state.batches,
            settings,
            what=f"trainer.members={settings.members}",
            fix=AS_A_SWEEP,
            parameter_noise=True,
        )


class MemberBlocks(BlockRunner):
    """Blocks of steps of several training states at one step, in one batched call."""

    def __init__(
        self,
        states: Sequence[TrainingState],
        datasets: Sequence[TensorDataset],
        loss_fn: nn.Module,
        settings: TrainerSettings,
    ):
        self.members = [
            StepBlocks(state, data, loss_fn, settings, compile_blocks=False) for state, data in zip(states, datasets)
        ]
        # Full batch on one training set (a dataset may depend on the seed: `dataset.seed: ${seed}`): every
        # member's step sees the same inputs, passed once.
        first = datasets[0].train_inputs
        self.shared_inputs = states[0].batches.full_batch and all(
            data.train_inputs is first or torch.equal(data.train_inputs, first) for data in datasets
        )
        # Parameter noise (GD+noise, layer-wise; blocks of one step): each member's mode perturbs its own model as in
        # its single run, and the gradient is taken at the stacked perturbed parameters.
        self.perturbs = isinstance(states[0].noise, ParameterNoise)
        slices = (None if self.shared_inputs else 0, 0, 0) + ((0,) if self.perturbs else ())
        # The step of member 0's model with each member's parameters in it: the members share the architecture, so
        # one functional step serves all of them.
        self.step = vmap(self.members[0].step, in_dims=((0, 0), slices))
        self.compiled, self.warmed_up = (compile_scan(self._scan) if settings.compile else None), False

    def run(self, end: int) -> torch.Tensor:
        """Every member from its (common) step to `end`; returns the losses, (steps, members)."""
        draws = [member.draw(end) for member in self.members]
        inputs = draws[0][0] if self.shared_inputs else torch.stack([d[0] for d in draws], dim=1)
        targets = torch.stack([d[1] for d in draws], dim=1)
        rates = torch.stack([d[2] for d in draws], dim=1)
        extra = (self._perturbed_parameters(),) if self.perturbs else ()
        carries = [member.carry() for member in self.members]
        parameters = tuple(torch.stack(each) for each in zip(*(c[0] for c in carries)))
        buffers = tuple(torch.stack(each) for each in zip(*(c[1] for c in carries)))
        with torch.no_grad():
            (parameters, buffers), losses = self.advance(parameters, buffers, inputs, targets, rates, *extra)
        for k, member in enumerate(self.members):
            member.write_back([p[k] for p in parameters], [b[k].clone() for b in buffers], end, losses[:, k])
        return losses

    def _perturbed_parameters(self) -> tuple[torch.Tensor, ...]:
        """Every member's parameters with this step's noise in them, stacked, (1, members, ...); each mode draws
        from its own streams and restores its model bitwise on leaving `perturbed()`, as in its single run."""
        with contextlib.ExitStack() as stack:
            for member in self.members:
                stack.enter_context(member.state.noise.perturbed())
            perturbed = zip(*(member.parameters for member in self.members))
            stacked = tuple(torch.stack([parameter.detach() for parameter in each]) for each in perturbed)
        return tuple(tensor.unsqueeze(0) for tensor in stacked)


def run_members(
    states: Sequence[TrainingState],
    datasets: Sequence[TensorDataset],
    loss_fn: nn.Module,
    settings: TrainerSettings,
    logs: Sequence[Callable[[Row, Artifacts], None]],
    checkpoints: Sequence[Callable[[TrainingState], None] | None],
    should_stop: Callable[[], bool] = lambda: False,
) -> list[TrainResult]:
    """Train every member from its state (fresh or restored) on its dataset to the end; one result per member, in
    order. The progress bar follows the batch: the member furthest behind among those still training."""
    with intra_op_threads(settings.threads):
        runs = [
            Run(state, data, loss_fn, settings, log, checkpoint)
            for state, data, log, checkpoint in zip(states, datasets, logs, checkpoints)
        ]
        end = max(run.n_steps for run in runs)
        progress = Progress(end, min(state.step for state in states), settings.progress_bar)
        results: list[TrainResult | None] = [run.start() for run in runs]
        groups: dict[tuple[int, ...], MemberBlocks] = {}  # compiled once per set of members advanced together
        try:
            while True:
                live = [k for k, run in enumerate(runs) if results[k] is None and not run.done]
                if not live:
                    break
                if should_stop():
                    for k in live:
                        results[k] = runs[k].interrupt()
                    break
                before = min(runs[k].state.step for k in live)
                group = tuple(k for k in live if runs[k].state.step == before)
                if group not in groups:
                    groups[group] = MemberBlocks(
                        [runs[k].state for k in group], [datasets[k] for k in group], loss_fn, settings
                    )
                losses = groups[group].run(runs[group[0]].block_end())
                for column, k in enumerate(group):
                    results[k] = runs[k].after_advance(before, losses[-1, column])
                behind = min(
                    (run.state.step for k, run in enumerate(runs) if results[k] is None and not run.done), default=end
                )
                if behind > progress.done:  # a member that diverged or finished no longer holds the bar back
                    progress.update(behind - progress.done, float(losses[-1].float().mean()))
        finally:
            progress.close()
    return [result or run.completed() for result, run in zip(results, runs)]


def member_seeds(seed: int, members: int) -> list[int]:
    if members < 1:
        raise SettingError(f"trainer.members={members} must be >= 1 (1: a single run)")
    return [seed + k for k in range(members)]
