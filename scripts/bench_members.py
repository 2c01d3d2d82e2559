"""Members (`trainer.members=N`) against N separate runs: µs per member-step, in the same process, interleaved.

    python scripts/bench_members.py [--members 1 10 100] [--steps 200000] [--repeats 3] [--setups relu_1d ...]

Each setup is an experiment's config composed by Hydra (as `python run.py` would), evaluation and probes off, run
for `--steps` steps on one thread in compiled blocks of 10^4 steps (the Blanc experiments' trainer settings; the
full-batch setups take the same blocks), or one eager step per call for parameter noise. "Separate" times one run
of seed 0 (`run_loop`, what `seed=k` alone runs) and counts N of them; "members" times one batched job of N members (`run_members`). Compilation is timed
apart (a two-step run first). The table gives the median µs per member-step and the throughput gain,
separate / members.
"""

from __future__ import annotations

import noisereg  # noqa: F401  (before torch: the OpenMP wait policy run.py uses, see noisereg/__init__.py)

# isort: split

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from noisereg.app import build, member_config, prepare
from noisereg.config import register_with_hydra, translate_overrides
from noisereg.train.loop import run_loop
from noisereg.train.members import run_members

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
COMMON = [
    "trainer.threads=1",
    "trainer.progress_bar=false",
    "curvature.every=null",
    "logger.mode=disabled",
    "trainer.members=1",
]
BLOCKS = ["trainer.steps_per_call=10000", "trainer.compile=true"]
ONE_STEP = ["trainer.steps_per_call=1", "trainer.compile=false"]  # parameter noise is drawn at every step
SETUPS = {  # name: overrides of `python run.py`
    "relu_1d": ["+experiment=blanc_fig2_relu_interpolation", *BLOCKS],
    "factorized_matrix": ["+experiment=blanc_fig1_matrix_sensing", *BLOCKS],
    "smooth_two_layer tanh": ["+experiment=blanc_thm3_single_point", *BLOCKS],
    "linear net (Orvieto Fig. 2), GD": ["+experiment=fig2_synthetic", "noise=gd", *BLOCKS],
    "linear net (Orvieto Fig. 2), layer-wise, one step per call": [
        "+experiment=fig2_synthetic",
        "noise=layerwise",
        *ONE_STEP,
    ],
    "MLP 784-32-32-10 (Camuto), GD": [
        "+experiment=camuto_fig3_explicit_vs_gni",
        "noise=gd",
        "trainer.batch_size=32",
        "dataset.n_train=512",
        "dataset.n_test=100",
        *BLOCKS,
    ],
}


def config(setup: str, steps: int):
    register_with_hydra()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        overrides = translate_overrides(SETUPS[setup] + COMMON + [f"trainer.steps={steps}"], CONFIG_DIR)  # as run.py
        cfg = compose(config_name="config", overrides=overrides)
    with open_dict(cfg):  # no measurement between the timed steps but the last
        cfg.trainer.eval_every = steps
        for node in cfg.probes.values():
            node.every = None
    return cfg


def experiments(cfg, members: int) -> list:
    return [build(prepare(member_config(cfg, seed))) for seed in range(members)]


def separate(cfg) -> float:
    """Seconds of one run (seed 0)."""
    (experiment,) = experiments(cfg, 1)
    start = time.perf_counter()
    run_loop(experiment.state, experiment.data, experiment.loss_fn, experiment.settings, lambda row, artifacts: None)
    return time.perf_counter() - start


def batched(cfg, members: int) -> float:
    """Seconds of one job of `members` members."""
    group = experiments(cfg, members)
    first = group[0]
    start = time.perf_counter()
    run_members(
        [e.state for e in group],
        [e.data for e in group],
        first.loss_fn,
        first.settings,
        [lambda row, artifacts: None] * members,
        [None] * members,
    )
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--steps",
        type=int,
        default=200_000,
        help="steps of the compiled setups (a hundredth of them for one step per call)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--setups", nargs="*", help=f"a subset of: {', '.join(SETUPS)} (a prefix is enough)")
    arguments = parser.parse_args(argv)
    chosen = [s for s in SETUPS if not arguments.setups or any(s.startswith(p) for p in arguments.setups)]
    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f} at start, {arguments.steps} steps\n")
    print(
        "| model | N | separate runs, µs per member-step | members, µs per member-step | throughput gain | "
        "members' wall time / one run's | compile s (one, members) |"
    )
    print("|---|---|---|---|---|---|---|")
    for setup in chosen:
        steps = arguments.steps if "trainer.compile=true" in SETUPS[setup] else arguments.steps // 100
        cfg, warm = config(setup, steps), config(setup, 2)
        for members in arguments.members:
            start = time.perf_counter()
            separate(warm)
            compile_one = time.perf_counter() - start
            start = time.perf_counter()
            batched(warm, members)
            compile_members = time.perf_counter() - start
            one, together = [], []
            for _ in range(arguments.repeats):  # interleaved: drift in the machine's load hits both alike
                one.append(separate(cfg))
                together.append(batched(cfg, members))
            one_s, together_s = statistics.median(one), statistics.median(together)
            per_separate = one_s / steps * 1e6
            per_member = together_s / (steps * members) * 1e6
            gain = per_separate / per_member
            print(
                f"| {setup} | {members} | {per_separate:.2f} | {per_member:.2f} | {gain:.1f}× | "
                f"{together_s / one_s:.2f} | {compile_one:.1f}, {compile_members:.1f} |",
                flush=True,
            )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end (2 cores: above ~1 the timings are inflated)")


if __name__ == "__main__":
    main(sys.argv[1:])
