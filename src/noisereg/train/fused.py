"""Many steps per call (`trainer.steps_per_call` > 1, compiled with `trainer.compile`): the trainer's steps in blocks,
one call each.

Millions of SGD steps on a tiny model (Blanc et al.'s 1-D ReLU network, matrix sensing) spend their time in Python
and in launching kernels, not in arithmetic: 100-300 µs per step of autograd and optimizer. A block of L steps
draws everything random up front — the batch rows of all L steps from the batch iterator (the rows, order and
iterator state of L single steps), the noise mode's targets for all of them in one `targets` call — and then runs
the L updates in one call: a loop over a functional step (torch.func) in eager mode, or with `trainer.compile=true`
one `scan` over the steps compiled into generated code (a C++ loop), a few µs per step of the 1-D ReLU net.

Blocks end wherever the one-step loop measures between steps: evaluations, probes, the steps where the noise
switches off (`stop_step`, `stop_epoch`) and the end; a checkpoint due inside a block is written at its end, and a
stop signal is answered there. Where a block ends depends on the step and the run's settings alone (not on
checkpoints, which may change between segments of a run), so a resumed run cuts its blocks, and draws its noise,
exactly as an uninterrupted one does. A block draws its noise in one call, so its draws (and the
records) differ from a one-step-at-a-time run with the same seed; compiled arithmetic differs from eager in the
last bits.

What can run in blocks: a model whose forward is a deterministic function of its parameters (no buffers, dropout
or forward hooks), batches of one size, and a noise mode that acts through the targets alone (GD, label noise).
The update is torch.optim.SGD's (momentum, Nesterov, weight decay), written out functionally.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, grad_and_value

from noisereg.data.batches import BatchIterator
from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.noise.base import NoiseMode
from noisereg.noise.parameter_noise import ParameterNoise
from noisereg.probes.base import Probe
from noisereg.train.evaluation import loss_targets
from noisereg.train.optimizers import advance_schedule, block_learning_rates
from noisereg.train.settings import TrainerSettings

try:  # a loop the compiler keeps as a loop (torch >= 2.6)
    from torch._higher_order_ops import scan
except ImportError:  # pragma: no cover - older torch
    scan = None

DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
ONE_STEP = "use trainer.steps_per_call=1"


def uses_blocks(settings: TrainerSettings) -> bool:
    # (trainer.compile alone compiles the model, one step per call: train/loop.py.)
    return settings.steps_per_call > 1


def check_blocks_apply(
    model: nn.Module,
    noise: NoiseMode,
    batches: BatchIterator,
    settings: TrainerSettings,
    what: str | None = None,
    fix: str = ONE_STEP,
    parameter_noise: bool = False,
) -> None:
    """A `SettingError` naming the setting when this run cannot train in blocks; nothing when it can (or does not).
    `what` and `fix`: the setting that asks for functional steps and what to do instead; `parameter_noise`: noise
    added to the parameters around each step (GD+noise, layer-wise) is taken too (train/members.py's)."""
    if what is None and not uses_blocks(settings):
        return
    what = what or f"trainer.steps_per_call={settings.steps_per_call}" + (
        " and trainer.compile=true" * settings.compile
    )
    hooked = any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())
    taken_parameter_noise = parameter_noise and isinstance(noise, ParameterNoise)
    if taken_parameter_noise and settings.steps_per_call > 1:
        raise SettingError(
            f"{what} with noise={noise.name} needs trainer.steps_per_call=1: its noise is drawn into "
            "the parameters at every step, which a block of steps cannot take"
        )
    perturbs = type(noise).perturbed is not NoiseMode.perturbed and not taken_parameter_noise
    if perturbs or type(noise).penalty is not NoiseMode.penalty or hooked:
        raise SettingError(
            f"{what} writes the training step out as a function, which noise={noise.name} cannot take "
            f"part in (it acts inside each step's forward or backward pass, not on the targets "
            f"alone); {fix}"
        )
    if any(True for _ in model.buffers()) or any(isinstance(module, DROPOUT) for module in model.modules()):
        raise SettingError(
            f"{what} needs a model whose forward depends on its parameters alone (no buffers such as "
            f"BatchNorm statistics, no dropout); {fix}"
        )
    if not batches.full_batch and batches.n % batches.batch_size:
        raise SettingError(
            f"{what} needs batches of one size: trainer.batch_size={batches.batch_size} must divide "
            f"the {batches.n} training points (or be null for full batch)"
        )
    if batches.pipeline is not None:
        raise SettingError(
            f"{what} cannot take stored images through a pipeline (normalisation, crop and flip per batch); {fix}"
        )
    if settings.compile and scan is None:
        raise SettingError(
            f"trainer.compile=true needs torch's scan (torch >= 2.6; this is {torch.__version__}); use "
            "trainer.compile=false"
        )


def block_end(
    step: int,
    n_steps: int,
    settings: TrainerSettings,
    intervals: Sequence[int | None],
    noise: NoiseMode,
    steps_per_epoch: int,
) -> int:
    """Where the block starting at `step` ends: the first step after it at which the one-step loop evaluates or
    probes (multiples of `intervals`), the noise switches off, or the run ends; at most `steps_per_call` steps
    on. A function of the step and the settings alone, so resumed runs cut the same blocks."""
    ends = [n_steps, step + settings.steps_per_call]
    ends += [(step // interval + 1) * interval for interval in intervals if interval]
    switches = (noise.stop_step, None if noise.stop_epoch is None else noise.stop_epoch * steps_per_epoch)
    ends += [switch for switch in switches if switch is not None and switch > step]
    return min(ends)


def block_intervals(settings: TrainerSettings, probes: Sequence[Probe]) -> list[int | None]:
    """The steps measured at: evaluations and probes."""
    return [settings.eval_every, *(probe.interval for probe in probes)]


class BlockRunner:
    """A block of steps of `self.step`, the functional step (carry, (inputs, targets, lr)) -> (carry, loss): one
    compiled `scan` over the steps (`self.compiled`), or a loop."""

    step = None
    compiled = None
    warmed_up = False

    def advance(self, parameters, buffers, inputs, targets, rates, *perturbed):
        """The block's steps from (parameters, buffers): ((parameters, buffers), losses), through the compiled scan,
        or the loop where there is none (or for a single step, which would need its own compilation, as a step
        with parameter noise, `perturbed`, is)."""
        if self.compiled is None or inputs.shape[0] < 2 or perturbed:
            return self._loop(parameters, buffers, inputs, targets, rates, *perturbed)
        if not self.warmed_up:
            # torch runs a compiled function's first call through a Python check of every op (its custom-op
            # aliasing analysis): ~1 ms per step. Make that first call two steps long, and discard it.
            self._call_compiled(parameters, buffers, inputs[:2], targets[:2], rates[:2])
            self.warmed_up = True
        return self._call_compiled(parameters, buffers, inputs, targets, rates)

    def _scan(self, parameters, buffers, inputs, targets, rates):
        return scan(self.step, (parameters, buffers), (inputs, targets, rates))

    def _call_compiled(self, parameters, buffers, inputs, targets, rates):
        for tensor in (inputs, targets, rates):  # one compilation for every block length
            torch._dynamo.mark_dynamic(tensor, 0)
        return self.compiled(parameters, buffers, inputs, targets, rates)

    def _loop(self, parameters, buffers, inputs, targets, rates, *perturbed):
        carry, losses = (parameters, buffers), []
        for index in range(inputs.shape[0]):
            at = (tuple(tensor[index] for tensor in perturbed[0]),) if perturbed else ()
            carry, loss = self.step(carry, (inputs[index], targets[index], rates[index], *at))
            losses.append(loss)
        return carry, torch.stack(losses)


class StepBlocks(BlockRunner):
    """Runs a training state's steps from `state.step` to a block end in one call (see the module docstring)."""

    def __init__(
        self,
        state,
        data: TensorDataset,
        loss_fn: nn.Module,
        settings: TrainerSettings,
        compile_blocks: bool | None = None,
    ):
        """`compile_blocks`: compile the block of steps (default: `settings.compile`); train/members.py compiles its
        own, over all members at once."""
        self.state, self.data, self.loss_fn, self.settings = state, data, loss_fn, settings
        (group,) = state.optimizer.param_groups  # build_optimizer makes one group
        if group.get("dampening", 0) or group.get("maximize", False):
            raise SettingError("trainer.steps_per_call > 1 writes out plain SGD steps (no dampening, not maximize)")
        # What torch.optim.SGD updates: the group's parameters that get gradients.
        self.parameters: list[nn.Parameter] = [parameter for parameter in group["params"] if parameter.requires_grad]
        names = {id(parameter): name for name, parameter in state.model.named_parameters()}
        self.names = [names[id(parameter)] for parameter in self.parameters]
        self.momentum, self.nesterov, self.weight_decay = group["momentum"], group["nesterov"], group["weight_decay"]
        self.step = self._one_step()
        self.compiled, self.warmed_up = None, False
        if settings.compile if compile_blocks is None else compile_blocks:
            self.compiled = compile_scan(self._scan)

    def _one_step(self):
        """One SGD step as a pure function (carry, (inputs, targets, lr[, perturbed])) -> (carry, loss), as
        torch.optim.SGD applies it: g += wd·p; b = μ·b + g (b starts at 0, i.e. at g); g = g + μ·b (Nesterov) or b;
        p -= lr·g."""
        model, loss_fn, names = self.state.model, self.loss_fn, self.names
        momentum, nesterov, weight_decay = self.momentum, self.nesterov, self.weight_decay

        def loss_of(parameters, inputs, targets):
            return loss_fn(functional_call(model, dict(zip(names, parameters)), (inputs,)), targets)

        gradient_and_loss = grad_and_value(loss_of)

        def step(carry, block_slice):
            parameters, buffers = carry
            # (A fourth entry: the point the gradient is taken at, the parameters with this step's parameter noise
            # added, while the update applies to the parameters themselves: train/members.py.)
            inputs, targets, lr, *perturbed = block_slice
            gradients, loss = gradient_and_loss(perturbed[0] if perturbed else parameters, inputs, targets)
            updated, buffers_after = [], []
            for index, (parameter, gradient) in enumerate(zip(parameters, gradients)):
                if weight_decay:
                    gradient = gradient + weight_decay * parameter
                if momentum:
                    buffer = buffers[index] * momentum + gradient
                    buffers_after.append(buffer)
                    gradient = gradient + momentum * buffer if nesterov else buffer
                updated.append(parameter - lr * gradient)
            return (tuple(updated), tuple(buffers_after)), loss

        return step

    def _buffers(self) -> tuple[torch.Tensor, ...]:
        if not self.momentum:
            return ()
        state = self.state.optimizer.state
        return tuple(
            state[p]["momentum_buffer"].detach() if state[p].get("momentum_buffer") is not None else torch.zeros_like(p)
            for p in self.parameters
        )

    def draw(self, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The inputs, targets (the noise mode's) and learning rates of the steps from `state.step` to `end`, one
        row per step, drawn from the state's random streams as that many single steps draw them."""
        state, data, settings = self.state, self.data, self.settings
        start, length = state.step, end - state.step
        rows, epoch = state.batches.take(length)
        if state.batches.full_batch:  # every step sees the whole set: a view, not `length` copies
            inputs = data.train_inputs.expand(length, *data.train_inputs.shape)
            targets = data.train_targets.expand(length, *data.train_targets.shape)
        else:
            inputs, targets = data.train_inputs[rows], data.train_targets[rows]
        # A block never crosses the step where the noise switches; label noise's δ may change from step to step
        # within one (noise.anneal_steps): the mode is told the block's length, one leading row of targets per step.
        state.noise.begin_step(start, epoch, rows, steps=length)
        targets = loss_targets(state.noise.targets(inputs, targets), settings.loss, data.num_outputs)
        like = self.parameters[0]
        rates = torch.tensor(block_learning_rates(state.schedule, length), dtype=like.dtype, device=like.device)
        return inputs, targets, rates

    def carry(self) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """The state's parameters and momentum buffers, as the functional step takes them."""
        return tuple(p.detach() for p in self.parameters), self._buffers()

    def write_back(
        self, parameters: Sequence[torch.Tensor], buffers: Sequence[torch.Tensor], end: int, losses: torch.Tensor
    ) -> None:
        """Parameters and momentum buffers after the block into the model and optimizer; the state at `end`."""
        state = self.state
        with torch.no_grad():
            for parameter, value in zip(self.parameters, parameters):
                parameter.copy_(value)
        for parameter, buffer in zip(self.parameters, buffers):
            state.optimizer.state[parameter]["momentum_buffer"] = buffer
        advance_schedule(state.schedule, end - state.step)
        state.step = end
        state.pending_losses.append(losses.detach())

    def run(self, end: int) -> torch.Tensor:
        """Train from `state.step` to `end` in one call; returns the batch loss of every step."""
        inputs, targets, rates = self.draw(end)
        parameters, buffers = self.carry()
        with torch.no_grad():
            (parameters, buffers), losses = self.advance(parameters, buffers, inputs, targets, rates)
        self.write_back(parameters, buffers, end, losses)
        return losses


def compile_scan(scan_function):
    """`scan_function` compiled whole. The compiled block guards on this run's model; a fresh cache keeps earlier
    runs' entries (same process, e.g. a sweep) from filling dynamo's recompile limit."""
    torch.compiler.reset()
    options = {"cpp_wrapper": True}  # the loop and its kernel calls in C++, not Python
    return torch.compile(scan_function, fullgraph=True, options=options)
