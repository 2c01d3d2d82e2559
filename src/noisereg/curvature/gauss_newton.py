"""Gauss–Newton traces tr(Jθᵀ H_L Jθ), per parameter tensor, without Monte-Carlo noise.

How the exact trace is computed (`ggn_trace_per_parameter`, shared with `regularizers.gauss_newton_trace`):
one forward pass with hooks that record each layer's input a and output z, then one backward pass per column c of
A (C passes, not n·C) giving ∂/∂z of Σᵢ A_{i,:,c}ᵀ f(xᵢ) for all samples at once — in eval mode sample i's rows only
depend on sample i. A Linear/Conv layer's per-sample weight gradient is Gᵢ Uᵢᵀ (G: output gradients, U: the
unfolded input, positions as columns), and its squared norm is taken either directly or through Gram matrices,
‖G Uᵀ‖² = ⟨GᵀG, UᵀU⟩ (the "Goodfellow trick"), whichever costs fewer flops. BatchNorm's γ, β gradients are per-channel
sums. Models with other parameterised modules fall back on torch.func: vmap over samples of vjp, one pullback
per column of A.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vjp, vmap

from noisereg.losses import HalfMSELoss

# Elements (not bytes) the exact method may hold per chunk of samples; sets the default chunk size.
DEFAULT_MEMORY_BUDGET = 2**27
# (outputs of a chunk of samples, their index slice) → A of shape (chunk, C, K) with H_L,i = Aᵢ Aᵢᵀ.
FactorFn = Callable[[torch.Tensor, slice], torch.Tensor]


# ---------------------------------------------------------------------------------------------------------------
# Model state: eval mode inside, everything restored on exit.


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; on exit every submodule's train/eval flag and every parameter's `.grad`
    (the same tensor object, or None) are as they were. Grads are set to None inside so nothing accumulates
    into the caller's tensors."""
    modes = [(module, module.training) for module in model.modules()]
    grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    for parameter, _ in grads:
        parameter.grad = None
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        for parameter, grad in grads:
            parameter.grad = grad


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters the trace is taken over: those with requires_grad (as PyHessian does)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


# ---------------------------------------------------------------------------------------------------------------
# The loss's Hessian with respect to the network output, as a factor: H_L,i = Aᵢ Aᵢᵀ.


def per_sample_loss_scale(
    loss_fn: nn.Module, output_shape: tuple[int, ...], targets: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """sᵢ such that the batch loss's Hessian w.r.t. sample i's outputs is sᵢ · (the unit per-sample Hessian):
    identity for squared errors, diag(p) − ppᵀ for cross-entropy. The mean's 1/n lives here. Needs only the
    outputs' shape, not their values."""
    n = output_shape[0]
    if isinstance(loss_fn, HalfMSELoss):  # ½ · mean over samples of Σ_outputs (f − y)²
        return torch.full((n,), 1.0 / n, dtype=dtype, device=targets.device)
    if isinstance(loss_fn, nn.MSELoss):  # mean over ALL elements of (f − y)²: Hessian 2/(n·C)
        count = _reduction_count(loss_fn, math.prod(output_shape))
        return torch.full((n,), 2.0 / count, dtype=dtype, device=targets.device)
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        return _cross_entropy_scale(loss_fn, output_shape, targets, dtype)
    raise ValueError(
        f"the exact curvature methods know the output Hessian of nn.CrossEntropyLoss, nn.MSELoss and "
        f"noisereg.losses.HalfMSELoss only, not {type(loss_fn).__name__}; use method='hutchinson'"
    )


def _reduction_count(loss_fn: nn.Module, count: int) -> float:
    if loss_fn.reduction == "mean":
        return float(count)
    if loss_fn.reduction == "sum":
        return 1.0
    raise ValueError(f"{type(loss_fn).__name__}(reduction={loss_fn.reduction!r}) is not a scalar loss")


def _cross_entropy_scale(loss_fn: nn.CrossEntropyLoss, output_shape, targets: torch.Tensor, dtype) -> torch.Tensor:
    if len(output_shape) != 2:
        raise ValueError(f"cross-entropy curvature expects logits shaped (n, classes), got {tuple(output_shape)}")
    n, classes = output_shape
    weight = loss_fn.weight if loss_fn.weight is not None else torch.ones(classes, device=targets.device)
    weight = weight.to(dtype)
    if targets.is_floating_point():  # class probabilities q: Hessian (Σ_c w_c q_c)(diag p − ppᵀ), mean over n
        return (targets.to(dtype) @ weight) / _reduction_count(loss_fn, n)
    if loss_fn.label_smoothing > 0 and loss_fn.weight is not None:
        raise ValueError("cross-entropy with both label_smoothing and class weights is not supported")
    kept = targets != loss_fn.ignore_index
    sample_weight = weight[targets.clamp(0, classes - 1)] * kept
    if loss_fn.reduction == "mean":
        return sample_weight / sample_weight.sum()  # PyTorch divides by the summed weights of kept samples
    _reduction_count(loss_fn, n)  # validates the reduction
    return sample_weight


def output_hessian_factor(loss_fn: nn.Module, outputs: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A with shape (n, C, C) such that the loss Hessian w.r.t. sample i's (flattened) outputs is Aᵢ Aᵢᵀ.

    Squared errors: Aᵢ = √sᵢ I. Cross-entropy: Aᵢ = √sᵢ (diag(√p) − p √pᵀ), since with Σp = 1 it gives
    A Aᵀ = diag(p) − ppᵀ (Camuto et al. Eq. 13)."""
    flat = outputs.detach().reshape(outputs.shape[0], -1)
    root_scale = scale.to(flat.dtype).clamp_min(0).sqrt()[:, None, None]
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        p = flat.softmax(dim=1)
        root_p = p.sqrt()
        return root_scale * (torch.diag_embed(root_p) - p.unsqueeze(2) * root_p.unsqueeze(1))
    identity = torch.eye(flat.shape[1], dtype=flat.dtype, device=flat.device)
    return root_scale * identity.expand(flat.shape[0], -1, -1)


def loss_hessian_factor_fn(loss_fn: nn.Module, targets: torch.Tensor) -> FactorFn:
    """A function (outputs of a chunk of samples, their index slice) → Aᵢ for those samples. The per-sample
    scales depend on the whole batch (the mean's denominator) and are computed on the first call."""
    if not isinstance(loss_fn, (nn.CrossEntropyLoss, nn.MSELoss, HalfMSELoss)):
        per_sample_loss_scale(loss_fn, (0,), targets, torch.float32)  # raises the explanation
    scales: list[torch.Tensor] = []

    def factor_fn(outputs: torch.Tensor, rows: slice) -> torch.Tensor:
        if not scales:
            batch_shape = (targets.shape[0], *outputs.shape[1:])
            scales.append(per_sample_loss_scale(loss_fn, batch_shape, targets, outputs.dtype))
        return output_hessian_factor(loss_fn, outputs, scales[0][rows].to(outputs.device))

    return factor_fn


# ---------------------------------------------------------------------------------------------------------------
# Gauss–Newton trace per parameter tensor: Σᵢ Σ_c ‖∇θ (A_{i,:,c}ᵀ f(xᵢ))‖².


def ggn_trace_per_parameter(
    model: nn.Module, inputs: torch.Tensor, factor_fn: FactorFn, chunk_size: int | None = None
) -> tuple[dict[str, float], int]:
    """{parameter name: tr of its diagonal block of Jᵀ H J} and the number of backward passes, for
    H = blockdiag(Aᵢ Aᵢᵀ) given by `factor_fn`. Valid for any model whose samples do not interact in eval mode;
    call inside `evaluation_mode`."""
    parameters = trainable_parameters(model)
    if not parameters:
        return {}, 0
    if _layerwise_path_applies(model, parameters):
        try:
            return _ggn_layerwise(model, parameters, inputs, factor_fn, chunk_size)
        except _NotLayerwise:
            pass
    return _ggn_torch_func(model, parameters, inputs, factor_fn, chunk_size)


class _NotLayerwise(Exception):
    """Raised mid-computation when the per-layer tricks turn out not to apply (a layer ran twice, ...)."""


def _is_layerwise_module(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        return module.running_mean is not None and module.affine
    return False


def _layerwise_path_applies(model: nn.Module, parameters: dict[str, nn.Parameter]) -> bool:
    owned = set()
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own and not _is_layerwise_module(module):
            return False
        owned.update(id(p) for p in own)
    shared = len(list(model.named_parameters(remove_duplicate=False))) != len(list(model.named_parameters()))
    return not shared and all(id(p) in owned for p in parameters.values())


def sample_chunks(n: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, n, chunk_size):
        yield slice(start, min(n, start + chunk_size))


def _ggn_layerwise(model, parameters, inputs, factor_fn, chunk_size):
    layers = {
        name: module
        for name, module in model.named_modules()
        if any(p.requires_grad for p in module.parameters(recurse=False))
    }
    chunk_size = chunk_size or chunk_size_for_memory(model, inputs)
    totals = {name: 0.0 for name in parameters}
    passes = 0
    for rows in sample_chunks(inputs.shape[0], chunk_size):
        chunk_totals, chunk_passes = _ggn_layerwise_chunk(model, layers, inputs[rows], factor_fn, rows)
        passes += chunk_passes
        for name, value in chunk_totals.items():
            if name in totals:
                totals[name] += value
    return totals, passes


def chunk_size_for_memory(model: nn.Module, inputs: torch.Tensor) -> int:
    """Samples per chunk so that activations (kept for backward, copied, differentiated) and unfolded conv inputs
    stay within the memory budget, estimated from one sample's forward pass."""
    per_sample = 0

    def count(module, args, output):
        nonlocal per_sample
        if isinstance(output, torch.Tensor):
            per_sample += 4 * output.numel()
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            positions = output[0, 0].numel()
            per_sample += module.weight[0].numel() * positions + min(positions**2, module.weight.numel())

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    return max(1, min(inputs.shape[0], DEFAULT_MEMORY_BUDGET // max(1, per_sample)))


def forward_with_hooks(model: nn.Module, x: torch.Tensor, hooks) -> torch.Tensor:
    """`model(x)` with gradients on and the (module, forward hook) pairs registered for this one pass."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        with torch.enable_grad():
            return model(x)
    finally:
        for handle in handles:
            handle.remove()


def _ggn_layerwise_chunk(model, layers, x, factor_fn, rows):
    captured: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def capture(name):
        def hook(module, args, output):
            if name in captured:
                raise _NotLayerwise(f"{name} runs twice")
            if not args or args[0].shape[0] != x.shape[0] or output.shape[0] != x.shape[0]:
                raise _NotLayerwise(f"{name} does not see the samples along its first dimension")
            layer_input = args[0].detach()
            captured[name] = (layer_input, output, layer_input._version)
            return output.clone()  # later in-place ops (ReLU(inplace=True)) then leave `output` intact

        return hook

    outputs = forward_with_hooks(model, x, [(module, capture(name)) for name, module in layers.items()])
    if any(layer_input._version != version for layer_input, _, version in captured.values()):
        raise _NotLayerwise("a layer input was modified in place")
    factor = factor_fn(outputs, rows)  # (n, C, K)
    flat_outputs = outputs.reshape(outputs.shape[0], -1)
    names = list(captured)
    accumulators = [_layer_accumulator(layers[name], captured[name][0], factor.shape[2]) for name in names]
    for column in range(factor.shape[2]):
        grads = torch.autograd.grad(
            flat_outputs,
            [captured[name][1] for name in names],
            factor[:, :, column],
            retain_graph=column + 1 < factor.shape[2],
            allow_unused=True,
        )
        for accumulator, grad in zip(accumulators, grads):
            if grad is not None:
                accumulator.add(grad)
    totals = {}
    for name, accumulator in zip(names, accumulators):
        for parameter_name, value in accumulator.result().items():
            totals[f"{name}.{parameter_name}" if name else parameter_name] = value
    return totals, factor.shape[2]


def _layer_accumulator(module: nn.Module, layer_input: torch.Tensor, columns: int):
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        return _BatchNormNorms(module, layer_input)
    return _WeightTimesInputNorms(module, layer_input, columns)


class _WeightTimesInputNorms:
    """Σ over samples and columns of ‖per-sample gradient‖² for Linear and Conv layers.

    The per-sample weight gradient is Gᵢ Uᵢᵀ with Gᵢ (d_out, P) the output gradient and Uᵢ (D, P) the input
    (unfolded for convolutions), P positions. Two ways to its squared norm summed over the K columns:
    direct, K·d_out·D·P flops; or Gram, ⟨Σ_c Gᵀ G, Uᵀ U⟩, P²·(D + K·d_out) flops. We take the cheaper. The direct
    way stacks the output gradients of several columns (up to `DIRECT_STACK_ELEMENTS`) into one batched product:
    small per-column products (a 6-channel convolution) run several times slower per flop."""

    DIRECT_STACK_ELEMENTS = 2**24

    def __init__(self, module: nn.Module, layer_input: torch.Tensor, columns: int):
        self.module = module
        self.unfolded = _unfold_input(module, layer_input)  # (n, D, P)
        n, width, positions = self.unfolded.shape
        out_width = module.weight.shape[0]
        direct_cost = columns * out_width * width * positions
        gram_cost = positions**2 * (width + columns * out_width)
        self.use_gram = gram_cost < direct_cost
        self.weight_total = torch.zeros((), dtype=torch.float64, device=layer_input.device)
        self.bias_total = torch.zeros((), dtype=torch.float64, device=layer_input.device)
        self.output_gram = None
        self.pending: list[torch.Tensor] = []  # output gradients of columns not yet multiplied (direct way)
        if positions == 1:  # a plain Linear layer: ‖g uᵀ‖² = ‖g‖² ‖u‖², one pass over g per column
            self.input_squared_norms = torch.linalg.vector_norm(self.unfolded.reshape(n, width), dim=1).square()

    def add(self, grad_output: torch.Tensor) -> None:
        n, _, positions = self.unfolded.shape
        if positions == 1:
            squared_norms = torch.linalg.vector_norm(grad_output.reshape(n, -1), dim=1).square()
            self.bias_total += squared_norms.sum().double()
            self.weight_total += (squared_norms @ self.input_squared_norms).double()
            return
        g = _positions_last(self.module, grad_output, n)  # (n, d_out, P)
        self.bias_total += g.sum(dim=2).pow(2).sum().double()
        if self.use_gram:
            gram = torch.bmm(g.transpose(1, 2), g)
            self.output_gram = gram if self.output_gram is None else self.output_gram + gram
        else:
            self.pending.append(g)
            if len(self.pending) * g.numel() >= self.DIRECT_STACK_ELEMENTS:
                self._multiply_pending()

    def _multiply_pending(self) -> None:
        if self.pending:
            self.weight_total += _sum_squared_products(torch.cat(self.pending, dim=1), self.unfolded)
            self.pending = []

    def result(self) -> dict[str, float]:
        self._multiply_pending()
        if self.use_gram and self.output_gram is not None:
            input_gram = torch.bmm(self.unfolded.transpose(1, 2), self.unfolded)
            self.weight_total += (self.output_gram * input_gram).sum().double()
        totals = {"weight": self.weight_total.item()}
        if self.module.bias is not None:
            totals["bias"] = self.bias_total.item()
        return totals


def _unfold_input(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(n, D, P): the input as the matrix the weight multiplies, one column per output position."""
    n = x.shape[0]
    if isinstance(module, nn.Linear):
        return x.reshape(n, -1, x.shape[-1]).transpose(1, 2)
    if isinstance(module, nn.Conv1d):
        return F.unfold(
            x.unsqueeze(2),
            (1, module.kernel_size[0]),
            dilation=(1, module.dilation[0]),
            padding=(0, module.padding[0]),
            stride=(1, module.stride[0]),
        )
    return F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride)


def _positions_last(module: nn.Module, grad_output: torch.Tensor, n: int) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return grad_output.reshape(n, -1, grad_output.shape[-1]).transpose(1, 2)
    return grad_output.reshape(n, grad_output.shape[1], -1)


def _sum_squared_products(g: torch.Tensor, u: torch.Tensor, max_elements: int = 2**24) -> torch.Tensor:
    """Σᵢ ‖gᵢ uᵢᵀ‖²_F for g (n, a, P), u (n, b, P), in sample blocks of bounded size."""
    per_sample = g.shape[1] * u.shape[1]
    block = max(1, max_elements // max(1, per_sample))
    total = torch.zeros((), dtype=torch.float64, device=g.device)
    for rows in sample_chunks(g.shape[0], block):
        total += torch.bmm(g[rows], u[rows].transpose(1, 2)).pow(2).sum().double()
    return total


class _BatchNormNorms:
    """BatchNorm in eval mode: y = γ x̂ + β with x̂ from running statistics; per-sample gradients are the
    per-channel sums Σ_positions g·x̂ (γ) and Σ_positions g (β)."""

    def __init__(self, module: nn.Module, layer_input: torch.Tensor):
        n, channels = layer_input.shape[:2]
        x = layer_input.reshape(n, channels, -1)
        self.normalised = (x - module.running_mean[:, None]) / torch.sqrt(module.running_var[:, None] + module.eps)
        self.weight_total = torch.zeros((), dtype=torch.float64, device=layer_input.device)
        self.bias_total = torch.zeros((), dtype=torch.float64, device=layer_input.device)

    def add(self, grad_output: torch.Tensor) -> None:
        g = grad_output.reshape(self.normalised.shape)
        self.weight_total += (g * self.normalised).sum(dim=2).pow(2).sum().double()
        self.bias_total += g.sum(dim=2).pow(2).sum().double()

    def result(self) -> dict[str, float]:
        return {"weight": self.weight_total.item(), "bias": self.bias_total.item()}


def _ggn_torch_func(model, parameters, inputs, factor_fn, chunk_size):
    """Any model: per-sample gradients of A_{i,:,c}ᵀ f(xᵢ) by vmap over samples of vjp, one pullback per c."""
    detached = {name: p.detach() for name, p in parameters.items()}

    def sample_squared_norms(x, factor):  # x: one sample; factor: (C, K)
        def output(params):
            return functional_call(model, params, (x.unsqueeze(0),)).reshape(-1)

        _, pullback = vjp(output, detached)
        totals = {name: 0.0 for name in detached}
        # A loop over the columns of A, not a nested vmap: PReLU's batching rule fails under nested vmap.
        for column in range(factor.shape[1]):
            (grads,) = pullback(factor[:, column])
            for name, grad in grads.items():
                totals[name] = totals[name] + grad.pow(2).sum()
        return totals

    with torch.no_grad():
        n_outputs = model(inputs[:1]).numel()
    n_parameters = sum(p.numel() for p in parameters.values())
    chunk_size = chunk_size or max(1, DEFAULT_MEMORY_BUDGET // max(1, 2 * n_outputs * n_parameters))
    totals = {name: 0.0 for name in parameters}
    passes = 0
    for rows in sample_chunks(inputs.shape[0], chunk_size):
        with torch.no_grad():
            factor = factor_fn(model(inputs[rows]), rows)
        norms = vmap(sample_squared_norms)(inputs[rows], factor)
        for name in totals:
            totals[name] += norms[name].double().sum().item()
        passes += factor.shape[2]
    return totals, passes
