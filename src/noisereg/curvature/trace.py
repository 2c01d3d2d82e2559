"""The trace of the Hessian of a training loss with respect to the parameters, tr(∇²θ L).

Four methods and a chooser, one entry point `hessian_trace(model, loss_fn, inputs, targets, method=...)`:

- ``exact``: the Gauss–Newton identity. Orvieto et al. Eq. 5: the Hessian is Jᵀ H_L J + Σ_o ∂L/∂f_o ∇²θ f_o, and the
  second term has zero trace when the network is piecewise linear in each parameter tensor (their condition
  D²Φ(w)[I] = 0: ReLU/linear MLPs and CNNs, max/average pooling, residual sums, BatchNorm in eval mode). Then
  tr(∇²θ L) = tr(Jᵀ H_L J) = Σᵢ Σ_c ‖∇θ (A_{i,:,c}ᵀ f(xᵢ))‖², with H_L,i = Aᵢ Aᵢᵀ the output Hessian of sample i.
  Deterministic: no probes, no standard error. `check_piecewise_linear` refuses models it cannot vouch for.
- ``hutchinson``: mean of vᵀ H v over Rademacher probes v, with its standard error. Works for any model and loss.
- ``hutchpp``: Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with a budget of Hessian-vector products.
- ``pyhessian``: PyHessian 0.1's `hessian(...).trace()`, for comparison with the literature.
- ``auto``: exact where valid, otherwise Hutchinson.

Every method evaluates curvature in eval mode and leaves the model's per-module train/eval flags, its parameters and
their ``.grad`` fields (``None`` included) as it found them.

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
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vjp, vmap

from noisereg.losses import HalfMSELoss

METHODS = ("auto", "exact", "hutchinson", "hutchpp", "pyhessian")
# Elements (not bytes) the exact method may hold per chunk of samples; sets the default chunk size.
DEFAULT_MEMORY_BUDGET = 2**27
# (outputs of a chunk of samples, their index slice) → A of shape (chunk, C, K) with H_L,i = Aᵢ Aᵢᵀ.
FactorFn = Callable[[torch.Tensor, slice], torch.Tensor]


@dataclass
class TraceEstimate:
    """A trace value with its Monte-Carlo standard error (0.0 when exact) and its cost.

    `matvecs`: Hessian-vector products, or for the exact method backward passes (one per output column of the
    loss-Hessian factor per chunk of samples). `per_group`: parameter name (or group name) → trace of that
    diagonal block; keyed by parameter name the values sum to `value`. `samples`: the per-probe values vᵀHv of
    the Monte-Carlo methods.
    """

    value: float
    stderr: float
    matvecs: int
    method: str
    per_group: dict[str, float] | None = None
    samples: list[float] | None = field(default=None, repr=False)
    seconds: float = 0.0


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
# Which models the exact method vouches for.

PIECEWISE_LINEAR_MODULES = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.Hardtanh, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.Flatten, nn.Unflatten, nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.Sequential, nn.ModuleList, nn.ModuleDict,
)  # fmt: skip
# Third-party containers whose forward we have read: conv/bn/relu/pool, residual sums, flatten, linear.
PIECEWISE_LINEAR_CLASS_NAMES = (
    "torchvision.models.resnet.ResNet",
    "torchvision.models.resnet.BasicBlock",
    "torchvision.models.resnet.Bottleneck",
)
DECLARATION = "piecewise_linear_in_parameters"


def _qualified_name(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _why_not_piecewise_linear(module: nn.Module) -> str | None:
    """None when the module (its own forward, children aside) is piecewise linear in each parameter tensor."""
    declared = getattr(module, DECLARATION, None)
    if declared is False:
        return f"declares {DECLARATION} = False"
    if declared is True or _qualified_name(module) in PIECEWISE_LINEAR_CLASS_NAMES:
        return None
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
        return "normalises with batch statistics (track_running_stats=False)"
    if isinstance(module, PIECEWISE_LINEAR_MODULES):
        return None
    return "is not"


def check_piecewise_linear(model: nn.Module, inputs: torch.Tensor | None = None) -> None:
    """Raise ValueError unless every module is on the allow-list (or declares `piecewise_linear_in_parameters
    = True`: a custom container vouches for its own forward; its children are still checked), no parameter
    tensor is shared between modules and, when `inputs` are given, no parameterised module runs twice per forward.

    BatchNorm in train mode is fine: curvature is always measured in eval mode (running statistics), where
    BatchNorm is an affine map."""
    problems = []
    for name, module in model.named_modules():
        reason = _why_not_piecewise_linear(module)
        if reason is not None:
            is_leaf = next(module.children(), None) is None
            problems.append((not is_leaf, name, module, reason))  # report a leaf (e.g. the Tanh) first
    if problems:
        _, name, module, reason = min(problems, key=lambda problem: problem[0])
        raise ValueError(_refusal(name, module, reason))
    _check_no_shared_parameters(model)
    if inputs is not None:
        _check_each_parameterised_module_runs_once(model, inputs[:1])


def _refusal(name: str, module: nn.Module, reason: str) -> str:
    where = f"module {name!r} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"
    hint = (
        f" If its forward is piecewise linear in each parameter tensor, set `{DECLARATION} = True` on it."
        if reason == "is not" and next(module.children(), None) is not None
        else ""
    )
    return (
        f"hessian_trace(method='exact') needs a network piecewise linear in each parameter tensor; "
        f"{where} {reason}.{hint} Use method='hutchinson'."
    )


def _check_no_shared_parameters(model: nn.Module) -> None:
    owners: dict[int, str] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if id(parameter) in owners:
            raise ValueError(
                f"hessian_trace(method='exact') needs each parameter tensor to enter the network once; "
                f"{owners[id(parameter)]!r} and {name!r} are the same tensor. Use method='hutchinson'."
            )
        owners[id(parameter)] = name


def _check_each_parameterised_module_runs_once(model: nn.Module, one_input: torch.Tensor) -> None:
    calls: dict[str, int] = {}
    handles = [
        module.register_forward_hook(lambda _m, _a, _o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
    try:
        with torch.no_grad():
            model(one_input)
    finally:
        for handle in handles:
            handle.remove()
    repeated = [name for name, count in calls.items() if count > 1]
    if repeated:
        raise ValueError(
            f"hessian_trace(method='exact') needs each parameter tensor to enter the network once; module "
            f"{repeated[0]!r} runs {calls[repeated[0]]} times per forward (weights entering more than once are "
            f"not linear in them). Use method='hutchinson'."
        )


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


def _chunks(n: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, n, chunk_size):
        yield slice(start, min(n, start + chunk_size))


def _ggn_layerwise(model, parameters, inputs, factor_fn, chunk_size):
    layers = {
        name: module for name, module in model.named_modules()
        if any(p.requires_grad for p in module.parameters(recurse=False))
    }  # fmt: skip
    chunk_size = chunk_size or _layerwise_chunk_size(model, inputs)
    totals = {name: 0.0 for name in parameters}
    passes = 0
    for rows in _chunks(inputs.shape[0], chunk_size):
        chunk_totals, chunk_passes = _ggn_layerwise_chunk(model, layers, inputs[rows], factor_fn, rows)
        passes += chunk_passes
        for name, value in chunk_totals.items():
            if name in totals:
                totals[name] += value
    return totals, passes


def _layerwise_chunk_size(model: nn.Module, inputs: torch.Tensor) -> int:
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

    handles = [module.register_forward_hook(capture(name)) for name, module in layers.items()]
    try:
        with torch.enable_grad():
            outputs = model(x)
    finally:
        for handle in handles:
            handle.remove()
    if any(layer_input._version != version for layer_input, _, version in captured.values()):
        raise _NotLayerwise("a layer input was modified in place")
    factor = factor_fn(outputs, rows)  # (n, C, K)
    flat_outputs = outputs.reshape(outputs.shape[0], -1)
    names = list(captured)
    accumulators = [_layer_accumulator(layers[name], captured[name][0], factor.shape[2]) for name in names]
    for column in range(factor.shape[2]):
        grads = torch.autograd.grad(
            flat_outputs, [captured[name][1] for name in names], factor[:, :, column],
            retain_graph=column + 1 < factor.shape[2], allow_unused=True,
        )  # fmt: skip
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
    direct, K·d_out·D·P flops; or Gram, ⟨Σ_c Gᵀ G, Uᵀ U⟩, P²·(D + K·d_out) flops. We take the cheaper."""

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
            self.weight_total += _sum_squared_products(g, self.unfolded)

    def result(self) -> dict[str, float]:
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
            x.unsqueeze(2), (1, module.kernel_size[0]), dilation=(1, module.dilation[0]),
            padding=(0, module.padding[0]), stride=(1, module.stride[0]),
        )  # fmt: skip
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
    for rows in _chunks(g.shape[0], block):
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
    for rows in _chunks(inputs.shape[0], chunk_size):
        with torch.no_grad():
            factor = factor_fn(model(inputs[rows]), rows)
        norms = vmap(sample_squared_norms)(inputs[rows], factor)
        for name in totals:
            totals[name] += norms[name].double().sum().item()
        passes += factor.shape[2]
    return totals, passes


# ---------------------------------------------------------------------------------------------------------------
# Hessian-vector products (double backward) for the Monte-Carlo methods.


class _HessianOperator:
    """v ↦ ∇²θ L v by double backward on a retained gradient graph. On CPU this measured faster than
    torch.func's jvp(grad) (0.052 s against 0.11 s, and 0.06 s vmapped over 8 probes, on the 784-500-500-500-10
    MLP with 1024 images); batching probes with is_grads_batched did not help on CPU either."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        parameters = list(trainable_parameters(model).values())
        with torch.enable_grad():
            loss = loss_fn(model(inputs), targets)
            grads = torch.autograd.grad(loss, parameters, create_graph=True, allow_unused=True)
        # A gradient that does not depend on the parameters has a zero Hessian row: drop it.
        self.pairs = [(p, g) for p, g in zip(parameters, grads) if g is not None and g.requires_grad]
        self.parameters = parameters
        self.shapes = [p.shape for p in parameters]
        self.numel = sum(p.numel() for p in parameters)
        self.matvecs = 0

    def apply(self, vectors: list[torch.Tensor], batched: bool = False) -> list[torch.Tensor]:
        """H v for v given per parameter tensor (with a leading probe dimension when `batched`)."""
        self.matvecs += vectors[0].shape[0] if batched else 1
        index = {id(p): i for i, p in enumerate(self.parameters)}
        used = [index[id(p)] for p, _ in self.pairs]
        products = torch.autograd.grad(
            [g for _, g in self.pairs], self.parameters, [vectors[i] for i in used],
            retain_graph=True, allow_unused=True, is_grads_batched=batched,
        )  # fmt: skip
        return [torch.zeros_like(v) if hv is None else hv for v, hv in zip(vectors, products)]

    def apply_flat(self, vector: torch.Tensor) -> torch.Tensor:
        pieces = list(vector.split([math.prod(s) for s in self.shapes]))
        products = self.apply([piece.view(shape) for piece, shape in zip(pieces, self.shapes)])
        return torch.cat([hv.reshape(-1) for hv in products])

    def rademacher(self, leading: tuple[int, ...], generator: torch.Generator) -> list[torch.Tensor]:
        return [_rademacher(leading + tuple(p.shape), p, generator) for p in self.parameters]


def _rademacher(shape, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return bits.to(like.dtype).mul_(2).sub_(1)


def _generator(device: torch.device, seed: int, generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator(device=device).manual_seed(seed)


def _mean_and_stderr(samples: list[float]) -> tuple[float, float]:
    values = torch.tensor(samples, dtype=torch.float64)
    stderr = values.std().item() / math.sqrt(len(samples)) if len(samples) > 1 else float("nan")
    return values.mean().item(), stderr


def _hutchinson(model, loss_fn, inputs, targets, probes=100, seed=0, generator=None, probes_per_batch=1):
    """Hutchinson: tr H = E vᵀHv for Rademacher v; mean and standard error (sample std / √probes)."""
    if probes < 1:
        raise ValueError(f"probes={probes} must be at least 1")
    operator = _HessianOperator(model, loss_fn, inputs, targets)
    generator = _generator(inputs.device, seed, generator)
    samples: list[float] = []
    while len(samples) < probes:
        batch = min(probes_per_batch, probes - len(samples))
        vectors = operator.rademacher((batch,), generator)
        products = operator.apply(vectors if batch > 1 else [v[0] for v in vectors], batched=batch > 1)
        quadratic = sum((v * hv.reshape(v.shape)).reshape(batch, -1).sum(dim=1) for v, hv in zip(vectors, products))
        samples.extend(quadratic.double().tolist())
    value, stderr = _mean_and_stderr(samples)
    return TraceEstimate(value, stderr, operator.matvecs, "hutchinson", samples=samples)


def _hutchpp(model, loss_fn, inputs, targets, matvecs=None, probes=None, seed=0, generator=None):
    """Hutch++ (Meyer et al. 2021, Alg. 1): with S, G Rademacher of m/3 columns each, Q = orth(H S),
    tr H ≈ tr(Qᵀ H Q) + mean over g of gᵀ (I − QQᵀ) H (I − QQᵀ) g. The standard error is that of the second
    (Hutchinson) part, conditional on Q. The budget m is `matvecs` (or `probes`, so that one setting can serve
    every Monte-Carlo method), 99 by default."""
    matvecs = matvecs if matvecs is not None else (probes if probes is not None else 99)
    if matvecs < 3:
        raise ValueError(f"matvecs={matvecs} must be at least 3 for Hutch++")
    operator = _HessianOperator(model, loss_fn, inputs, targets)
    generator = _generator(inputs.device, seed, generator)
    sketch_size = matvecs // 3
    residual_probes = matvecs - 2 * sketch_size
    like = operator.parameters[0]
    sketch = torch.stack([operator.apply_flat(_rademacher((operator.numel,), like, generator))
                          for _ in range(sketch_size)], dim=1)  # fmt: skip
    basis, _ = torch.linalg.qr(sketch.double())
    basis = basis.to(like.dtype)
    low_rank = sum(basis[:, j] @ operator.apply_flat(basis[:, j]) for j in range(sketch_size))
    samples = []
    for _ in range(residual_probes):
        g = _rademacher((operator.numel,), like, generator)
        g = g - basis @ (basis.T @ g)
        samples.append((g @ operator.apply_flat(g)).item())
    residual, stderr = _mean_and_stderr(samples)
    return TraceEstimate(float(low_rank) + residual, stderr, operator.matvecs, "hutchpp", samples=samples)


def _pyhessian(model, loss_fn, inputs, targets, probes=100, tol=1e-3, seed=0):
    """PyHessian 0.1's Hutchinson: `hessian(model, criterion, data=(x, y)).trace(maxIter, tol)` returns the list
    of per-probe values and stops early once the running mean moves by less than `tol` (relative); a negative
    `tol` never stops early. Its probes come from the global RNG, so we fork it and seed it."""
    from pyhessian import hessian

    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # PyHessian calls loss.backward(create_graph=True); evaluation_mode resets the .grad fields afterwards.
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        torch.manual_seed(seed)
        computer = hessian(model, loss_fn, data=(inputs, targets), cuda=inputs.device.type == "cuda")
        samples = [float(value) for value in computer.trace(maxIter=probes, tol=tol)]
    del computer
    value, stderr = _mean_and_stderr(samples)
    return TraceEstimate(value, stderr, len(samples), "pyhessian", samples=samples)


def _exact(model, loss_fn, inputs, targets, chunk_size=None):
    check_piecewise_linear(model, inputs)
    factor_fn = loss_hessian_factor_fn(loss_fn, targets)
    per_parameter, passes = ggn_trace_per_parameter(model, inputs, factor_fn, chunk_size)
    return TraceEstimate(sum(per_parameter.values()), 0.0, passes, "exact", per_group=per_parameter)


def exact_is_valid(model: nn.Module, loss_fn: nn.Module, inputs: torch.Tensor) -> bool:
    """True when method='exact' applies: a supported loss and a model piecewise linear in each parameter tensor.
    Checked in eval mode (BatchNorm uses running statistics there)."""
    known_loss = isinstance(loss_fn, (nn.CrossEntropyLoss, nn.MSELoss, HalfMSELoss))
    if not known_loss:
        return False
    try:
        check_piecewise_linear(model, inputs)
    except ValueError:
        return False
    return True


_OPTIONS = {
    "exact": ("chunk_size",),
    "hutchinson": ("probes", "seed", "generator", "probes_per_batch"),
    "hutchpp": ("matvecs", "probes", "seed", "generator"),
    "pyhessian": ("probes", "tol", "seed"),
}
_OPTIONS["auto"] = _OPTIONS["exact"] + _OPTIONS["hutchinson"]


def hessian_trace(
    model: nn.Module,
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str = "auto",
    **options,
) -> TraceEstimate:
    """tr(∇²θ L) of `loss_fn(model(inputs), targets)` over the trainable parameters, in eval mode.

    Options — exact: chunk_size (samples per forward; default from a memory budget);
    hutchinson: probes=100, seed=0, generator=None, probes_per_batch=1; hutchpp: matvecs=99 (or probes), seed,
    generator;
    pyhessian: probes=100, tol=1e-3 (PyHessian's default early stop; negative: never), seed;
    auto: the exact and hutchinson options."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {list(METHODS)}")
    unknown = set(options) - set(_OPTIONS[method])
    if unknown:
        raise TypeError(f"hessian_trace(method={method!r}) got unknown options {sorted(unknown)}; "
                        f"it takes {list(_OPTIONS[method])}")  # fmt: skip
    start = time.perf_counter()
    with evaluation_mode(model):
        if method == "auto":
            method = "exact" if exact_is_valid(model, loss_fn, inputs) else "hutchinson"
            options = {k: v for k, v in options.items() if k in _OPTIONS[method]}
        compute = {"exact": _exact, "hutchinson": _hutchinson, "hutchpp": _hutchpp, "pyhessian": _pyhessian}[method]
        estimate = compute(model, loss_fn, inputs, targets, **options)
    estimate.seconds = time.perf_counter() - start
    return estimate
