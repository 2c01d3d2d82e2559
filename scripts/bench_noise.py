"""Time one training step of every noise mode against a plain GD step, in the same process.

    python scripts/bench_noise.py [--repeats 15] [--widths 1000 1000 1000 1000 1000] [--batch 1024] [--device cpu]
    python scripts/bench_noise.py --model resnet18 [--batch 128] [--repeats 5]

The MLP (784-1000×5-10, 4.8 M parameters in 12 tensors) times every mode; the CIFAR ResNet18 (11.2 M parameters
in 62 tensors, SGD with momentum and weight decay as in Fig. 6, bf16 autocast and channels-last on CUDA) times
GD+noise and layer-wise noise, whose draws into 62 tensors are one `normal_` and a few foreach operations
(noise/parameter_noise.py).

Also times the copy-and-restore loop of the authors' code (aorvieto/noise_injection_overparam, main.py: every
step rebinds `param.data` to `param.data + noise` for the chosen tensors and rebinds the saved tensors
afterwards), written here from that description. Modes are interleaved round by round so drift in machine load
hits all alike; the table reports the median seconds per step and the ratio to plain GD.
"""

from __future__ import annotations

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy run.py uses, see noisereg/__init__.py)

# isort: split

import argparse
import contextlib
import math
import os
import statistics
import time

import torch
from torch import nn

from noisereg.models import MLP, build_model
from noisereg.noise import ActivationNoise, AllParamNoise, LabelNoise, LayerwiseNoise, NoiseInjectionNode, NoiseMode


class CopyAndRestoreLoop(NoiseMode):
    """The reference way: new perturbed tensors bound to `param.data`, originals rebound after backward."""

    def __init__(self, model: nn.Module, sigma: float, layer_only: bool):
        super().__init__()
        self.parameters = list(model.parameters())
        self.sigma, self.layer_only, self.iteration = sigma, layer_only, 0

    @contextlib.contextmanager
    def perturbed(self):
        saved = []
        groups = len(self.parameters)
        with torch.no_grad():
            for index, parameter in enumerate(self.parameters):
                saved.append(parameter.data)
                size, device = parameter.size(), parameter.device
                if not self.layer_only:
                    std = self.sigma / math.sqrt(groups)
                    parameter.data = parameter.data + std * torch.normal(0, 1, size=size, device=device)
                elif index == self.iteration % groups:
                    parameter.data = parameter.data + self.sigma * torch.normal(0, 1, size=size, device=device)
        try:
            yield
        finally:
            for parameter, original in zip(self.parameters, saved):
                parameter.data = original
            self.iteration += 1


def make_modes(model: nn.Module, sigma: float, n_train: int) -> dict[str, NoiseMode]:
    return {
        "gd (plain step)": NoiseMode(),
        "gd_noise": AllParamNoise(model, sigma, seed=0),
        "layerwise (random)": LayerwiseNoise(model, sigma, seed=0),
        "layerwise (cyclic, layer groups)": LayerwiseNoise(model, sigma, order="cyclic", groups="layer", seed=0),
        "label_noise": LabelNoise(flip_probability=0.1, num_classes=10, seed=0),
        "authors' loop, all": CopyAndRestoreLoop(model, sigma, layer_only=False),
        "authors' loop, layer": CopyAndRestoreLoop(model, sigma, layer_only=True),
    }


def timed_step(model, optimizer, loss_fn, noise: NoiseMode, x, y, step: int, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    noise.begin_step(step, 0)
    targets = noise.targets(x, y)
    optimizer.zero_grad(set_to_none=True)
    with noise.perturbed():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model(x), targets)
        loss.backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1000] * 5)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="mlp", choices=["mlp", "resnet18"])
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    resnet = args.model == "resnet18"
    shape = (3, 32, 32) if resnet else (1, 28, 28)
    x = torch.rand(args.batch, *shape, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def fresh_model(extra: NoiseMode | None = None) -> tuple[nn.Module, torch.optim.Optimizer]:
        if resnet:
            model = build_model("resnet18", shape, 10, torch.Generator().manual_seed(0)).to(device)
            if device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
            return model, optimizer
        model = MLP(784, 10, args.widths, generator=torch.Generator().manual_seed(0)).to(device)
        if extra is not None:
            extra.attach(model)
        return model, torch.optim.SGD(model.parameters(), lr=1e-4)

    shared_model, shared_optimizer = fresh_model()
    modes = make_modes(shared_model, args.sigma, args.batch)
    if resnet:
        modes = {name: mode for name, mode in modes.items() if name.startswith(("gd", "layerwise (random)", "authors"))}
    runs = {name: (shared_model, shared_optimizer, mode) for name, mode in modes.items()}
    # Modes that add hooks or parameters get their own model, so they do not touch the others' steps.
    hooked = {"nin": NoiseInjectionNode(args.sigma, layer=0, seed=0), "gni": ActivationNoise(args.sigma, seed=0)}
    for name, mode in ({} if resnet else hooked).items():
        model, optimizer = fresh_model(mode)
        runs[name] = (model, optimizer, mode)

    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(args.repeats + 2):  # two warm-up rounds
        for name, (model, optimizer, mode) in runs.items():
            seconds = timed_step(model, optimizer, loss_fn, mode, x, y, round_index, device)
            if round_index >= 2:
                times[name].append(seconds)

    baseline = statistics.median(times["gd (plain step)"])
    n_params = sum(p.numel() for p in shared_model.parameters())
    n_tensors = len(list(shared_model.parameters()))
    name = "CIFAR ResNet18" if resnet else f"MLP 784-{'-'.join(map(str, args.widths))}-10"
    print(
        f"{name} ({n_params / 1e6:.2f} M parameters in {n_tensors} tensors), batch {args.batch}, "
        f"{device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, median of {args.repeats} steps"
    )
    print()
    print("| mode | s/step | ratio to plain step |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.4f} | {median / baseline:.3f}x |")


if __name__ == "__main__":
    main()
