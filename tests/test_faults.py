"""Faults and bad input: damaged record files, full and read-only disks, bad launcher and folder settings.

Each case asserts the exit status, that the output is one line naming the file or setting, and that the files
already on disk are unchanged. The command-line checks run `run.py`'s `cli` in this process (they stop before
Hydra starts a job), so the cases cost milliseconds, not a Python start each; the full-disk run goes through a
real process on a real, tiny tmpfs.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose, run_cli_in_process

from noisereg.app import run as run_job_in_process
from noisereg.tracking.records import read_metrics

RUN = [
    "+experiment=fig2_synthetic",
    "scale=smoke",
    "logger.mode=disabled",
    "model.widths=[20]",
    "trainer.progress_bar=false",
    "trainer.eval_every=5",
]


def cli(*arguments: str, cwd: Path, capsys, monkeypatch) -> tuple[int, str]:
    result = run_cli_in_process(*arguments, cwd=cwd, capsys=capsys, monkeypatch=monkeypatch)
    return result.returncode, result.stderr


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def assert_one_line(status: int, stderr: str, *fragments: str, code: int = 2) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == code and len(lines) == 1, (status, stderr)
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory) -> Path:
    """A run directory as a killed run leaves it: run.json, metrics.jsonl, checkpoint.pt and no summary."""
    directory = tmp_path_factory.mktemp("unfinished") / "D"
    cfg = compose(*RUN, "trainer.keep_checkpoint=true", "trainer.checkpoint_every=1")
    summary = run_job_in_process(cfg, directory)
    assert summary["status"] == "completed" and (directory / "checkpoint.pt").exists()
    (directory / "summary.json").unlink()
    return directory


@pytest.fixture
def run_copy(unfinished_run, tmp_path) -> Path:
    shutil.copytree(unfinished_run, tmp_path / "D")
    return tmp_path / "D"


class Malicious:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


DAMAGED_CHECKPOINTS = {
    "random bytes": lambda path: path.write_bytes(os.urandom(4096)),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "empty": lambda path: path.write_bytes(b""),
    "another structure": lambda path: torch.save({"weights": torch.ones(3)}, path),
    "another format": lambda path: torch.save({"format": 1, "step": 3}, path),
    "malicious pickle": lambda path: path.write_bytes(pickle.dumps(Malicious())),
}


@pytest.mark.parametrize("damage", DAMAGED_CHECKPOINTS)
def test_a_damaged_checkpoint_is_one_line_and_nothing_changes(run_copy, damage, capsys, monkeypatch):
    DAMAGED_CHECKPOINTS[damage](run_copy / "checkpoint.pt")
    before = snapshot(run_copy)
    status, stderr = cli(*RUN, "hydra.run.dir=D", cwd=run_copy.parent, capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(status, stderr, "checkpoint.pt", "trainer.resume=restart")
    assert "weights_only=False" not in stderr
    assert snapshot(run_copy) == before and not (run_copy.parent / "pwned").exists()


DAMAGED_RECORDS = {
    "summary.json truncated": ("summary.json", lambda p: p.write_text('{"status": "compl')),
    "summary.json garbage": ("summary.json", lambda p: p.write_bytes(b"\x00\xffgarbage")),
    "summary.json a list": ("summary.json", lambda p: p.write_text("[]")),
    "run.json truncated": ("run.json", lambda p: p.write_text(p.read_text()[:40])),
    "run.json a list": ("run.json", lambda p: p.write_text("[]")),
    "metrics.jsonl a directory": ("metrics.jsonl", lambda p: (p.unlink(), p.mkdir())),
    "metrics.jsonl garbage line": (
        "metrics.jsonl",
        lambda p: p.write_text(
            "".join(line if i != 1 else "garbage\n" for i, line in enumerate(p.read_text().splitlines(True)))
        ),
    ),
}


@pytest.mark.parametrize("damage", DAMAGED_RECORDS)
def test_a_damaged_record_file_is_one_line_and_nothing_changes(run_copy, damage, capsys, monkeypatch):
    name, make = DAMAGED_RECORDS[damage]
    make(run_copy / name)
    before = snapshot(run_copy)
    status, stderr = cli(*RUN, "hydra.run.dir=D", cwd=run_copy.parent, capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(status, stderr, name, "trainer.resume=restart")
    assert snapshot(run_copy) == before


def test_records_cut_before_the_checkpoint_are_refused_not_completed_with_a_gap(run_copy, capsys, monkeypatch):
    lines = (run_copy / "metrics.jsonl").read_text().splitlines(True)
    (run_copy / "metrics.jsonl").write_text("".join(lines[:2]))
    before = snapshot(run_copy)
    status, stderr = cli(*RUN, "hydra.run.dir=D", cwd=run_copy.parent, capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(status, stderr, "metrics.jsonl", "rows were lost", "trainer.resume=restart")
    assert snapshot(run_copy) == before


def test_an_unreadable_lock_says_so_and_how_to_remove_it(run_copy, capsys, monkeypatch):
    (run_copy / ".lock").write_text("garbage, not a lock")
    before = snapshot(run_copy)
    status, stderr = cli(*RUN, "hydra.run.dir=D", cwd=run_copy.parent, capsys=capsys, monkeypatch=monkeypatch)
    assert_one_line(status, stderr, ".lock", "unreadable", "rm ")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize(
    "arguments, fragments",
    [
        (["hydra.run.dir="], ["hydra.run.dir is empty"]),
        (["hydra.run.dir=a_file"], ["hydra.run.dir=a_file", "is a file"]),
        (["hydra.run.dir=a_file/below"], ["hydra.run.dir=a_file/below", "is a file"]),
        (["-m", "hydra.sweep.dir=a_file"], ["hydra.sweep.dir=a_file", "is a file"]),
        (["hydra/launcher=nonexistent"], ["hydra/launcher/nonexistent", "submitit_local"]),
        (["-m", "hydra/launcher=nonexistent"], ["hydra/launcher/nonexistent", "submitit_local"]),
        (["seed=18446744073709551616"], ["seed=18446744073709551616", "out of range"]),
        (["hydra.run.dir=my", "runs/x"], ["runs/x", "quote a value with spaces"]),
    ],
)
def test_bad_folders_launchers_and_seeds_are_one_line(tmp_path, capsys, monkeypatch, arguments, fragments):
    (tmp_path / "a_file").write_text("not a folder")
    before = snapshot(tmp_path)
    flags = [a for a in arguments if a.startswith("-")]  # before the overrides, as a user types them
    status, stderr = cli(
        *flags, *RUN, *(a for a in arguments if a not in flags), cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch
    )
    assert_one_line(status, stderr, *fragments)
    assert snapshot(tmp_path) == before


def _small_filesystem(path: Path, size: str, read_only: bool = False) -> str | None:
    """Mount a tmpfs of `size` at `path` (root only); None when mounted, else why not."""
    path.mkdir()
    if os.geteuid() != 0:
        return "not root: cannot mount a small tmpfs"
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    return None if mounted.returncode == 0 else f"mount failed: {mounted.stderr.strip()}"


@pytest.fixture
def tiny_disk(tmp_path):
    disk = tmp_path / "disk"
    why = _small_filesystem(disk, "160k")
    if why:
        pytest.skip(f"the full-disk cases need a tiny tmpfs, which cannot be made here ({why})")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_read_only_parent_is_one_line(tmp_path, capsys, monkeypatch):
    parent = tmp_path / "read_only"
    why = _small_filesystem(parent, "1m", read_only=True)
    if why:
        parent.chmod(0o555)  # not root: permissions are enough
    try:
        status, stderr = cli(*RUN, f"hydra.run.dir={parent}/run", cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
        assert_one_line(status, stderr, "hydra.run.dir=", "read-only")
    finally:
        if not why:
            subprocess.run(["umount", str(parent)], check=True)


def test_a_disk_too_full_to_start_is_one_line(tiny_disk, capsys, monkeypatch):
    (tiny_disk / "filler").write_bytes(b"\0" * 140 * 1024)
    status, stderr = cli(
        *RUN, f"hydra.run.dir={tiny_disk}/run", cwd=tiny_disk.parent, capsys=capsys, monkeypatch=monkeypatch
    )
    assert_one_line(status, stderr, "hydra.run.dir=", "KiB free")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


def test_a_disk_that_fills_mid_run_is_one_line_and_leaves_no_partial_files(tiny_disk):
    (tiny_disk / "filler").write_bytes(b"\0" * 80 * 1024)  # room to start, not to finish: a row per step
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "+experiment=fig2_synthetic",
            "scale=cpu",
            "logger.mode=disabled",
            "model.widths=[20]",
            "trainer.steps=3000",
            "trainer.eval_every=1",
            "curvature.every=null",
            "trainer.progress_bar=false",
            f"hydra.run.dir={tiny_disk}/run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, WANDB_SILENT="true"),
    )
    assert_one_line(result.returncode, result.stderr, str(tiny_disk / "run"), "No space left", code=1)
    left = sorted(p.name for p in (tiny_disk / "run").iterdir())
    assert not [name for name in left if name.endswith(".partial") or name == ".lock"], left
    assert read_metrics(tiny_disk / "run"), "the rows written before the disk filled are kept and readable"


def test_a_named_fashion_mnist_root_is_used_or_refused_never_replaced(tmp_path, capsys, monkeypatch, fmnist_available):
    (tmp_path / "garbage").write_bytes(b"not a folder")
    partial = tmp_path / "partial" / "FashionMNIST" / "raw"
    partial.mkdir(parents=True)
    shutil.copy("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", partial)
    for root in ("garbage", "partial"):
        status, stderr = cli(
            "+experiment=fig7_mlp1",
            "scale=smoke",
            "logger.mode=disabled",
            f"dataset.root={root}",
            "hydra.run.dir=R",
            cwd=tmp_path,
            capsys=capsys,
            monkeypatch=monkeypatch,
        )
        assert_one_line(status, stderr, f"dataset.root='{tmp_path / root}'", "is not in")
    assert not (tmp_path / "R").exists()


def test_an_images_file_holding_labels_is_named_as_the_images_file(tmp_path, capsys, monkeypatch, fmnist_available):
    raw = tmp_path / "mixed" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    debian = Path("/usr/share/datasets/fashion-mnist")
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(debian / f"{name}.gz", raw)
    shutil.copy(debian / "train-labels-idx1-ubyte.gz", raw / "train-images-idx3-ubyte.gz")
    status, stderr = cli(
        "+experiment=fig7_mlp1",
        "scale=smoke",
        "logger.mode=disabled",
        "dataset.root=mixed",
        "hydra.run.dir=R",
        cwd=tmp_path,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert_one_line(status, stderr, "train-images-idx3-ubyte.gz holds labels, not images")


def _script(name: str, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *arguments], capture_output=True, text=True)


def test_report_and_plot_refuse_an_empty_folder_and_a_wrong_out(tmp_path, unfinished_run):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    for result, fragment in (
        (_script("report.py", str(tmp_path / "empty")), "no run records"),
        (_script("report.py", str(unfinished_run), "--out", str(tmp_path)), "is a folder"),
        (_script("plot.py", "fig2_synthetic", str(unfinished_run), "--out", str(tmp_path / "a_file")), "is a file"),
    ):
        assert_one_line(result.returncode, result.stderr, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "empty"]
    assert json.loads((unfinished_run / "run.json").read_text())  # untouched


def test_report_refuses_an_out_inside_a_run_directory_or_onto_a_record(tmp_path, unfinished_run):
    """`--out <run>/summary.json` (or metrics.jsonl) once overwrote that record with the report."""
    before = {p.name: p.read_bytes() for p in unfinished_run.iterdir() if p.is_file()}
    for out, fragment in (
        (unfinished_run / "run.json", "inside the run directory"),
        (unfinished_run / "report" / "REPORT.md", "inside the run directory"),
        (tmp_path / "elsewhere" / "metrics.jsonl", "a record file"),
    ):
        result = _script("report.py", str(unfinished_run), "--out", str(out))
        assert_one_line(result.returncode, result.stderr, fragment)
    assert {p.name: p.read_bytes() for p in unfinished_run.iterdir() if p.is_file()} == before
    assert not (unfinished_run / "report").exists() and not (tmp_path / "elsewhere").exists()
