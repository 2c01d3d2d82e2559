"""Images per second of CIFAR-10 training through our pipeline against a torchvision DataLoader, same process.

    python scripts/bench_data.py [--model toy_cnn] [--batch 1024] [--images 10240] [--device cpu] [--workers 0 2]
                                 [--root DIR] [--compile]

Ours: the images as one uint8 tensor on the device, batches cut by `BatchIterator` (a slice of a per-epoch
permutation), crop (zero padding 4), flip and normalisation as batched tensor operations (data/images.py).
Reference, the authors' pipeline (torchvision's CIFAR10 dataset): a `DataLoader` over the images as 32×32×3 uint8
arrays, each turned into a PIL image and put through RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor()
and Normalize(mean, std), batches moved to the device. Both feed the same model the same number of SGD steps (one
epoch of `--images` images). With `--root` the images are CIFAR-10's own (read by noisereg.data.cifar10), otherwise
random uint8 images of CIFAR's shape, which cost the pipelines the same. Rows "data only" time the input
pipeline without the model. Prints a Markdown table: images per second and the ratio to the DataLoader with 0
workers (same process).
"""

from __future__ import annotations

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy run.py uses, see noisereg/__init__.py)

# isort: split

import argparse
import time

import numpy as np
import torch
from torch import nn

from noisereg.data.batches import BatchIterator
from noisereg.data.cifar10 import CROP_PADDING, MEAN, STD, cifar10_tensors
from noisereg.data.images import ImagePipeline
from noisereg.models import build_model


class ArrayImages(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per sample: an HWC uint8 array → PIL image → transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model: nn.Module, device: torch.device, compile_model: bool, autocast: bool | None = None):
    """One SGD step of Fig. 6's recipe; `autocast`: bf16 autocast (default: on CUDA)."""
    network = torch.compile(model, dynamic=False) if compile_model else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    autocast = device.type == "cuda" if autocast is None else autocast

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(network(inputs), targets)
        loss.backward()
        optimizer.step()

    return step


def ours(images, labels, batch, device, step, channels_last, max_steps: int | None = None) -> float:
    """Seconds for one epoch (or its first `max_steps` batches: a warm-up)."""
    pipeline = ImagePipeline(MEAN, STD, crop_padding=CROP_PADDING, flip=True).to(device, channels_last=channels_last)
    batches = BatchIterator(images.to(device), labels.to(device), batch, seed=0, pipeline=pipeline)
    synchronise(device)
    start = time.perf_counter()
    for _ in range(min(batches.steps_per_epoch, max_steps or batches.steps_per_epoch)):
        b = next(batches)
        if step is not None:
            step(b.inputs, b.targets)
    synchronise(device)
    return time.perf_counter() - start


def dataloader(images, labels, batch, device, step, channels_last, workers, max_steps: int | None = None) -> float:
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=CROP_PADDING),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    dataset = ArrayImages(images.permute(0, 2, 3, 1).numpy(), labels.numpy(), transform)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    synchronise(device)
    start = time.perf_counter()
    for index, (x, y) in enumerate(loader):
        if max_steps is not None and index == max_steps:
            break
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        if step is not None:
            step(x, y)
    synchronise(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy_cnn", choices=["toy_cnn", "wide_cnn", "resnet18"])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--images", type=int, default=10240, help="images in the timed epoch (50000: a full one)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to time")
    parser.add_argument("--root", default=None, help="a CIFAR-10 root (cifar-10-batches-py) instead of random images")
    parser.add_argument("--compile", action="store_true", help="also time ours with torch.compile")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per row (the best is reported)")
    args = parser.parse_args()
    device = torch.device(args.device)
    channels_last = device.type == "cuda"
    if args.root:
        images, labels = cifar10_tensors(args.root)[:2]
        images, labels, source = images[: args.images], labels[: args.images], f"CIFAR-10 from {args.root}"
    else:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (args.images,), generator=generator)
        source = "random uint8 images of CIFAR-10's shape"

    def model_step(compile_model: bool = False):
        model = build_model(args.model, (3, 32, 32), 10, torch.Generator().manual_seed(0)).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return make_step(model, device, compile_model)

    step = model_step()
    runners = {
        f"DataLoader + PIL transforms, {workers} workers, {args.model}": (
            lambda w=workers: dataloader(images, labels, args.batch, device, step, channels_last, w)
        )
        for workers in args.workers
    }
    runners[f"ours (uint8 on {device.type}, batched crop/flip/normalise), {args.model}"] = lambda: ours(
        images, labels, args.batch, device, step, channels_last
    )
    if args.compile:
        compiled = model_step(compile_model=True)
        runners[f"ours, {args.model} under torch.compile"] = lambda: ours(
            images, labels, args.batch, device, compiled, channels_last
        )
    runners[f"DataLoader + PIL transforms, {args.workers[0]} workers, data only"] = lambda: dataloader(
        images, labels, args.batch, device, None, channels_last, args.workers[0]
    )
    runners["ours, data only"] = lambda: ours(images, labels, args.batch, device, None, channels_last)
    for run in runners.values():
        run()  # warm-up epoch (first-call costs, worker start-up, compilation)
    # Rows interleaved epoch by epoch, so drift in the machine's load hits all alike; the best epoch of each.
    seconds = {name: float("inf") for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            seconds[name] = min(seconds[name], run())
    rows = [(name, args.images / value) for name, value in seconds.items()]

    print(
        f"\n{args.model}, batch {args.batch}, one epoch of {args.images} images ({source}), {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeats} epochs\n"
    )
    # Ratios to the first DataLoader row of the same kind (with the model, or data only).
    first = {kind: next(r for n, r in rows if ("data only" in n) == kind) for kind in (False, True)}
    print(f"| pipeline | images / s | ratio to the DataLoader with {args.workers[0]} workers |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / first['data only' in name]:.2f}× |")


if __name__ == "__main__":
    main()
