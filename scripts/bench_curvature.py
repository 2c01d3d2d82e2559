"""Benchmark of the Hessian-trace methods (a benchmark, not a test).

Part 1, one process, one trained model: MLP 784-500-500-500-10 (ReLU, cross-entropy) trained by full-batch GD on
1024 Fashion-MNIST training images, then the trace by PyHessian's `trace()` with its defaults, PyHessian with a
fixed number of probes, our Hutchinson, our Hutch++ and our exact method. Part 2: the exact method on a CIFAR
ResNet18 (3×3 stem, no max-pool) with random images and labels. Prints Markdown tables.

    python scripts/bench_curvature.py [--device cuda] [--resnet-images 1000 | --skip-resnet]

Targets: exact ≥ 15× faster than PyHessian's default `trace()`; our Hutchinson no slower per probe than PyHessian's.
"""
from __future__ import annotations

import argparse
import time

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy run.py uses, see noisereg/__init__.py)
import torch
from torch import nn

from noisereg.curvature import TraceEstimate, hessian_trace
from noisereg.data.fmnist import fashion_mnist_tensors


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=1024, help="Fashion-MNIST training images")
    parser.add_argument("--train-steps", type=int, default=200, help="full-batch GD steps before measuring")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--probes", type=int, default=100, help="probes for the fixed-budget Monte-Carlo rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None, help="root for noisereg.data.fmnist (default: its own)")
    parser.add_argument("--resnet-images", type=int, default=1000)
    parser.add_argument("--resnet-chunk", type=int, default=None, help="chunk_size for the ResNet18 exact trace")
    parser.add_argument("--skip-resnet", action="store_true")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ data and models


def fmnist_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 500), nn.ReLU(),
        nn.Linear(500, 500), nn.ReLU(), nn.Linear(500, 10),
    )  # fmt: skip


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


def cifar_resnet18() -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model.eval()


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


def mlp_rows(args, device) -> list[tuple[str, TraceEstimate]]:
    generator = torch.Generator().manual_seed(args.seed)
    images, labels, _, _ = fashion_mnist_tensors(args.data_root)
    subset = torch.randperm(images.shape[0], generator=generator)[: args.images]
    inputs, targets = images[subset].to(device), labels[subset].to(device)
    torch.manual_seed(args.seed)
    model = fmnist_mlp().to(device)
    loss_fn = nn.CrossEntropyLoss()
    loss = train_full_batch(model, loss_fn, inputs, targets, args.train_steps, args.lr)
    print(f"MLP 784-500-500-500-10 trained {args.train_steps} full-batch GD steps (lr {args.lr}) on "
          f"{args.images} FMNIST images: training loss {loss:.4f}; device {device}, "
          f"{torch.get_num_threads()} CPU threads\n")  # fmt: skip

    def trace(method, **options):
        return timed(device, lambda: hessian_trace(model, loss_fn, inputs, targets, method=method, **options))

    trace("hutchinson", probes=2)  # warm-up: first-call costs of autograd and the BLAS are not the methods'
    trace("exact")
    return [
        ("PyHessian trace() defaults (maxIter=100, tol=1e-3)", trace("pyhessian", seed=args.seed)),
        (f"PyHessian, {args.probes} probes (tol=-1: no early stop)",
         trace("pyhessian", probes=args.probes, tol=-1.0, seed=args.seed)),
        (f"ours hutchinson, {args.probes} probes", trace("hutchinson", probes=args.probes, seed=args.seed)),
        (f"ours hutchpp, {args.probes - args.probes % 3} matvecs",
         trace("hutchpp", matvecs=args.probes - args.probes % 3, seed=args.seed)),
        ("ours exact (Gauss–Newton identity)", trace("exact")),
    ]  # fmt: skip


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
        print("Ours and PyHessian drew the same Rademacher probes (same seed, same RNG calls) and got the same "
              "per-probe values vᵀHv to 1e-4: the two Hessian-vector products agree.")  # fmt: skip
    print()


def resnet_row(args, device) -> None:
    torch.manual_seed(args.seed)
    model = cifar_resnet18().to(device)
    inputs = torch.randn(args.resnet_images, 3, 32, 32, device=device)
    targets = torch.randint(0, 10, (args.resnet_images,), device=device)
    loss_fn = nn.CrossEntropyLoss()
    options = {"chunk_size": args.resnet_chunk} if args.resnet_chunk else {}
    hessian_trace(model, loss_fn, inputs[:2], targets[:2], method="exact")  # warm-up
    estimate = timed(device, lambda: hessian_trace(model, loss_fn, inputs, targets, method="exact", **options))
    parameters = sum(p.numel() for p in model.parameters())
    print("| model | images | parameters | trace (exact) | seconds | images / s | backward passes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| CIFAR ResNet18, eval mode, random images and labels ({device}) | {args.resnet_images} | "
        f"{parameters:,} | {estimate.value:.2f} | {estimate.seconds:.1f} | "
        f"{args.resnet_images / estimate.seconds:.1f} | {estimate.matvecs} |"
    )


def main() -> None:
    args = parse_arguments()
    device = torch.device(args.device)
    print_mlp_table(mlp_rows(args, device))
    if not args.skip_resnet:
        resnet_row(args, device)


if __name__ == "__main__":
    main()
