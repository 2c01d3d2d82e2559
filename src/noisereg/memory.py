"""Will a job fit? Checked before the model is built, from the model built on the meta device (nothing allocated):
its parameters with their optimizer state, and the activations of the largest batch one forward pass takes."""

from __future__ import annotations

import math
import os

import torch
from omegaconf import DictConfig
from torch import nn

from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError

FLOAT_BYTES = 4  # float32; bf16 autocast (CUDA) halves some activations: the estimate stays an upper bound


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
    return parameters * FLOAT_BYTES * copies


def activation_elements(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, list[int]]:
    """Elements per example of the input and of every distinct tensor a module outputs, from a forward pass of one
    meta-device example with a hook on every module (MLPs, CNNs, ResNets alike). Views and tensors passed through
    unchanged (Identity, in-place ReLU, a container's last child) are counted once."""
    x = torch.empty(1, *input_shape, device="meta")
    seen = {id(x): x}  # the tensors stay referenced, so an id is never reused (meta tensors hold no memory)

    def record(module: nn.Module, args, output) -> None:
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor) and tensor._base is None:
                seen.setdefault(id(tensor), tensor)

    handles = [module.register_forward_hook(record) for module in model.modules()]
    was_training = model.training
    model.eval()  # the same sizes; BatchNorm refuses a one-example batch in training mode
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return math.prod(input_shape), [tensor.numel() for key, tensor in seen.items() if key != id(x)]


def activation_bytes(model: nn.Module, data: TensorDataset, cfg: DictConfig) -> tuple[int, str, str]:
    """The most activation memory one forward pass holds at once: (bytes, which batch, the setting that sizes it).
    A training batch keeps every activation for backward, and their gradients come on top (x2); an evaluation batch
    (no grad, trainer.eval_batch_size rows of the train or test split at a time) holds its input and about the two
    largest activations (a layer's input and output)."""
    inputs, outputs = activation_elements(model, data.input_shape)
    kept, passing = inputs + 2 * sum(outputs), inputs + sum(sorted(outputs)[-2:])
    n_train, n_test = data.n_train, data.test_inputs.shape[0]
    train_batch = min(cfg.trainer.batch_size or n_train, n_train)
    eval_batch = min(cfg.trainer.eval_batch_size, max(n_train, n_test))
    batches = [
        (train_batch * kept, f"a {train_batch}-example training batch", "trainer.batch_size"),
        (eval_batch * passing, f"a {eval_batch}-example evaluation batch", "trainer.eval_batch_size"),
    ]
    curvature = cfg.curvature
    if curvature.every is not None:
        # The curvature probe's loss is one no-grad pass over its subset; its Hessian trace differentiates the whole
        # subset at once, except method=exact's: chunks of curvature.chunk_size, or sized to a budget of its own
        # (curvature/gauss_newton.py).
        subset = min(curvature.n_samples, n_train)
        batches.append((subset * passing, f"the {subset}-example curvature subset", "curvature.n_samples"))
        if curvature.method != "exact":
            batches.append((subset * kept, f"the {subset}-example curvature subset", "curvature.n_samples"))
        elif curvature.chunk_size is not None:
            chunk = min(curvature.chunk_size, subset)
            batches.append((chunk * kept, f"a {chunk}-example curvature chunk", "curvature.chunk_size"))
    elements, batch, setting = max(batches, key=lambda b: b[0])
    return elements * FLOAT_BYTES, batch, setting


def _gigabytes(n: float) -> str:
    return f"{n / 2**30:.3g} GB"


def check_fits(model: nn.Module, data: TensorDataset, cfg: DictConfig, device: torch.device, members: int = 1) -> None:
    """`model` on the meta device, `data` as training will see it; a one-line `SettingError` when the job needs more
    memory than `device` has free. `members`: the runs trained as one batched model (trainer.members), each holding
    its own weights, optimizer state, activations and data."""
    parameters = training_bytes(sum(math.prod(p.shape) for p in model.parameters()), cfg)
    activations, batch, setting = activation_bytes(model, data, cfg)
    needed, available = parameters + activations, available_bytes(device)
    if members > 1:
        data_bytes = sum(t.numel() * t.element_size() for t in (data.train_inputs, data.test_inputs))
        if members * (needed + data_bytes) > available:
            raise SettingError(
                f"trainer.members={members} needs about {_gigabytes(members * (needed + data_bytes))} "
                f"({_gigabytes(needed + data_bytes)} a member: weights, optimizer state, activations "
                f"and data), but {_gigabytes(available)} is free on {device.type}; use fewer members, "
                f"e.g. trainer.members={max(1, int(available // (needed + data_bytes)))}, or a sweep "
                "over seeds"
            )
    if needed > available:
        widths = "widths" in cfg.model
        shape = f"model.widths={list(cfg.model.widths)}" if widths else f"model={cfg.model.name}"
        fixes = ["smaller widths" if widths else "a smaller model"]
        fixes += [f"a smaller {setting}"] if activations > parameters else []
        raise SettingError(
            f"{shape} needs about {_gigabytes(needed)} to train and evaluate (weights and optimizer "
            f"state {_gigabytes(parameters)}, activations of {batch} {_gigabytes(activations)}), but "
            f"{_gigabytes(available)} is free on {device.type}; use {', '.join(fixes)} or scale=smoke"
        )
