"""Shared test helpers: run the real CLI in a subprocess, compose the real Hydra config in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import noisereg  # noqa: F401  (before torch: OpenMP's passive wait policy, as run.py; see noisereg/__init__.py)

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "conf"
FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
SLURM_SCRIPT = ROOT / "scripts" / "slurm.sh"


def pytest_addoption(parser):
    parser.addoption("--paper-scale", action="store_true", help="also run the slow checks at the papers' sizes")


# The longest files first: `make test` hands whole files to its workers in this order (pyproject's `-n auto --dist
# loadfile`), so the short ones fill in at the end instead of one long file running alone.
LONGEST_FIRST = (
    "test_slurm.py",
    "test_cli_resume.py",
    "test_figures.py",
    "test_cli.py",
    "test_results.py",
    "test_notebook.py",
    "test_cifar_cli.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
    for item in items:
        if "paper_scale" in item.keywords and not config.getoption("--paper-scale"):
            item.add_marker(pytest.mark.skip(reason="paper-scale check: opt in with `make test-paper`"))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA: no GPU on this machine"))


def pytest_report_header(config):
    lines = []
    if not torch.cuda.is_available():
        lines.append(
            "noisereg: no GPU here, so the CUDA paths are not tested in this run (tests marked `gpu` are skipped)"
        )
    if not FMNIST_SYSTEM_DIR.is_dir():
        lines.append(
            f"noisereg: {FMNIST_SYSTEM_DIR} missing: real Fashion-MNIST tests are skipped (make install gets it)"
        )
    slurm = subprocess.run([str(SLURM_SCRIPT), "check"], capture_output=True, text=True)
    if slurm.returncode != 0:
        why = slurm.stdout.strip() or slurm.stderr.strip()
        lines.append(f"noisereg: the SLURM tests (tests/test_slurm.py) are skipped: {why}")
    lines.append(
        "noisereg: CIFAR-10 tests and smoke runs read a small fixture in the real cifar-10-batches-py layout "
        "(tests/cifar_fixture.py), not the real data (no download in tests)"
    )
    return lines


def run_cli(*arguments: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python run.py ARGS` as a user types it, from `cwd` (outputs land there); `env` adds to the environment."""
    env = dict(os.environ, WANDB_SILENT="true", HYDRA_FULL_ERROR="0", **(env or {}))
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _cli_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("noisereg_run_cli", ROOT / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli_in_process(*arguments: str, cwd: Path, capsys, monkeypatch) -> subprocess.CompletedProcess:
    """`python run.py ARGS` from `cwd`, in this process, for commands refused before Hydra starts a job (bad
    settings, damaged records): the same `cli` the script calls, without a Python start per case."""
    global _CLI
    if _CLI is None:
        _CLI = _cli_module()
    monkeypatch.chdir(cwd)
    # cli drops WANDB_SERVICE (each job process starts its own W&B service, run.py): undone after the test, or this
    # process's W&B would go on with a service its later children no longer inherit.
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    capsys.readouterr()
    status = _CLI.cli(list(arguments))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["run.py", *arguments], status, captured.out, captured.err)


_CLI = None


def compose(*overrides: str, return_hydra_config: bool = False):
    """The config `python run.py OVERRIDES` would run, composed by Hydra in-process (the overrides translated as
    run.py's are: `+experiment=fig6_resnet` is `experiment=orvieto/fig6_resnet`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from noisereg.config import register_with_hydra, translate_overrides

    register_with_hydra()
    overrides = translate_overrides(list(overrides), CONFIG_DIR)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides, return_hydra_config=return_hydra_config)


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory) -> Path:
    """A small CIFAR-10 (200 training, 100 test images) in the real cifar-10-batches-py layout, for
    `dataset.root=...` (tests/cifar_fixture.py): real CIFAR-10 cannot be downloaded here."""
    from cifar_fixture import write_cifar10

    return write_cifar10(tmp_path_factory.mktemp("cifar10"), per_batch=40, n_test=100)


def skip_without_fmnist() -> None:
    if not FMNIST_SYSTEM_DIR.is_dir():
        pytest.skip(f"real Fashion-MNIST not installed in {FMNIST_SYSTEM_DIR} (apt-get install dataset-fashion-mnist)")


@pytest.fixture
def fmnist_available():
    skip_without_fmnist()


def stop_once_training(process, folder: Path, runs: int, signum: int, timeout: float = 240) -> tuple[str, list]:
    """Wait until `runs` runs under `folder` log rows, send `signum` to `process` and wait for it: its stderr and
    the processes it had started then (to check none is left)."""
    import psutil

    try:
        deadline = time.monotonic() + timeout
        while len(list(folder.rglob("metrics.jsonl"))) < runs and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # the jobs are training
        started = psutil.Process(process.pid).children(recursive=True)
        assert started, "the jobs run as processes of the launch"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=200)
    finally:
        if process.poll() is None:
            process.kill()
    return stderr, started
