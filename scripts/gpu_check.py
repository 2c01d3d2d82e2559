"""What a short GPU loan should measure, in one command that fits it: `bash scripts/gpu_check.sh <dir>`.

    python scripts/gpu_check.py <dir> [--allow-cpu] [--budget-seconds 540]

Parts, each in a child process stopped at its own time budget (and at what is left of the whole), so a slow part
never eats the others; the parts it could not finish are listed as skipped, with the reason:

- `versions`: GPU, driver memory, Python, torch, CUDA and cuDNN versions; a bf16 and an fp32 matmul's TFLOP/s.
- `tests`: tests/test_gpu.py (pytest, one process).
- `epoch`: one ResNet18 training epoch at batch 128 on 50,000 CIFAR-shaped uint8 images made on the device, through
  our on-device pipeline (eager fp32; bf16 autocast + channels_last; the same under torch.compile) against
  torchvision's DataLoader with PIL transforms (scripts/bench_data.py's two pipelines).
- `trace`: the exact Hessian trace of ResNet18 (eval mode) on 5,000 random images, ours against BackPACK's
  DiagGGNExact (scripts/bench_curvature.py), same process, same inputs.
- `noise`: GD+noise and layer-wise step time against a plain step, ResNet18 at batch 128 and the 784-1000⁵-10 MLP
  at batch 1024 (scripts/bench_noise.py's modes).

Every figure goes to <dir>/gpu_check.json, rewritten after each part (a kill keeps the parts done). Without a GPU
it says so in one line and exits 0 with nothing run; `--allow-cpu` runs every part at small sizes on the CPU (what
the test suite does, so this script cannot rot).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the benchmark scripts' pipelines and steps

# (part, seconds on a GPU): 9 minutes in all with the start-up of each child process.
BUDGETS = {"versions": 30, "tests": 150, "epoch": 170, "trace": 110, "noise": 50}


# ------------------------------------------------------------------------------------------------ the parts


def versions(device, small: bool) -> dict:
    import torch

    from noisereg.cost import best_seconds

    result = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        result.update(
            gpu=properties.name,
            gpu_memory_gib=round(properties.total_memory / 2**30, 1),
            capability=f"{properties.major}.{properties.minor}",
        )
    n = 1024 if small else 8192
    for dtype in (torch.bfloat16, torch.float32):
        a = torch.randn(n, n, device=device, dtype=dtype)
        seconds = best_seconds(device, lambda: a @ a, repeats=5)
        result[f"matmul_{str(dtype).removeprefix('torch.')}_tflops"] = round(2 * n**3 / seconds / 1e12, 3)
    return result


def tests(device, small: bool, json_path: Path) -> dict:
    """tests/test_gpu.py in one process (the GPU machine has no pytest-xdist: the project's `-n auto` is dropped)."""
    report = json_path.with_suffix(".junit.xml")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_gpu.py",
        "-q",
        "-rs",
        "-o",
        "addopts=",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    import xml.etree.ElementTree as ElementTree

    suite = ElementTree.parse(report).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [
        case.get("name")
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    return {
        **counts,
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed_tests": failed,
        "exit_status": completed.returncode,
        "last_line": lines[-1] if lines else "",
    }


def epoch(device, small: bool) -> dict:
    import torch
    from bench_data import dataloader, make_step, ours

    from noisereg.models import build_model

    n_images, batch = (256, 32) if small else (50_000, 128)
    widths = {"widths": [8, 16, 16, 16]} if small else {}
    images = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (n_images,), device=device)
    on_gpu = device.type == "cuda"

    def step(bf16_channels_last: bool, compile_model: bool = False):
        model = build_model("resnet18", (3, 32, 32), 10, torch.Generator().manual_seed(0), **widths).to(device)
        if bf16_channels_last:
            model = model.to(memory_format=torch.channels_last)
        return make_step(model, device, compile_model, autocast=bf16_channels_last and on_gpu)

    workers = 0 if small else min(8, os.cpu_count() or 1)
    rows = {
        "ours, eager fp32": lambda max_steps=None, s=step(False): ours(
            images, labels, batch, device, s, False, max_steps
        ),
        "ours, bf16 + channels_last": lambda max_steps=None, s=step(True): ours(
            images, labels, batch, device, s, True, max_steps
        ),
        f"torchvision DataLoader ({workers} workers, PIL transforms), bf16 + channels_last": lambda max_steps=None, s=step(True): (
            dataloader(images.cpu(), labels.cpu(), batch, device, s, True, workers, max_steps)
        ),
    }
    skipped = {}
    if on_gpu:
        rows["ours, bf16 + channels_last + torch.compile"] = lambda max_steps=None, s=step(True, compile_model=True): (
            ours(images, labels, batch, device, s, True, max_steps)
        )
    else:
        skipped["ours, bf16 + channels_last + torch.compile"] = "on a GPU only (compiling for the CPU takes minutes)"
    result = {"images": n_images, "batch": batch, "steps_per_epoch": -(-n_images // batch), "rows": {}}
    for name, run in rows.items():
        warm_up = time.perf_counter()
        run(max_steps=3)  # first-call costs, compilation, worker start-up
        warm_up = time.perf_counter() - warm_up
        seconds = run()
        result["rows"][name] = {
            "epoch_s": round(seconds, 3),
            "images_per_s": round(n_images / seconds, 1),
            "warm_up_s": round(warm_up, 2),
        }
        write_partial(result)
    reference = next(v for k, v in result["rows"].items() if k.startswith("torchvision"))["epoch_s"]
    for row in result["rows"].values():
        row["speed_up_over_dataloader"] = round(reference / row["epoch_s"], 2)
    result["not_run"] = skipped
    return result


def trace(device, small: bool) -> dict:
    import torch
    from bench_curvature import backpack_trace
    from torch import nn

    from noisereg.cost import best_seconds
    from noisereg.curvature import hessian_trace
    from noisereg.models import build_model

    n_images, chunk = (16, 8) if small else (5000, 250)
    widths = {"widths": [8, 16, 16, 16]} if small else {}
    generator = torch.Generator().manual_seed(0)
    model = build_model("resnet18", (3, 32, 32), 10, generator, **widths).to(device).eval()
    inputs = torch.randn(n_images, 3, 32, 32, generator=generator).to(device)
    targets = torch.randint(0, 10, (n_images,), generator=generator).to(device)
    loss_fn = nn.CrossEntropyLoss()
    hessian_trace(model, loss_fn, inputs[:2], targets[:2], method="exact")  # warm-up
    values = {}
    ours = best_seconds(
        device, lambda: values.__setitem__("ours", hessian_trace(model, loss_fn, inputs, targets, method="exact").value)
    )
    result = {
        "images": n_images,
        "parameters": sum(p.numel() for p in model.parameters()),
        "ours_exact": values["ours"],
        "ours_s": round(ours, 3),
    }
    write_partial(result)
    backpack_trace(model, inputs[:2], targets[:2])  # warm-up
    theirs = best_seconds(device, lambda: values.__setitem__("backpack", backpack_trace(model, inputs, targets, chunk)))
    result.update(
        backpack_diag_ggn_exact=values["backpack"],
        backpack_s=round(theirs, 3),
        backpack_chunk=chunk,
        backpack_over_ours_time=round(theirs / ours, 2),
        relative_difference=abs(values["backpack"] - values["ours"]) / abs(values["ours"]),
    )
    return result


def noise(device, small: bool) -> dict:
    import torch
    from bench_noise import timed_step
    from torch import nn

    from noisereg.models import MLP, build_model
    from noisereg.noise import AllParamNoise, LayerwiseNoise, NoiseMode

    repeats = 3 if small else 20
    resnet_batch, mlp_batch, mlp_width = (8, 64, 64) if small else (128, 1024, 1000)
    problems = {
        f"resnet18, batch {resnet_batch}": (
            lambda: build_model(
                "resnet18",
                (3, 32, 32),
                10,
                torch.Generator().manual_seed(0),
                **({"widths": [8, 16, 16, 16]} if small else {}),
            ),
            (3, 32, 32),
            resnet_batch,
        ),
        f"MLP 784-{mlp_width}x5-10, batch {mlp_batch}": (
            lambda: MLP(784, 10, [mlp_width] * 5, generator=torch.Generator().manual_seed(0)),
            (1, 28, 28),
            mlp_batch,
        ),
    }
    result = {}
    for name, (make_model, shape, batch) in problems.items():
        model = make_model().to(device)
        if len(shape) == 3 and shape[0] == 3 and device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        modes = {
            "plain step": NoiseMode(),
            "gd_noise": AllParamNoise(model, 0.05, seed=0),
            "layerwise": LayerwiseNoise(model, 0.05, seed=0),
        }
        x = torch.rand(batch, *shape, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        times = {mode: [] for mode in modes}
        for round_index in range(repeats + 2):  # interleaved rounds, two of warm-up
            for mode_name, mode in modes.items():
                seconds = timed_step(model, optimizer, nn.CrossEntropyLoss(), mode, x, y, round_index, device)
                if round_index >= 2:
                    times[mode_name].append(seconds)
        plain = statistics.median(times["plain step"])
        result[name] = {
            mode: {
                "step_s": round(statistics.median(values), 6),
                "ratio_to_plain": round(statistics.median(values) / plain, 3),
            }
            for mode, values in times.items()
        }
        write_partial(result)
    return result


PARTS = {"versions": versions, "tests": tests, "epoch": epoch, "trace": trace, "noise": noise}
PARTIAL: Path | None = None  # a child's result file: what it finished is kept when its budget stops it


def write_partial(result: dict) -> None:
    if PARTIAL is not None:
        PARTIAL.write_text(json.dumps(result, indent=1))


# ------------------------------------------------------------------------------------------------ the driver


def run_part(name: str, arguments, budget: float, folder: Path) -> dict:
    """Run one part in a child process, stopped after `budget` seconds; its record for the JSON."""
    partial = folder / f"part_{name}.json"
    partial.unlink(missing_ok=True)
    command = [sys.executable, __file__, str(folder), "--part", name, *(["--allow-cpu"] if arguments.allow_cpu else [])]
    start = time.monotonic()
    try:
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=budget)
        status = "done" if completed.returncode == 0 else "failed"
        output = (completed.stdout + completed.stderr).strip().splitlines()
        reason = "" if status == "done" else (output[-1] if output else f"exit status {completed.returncode}")
    except subprocess.TimeoutExpired:
        status, reason = "skipped", f"stopped at its budget of {budget:.0f} s; what it finished is kept"
    record = {"status": status, "seconds": round(time.monotonic() - start, 1), "budget_s": round(budget)}
    if reason:
        record["reason"] = reason
    if partial.exists():
        record["result"] = json.loads(partial.read_text())
        partial.unlink()
    return record


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="where gpu_check.json goes (created)")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="without a GPU, run every part at small sizes on the CPU (the test suite's check of this script)",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=sum(BUDGETS.values()),
        help=f"the whole check's time (default {sum(BUDGETS.values())} s: 9 minutes)",
    )
    parser.add_argument("--only", nargs="+", choices=list(PARTS), help="run only these parts")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)  # a child process: one part
    arguments = parser.parse_args(argv)
    if not math.isfinite(arguments.budget_seconds) or arguments.budget_seconds <= 0:
        print(
            f"gpu_check: error: --budget-seconds {arguments.budget_seconds:g}: give a finite number of seconds above "
            f"0, e.g. --budget-seconds {sum(BUDGETS.values())}",
            file=sys.stderr,
        )
        return 2
    import torch

    import noisereg  # noqa: F401  (before torch: the OpenMP wait policy, see noisereg/__init__.py)

    folder = Path(arguments.folder)
    on_gpu = torch.cuda.is_available()
    if not on_gpu and not arguments.allow_cpu:
        print(
            "gpu_check: no GPU here (torch.cuda.is_available() is False): nothing run; --allow-cpu runs every part "
            "at small sizes on the CPU"
        )
        return 0
    device = torch.device("cuda" if on_gpu else "cpu")
    small = not on_gpu
    if arguments.part:  # a child: one part, its result in part_<name>.json
        global PARTIAL
        PARTIAL = folder / f"part_{arguments.part}.json"
        part = PARTS[arguments.part]
        result = part(device, small, PARTIAL) if arguments.part == "tests" else part(device, small)
        write_partial(result)
        return 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            f"gpu_check: error: cannot create {folder} ({error.strerror}); give a folder it can write", file=sys.stderr
        )
        return 2
    out = folder / "gpu_check.json"
    deadline = time.monotonic() + arguments.budget_seconds
    scale = sum(BUDGETS.values()) / arguments.budget_seconds
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "small_sizes_on_cpu": small, "parts": {}}
    for name in arguments.only or PARTS:
        left = deadline - time.monotonic()
        if left < 5:
            report["parts"][name] = {"status": "skipped", "reason": "no time left in the check's budget"}
        else:
            print(f"gpu_check: {name} (budget {min(BUDGETS[name] / scale, left):.0f} s)...", flush=True)
            report["parts"][name] = run_part(name, arguments, min(BUDGETS[name] / scale, left), folder)
        record = report["parts"][name]
        print(
            f"gpu_check: {name}: {record['status']}"
            + (f" ({record['reason']})" if "reason" in record else "")
            + f"; {json.dumps(record.get('result', {}))[:400]}",
            flush=True,
        )
        out.write_text(json.dumps(report, indent=1))
    skipped = [name for name, record in report["parts"].items() if record["status"] != "done"]
    print(f"gpu_check: wrote {out}" + (f"; not done: {', '.join(skipped)}" if skipped else "; every part done"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
