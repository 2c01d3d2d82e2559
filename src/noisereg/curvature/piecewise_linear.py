"""Which models the exact Hessian trace vouches for: networks piecewise linear in each parameter tensor, where
the Hessian's trace equals the Gauss–Newton trace (Orvieto et al.'s condition D²Φ(w)[I] = 0)."""

from __future__ import annotations

import torch
from torch import nn

# ---------------------------------------------------------------------------------------------------------------
# Which models the exact method vouches for.

PIECEWISE_LINEAR_MODULES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.Hardtanh,
    nn.Identity,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Flatten,
    nn.Unflatten,
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.Sequential,
    nn.ModuleList,
    nn.ModuleDict,
)
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
