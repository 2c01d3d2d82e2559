"""The committed form of run records (tracking/evidence.py) and their provenance (tracking/provenance.py): a thinned
run's gzipped rows read exactly as the plain ones, by every reader; thinning is idempotent and gives the same bytes
every time; a thinned finished run is still finished (never run again); every new run.json says where it came from."""

from __future__ import annotations

import gzip
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose

import noisereg
from noisereg.app import run
from noisereg.records import load_runs
from noisereg.tracking import provenance as provenance_module
from noisereg.tracking.evidence import thin_records, thin_run
from noisereg.tracking.provenance import describe_provenance, provenance
from noisereg.tracking.records import (
    METRICS,
    METRICS_GZ,
    DamagedRecord,
    gzip_bytes,
    has_metrics,
    read_identity,
    read_metrics,
)

QUICK = ["trainer.steps=6", "trainer.eval_every=3", "logger.mode=disabled"]


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished smoke run, with an artifact saved at more than one step, in its plain (unthinned) form."""
    directory = tmp_path_factory.mktemp("finished") / "run"
    summary = run(compose(*QUICK, "+probes.predictions.every=3"), directory)
    assert summary["status"] == "completed"
    return directory


def test_a_new_runs_identity_records_its_commit_and_versions(finished_run):
    recorded = read_identity(finished_run)["provenance"]
    assert recorded == {**provenance(), "git_commit": recorded["git_commit"], "git_dirty": recorded["git_dirty"]}
    assert recorded["noisereg"] == noisereg.__version__ and recorded["torch"] == torch.__version__
    assert recorded["python"] == platform.python_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a clone: the commit of the code that ran, and whether tracked files had changes
        assert recorded["git_commit"] == head.stdout.strip() and isinstance(recorded["git_dirty"], bool)
    else:  # an unpacked archive: no commit, and the run went on
        assert recorded["git_commit"] is None and recorded["git_dirty"] is None


@pytest.mark.parametrize("without", ["git", "a repository"])
def test_provenance_is_null_without_git_or_outside_a_repository_and_never_fails(tmp_path, monkeypatch, without):
    if without == "git":
        monkeypatch.setenv("PATH", str(tmp_path))  # no git executable to be found
    else:
        monkeypatch.setenv("GIT_DIR", str(tmp_path / "not-a-repository"))
    provenance_module.git_state.cache_clear()
    try:
        recorded = provenance()
        summary = run(compose(*QUICK), tmp_path / "run")
        assert summary["status"] == "completed"
        assert read_identity(tmp_path / "run")["provenance"]["git_commit"] is None
    finally:
        monkeypatch.undo()
        provenance_module.git_state.cache_clear()
    assert recorded["git_commit"] is None and recorded["git_dirty"] is None
    assert recorded["noisereg"] == noisereg.__version__


def test_thinning_gzips_the_rows_keeps_the_last_artifact_and_reads_identically(finished_run, tmp_path):
    thinned = tmp_path / "thinned"
    shutil.copytree(finished_run, thinned)
    assert thin_run(thinned) > 0, "the artifact snapshots before the last step are dropped"
    assert not (thinned / METRICS).exists() and (thinned / METRICS_GZ).exists() and has_metrics(thinned)
    assert gzip.decompress((thinned / METRICS_GZ).read_bytes()) == (finished_run / METRICS).read_bytes()
    assert read_metrics(thinned) == read_metrics(finished_run)
    plain, compressed = load_runs([finished_run]), load_runs([thinned])
    assert compressed.drop(columns="run").equals(plain.drop(columns="run"))


def test_thinning_is_idempotent_and_gives_the_same_bytes_every_time(finished_run, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for copy in (first, second):
        shutil.copytree(finished_run, copy / "run")
        thin_records(copy)
    assert files(first) == files(second), "the same run thinned twice: the same bytes (gzip without a time stamp)"
    before = files(first)
    assert thin_records(first) == 0
    assert files(first) == before, "a thinned run thinned again is unchanged"
    assert gzip_bytes(b"rows\n") == gzip_bytes(b"rows\n") and gzip.decompress(gzip_bytes(b"rows\n")) == b"rows\n"


def test_an_unfinished_run_is_left_whole(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / METRICS).write_text('{"step": 0}\n')
    (tmp_path / "run" / "summary.json").write_text('{"status": "interrupted"}')
    assert thin_records(tmp_path) == 0 and (tmp_path / "run" / METRICS).exists()


def test_a_thinned_finished_run_is_finished_and_never_run_again(finished_run, tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(finished_run, directory)
    thin_run(directory)
    before = files(directory)
    again = run(compose(*QUICK, "+probes.predictions.every=3"), directory)
    assert again["finished_before"] and again["status"] == "completed"
    assert files(directory) == before


def test_restart_discards_the_gzipped_rows_too(finished_run, tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(finished_run, directory)
    thin_run(directory)
    summary = run(compose(*QUICK, "noise.sigma=0.2", "trainer.resume=restart"), directory)
    assert summary["status"] == "completed" and not summary.get("finished_before")
    assert not (directory / METRICS_GZ).exists() and [row["step"] for row in read_metrics(directory)] == [0, 3, 6]


def test_damaged_gzipped_rows_are_one_line_naming_the_file_and_skipped_by_load_runs(finished_run, tmp_path, capsys):
    for name, damage in {"cut": lambda b: b[: len(b) // 2], "not gzip": lambda b: b"garbage"}.items():
        directory = tmp_path / name
        shutil.copytree(finished_run, directory)
        thin_run(directory)
        (directory / METRICS_GZ).write_bytes(damage((directory / METRICS_GZ).read_bytes()))
        with pytest.raises(DamagedRecord, match=METRICS_GZ.replace(".", r"\.")):
            read_metrics(directory)
        runs = load_runs([directory])
        assert runs.attrs["damaged"] == [str(directory)] and runs.empty
        assert "skipped the damaged run" in capsys.readouterr().err


def test_the_report_header_names_the_commits_and_the_runs_before_provenance():
    commit = {"git_commit": "0123456789abcdef", "git_dirty": False}
    dirty = {"git_commit": "fedcba9876543210", "git_dirty": True}
    assert describe_provenance([commit, commit, dirty, None]) == (
        "Provenance: `0123456789ab` (2 runs); `fedcba987654` with uncommitted changes (1 run); 1 run recorded before "
        "provenance."
    )
    assert describe_provenance([None] * 3) == "Provenance: 3 runs recorded before provenance."
    assert describe_provenance([{"git_commit": None, "git_dirty": None}]) == "Provenance: no git commit (1 run)."
