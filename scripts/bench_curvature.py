"""Benchmark of the Hessian-trace methods (a benchmark, not a test).

Part 1, one process, one trained model: MLP 784-500-500-500-10 (ReLU, cross-entropy) trained by full-batch GD on
1024 Fashion-MNIST training images, then the trace by PyHessian's `trace()` with its defaults, PyHessian with a
fixed number of probes, our Hutchinson, our Hutch++ and our exact method. Part 2: our exact method against
BackPACK's `DiagGGNExact` (the exact Gauss–Newton diagonal; its sum is the same trace for these ReLU networks) on
that MLP and on the CIFAR-10 models (toy CNN, wide CNN, ResNet18 in eval mode) with random images and labels,
each timed in the same process on the same inputs. Prints Markdown tables.

    python scripts/bench_curvature.py [--device cuda] [--resnet-images 5000 | --skip-resnet]

Sized to the device: ResNet18 on 1000 images on a GPU, 64 on a CPU (BackPACK takes about a second an image there),
and BackPACK's backward passes in chunks that fit in half the free memory (it holds the activations once per class:
1000 ResNet18 images in one pass asked a CPU for 94 GB).

Targets: exact ≥ 15× faster than PyHessian's default `trace()`; our Hutchinson no slower per probe than PyHessian's;
ours faster than BackPACK on every model.
"""

from __future__ import annotations

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy run.py uses, see noisereg/__init__.py)

# isort: split

import argparse
import copy
import time

import torch
from torch import nn

from noisereg.curvature import TraceEstimate, hessian_trace
from noisereg.data.fmnist import fashion_mnist_tensors
from noisereg.memory import FLOAT_BYTES, activation_elements, available_bytes

RESNET_IMAGES = {"cuda": 1000, "cpu": 64}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=1024, help="Fashion-MNIST training images")
    parser.add_argument("--train-steps", type=int, default=200, help="full-batch GD steps before measuring")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--probes", type=int, default=100, help="probes for the fixed-budget Monte-Carlo rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="root for noisereg.data.fmnist (default: its own)")
    parser.add_argument("--toy-images", type=int, default=512)
    parser.add_argument("--wide-images", type=int, default=256)
    parser.add_argument("--resnet-images", type=int, default=None, help="default: 1000 on a GPU, 64 on a CPU")
    parser.add_argument("--resnet-chunk", type=int, default=None, help="chunk_size for the ResNet18 exact trace")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--skip-backpack", action="store_true", help="only our exact method in part 2")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ data and models


def fmnist_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 500),
        nn.ReLU(),
        nn.Linear(500, 500),
        nn.ReLU(),
        nn.Linear(500, 500),
        nn.ReLU(),
        nn.Linear(500, 10),
    )


def train_full_batch(model, loss_fn, inputs, targets, steps: int, lr: float) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        return loss_fn(model(inputs), targets).item()


# ------------------------------------------------------------------------------------------------ measuring


def timed(device: torch.device, compute) -> TraceEstimate:
    """Run `compute()` and put wall-clock seconds (synchronised on CUDA) into the estimate."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    estimate = compute()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    estimate.seconds = time.perf_counter() - start
    return estimate


def mlp_rows(args, device) -> tuple[list[tuple[str, TraceEstimate]], tuple]:
    generator = torch.Generator().manual_seed(args.seed)
    images, labels, _, _ = fashion_mnist_tensors(args.data_root)
    subset = torch.randperm(images.shape[0], generator=generator)[: args.images]
    inputs, targets = images[subset].to(device), labels[subset].to(device)
    torch.manual_seed(args.seed)
    model = fmnist_mlp().to(device)
    loss_fn = nn.CrossEntropyLoss()
    loss = train_full_batch(model, loss_fn, inputs, targets, args.train_steps, args.lr)
    print(
        f"MLP 784-500-500-500-10 trained {args.train_steps} full-batch GD steps (lr {args.lr}) on "
        f"{args.images} FMNIST images: training loss {loss:.4f}; device {device}, "
        f"{torch.get_num_threads()} CPU threads\n"
    )

    problem = ("MLP 784-500³-10, trained, FMNIST", model, inputs, targets, {})

    def trace(method, **options):
        return timed(device, lambda: hessian_trace(model, loss_fn, inputs, targets, method=method, **options))

    trace("hutchinson", probes=2)  # warm-up: first-call costs of autograd and the BLAS are not the methods'
    trace("exact")
    return problem, [
        (
            "PyHessian's own trace() with its defaults (maxIter=100, tol=1e-3: stops early)",
            timed(device, lambda: pyhessians_own_trace(model, loss_fn, inputs, targets, args.seed)),
        ),
        (
            f"method=pyhessian: PyHessian's Hessian-vector product, {args.probes} probes",
            trace("pyhessian", probes=args.probes, seed=args.seed),
        ),
        (f"ours hutchinson, {args.probes} probes", trace("hutchinson", probes=args.probes, seed=args.seed)),
        (
            f"ours hutchpp, {args.probes - args.probes % 3} matvecs",
            trace("hutchpp", matvecs=args.probes - args.probes % 3, seed=args.seed),
        ),
        ("ours exact (Gauss–Newton identity)", trace("exact")),
    ]


def pyhessians_own_trace(model, loss_fn, inputs, targets, seed: int) -> TraceEstimate:
    """PyHessian 0.1's `hessian(...).trace()` as the literature calls it: its probes from the global RNG (seeded),
    its early stop (which our method=pyhessian does not use: it stops at any negative running mean)."""
    import warnings

    from pyhessian import hessian

    was_training = model.training
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its backward(create_graph=True)
        torch.manual_seed(seed)
        samples = hessian(model, loss_fn, data=(inputs, targets), cuda=inputs.device.type == "cuda").trace()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    values = torch.tensor(samples, dtype=torch.float64)
    stderr = float(values.std() / len(samples) ** 0.5) if len(samples) > 1 else float("nan")
    return TraceEstimate(float(values.mean()), stderr, len(samples), "pyhessian trace()", samples=samples)


def print_mlp_table(rows: list[tuple[str, TraceEstimate]]) -> None:
    exact = rows[-1][1]
    print("| method | trace | error vs exact | std. error | seconds | matvecs | s / matvec |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, estimate in rows:
        error = estimate.value - exact.value
        print(
            f"| {name} | {estimate.value:.2f} | {error:+.2f} ({100 * error / exact.value:+.1f} %) | "
            f"{estimate.stderr:.2f} | {estimate.seconds:.3f} | {estimate.matvecs} | "
            f"{estimate.seconds / max(1, estimate.matvecs):.4f} |"
        )
    pyhessian_default, pyhessian_fixed, hutchinson = rows[0][1], rows[1][1], rows[2][1]
    print(
        f"\nexact is {pyhessian_default.seconds / exact.seconds:.1f}× faster than PyHessian's default trace() "
        f"(target ≥ 15×) and {pyhessian_fixed.seconds / exact.seconds:.1f}× faster than PyHessian with "
        f"{pyhessian_fixed.matvecs} probes; our Hutchinson costs "
        f"{hutchinson.seconds / hutchinson.matvecs:.4f} s per probe against PyHessian's "
        f"{pyhessian_fixed.seconds / pyhessian_fixed.matvecs:.4f} s (target: no slower). For the exact method, "
        f"matvecs counts backward passes (one per class)."
    )
    ours, theirs = torch.tensor(hutchinson.samples), torch.tensor(pyhessian_fixed.samples)
    if ours.shape == theirs.shape and torch.allclose(ours, theirs, rtol=1e-4):
        print(
            "Ours and PyHessian drew the same Rademacher probes (same seed, same RNG calls) and got the same "
            "per-probe values vᵀHv to 1e-4: the two Hessian-vector products agree."
        )
    print()


def cifar_problems(args, device) -> list[tuple]:
    """(name, model in eval mode, inputs, targets, exact options) for the CIFAR-10 models, random data."""
    from noisereg.models import build_model

    problems = []
    sizes = [("toy_cnn", args.toy_images), ("wide_cnn", args.wide_images)]
    if not args.skip_resnet:
        sizes.append(("resnet18", args.resnet_images))
    for name, images in sizes:
        generator = torch.Generator().manual_seed(args.seed)
        model = build_model(name, (3, 32, 32), 10, generator).to(device).eval()
        inputs = torch.randn(images, 3, 32, 32, generator=generator).to(device)
        targets = torch.randint(0, 10, (images,), generator=generator).to(device)
        options = {"chunk_size": args.resnet_chunk} if name == "resnet18" and args.resnet_chunk else {}
        problems.append((f"{name}, random images", model, inputs, targets, options))
    return problems


def backpack_trace(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk_size: int | None = None
) -> float:
    """Σ of BackPACK's exact Gauss–Newton diagonal (`DiagGGNExact`) of the mean cross-entropy, in eval mode.
    Its converter rewrites residual sums into modules BackPACK knows (needed for the ResNet). `chunk_size`: samples
    per backward pass (the trace of a mean is the size-weighted mean of the chunks' traces), so that a large batch
    fits in memory."""
    from backpack import backpack, extend
    from backpack.extensions import DiagGGNExact

    extended = extend(copy.deepcopy(model).eval(), use_converter=not isinstance(model, nn.Sequential))
    chunk_size = chunk_size or inputs.shape[0]
    loss_fn = extend(nn.CrossEntropyLoss())
    n, total = inputs.shape[0], 0.0
    for start in range(0, n, chunk_size):
        x, y = inputs[start : start + chunk_size], targets[start : start + chunk_size]
        extended.zero_grad(set_to_none=True)
        with backpack(DiagGGNExact()):
            loss_fn(extended(x), y).backward()
        total += float(sum(p.diag_ggn_exact.double().sum() for p in extended.parameters())) * x.shape[0] / n
    return total


def backpack_chunk(model: nn.Module, inputs: torch.Tensor, classes: int = 10) -> int:
    """Images per BackPACK backward pass that fit in half the free memory of the device: DiagGGNExact carries the
    activations once per class of the loss-Hessian factor (about classes + 4 copies: 94 GB was asked for 1000
    ResNet18 images of 6.8 MB of activations each); counted here with classes + 6."""
    _, outputs = activation_elements(copy.deepcopy(model).to("meta"), tuple(inputs.shape[1:]))
    per_image = sum(outputs) * FLOAT_BYTES * (classes + 6)
    return max(1, min(inputs.shape[0], available_bytes(inputs.device) // 2 // per_image))


def print_ggn_table(problems: list[tuple], device: torch.device, with_backpack: bool) -> None:
    print(
        "| model | images | parameters | trace (ours, exact) | ours s | BackPACK DiagGGNExact | BackPACK s | "
        "BackPACK / ours time |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, model, inputs, targets, options in problems:
        loss_fn = nn.CrossEntropyLoss()
        hessian_trace(model, loss_fn, inputs[:2], targets[:2], method="exact")  # warm-up
        ours = timed(device, lambda: hessian_trace(model, loss_fn, inputs, targets, method="exact", **options))
        row = (
            f"| {name} ({device}) | {inputs.shape[0]} | {sum(p.numel() for p in model.parameters()):,} | "
            f"{ours.value:.4f} | {ours.seconds:.3f} |"
        )
        if with_backpack:
            backpack_trace(model, inputs[:2], targets[:2])  # warm-up
            chunk = backpack_chunk(model, inputs)
            if chunk < inputs.shape[0]:
                print(f"(BackPACK on {name}: {chunk} images a backward pass, to fit the free memory)", flush=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            value = backpack_trace(model, inputs, targets, chunk)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            row += f" {value:.4f} | {seconds:.3f} | {seconds / ours.seconds:.2f}× |"
        else:
            row += " – | – | – |"
        print(row, flush=True)
    print(
        "\nBoth compute the exact Gauss–Newton trace, which equals the Hessian trace for these piecewise-linear "
        "networks (BatchNorm in eval mode): the two columns agree to float32 rounding."
    )


def main() -> None:
    args = parse_arguments()
    device = torch.device(args.device)
    if args.resnet_images is None:
        args.resnet_images = RESNET_IMAGES.get(device.type, RESNET_IMAGES["cpu"])
    mlp_problem, rows = mlp_rows(args, device)
    print_mlp_table(rows)
    print_ggn_table([mlp_problem, *cifar_problems(args, device)], device, with_backpack=not args.skip_backpack)


if __name__ == "__main__":
    main()
