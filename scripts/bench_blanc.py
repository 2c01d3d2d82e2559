"""Steps per second of Blanc et al.'s experiments: our trainer against a plain torch loop, in the same process.

    python scripts/bench_blanc.py [--steps 200000] [--plain-steps 3000] [--repeats 3]

For each of the three models (the 1-D ReLU net of Figs 2-3, matrix sensing at d = 20 of Fig. 1, the tanh net of
Theorem 3), batch size 1, label noise, constant learning rate:

- plain torch loop: the textbook step (forward, loss.backward(), optimizer.step(), fresh label noise), hand-written;
- trainer, one step per call: noisereg's trainer as the Orvieto experiments run it (trainer.steps_per_call=1);
- trainer, blocks (eager): trainer.steps_per_call=100000, trainer.compile=false;
- trainer, blocks (compiled): trainer.steps_per_call=100000, trainer.compile=true: what the Blanc experiments run.

The trainer is timed through `noisereg.train.train` (evaluations every 1e5 steps included); compilation is timed
separately (one run of a single block before the timed run). Methods are interleaved round by round, so drift in the
machine's load hits all alike; the table reports the median µs per step and the speed-up over the plain loop, then
what the Figs 2-3 budget (15 initialisations × 1e7 steps) would take at that speed on one core.
"""

from __future__ import annotations

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy run.py uses, see noisereg/__init__.py)

# isort: split

import argparse
import os
import statistics
import time

import torch

from noisereg.data import matrix_sensing, points_1d, single_point
from noisereg.losses import build_loss
from noisereg.models import build_model
from noisereg.noise import LabelNoise
from noisereg.train import OptimizerSettings, TrainerSettings, train

SETUPS = {  # model, its dataset, learning rate, label-noise std (the experiments' recipes)
    "relu_1d (Figs 2-3), m=100": ("relu_1d", points_1d, {}, 0.003, 0.15),
    "factorized_matrix (Fig. 1), d=20": ("factorized_matrix", matrix_sensing, {}, 6e-4, 0.3162),
    "smooth_two_layer tanh (Thm 3), m=20": ("smooth_two_layer", single_point, {"activation": "tanh"}, 0.05, 0.5),
}


def build(setup: str):
    name, dataset, options, lr, delta = SETUPS[setup]
    data = dataset()
    model = build_model(name, data.input_shape, 1, torch.Generator().manual_seed(0), **options)
    noise = LabelNoise(delta=delta, seed=1)
    noise.attach(model, data)
    return model, data, noise, lr


def plain_loop(setup: str, steps: int) -> float:
    """Seconds per step of the textbook loop."""
    model, data, _, lr = build(setup)
    _, _, _, _, delta = SETUPS[setup]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = build_loss("mse")
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        index = torch.randint(data.n_train, (1,), generator=generator)
        targets = data.train_targets[index] + delta * torch.randn(1, 1, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(data.train_inputs[index]), targets).backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def trainer(setup: str, steps: int, steps_per_call: int, compile_: bool) -> tuple[float, float]:
    """(seconds per step, seconds of compilation) of noisereg's trainer."""
    model, data, noise, lr = build(setup)
    settings = TrainerSettings(
        loss="mse",
        batch_size=1,
        steps=steps,
        optimizer=OptimizerSettings(lr=lr),
        eval_every=100_000,
        progress_bar=False,
        steps_per_call=steps_per_call,
        compile=compile_,
    )
    compiling = 0.0
    if compile_:  # one short run first: what compiling costs (a new run compiles again, from inductor's disk cache)
        warm = TrainerSettings(**{**settings.__dict__, "steps": 2})
        start = time.perf_counter()
        train(*build(setup)[:3], warm, lambda row: None)
        compiling = time.perf_counter() - start
    start = time.perf_counter()
    train(model, data, noise, settings, lambda row: None, seed=1)
    return (time.perf_counter() - start) / steps, compiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000, help="steps per timed run of the block paths")
    parser.add_argument("--plain-steps", type=int, default=3000, help="steps per timed run of the one-step paths")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f} at start\n")
    print(
        "| model | plain torch loop | trainer, one step per call | trainer, blocks (eager) | "
        "trainer, blocks (compiled) | compile s | speed-up (compiled / plain) | Figs 2-3 budget at that speed |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for setup in SETUPS:
        times: dict[str, list[float]] = {key: [] for key in ("plain", "one", "eager", "compiled")}
        compiling = []
        for _ in range(arguments.repeats):
            times["plain"].append(plain_loop(setup, arguments.plain_steps))
            times["one"].append(trainer(setup, arguments.plain_steps, 1, False)[0])
            times["eager"].append(trainer(setup, arguments.plain_steps, 100_000, False)[0])
            per_step, seconds = trainer(setup, arguments.steps, 100_000, True)
            times["compiled"].append(per_step)
            compiling.append(seconds)
        median = {key: statistics.median(values) for key, values in times.items()}
        budget_min = 15 * 10**7 * median["compiled"] / 60
        cells = " | ".join(f"{median[key] * 1e6:.1f} µs" for key in ("plain", "one", "eager", "compiled"))
        speedup = median["plain"] / median["compiled"]
        print(
            f"| {setup} | {cells} | {statistics.median(compiling):.1f} | {speedup:.0f}× | {budget_min:.0f} min |",
            flush=True,
        )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end (2 cores: above ~1 the timings are inflated)")


if __name__ == "__main__":
    main()
