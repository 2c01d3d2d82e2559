"""Camuto et al.'s explicit regulariser R as a differentiable training term (Eq. 9; Eq. 11 for squared errors).

    R = ½ Σₖ σₖ² E_x Tr(Jₖᵀ H_L Jₖ),   Jₖ = ∂f/∂hₖ, the Jacobian of the output w.r.t. the activation GNI noises.

Tr(Jₖᵀ H_L Jₖ) is computed from the rows g_c = ∂f_c/∂hₖ of each sample's Jacobian, keeping only their per-sample
squared norms, as the exact Hessian trace does (curvature/gauss_newton.py): with H_L,i = sᵢ (diag pᵢ − pᵢpᵢᵀ) for
cross-entropy (Camuto Eq. 13; sᵢ = 1/n for the batch mean) the trace is sᵢ [Σ_c p_c ‖g_c‖² − ‖Σ_c p_c g_c‖²], and
sᵢ Σ_c ‖g_c‖² for squared errors (Eq. 11) — no square root of p, so nothing is singular where a probability
underflows. Everything stays in the autograd graph, so R's gradient w.r.t. the parameters — its dependence on H_L
through the softmax included — is one more backward pass (double backward).

Two ways to the rows, both exact:

- `chain_regularizer`, for a chain of Linear layers and elementwise activations (our MLP): the rows of every layer
  and every output at once, G ← (G ⊙ φ'(zₖ)) Wₖ from the top, one batched product per layer — C backward passes'
  arithmetic in a handful of operations, which is what keeps a small network's step cheap.
- `explicit_regularizer`, for any network whose samples do not interact (the CNN): one backward pass per output c
  (`torch.autograd.grad` with `create_graph`), all noised layers at once. A loop over c, not one batched backward:
  torch's vmap has no batching rule for ELU's backward and falls back to a per-slice loop whose double backward
  costs C times more.

The input's term through a first Linear layer z₁ = W₁x is taken at z₁ with g = ∂/∂z₁: ‖gW₁‖² directly, or as
gᵀ(W₁W₁ᵀ)g, cheaper when z₁ is narrower than x (784 → 32 in Camuto's Fig. 3 MLP); `input_gram_is_cheaper` counts
the multiply-adds of both ways, as gauss_newton.py does for convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from noisereg.curvature.gauss_newton import per_sample_loss_scale


def input_gram_is_cheaper(weight_shape: Sequence[int], n_samples: int, outputs: int) -> bool:
    """Whether gᵀ(W Wᵀ)g costs fewer multiply-adds than ‖g W‖² for a Linear layer of this (d_out, d_in) shape."""
    out_width, in_width = weight_shape
    direct = outputs * n_samples * out_width * in_width
    gram = out_width * out_width * in_width + outputs * n_samples * out_width * out_width
    return gram < direct


@dataclass
class OutputHessian:
    """H_L,i = sᵢ (diag pᵢ − pᵢpᵢᵀ) (cross-entropy: `probabilities` p) or sᵢ I (squared errors: None)."""

    scale: torch.Tensor  # (n,)
    probabilities: torch.Tensor | None  # (n, C)
    classes: int  # C, the outputs per sample

    @classmethod
    def of(cls, loss_fn: nn.Module, outputs: torch.Tensor, targets: torch.Tensor, differentiable: bool):
        scale = per_sample_loss_scale(loss_fn, tuple(outputs.shape), targets, outputs.dtype)
        flat = outputs.reshape(outputs.shape[0], -1)
        if not isinstance(loss_fn, nn.CrossEntropyLoss):
            return cls(scale, None, flat.shape[1])
        probabilities = flat.softmax(dim=1)
        return cls(scale, probabilities if differentiable else probabilities.detach(), flat.shape[1])

    def trace(self, rows: torch.Tensor, quadratic: torch.Tensor | None = None) -> torch.Tensor:
        """Σᵢ Tr(Gᵢᵀ H_L,i Gᵢ) for the rows Gᵢ (C × d, `rows` shaped (n, C, d)) of each sample's Jacobian:
        Σᵢ sᵢ [Σ_c p_c q(g_c) − q(Σ_c p_c g_c)] (cross-entropy) or Σᵢ sᵢ Σ_c q(g_c), q(v) = ‖v‖² or vᵀMv."""
        other = rows if quadratic is None else rows @ quadratic  # q(v) = ⟨v, Mv⟩
        if self.probabilities is None:
            return (self.scale * (rows * other).sum(dim=(1, 2))).sum()
        weighted = self.probabilities.unsqueeze(2) * rows  # p_c g_c, (n, C, d)
        mean = weighted.sum(dim=1)  # Σ_c p_c g_c
        other_mean = mean if quadratic is None else mean @ quadratic  # M Σ_c p_c g_c
        per_sample = (weighted * other).sum(dim=(1, 2)) - (mean * other_mean).sum(dim=1)
        return (self.scale * per_sample).sum()

    def matrix(self) -> torch.Tensor:
        """H_L,i for every sample, (n, C, C)."""
        if self.probabilities is None:
            identity = torch.eye(self.classes, dtype=self.scale.dtype, device=self.scale.device)
            return self.scale[:, None, None] * identity
        p = self.probabilities
        return self.scale[:, None, None] * (torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1))


class TraceOfRows:
    """Σᵢ Tr(Jᵢᵀ H_L,i Jᵢ) of one noised tensor from the rows g_c = ∂f_c/∂h of every sample's Jacobian, given all at
    once (`add_all`, shaped (C, n, …)) or one output c at a time (`add`): Σᵢ sᵢ [Σ_c p_c q(g_c) − q(Σ_c p_c g_c)] for
    cross-entropy, Σᵢ sᵢ Σ_c q(g_c) for squared errors, with q(v) = ‖v‖² — or vᵀMv for `quadratic` M, ‖vW‖² for
    `linear` W (the input's term at the first layer's output)."""

    def __init__(
        self, hessian: OutputHessian, quadratic: torch.Tensor | None = None, linear: torch.Tensor | None = None
    ):
        self.hessian, self.quadratic, self.linear = hessian, quadratic, linear
        self.per_sample: torch.Tensor | float = 0.0  # Σ_c p_c q(g_c), or Σ_c q(g_c)
        self.mean_row: torch.Tensor | float = 0.0  # Σ_c p_c g_c

    def norm(self, vectors: torch.Tensor) -> torch.Tensor:
        if self.quadratic is not None:
            return ((vectors @ self.quadratic) * vectors).sum(dim=-1)
        return (vectors if self.linear is None else vectors @ self.linear).pow(2).sum(dim=-1)

    def add(self, column: int, rows: torch.Tensor) -> None:
        self.add_all(rows.unsqueeze(0), columns=slice(column, column + 1))

    def add_all(self, rows: torch.Tensor, columns: slice = slice(None)) -> None:
        rows = rows.flatten(2)  # (C, n, d)
        p = self.hessian.probabilities
        if p is None:
            self.per_sample = self.per_sample + self.norm(rows).sum(dim=0)
            return
        weights = p[:, columns].T  # (C, n)
        self.per_sample = self.per_sample + (weights * self.norm(rows)).sum(dim=0)
        self.mean_row = self.mean_row + (weights.unsqueeze(2) * rows).sum(dim=0)

    def result(self) -> torch.Tensor:
        per_sample = self.per_sample
        if self.hessian.probabilities is not None:
            per_sample = per_sample - self.norm(self.mean_row)
        return (self.hessian.scale * per_sample).sum()


def input_trace(hessian: OutputHessian, weight: torch.Tensor, n_samples: int, classes: int) -> TraceOfRows:
    """The input's term taken at the first Linear layer's output: through W₁W₁ᵀ or W₁, whichever is cheaper."""
    if input_gram_is_cheaper(weight.shape, n_samples, classes):
        return TraceOfRows(hessian, quadratic=weight @ weight.T)
    return TraceOfRows(hessian, linear=weight)


def explicit_regularizer(
    outputs: torch.Tensor,
    activations: Sequence[torch.Tensor],
    variances: Sequence[float],
    loss_fn: nn.Module,
    targets: torch.Tensor,
    input_layer: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    create_graph: bool = True,
) -> torch.Tensor:
    """R = ½ Σₖ σₖ² Σᵢ Tr(Jₖ(xᵢ)ᵀ H_L,i Jₖ(xᵢ)) (Camuto Eq. 9) for the batch that produced `outputs`, any network.

    `activations[k]` is hₖ as it entered the rest of the forward pass (in the autograd graph; the network input
    made to require grad), noised with variance `variances[k]` = σₖ². `input_layer` = (z₁, W₁, σ₀²) takes the
    input's term at a first Linear layer's output instead. H_L,i is the Hessian of the mean-reduced batch loss
    w.r.t. sample i's output, so the 1/n of E_{x∼B} is inside it. With `create_graph` the result is differentiable
    w.r.t. the parameters (the training term); without, it is a measurement."""
    if len(activations) != len(variances):
        raise ValueError(f"{len(variances)} variances for {len(activations)} activations")
    hessian = OutputHessian.of(loss_fn, outputs, targets, differentiable=create_graph)
    wrt = [a for a, v in zip(activations, variances) if v > 0]
    weights = [v for v in variances if v > 0]
    traces = [TraceOfRows(hessian) for _ in wrt]
    if input_layer is not None and input_layer[2] > 0:
        layer_output, weight, variance = input_layer
        wrt.append(layer_output)
        weights.append(variance)
        traces.append(input_trace(hessian, weight, outputs.shape[0], outputs[0].numel()))
    if not wrt:
        return outputs.new_zeros(())
    flat = outputs.reshape(outputs.shape[0], -1)
    classes = flat.shape[1]
    for column in range(classes):  # sample i's output depends only on its own activations: rows of all samples
        grads = torch.autograd.grad(
            flat[:, column].sum(),
            wrt,
            create_graph=create_graph,
            retain_graph=create_graph or column + 1 < classes,
            allow_unused=True,
        )
        for trace, grad in zip(traces, grads):
            if grad is not None:
                trace.add(column, grad)
    return 0.5 * sum(weight * trace.result() for weight, trace in zip(weights, traces))


def chain_regularizer(
    outputs: torch.Tensor,
    weights: Sequence[torch.Tensor],
    preactivations: Sequence[torch.Tensor],
    activations: Sequence[nn.Module],
    variances: Sequence[float],
    input_variance: float,
    loss_fn: nn.Module,
    targets: torch.Tensor,
) -> torch.Tensor:
    """R (Eq. 9) for f = W_L φ(z_{L−1}), zₖ = Wₖ φ(zₖ₋₁) (+ biases), the noised activations hₖ = φ(zₖ) with
    variances `variances[k−1]` and the input with `input_variance`, differentiable w.r.t. the weights.

    `weights` are W₁ … W_L, `preactivations` z₁ … z_{L−1} as the forward pass computed them (in the graph),
    `activations` the elementwise φ after each. The rows of every sample's Jacobian w.r.t. h_{L−1} are W_L's
    rows, the same for all samples: their trace is ⟨H_L,i, W_L W_Lᵀ⟩. Below, G ← (G ⊙ φ'(zₖ)) Wₖ gives the rows
    w.r.t. hₖ₋₁, all C outputs in one product."""
    hessian = OutputHessian.of(loss_fn, outputs, targets, differentiable=True)
    n, classes = outputs.shape[0], weights[-1].shape[0]
    top = len(preactivations)
    total = outputs.new_zeros(())
    if variances[top - 1] > 0:  # h_{L−1}: Σᵢ ⟨H_L,i, W_L W_Lᵀ⟩
        total = total + variances[top - 1] * (hessian.matrix().sum(dim=0) * (weights[-1] @ weights[-1].T)).sum()
    rows = None
    for k in range(top, 0, -1):  # from ∂f/∂hₖ to ∂f/∂zₖ, then to ∂f/∂hₖ₋₁
        if k == 1 and input_variance <= 0:
            break
        derivative = slope(activations[k - 1], preactivations[k - 1]).unsqueeze(1)  # φ'(zₖ), (n, 1, dₖ)
        rows = weights[-1] * derivative if rows is None else rows * derivative  # ∂f/∂zₖ, (n, C, dₖ)
        if k > 1:
            rows = rows @ weights[k - 1]  # ∂f/∂hₖ₋₁
            if variances[k - 2] > 0:
                total = total + variances[k - 2] * hessian.trace(rows)
    if input_variance > 0:  # rows are ∂f/∂z₁; the input's rows are rows W₁
        first = weights[0]
        if input_gram_is_cheaper(first.shape, n, classes):
            total = total + input_variance * hessian.trace(rows, quadratic=first @ first.T)
        else:
            total = total + input_variance * hessian.trace(rows @ first)
    return 0.5 * total


def slope(activation: nn.Module, preactivation: torch.Tensor) -> torch.Tensor:
    """φ'(z), elementwise and differentiable w.r.t. z (ELU's second derivative enters R's gradient). Calls the
    module's `forward` directly, so its hooks (GNI's, this regulariser's) do not run."""
    z = preactivation if preactivation.requires_grad else preactivation.detach().requires_grad_(True)
    (derivative,) = torch.autograd.grad(activation.forward(z).sum(), z, create_graph=True)
    return derivative
