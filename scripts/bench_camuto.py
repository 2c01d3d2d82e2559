"""Time a training step with Camuto et al.'s explicit regulariser R (noise=gni_explicit) against a plain step and
against a Jacobian-materialising implementation of R, in the same process.

    python scripts/bench_camuto.py [--repeats 15] [--batch 512] [--variance 0.1]

Models: the Fig. 3 MLP (784-32-32-10, ELU, no biases) and Fig. 3a's 4×256 MLP, cross-entropy on a batch of
Fashion-MNIST-shaped inputs, noise on the input and every hidden layer. A step is forward, loss (+ R), backward and
an SGD update.

- ours: noise/activation_regularizer.py — per-sample squared norms of the rows of each noised layer's Jacobian,
  one backward pass per output for all layers at once, differentiated by double backward; the input's term via
  W₁W₁ᵀ at the first layer's output.
- materialised: each noised layer's per-sample Jacobian Jₖ (C × dₖ) formed by torch.func (vmap of jacrev over
  the samples of the network's tail from that layer), then ½ Σₖ σ² Σᵢ Tr(Jₖᵢᵀ H_L,i Jₖᵢ)/n — the way the authors'
  code does it with per-layer batch Jacobians.

Steps are interleaved round by round so drift in machine load hits all alike; the table reports the median
seconds per step and the ratios. Both R values and their gradients are compared before timing.
"""

from __future__ import annotations

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy run.py uses, see noisereg/__init__.py)

# isort: split

import argparse
import os
import statistics
import time

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from noisereg.data.tensors import TensorDataset
from noisereg.models import MLP
from noisereg.noise import ExplicitActivationRegularizer

MODELS = {"Fig. 3 MLP 784-32-32-10": [32, 32], "Fig. 3a MLP 784-256⁴-10": [256, 256, 256, 256]}


def materialised_regularizer(model: MLP, inputs: torch.Tensor, variance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, R) with every noised layer's per-sample Jacobian formed explicitly (differentiable)."""
    parameters = dict(model.named_parameters())
    depth = len(model.activations)

    def tail(params, h, start):  # the network from activation h_start (start = 0: the input) to the output
        x = h
        for k in range(start, depth):
            x = functional_call(
                model.activations[k],
                {},
                (functional_call(model.layers[k], {"weight": params[f"layers.{k}.weight"]}, (x,)),),
            )
        return functional_call(model.layers[depth], {"weight": params[f"layers.{depth}.weight"]}, (x,))

    activations = [inputs.flatten(1)]
    for k in range(depth):
        activations.append(model.activations[k](model.layers[k](activations[-1])))
    outputs = model.layers[depth](activations[-1])
    p = outputs.softmax(dim=1)
    hessian = (torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)) / inputs.shape[0]  # (n, C, C)
    total = outputs.new_zeros(())
    for start, h in enumerate(activations):
        jacobian = vmap(jacrev(lambda one, s=start: tail(parameters, one.unsqueeze(0), s)[0]))(h)  # (n, C, d)
        total = total + variance * torch.einsum("ncd,nce,ned->", jacobian, hessian, jacobian)
    return outputs, 0.5 * total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--variance", type=float, default=0.1)
    arguments = parser.parse_args()
    torch.manual_seed(0)
    inputs = torch.rand(arguments.batch, 1, 28, 28)
    labels = torch.randint(0, 10, (arguments.batch,))
    data = TensorDataset(inputs, labels, inputs, labels, "classification", 10)
    loss_fn = nn.CrossEntropyLoss()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2-core machine; other jobs may share it)")
    print(
        f"batch {arguments.batch}, σ² = {arguments.variance} on the input and every hidden layer, cross-entropy, "
        f"CPU threads {torch.get_num_threads()}, median of {arguments.repeats} interleaved steps\n"
    )
    print(
        "| model | plain step | ours (R) | ours / plain | materialised R | materialised / plain | "
        "ours vs materialised |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, widths in MODELS.items():
        plain = MLP(784, 10, widths, activation="elu", bias=False, init="glorot_normal")
        ours = MLP(784, 10, widths, activation="elu", bias=False, init="glorot_normal")
        naive = MLP(784, 10, widths, activation="elu", bias=False, init="glorot_normal")
        ours.load_state_dict(plain.state_dict())
        naive.load_state_dict(plain.state_dict())
        mode = ExplicitActivationRegularizer(variance=arguments.variance)
        mode.attach(ours, data)
        ours.train()

        def check() -> str:
            outputs = ours(inputs)
            value = mode.penalty(outputs, labels, loss_fn)
            grads = torch.autograd.grad(value, list(ours.parameters()))
            _, reference = materialised_regularizer(naive, inputs, arguments.variance)
            reference_grads = torch.autograd.grad(reference, list(naive.parameters()))
            gap = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(grads, reference_grads))
            return f"R {value.item():.6g} vs {reference.item():.6g}, largest relative gradient gap {gap:.1e}"

        steps = {}
        for label, model in (("plain", plain), ("ours", ours), ("materialised", naive)):
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

            def step(model=model, optimizer=optimizer, label=label) -> None:
                optimizer.zero_grad(set_to_none=True)
                if label == "materialised":
                    outputs, value = materialised_regularizer(model, inputs, arguments.variance)
                    loss = loss_fn(outputs, labels) + value
                else:
                    outputs = model(inputs)
                    loss = loss_fn(outputs, labels)
                    if label == "ours":
                        loss = loss + mode.penalty(outputs, labels, loss_fn)
                loss.backward()
                optimizer.step()

            steps[label] = step
        agreement = check()
        times: dict[str, list[float]] = {label: [] for label in steps}
        for label, step in steps.items():  # warm up
            step()
        for _ in range(arguments.repeats):
            for label, step in steps.items():
                start = time.perf_counter()
                step()
                times[label].append(time.perf_counter() - start)
        median = {label: statistics.median(values) for label, values in times.items()}
        print(
            f"| {name} | {median['plain'] * 1e3:.1f} ms | {median['ours'] * 1e3:.1f} ms | "
            f"{median['ours'] / median['plain']:.2f}× | {median['materialised'] * 1e3:.1f} ms | "
            f"{median['materialised'] / median['plain']:.1f}× | {median['materialised'] / median['ours']:.1f}× "
            f"faster |"
        )
        print(f"  ({name}: {agreement})")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
