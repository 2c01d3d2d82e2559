"""Check the small-noise theory numerically: E[L(w + noise)] − L(w) against σ²/2 · tr(∇²L(w)).

Orvieto et al. Eq. 5: for noise σε on all parameters, E[L(w + σε)] − L(w) = σ²/2 · tr(∇²L) + O(σ³) (Gaussian
smoothing; Eq. 6/11 write the trace as the Gauss–Newton term when D²Φ[I] = 0).
Layer-wise noise (Sec. 3.2, 4): one of the M parameter tensors, chosen uniformly at random, gets noise of std σ√M;
the expectation over the choice brings 1/M, the variance M, so the prediction is the same
(1/M) Σⱼ (Mσ²/2) tr(∇²_{jj} L) = σ²/2 · tr(∇²L) — the sum of the diagonal blocks is the trace.
(The authors' code instead gives every tensor std σ/√M for "all" noise, which predicts σ²/(2M) · tr(∇²L).)

Models (float64, CPU): a tanh MLP (smooth control) and ReLU MLPs trained on random regression data, a deep linear
network, a diagonal network. The traces come from `noisereg.curvature.hessian_trace` (exact for ReLU and linear
nets; Hutch++ with a full sketch for the tanh net) and from the closed form of Eq. 7 (the diagonal network, whose
D²Φ[I] = 0 too: ∂²Φ/∂w₁ⱼ² + ∂²Φ/∂w₂ⱼ² = 2Xⱼ − 2Xⱼ). Monte Carlo uses
antithetic pairs ½[L(w + δ) + L(w − δ)] − L(w), which cancel the odd orders. Runs in well under a minute.

    python scripts/check_theory.py
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.func import functional_call, vmap

from noisereg.curvature import (
    deep_linear_layerwise_noise,
    diagonal_network_regularizer,
    hessian_trace,
    orvieto_regularizer,
)
from noisereg.losses import HalfMSELoss

SIGMAS = (0.1, 0.03, 0.01)
SAMPLES = 4000  # antithetic pairs per Monte-Carlo estimate


def regression_data(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """64 Gaussian inputs in 10 dimensions with random targets."""
    return torch.randn(64, 10, generator=generator), torch.randn(64, 1, generator=generator)


def relu_mlp(generator: torch.Generator, steps: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """10 → 64 → 64 → 1 ReLU MLP fitted by `steps` full-batch GD steps (lr 0.05) to random targets."""
    inputs, targets = regression_data(generator)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    fit(model, inputs, targets, steps=steps, lr=0.05)
    return model, inputs, targets


def tanh_mlp(generator: torch.Generator) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """10 → 16 → 16 → 1 tanh MLP (smooth: the expansion of Eq. 5 holds as written), 1000 GD steps."""
    inputs, targets = regression_data(generator)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
    fit(model, inputs, targets, steps=1000, lr=0.05)
    return model, inputs, targets


def deep_linear(generator: torch.Generator) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """10 → 20 → 20 → 2 linear network without biases (Orvieto Sec. 4), fitted by GD."""
    inputs = torch.randn(32, 10, generator=generator)
    targets = inputs[:, :2] @ torch.randn(2, 2, generator=generator) + 0.1 * torch.randn(32, 2, generator=generator)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 20, bias=False), nn.Linear(20, 20, bias=False), nn.Linear(20, 2, bias=False))
    fit(model, inputs, targets, steps=300, lr=0.05)
    return model, inputs, targets


def hessian_trace_of(model, inputs, targets) -> float:
    """Exact where valid; for the tanh net Hutch++ with a sketch as large as the parameter count, which is
    exact up to round-off (the sketch spans the whole space)."""
    loss_fn = HalfMSELoss()
    if isinstance(model[1], nn.Tanh):
        dimension = sum(p.numel() for p in model.parameters())
        return hessian_trace(model, loss_fn, inputs, targets, method="hutchpp", matvecs=3 * dimension).value
    return hessian_trace(model, loss_fn, inputs, targets, method="exact").value


def preactivations_near_kinks(model, inputs, sigma) -> int:
    """How many hidden preactivations z = w·a + b (over samples and units) lie within σ‖(a, 1)‖ of 0, the std
    of z under noise σ on that layer alone: kinks that small perturbations cross."""
    count, activation = 0, inputs
    with torch.no_grad():
        for layer in list(model)[:-1]:
            if isinstance(layer, nn.Linear):
                reach = sigma * (activation.pow(2).sum(dim=1, keepdim=True) + 1).sqrt()
                activation = layer(activation)
                count += int((activation.abs() < reach).sum())
            else:
                activation = layer(activation)
    return count


def fit(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, steps: int, lr: float) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        HalfMSELoss()(model(inputs), targets).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def noise_increase(model, inputs, targets, sigma, layerwise, generator, samples=SAMPLES) -> tuple[float, float]:
    """Mean and standard error of ½[L(w + δ) + L(w − δ)] − L(w) over `samples` draws of δ: σε on every
    parameter, or (layerwise) σ√M ε on one of the M tensors chosen uniformly at random. Computed from the output
    changes Δf, L(w + δ) − L(w) = 1/n Σᵢ [rᵢ·Δfᵢ + ½‖Δfᵢ‖²] with r the residual, so that tiny σ do not drown
    in the round-off of L itself."""
    parameters = {name: p.detach() for name, p in model.named_parameters()}
    names = list(parameters)

    def outputs_at(params):
        return functional_call(model, params, (inputs,))

    clean = outputs_at(parameters)
    residual = clean - targets
    chosen = torch.randint(0, len(names), (samples,), generator=generator)
    scale = sigma * math.sqrt(len(names)) if layerwise else sigma
    deltas = {}
    for j, name in enumerate(names):
        noise = scale * torch.randn(samples, *parameters[name].shape, generator=generator)
        if layerwise:
            noise = noise * (chosen == j).view(-1, *[1] * parameters[name].dim())
        deltas[name] = noise
    increases = 0
    for sign in (1, -1):
        change = vmap(outputs_at)({name: parameters[name] + sign * deltas[name] for name in names}) - clean
        increases = increases + 0.5 * (residual * change + 0.5 * change.pow(2)).sum(dim=2).mean(dim=1)
    return increases.mean().item(), increases.std().item() / math.sqrt(samples)


def distance_to_nearest_kink(model, inputs) -> float:
    """min over hidden preactivations of |z| / ‖(a, 1)‖: below it, noise on a layer rarely crosses a kink."""
    distance, activation = math.inf, inputs
    with torch.no_grad():
        for layer in list(model)[:-1]:
            if isinstance(layer, nn.Linear):
                reach = (activation.pow(2).sum(dim=1, keepdim=True) + 1).sqrt()
                activation = layer(activation)
                distance = min(distance, (activation.abs() / reach).min().item())
            else:
                activation = layer(activation)
    return distance


def diagonal_network_increase(w1, w2, X, y, sigma, generator, samples=SAMPLES * 25) -> tuple[float, float]:
    def loss(a, b):
        return 0.5 * (X @ (a * a - b * b).T - y[:, None]).pow(2).mean(dim=0)

    e1, e2 = (sigma * torch.randn(samples, w1.shape[0], generator=generator) for _ in range(2))
    increases = 0.5 * (loss(w1 + e1, w2 + e2) + loss(w1 - e1, w2 - e2)) - loss(w1[None], w2[None])
    return increases.mean().item(), increases.std().item() / math.sqrt(samples)


def row(model_name, noise, sigma, measured, stderr, predicted, note=""):
    relative = (measured - predicted) / predicted
    print(
        f"| {model_name} | {noise} | {sigma:g} | {measured:.4e} ± {stderr:.1e} | {predicted:.4e} | "
        f"{100 * relative:+.2f} % | {abs(measured - predicted) / stderr:.1f} | {note} |"
    )


def parameter_noise_rows(model_name, model, inputs, targets, generator) -> None:
    trace = hessian_trace_of(model, inputs, targets)
    loss = HalfMSELoss()(model(inputs), targets).item()
    relu = isinstance(model[1], nn.ReLU)
    for layerwise in (False, True):
        noise = "layer-wise, σ√M on one of M tensors" if layerwise else "all parameters, σ each"
        # ReLU nets also at σ a tenth of the distance to the nearest kink, where the Taylor argument applies.
        tiny = (float(f"{distance_to_nearest_kink(model, inputs) / 10:.0e}"),) if relu else ()
        for sigma in SIGMAS + tiny:
            measured, stderr = noise_increase(model, inputs, targets, sigma, layerwise, generator)
            note = f"L = {loss:.1e}"
            if relu:
                note += f"; {preactivations_near_kinks(model, inputs, sigma)} preactivations within reach of a kink"
            if model_name.startswith("deep") and layerwise:
                closed = deep_linear_layerwise_noise([layer.weight.detach() for layer in model], inputs, sigma)
                note += f"; App. E closed form {closed.item():.4e} (exact for all σ)"
            row(model_name, noise, sigma, measured, stderr, orvieto_regularizer(trace, sigma), note)


def diagonal_network_rows(generator) -> None:
    X = torch.randn(16, 8, generator=generator)
    w1, w2 = torch.randn(8, generator=generator), torch.randn(8, generator=generator)
    y = X @ (w1 * w1 - w2 * w2) + 0.1 * torch.randn(16, generator=generator)
    for sigma in SIGMAS:
        closed = diagonal_network_regularizer(w1, w2, X, sigma)
        measured, stderr = diagonal_network_increase(w1, w2, X, y, sigma, generator)
        note = f"Eq. 7 + σ⁴ term {closed['variance_term'].item():.2e} = {closed['total'].item():.4e} exactly"
        row(
            "diagonal network d=8",
            "all parameters, σ each",
            sigma,
            measured,
            stderr,
            closed["second_order"].item(),
            note,
        )


def main() -> None:
    torch.set_default_dtype(torch.float64)
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    print("| model | noise | σ | MC E[L(w+δ)] − L(w) ± s.e. | σ²/2 · tr(∇²L) | rel. error | |error| / s.e. | note |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    models = {
        "tanh MLP 10-16-16-1, 1000 GD steps": lambda: tanh_mlp(generator),
        "ReLU MLP 10-64-64-1, 1000 GD steps": lambda: relu_mlp(generator, steps=1000),
        "ReLU MLP 10-64-64-1, 100 GD steps": lambda: relu_mlp(generator, steps=100),
        "deep linear 10-20-20-2": lambda: deep_linear(generator),
    }
    for model_name, build in models.items():
        parameter_noise_rows(model_name, *build(), generator)
    diagonal_network_rows(generator)
    print(f"\n{time.perf_counter() - start:.1f} s.\n")
    print(READING)


READING = """How to read it. Smooth models (tanh, deep linear, diagonal): the Monte-Carlo increase approaches
σ²/2 · tr(∇²L) as σ shrinks, to within its standard error at σ = 0.01; at σ = 0.1 higher orders show (the deep
linear net's σ⁴ terms under all-parameter noise; the layer-wise rows match Appendix E's closed form at every σ; the
diagonal network's σ⁴ term — ours, see linear_closed_forms.py — is visible at σ = 0.1).
ReLU MLPs: the measured increase exceeds σ²/2 · tr(∇²L) and the gap does not close as σ decreases. The Hessian
is the almost-everywhere one and misses the kinks: hundreds of preactivations z lie within σ‖(a, 1)‖ (the std of z
under that layer's noise) of 0 even at σ = 0.01, and each crossing shifts E f by O(σ), which the loss picks up
at first order in the residual. Orvieto App. A.3 (J₁ exponentially small) needs σ below the distance to the
nearest kink: at σ a tenth of that distance the ReLU rows agree too. The gap is smaller near
interpolation (1000 steps, small residuals) than after 100 steps, where it dominates."""


if __name__ == "__main__":
    main()
