"""The GPU loan's three commands, run here on the CPU so they cannot rot: scripts/gpu_check.sh (its no-GPU line and
its parts at small sizes), scripts/reproduce_gpu.py at scale=smoke, and scripts/gpu_bundle.sh's wheels, and both
commands on a Python with only the GPU machine's packages and the bundle; with the cost model they plan by and the
training path without W&B, submitit, pyhessian or BackPACK (what the bundle leaves out)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose, skip_without_fmnist, stop_once_training

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # the no-GPU path, also where this suite runs on a GPU machine


def run_script(*command: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(command),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, WANDB_SILENT="true", **NO_GPU, **(env or {})),
    )


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"noisereg_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ gpu_check.sh


def test_gpu_check_without_a_gpu_says_so_in_one_line_and_runs_nothing(tmp_path):
    folder = tmp_path / "check"
    completed = run_script("bash", "scripts/gpu_check.sh", str(folder))
    assert completed.returncode == 0, completed.stderr
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    assert len(lines) == 1 and "no GPU" in lines[0], lines
    assert not folder.exists()


def test_gpu_check_runs_its_parts_on_the_cpu_and_stops_a_slow_part_at_its_budget(tmp_path):
    folder = tmp_path / "check"
    completed = run_script("bash", "scripts/gpu_check.sh", str(folder), "--allow-cpu")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads((folder / "gpu_check.json").read_text())
    parts = result["parts"]
    assert set(parts) == {"versions", "tests", "epoch", "trace", "noise"}
    assert all(part["status"] == "done" for part in parts.values()), parts
    assert parts["versions"]["result"]["torch"] == torch.__version__
    assert parts["tests"]["result"]["exit_status"] in (0, 5) and parts["tests"]["result"]["failures"] == 0
    # ours and BackPACK's exact Hessian trace of the same ResNet18 on the same images agree
    trace = parts["trace"]["result"]
    assert trace["relative_difference"] < 1e-4, trace
    assert all(mode["step_s"] > 0 for problem in parts["noise"]["result"].values() for mode in problem.values())

    # 12 s for the check: the epoch part gets 170/510 of it, 4 s, less than its child needs to import torch and
    # time three pipelines; it is stopped and said so, and the check goes on
    stopped = run_script(
        "bash",
        "scripts/gpu_check.sh",
        str(tmp_path / "stopped"),
        "--allow-cpu",
        "--only",
        "epoch",
        "--budget-seconds",
        "12",
    )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    parts = json.loads((tmp_path / "stopped" / "gpu_check.json").read_text())["parts"]
    assert parts["epoch"]["status"] == "skipped" and "stopped at its budget" in parts["epoch"]["reason"], parts
    assert "not done: epoch" in stopped.stdout


# ------------------------------------------------------------------------------------------------ reproduce_gpu.py


def test_reproduce_gpu_at_smoke_scale_plans_runs_reports_and_counts_what_is_done(tmp_path):
    arguments = [
        sys.executable,
        "scripts/reproduce_gpu.py",
        "--scale",
        "smoke",
        "--seeds",
        "1",
        "--no-images",
        "--only",
        "fig9_mlp3",
        "levi_fig3_mlp_ce",
        "--out",
        str(tmp_path / "gpu"),
    ]
    first = run_script(*arguments, "--budget-minutes", "10", env={"PYTHONPATH": str(ROOT / "src")})
    assert first.returncode == 0, first.stdout + first.stderr
    plan = [line for line in first.stdout.splitlines() if line.startswith("  ")]
    assert len(plan) == 2 and all("estimated" in line and line.endswith(": runs") for line in plan), first.stdout
    planned_jobs = {line.split(": ")[0].split(". ")[1]: int(line.split(": ")[1].split(" jobs")[0]) for line in plan}
    for experiment, jobs in planned_jobs.items():
        summaries = list((tmp_path / "gpu" / "runs" / experiment).glob("*/summary.json"))
        assert len(summaries) == jobs, (experiment, jobs)  # the plan counts the jobs the sweep launches
        assert all(json.loads(path.read_text())["status"] in ("completed", "diverged") for path in summaries)
    assert (tmp_path / "gpu" / "REPORT.md").read_text().count("levi_fig3_mlp_ce") >= 1

    # launched again with a second seed: the finished jobs count as done, and the plan scales its FLOP count by
    # the measured times of the runs finished here (an experiment with every job done is skipped: the test below)
    more = run_script(*arguments[:5], "2", *arguments[6:], "--plan-only", env={"PYTHONPATH": str(ROOT / "src")})
    assert more.returncode == 0, more.stdout + more.stderr
    assert more.stdout.count("the ratio measured on") == 2, more.stdout
    assert "fig9_mlp3: 6 jobs (3 done)" in more.stdout and "levi_fig3_mlp_ce: 8 jobs (4 done)" in more.stdout
    # and run: a second seed changes Hydra's job numbers, not the folders (named by the jobs' settings), so nothing
    # is refused and every job finishes
    second = run_script(
        *arguments[:5],
        "2",
        "--no-images",
        "--only",
        "fig9_mlp3",
        "--out",
        str(tmp_path / "gpu"),
        "--budget-minutes",
        "10",
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert second.returncode == 0 and "refused" not in second.stdout, second.stdout + second.stderr
    folders = sorted(path.parent.name for path in (tmp_path / "gpu" / "runs" / "fig9_mlp3").glob("*/summary.json"))
    assert folders == sorted(
        f"noise={noise},seed={seed}" for noise in ("gd", "gd_noise", "layerwise") for seed in (0, 1)
    )
    # records of another scale are not this plan's: none of the paper-scale jobs is done
    paper = run_script(
        sys.executable,
        "scripts/reproduce_gpu.py",
        "--scale",
        "paper",
        "--seeds",
        "2",
        "--only",
        "fig9_mlp3",
        "--out",
        str(tmp_path / "gpu"),
        "--plan-only",
        "--assume",
        "600,50,150,20",
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert paper.returncode == 0 and "fig9_mlp3: 6 jobs (0 done)" in paper.stdout, paper.stdout + paper.stderr


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["--assume", "0,0,0,0"], "--assume 0,0,0,0: the speeds must be finite and above 0"),
        (["--assume", "600,nan,150,20"], "--assume 600,nan,150,20"),
        (["--assume", "600,50,-1,20"], "the times finite and at least 0"),
        (["--budget-minutes", "nan"], "--budget-minutes nan"),
        (["--budget-minutes", "inf"], "--budget-minutes inf"),
        (["--budget-minutes", "-3"], "--budget-minutes -3"),
    ],
)
def test_reproduce_gpu_refuses_impossible_numbers_in_one_line(tmp_path, arguments, fragment):
    completed = run_script(
        sys.executable,
        "scripts/reproduce_gpu.py",
        "--plan-only",
        "--out",
        str(tmp_path / "gpu"),
        *arguments,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "gpu").exists()


@pytest.mark.parametrize("budget", ["0", "-5", "nan", "inf"])
def test_gpu_check_refuses_a_budget_that_is_not_a_time_in_one_line(tmp_path, budget):
    completed = run_script(
        "bash", "scripts/gpu_check.sh", str(tmp_path / "check"), "--allow-cpu", "--budget-seconds", budget
    )
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1 and f"--budget-seconds {budget}" in lines[0], lines
    assert not (tmp_path / "check").exists()


def test_gpu_check_names_its_folder_from_where_it_is_typed(tmp_path):
    completed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, **NO_GPU),
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    completed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "check", "--allow-cpu", "--only", "versions"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, **NO_GPU),
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "check" / "gpu_check.json").exists() and not (ROOT / "check").exists()


def test_a_stopped_reproduce_gpu_stops_its_sweep_whose_job_checkpoints(tmp_path):
    """SIGTERM to the script: the running sweep (its own session) is stopped, its job writes its checkpoint, the
    script says so in one line and exits 143; no process of it is left."""
    import signal

    import psutil

    command = [
        sys.executable,
        "scripts/reproduce_gpu.py",
        "--scale",
        "paper",
        "--seeds",
        "1",
        "--only",
        "fig7_mlp1",
        "--budget-minutes",
        "60",
        "--no-images",
        "--out",
        str(tmp_path / "gpu"),
    ]
    script = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, WANDB_SILENT="true", PYTHONPATH=str(ROOT / "src"), **NO_GPU),
    )
    stderr, processes = stop_once_training(script, tmp_path / "gpu" / "runs", 1, signal.SIGTERM, timeout=300)
    assert script.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.count("stopped by SIGTERM") == 1, stderr
    assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "gpu" / "runs").rglob("summary.json")]
    assert summary["status"] == "interrupted" and list((tmp_path / "gpu" / "runs").rglob("checkpoint.pt"))


def test_the_plan_fits_the_budget_in_order_and_skips_what_is_done(tmp_path):
    reproduce_gpu = load_script("reproduce_gpu")
    planned = [
        reproduce_gpu.Planned(name, [], tmp_path, jobs, done, seconds, "FLOP count")
        for name, jobs, done, seconds in [
            ("done", 3, 3, 0.0),
            ("first", 3, 0, 100.0),
            ("too big", 9, 0, 500.0),
            ("small", 3, 1, 30.0),
            ("no room", 3, 0, 60.0),
        ]
    ]
    reproduce_gpu.fit(planned, budget_s=200)  # each experiment also reserves 10 s for its figure and claims
    assert [plan.included for plan in planned] == [False, True, False, True, False]
    assert planned[0].reasons == ["done: every job finished (skipped)"]
    assert planned[2].reasons[0].startswith("left out: needs 8.5 min, 1.5 min of the budget left")
    assert planned[4].reasons[0].startswith("left out: needs 70 s, 50 s of the budget left")


def test_the_planner_composes_each_job_as_hydra_does():
    reproduce_gpu = load_script("reproduce_gpu")
    composer = reproduce_gpu.Composer()
    try:
        jobs = composer.sweep_jobs(["+experiment=fig4_deep_mlp", "scale=smoke", "seed=0,1"])
        composed = [composer.compose(job) for job in jobs]
    finally:
        composer.close()
    # the experiment sweeps the noise (its base) and orvieto/fig4_width; the command line's two seeds replace its three
    expected = {
        frozenset({f"noise={noise}", f"orvieto/fig4_width={width}", f"seed={seed}"})
        for noise in ("gd", "gd_noise", "layerwise")
        for width in ("narrow", "wide")
        for seed in (0, 1)
    }
    assert len(jobs) == 12 and {frozenset(job[2:]) for job in jobs} == expected, jobs
    assert all(
        job[:2] == ["experiment=orvieto/fig4_deep_mlp", "scale=smoke"] for job in jobs
    )  # the old name translated
    for job, cfg in zip(jobs, composed):
        assert cfg == compose(*job), job


# ------------------------------------------------------------------------------------------------ gpu_bundle.sh


GPU_MACHINE_HAS = {
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "matplotlib",
    "scikit-learn",
    "pytest",
    "typing-extensions",
    "pillow",
    "scipy",
    "filelock",
    "jinja2",
    "sympy",
    "networkx",
    "fsspec",
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """scripts/gpu_bundle.sh's folder, built once for this file's tests (they run in one worker: --dist loadfile)."""
    skip_without_fmnist()  # module scope: the function-scoped fmnist_available fixture cannot be asked
    folder = tmp_path_factory.mktemp("gpu") / "bundle"
    # A bundle built before with other versions: its wheels must be replaced, not added to (two versions of a package
    # make the GPU machine's `pip install --no-index` refuse). The test below finds each package once.
    (folder / "wheels").mkdir(parents=True)
    (folder / "wheels" / "hydra_core-1.0.0-py3-none-any.whl").write_bytes(b"a stale wheel")
    completed = run_script("bash", "scripts/gpu_bundle.sh", str(folder), timeout=600)
    unreachable = ("connection", "network is unreachable", "name resolution", "retrying")
    if completed.returncode != 0 and any(sign in completed.stderr.lower() for sign in unreachable):
        pytest.skip(f"the package registry cannot be reached here: {completed.stderr.strip().splitlines()[-1]}")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return folder


def test_the_gpu_bundle_holds_every_package_once_with_what_it_needs_and_fashion_mnist(bundle):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wheels = sorted((bundle / "wheels").glob("*.whl"))
    names = [canonicalize_name(wheel.name.split("-")[0]) for wheel in wheels]
    assert len(names) == len(set(names)), names  # no package twice
    assert all(w.name.endswith(("py3-none-any.whl", "none-any.whl")) or "cp312" in w.name for w in wheels), wheels
    missing = []
    environment = {
        "python_version": "3.12",
        "python_full_version": "3.12.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            for line in archive.read(metadata).decode().splitlines():
                if not line.startswith("Requires-Dist:"):
                    continue
                requirement = Requirement(line.removeprefix("Requires-Dist:").strip())
                if requirement.marker and not requirement.marker.evaluate(environment):
                    continue
                name = canonicalize_name(requirement.name)
                if name not in names and name not in GPU_MACHINE_HAS:
                    missing.append(f"{wheel.name} needs {requirement}")
    assert not missing, missing
    for module in ("hydra-core", "omegaconf", "antlr4-python3-runtime", "backpack-for-pytorch", "tqdm"):
        assert canonicalize_name(module) in names
    assert not {"wandb", "submitit", "pyhessian"} & set(names)
    raw = sorted(path.name for path in (bundle / "FashionMNIST" / "raw").iterdir())
    assert [name.split(".")[0] for name in raw] == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]
    assert sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file()) < 60 * 2**20


def gpu_machine_python(folder: Path) -> Path:
    """A Python with only what the GPU machine has (GPU_MACHINE_HAS and what those require, linked from this
    environment's site-packages) and nothing of ours: a venv whose one .pth names a folder of those links."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, pending = set(), sorted(GPU_MACHINE_HAS)
    site = folder / "machine_site"
    site.mkdir(parents=True)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement of another platform or Python (tomli, colorama)
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if not requirement.marker or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
        for top in {file.parts[0] for file in distribution.files or [] if file.parts[0] != ".."}:
            source = Path(distribution.locate_file(top))
            if source.exists() and not (site / top).exists() and not top.endswith(".pth"):
                (site / top).symlink_to(source)
    assert not {
        "hydra",
        "omegaconf",
        "yaml",
        "tqdm",
        "wandb",
        "submitit",
        "pyhessian",
        "backpack",
        "noisereg",
        "xdist",
    } & {path.name for path in site.iterdir()}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "gpu_machine.pth").write_text(f"{site}\n")
    return python


def test_the_gpu_commands_run_with_only_the_gpu_machines_packages_and_the_bundle(bundle, tmp_path):
    """The README's install line (pip --no-index --target from the bundle's wheels) and both commands on a Python
    that has only the GPU machine's packages: an import the bundle lacks fails here, not on a loan. Python 3.12's
    wheels are asked for by name, as on that machine; on another Python PyYAML runs without its C part."""
    python = gpu_machine_python(tmp_path)
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(target),
            "--python-version",
            "3.12",
            "--only-binary=:all:",
            *map(str, sorted((bundle / "wheels").glob("*.whl"))),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    machine = {"PYTHON": str(python), "PYTHONPATH": str(target)}
    missing = run_script(str(python), "-c", "import hydra", env={"PYTHONPATH": ""})
    assert missing.returncode != 0 and "No module named 'hydra'" in missing.stderr  # the machine alone lacks it

    check = run_script(
        "bash",
        "scripts/gpu_check.sh",
        str(tmp_path / "check"),
        "--allow-cpu",
        "--only",
        "versions",
        "tests",
        "trace",
        env=machine,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    parts = json.loads((tmp_path / "check" / "gpu_check.json").read_text())["parts"]
    assert all(part["status"] == "done" for part in parts.values()), parts
    assert (
        parts["versions"]["result"]["python"]
        == subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
        ).stdout.strip()
    )
    assert parts["tests"]["result"]["failures"] == 0 and parts["tests"]["result"]["errors"] == 0, parts["tests"]

    out = tmp_path / "gpu"
    reproduce = run_script(
        str(python),
        "scripts/reproduce_gpu.py",
        "--scale",
        "smoke",
        "--seeds",
        "1",
        "--no-images",
        "--only",
        "fig9_mlp3",
        "--data-root",
        str(bundle),
        "--out",
        str(out),
        env={"PYTHONPATH": f"{ROOT / 'src'}:{target}"},
    )
    assert reproduce.returncode == 0, reproduce.stdout + reproduce.stderr
    runs = list((out / "runs" / "fig9_mlp3").glob("*/run.json"))
    assert runs and all(
        json.loads(path.read_text())["config"]["dataset"]["root"] == str(bundle.resolve()) for path in runs
    )
    assert "fig9_mlp3" in (out / "REPORT.md").read_text()


# ------------------------------------------------------------------------------------------------ what it leaves out


def test_training_runs_without_wandb_submitit_pyhessian_or_backpack(tmp_path):
    """What the GPU bundle leaves out: `logger.mode=disabled` training imports none of them."""
    blocked = "import sys; sys.modules.update(dict.fromkeys(['wandb', 'submitit', 'pyhessian', 'backpack']))"
    command = (
        f"{blocked}; import runpy; sys.argv = ['run.py', '+experiment=fig9_mlp3', 'scale=smoke', "
        f"'logger.mode=disabled', 'hydra.run.dir={tmp_path}/run']; runpy.run_path('run.py', run_name='__main__')"
    )
    completed = run_script(sys.executable, "-c", command)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


def test_the_cost_model_counts_an_mlp_steps_flops_as_the_dense_matmuls_do():
    from noisereg.app import prepare
    from noisereg.cost import DeviceSpeed, job_cost

    cfg = prepare(
        compose(
            "model=mlp",
            "model.widths=[64,32]",
            "dataset=synthetic_sparse",
            "trainer.steps=10",
            "trainer.batch_size=16",
            "logger.mode=disabled",
            "trainer.device=cpu",
        )
    )
    cost = job_cost(cfg, torch.device("cpu"))
    from noisereg.registry import DATASETS

    data = DATASETS.build(dict(cfg.dataset))
    sizes = [data.input_shape[0], 64, 32, data.num_outputs]
    weights = [a * b for a, b in zip(sizes, sizes[1:])]
    # forward 2·B·Σ in·out; backward twice that, less the first layer's input gradient (the inputs need none)
    assert cost.step_flops == 6 * 16 * sum(weights) - 2 * 16 * weights[0]
    assert cost.steps == 10 and cost.parameter_tensors == 6
    assert cost.eval_flops == 2 * sum(weights) * (data.n_train + data.test_inputs.shape[0])
    speed = DeviceSpeed("cpu", 1e12, 1e11, 1e-4, 1e-5)
    twice = DeviceSpeed("cpu", 1e12, 1e11, 2e-4, 2e-5)
    assert twice.seconds(cost) > speed.seconds(cost) > cost.data_seconds  # the floor dominates this tiny MLP
