"""The papers' explicit regularizers, all of the form tr(J_zᵀ H_L J_z): one idea behind all four papers, where H_L
is the Hessian of the loss w.r.t. the network output and J_z the Jacobian of the output w.r.t. some variables z.

| function                          | z                         | paper                                            |
|-----------------------------------|---------------------------|--------------------------------------------------|
| gauss_newton_trace                | parameters (per group)    | Orvieto et al. Eq. 6 / Eq. 11                    |
| activation_gauss_newton_trace     | hidden activations h_k    | Camuto et al. Eq. 9 (= Eq. 11 for MSE); with     |
|                                   |                           | `diagonal_hessian`, Eq. 14 (diagonal of H_L)     |
| output_gradient_norm_squared      | parameters, H_L = I/n     | Blanc et al. Eq. 1                               |

All are evaluated in eval mode and leave the model's modes, parameters and `.grad` fields as they were. They
return numbers (no autograd graph): they measure the regularizers. Camuto's R as a training term (differentiable)
is curvature/explicit_regularizer.py.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from noisereg.curvature.gauss_newton import (
    chunk_size_for_memory,
    evaluation_mode,
    forward_with_hooks,
    ggn_trace_per_parameter,
    loss_hessian_factor_fn,
    sample_chunks,
)
from noisereg.curvature.trace import TraceEstimate

INPUT_SITE = "input"


def gauss_newton_trace(
    model: nn.Module,
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    groups: Sequence[Sequence[str]] | dict[str, Sequence[str]] | None = None,
    chunk_size: int | None = None,
) -> TraceEstimate:
    """tr(Jθᵀ H_L Jθ) = D²L(Φ)[DΦ DΦᵀ] (Orvieto Eq. 6/11), total and per parameter group.

    This is what noise on the parameters regularizes: σ²/2 · this (all parameters, Eq. 6), and with layer-wise
    noise (group j chosen uniformly at random among M, std σ√M) the same σ²/2 · Σⱼ tr of group j's block.
    Valid for any model whose samples do not interact in eval mode; for networks piecewise linear in each
    parameter tensor it equals the Hessian trace (method='exact' of `hessian_trace` is this plus that check).

    `groups`: None → one group per trainable parameter tensor, keyed by name; a list of lists of parameter names
    → keys 'group0', 'group1', …; a dict name → list of parameter names. `value` is always the total over all
    trainable parameters."""
    with evaluation_mode(model):
        factor_fn = loss_hessian_factor_fn(loss_fn, targets)
        per_parameter, passes = ggn_trace_per_parameter(model, inputs, factor_fn, chunk_size)
    return TraceEstimate(
        value=sum(per_parameter.values()),
        stderr=0.0,
        matvecs=passes,
        method="gauss_newton",
        per_group=_sum_over_groups(per_parameter, groups),
    )


def _sum_over_groups(per_parameter: dict[str, float], groups) -> dict[str, float]:
    if groups is None:
        return dict(per_parameter)
    named = groups if isinstance(groups, dict) else {f"group{i}": names for i, names in enumerate(groups)}
    seen: set[str] = set()
    for group, names in named.items():
        unknown = [name for name in names if name not in per_parameter]
        repeated = [name for name in names if name in seen]
        if unknown or repeated:
            raise ValueError(
                f"parameter group {group!r}: {unknown or repeated} "
                f"{'are not trainable parameters of the model' if unknown else 'appear in more than one group'}; "
                f"known: {list(per_parameter)}"
            )
        seen.update(names)
    return {group: sum(per_parameter[name] for name in names) for group, names in named.items()}


def output_gradient_norm_squared(model: nn.Module, inputs: torch.Tensor, chunk_size: int | None = None) -> float:
    """(1/n) Σᵢ ‖∇θ h(xᵢ)‖² (Blanc et al. Eq. 1); for several outputs the sum over outputs, i.e. the
    Gauss–Newton trace with H_L = I/n."""
    n = inputs.shape[0]

    def factor_fn(outputs: torch.Tensor, rows: slice) -> torch.Tensor:
        flat = outputs.reshape(outputs.shape[0], -1)
        identity = torch.eye(flat.shape[1], dtype=flat.dtype, device=flat.device) / n**0.5
        return identity.expand(flat.shape[0], -1, -1)

    with evaluation_mode(model):
        per_parameter, _ = ggn_trace_per_parameter(model, inputs, factor_fn, chunk_size)
    return sum(per_parameter.values())


def activation_gauss_newton_trace(
    model: nn.Module,
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    sites: Sequence[nn.Module | str],
    chunk_size: int | None = None,
    diagonal_hessian: bool = False,
) -> list[float]:
    """Per site k: Σᵢ Tr(Jₖ(xᵢ)ᵀ H_L,i Jₖ(xᵢ)), Jₖ the Jacobian of sample i's output w.r.t. its activation hₖ
    (the forward output of module `sites[k]`; the string 'input' means the network input, Camuto's h₀).

    H_L,i is the Hessian of the (mean-reduced) batch loss w.r.t. sample i's output, so the 1/n of Camuto's
    E_{x∼B} is inside it: ½ Σₖ σₖ² × this is Camuto et al.'s R (Eq. 9; Eq. 11 for HalfMSE). With
    `diagonal_hessian`, H_L,i is replaced by its diagonal: Eq. 14, the form the paper writes for cross-entropy
    (diag(p) − p², dropping Eq. 13's off-diagonal −pᵢpⱼ; the same as Eq. 9 for squared errors).
    One backward pass per output column c of the factor A of H_L gives all samples' rows at once: in eval mode
    hₖ of sample i only reaches f(xᵢ)."""
    with evaluation_mode(model):
        factor_fn = loss_hessian_factor_fn(loss_fn, targets)
        if diagonal_hessian:
            factor_fn = _diagonal_factor_fn(factor_fn)
        chunk_size = chunk_size or chunk_size_for_memory(model, inputs)
        totals = [0.0] * len(sites)
        for rows in sample_chunks(inputs.shape[0], chunk_size):
            for k, value in enumerate(_activation_traces_of_chunk(model, inputs[rows], rows, sites, factor_fn)):
                totals[k] += value
    return totals


def _diagonal_factor_fn(factor_fn):
    """A factor of diag(H_L): diag(√(H_L)_cc), with (H_L)_cc = Σ_j A_cj²."""

    def diagonal(outputs: torch.Tensor, rows: slice) -> torch.Tensor:
        return torch.diag_embed(factor_fn(outputs, rows).pow(2).sum(dim=2).sqrt())

    return diagonal


def _activation_traces_of_chunk(model, x, rows, sites, factor_fn) -> list[float]:
    captured: dict[int, torch.Tensor] = {}
    hooks = []
    for k, site in enumerate(sites):
        if isinstance(site, str):
            if site != INPUT_SITE:
                raise ValueError(f"site {site!r} is unknown; sites are modules or {INPUT_SITE!r}")
            x = captured[k] = x.detach().clone().requires_grad_(True)
        else:
            hooks.append((site, _capture_output(k, captured)))
    outputs = forward_with_hooks(model, x, hooks)
    missing = [k for k in range(len(sites)) if k not in captured]
    if missing:
        raise ValueError(f"sites {missing} did not run in the model's forward pass")
    factor = factor_fn(outputs, rows)
    flat_outputs = outputs.reshape(outputs.shape[0], -1)
    activations = [captured[k] for k in range(len(sites))]
    totals = [torch.zeros((), dtype=torch.float64, device=x.device) for _ in sites]
    for column in range(factor.shape[2]):
        grads = torch.autograd.grad(
            flat_outputs,
            activations,
            factor[:, :, column],
            retain_graph=column + 1 < factor.shape[2],
            allow_unused=True,
        )
        for k, grad in enumerate(grads):
            if grad is not None:
                totals[k] += grad.pow(2).sum().double()
    return [total.item() for total in totals]


def _capture_output(k: int, captured: dict[int, torch.Tensor]):
    def hook(module, args, output):
        if k in captured:
            raise ValueError(f"site {k} ({type(module).__name__}) runs more than once per forward pass")
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"site {k} ({type(module).__name__}) returns {type(output).__name__}, not a tensor")
        if not output.requires_grad:  # nothing upstream is differentiable: start the graph here
            output = output.detach().requires_grad_(True)
        captured[k] = output
        return output.clone()  # so later in-place ops (ReLU(inplace=True)) leave the captured tensor intact

    return hook


def camuto_regularizer(
    model: nn.Module,
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    sites: Sequence[nn.Module | str],
    sigmas: float | Sequence[float],
    diagonal_hessian: bool = False,
) -> float:
    """R = ½ Σₖ σₖ² E_x Tr(Jₖᵀ H_L Jₖ) (Camuto et al. Eq. 9), σₖ the std of the Gaussian noise added to hₖ;
    with `diagonal_hessian`, Eq. 14: H_L replaced by its diagonal."""
    sigmas = [float(sigmas)] * len(sites) if isinstance(sigmas, (int, float)) else [float(s) for s in sigmas]
    if len(sigmas) != len(sites):
        raise ValueError(f"{len(sigmas)} sigmas for {len(sites)} sites")
    traces = activation_gauss_newton_trace(model, loss_fn, inputs, targets, sites, diagonal_hessian=diagonal_hessian)
    return 0.5 * sum(sigma**2 * trace for sigma, trace in zip(sigmas, traces))


def orvieto_regularizer(ggn_trace: float | TraceEstimate, sigma: float) -> float:
    """σ²/2 · tr(∇²L(Φ) DΦ DΦᵀ) (Orvieto et al. Eq. 6 / Eq. 11)."""
    value = ggn_trace.value if isinstance(ggn_trace, TraceEstimate) else float(ggn_trace)
    return 0.5 * sigma**2 * value


__all__ = [
    "activation_gauss_newton_trace",
    "camuto_regularizer",
    "gauss_newton_trace",
    "orvieto_regularizer",
    "output_gradient_norm_squared",
]
