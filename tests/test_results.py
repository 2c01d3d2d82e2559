"""The committed evidence: results/REPORT.md comes back byte for byte and every figure's JSON number for number from
the committed run records (results/runs/), without any training, and the records are in their thinned form (rows
gzipped: tracking/evidence.py), within COMMITTED_LIMIT."""

from __future__ import annotations

import gzip
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from noisereg.tracking.records import FINISHED, IDENTITY, METRICS_GZ, SUMMARY, gzip_bytes, list_artifacts, read_summary

RESULTS = ROOT / "results"
RUN_FILES = {IDENTITY, METRICS_GZ, SUMMARY}
COMMITTED_LIMIT = 30 * 10**6  # bytes: all git-tracked files under results/runs together (issue 32)
# numpy's sums take other paths on other CPUs (SIMD widths), so a mean or std over float32 records moves in its last
# bits from machine to machine: seen up to 5e-6 relative (a std over 10 seeds of float32 losses) and 0.0 for -0.0.
FLOAT_TOLERANCE = 1e-4


def differences(made, committed, where: str = "") -> list[str]:
    """Where two figure JSONs differ: in structure, keys, strings, integers, or floats beyond FLOAT_TOLERANCE."""
    if isinstance(committed, float) or isinstance(made, float):
        if isinstance(made, (int, float)) and isinstance(committed, (int, float)):
            both_nan = math.isnan(made) and math.isnan(committed)
            if both_nan or math.isclose(made, committed, rel_tol=FLOAT_TOLERANCE, abs_tol=1e-12):
                return []
        return [f"{where}: {made!r} != {committed!r}"]
    if isinstance(committed, dict) and isinstance(made, dict) and made.keys() == committed.keys():
        return [line for key in committed for line in differences(made[key], committed[key], f"{where}/{key}")]
    if isinstance(committed, list) and isinstance(made, list) and len(made) == len(committed):
        return [line for i, pair in enumerate(zip(made, committed)) for line in differences(*pair, f"{where}[{i}]")]
    return [] if made == committed and type(made) is type(committed) else [f"{where}: {made!r} != {committed!r}"]


def committed_files() -> list[str]:
    """The files git holds under results/runs (in CI's fresh clone: exactly what is on disk): those in the index,
    less those deleted from the work tree and not yet from the index (a rename in progress)."""
    listing = subprocess.run(["git", "ls-files", "-z", "results/runs"], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0:
        pytest.fail(f"git ls-files failed: {listing.stderr.strip()}")
    return [name for name in listing.stdout.split("\0") if name and (ROOT / name).exists()]


def test_the_report_and_every_figure_json_are_rederived_from_the_committed_records(tmp_path):
    if not committed_files():
        pytest.fail("results/runs holds no committed records: run scripts/reproduce_cpu.py and commit them")
    out = tmp_path / "REPORT.md"
    done = subprocess.run(
        [sys.executable, "scripts/report.py", "results/runs", "--out", str(out), "--no-images"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (RESULTS / "REPORT.md").read_text()
    committed = sorted(p.relative_to(RESULTS) for p in RESULTS.glob("*/*.json") if p.parent.name != "runs")
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("*/*.json"))
    assert made == committed
    for name in committed:
        found = differences(json.loads((tmp_path / name).read_text()), json.loads((RESULTS / name).read_text()))
        assert not found, f"{name}: {len(found)} values differ, first {found[:3]}"


def test_the_figure_comparison_tells_rounding_from_a_changed_value():
    committed = {"series": [{"label": "GD", "mean": [0.5, -0.0, 2.0e5], "n": 3}]}
    assert not differences(
        {"series": [{"label": "GD", "mean": [0.5 + 1e-9, 0.0, 2.0e5 * (1 + 5e-6)], "n": 3}]}, committed
    )
    assert differences({"series": [{"label": "GD", "mean": [0.5001, 0.0, 2.0e5], "n": 3}]}, committed)
    assert differences({"series": [{"label": "GD", "mean": [0.5, 0.0], "n": 3}]}, committed)
    assert differences({"series": [{"label": "GD", "mean": [0.5, 0.0, 2.0e5], "n": 2}]}, committed)
    assert differences({"series": [{"label": "SGD", "mean": [0.5, 0.0, 2.0e5], "n": 3}]}, committed)


def test_the_committed_records_are_the_runs_the_report_counts_in_their_thinned_form():
    files = committed_files()
    runs: dict[Path, set[str]] = {}
    for name in files:
        path = Path(name)
        run = next((parent for parent in path.parents if (ROOT / parent / "summary.json").exists()), None)
        assert run is not None, f"{name} belongs to no run directory"
        runs.setdefault(run, set()).add(str(path.relative_to(run)))
    for run, names in runs.items():
        assert RUN_FILES <= names, f"{run}: {RUN_FILES - names} missing"
        extra = names - RUN_FILES
        assert all(name.startswith("artifacts/") and name.endswith(".npz") for name in extra), (run, extra)
        if read_summary(ROOT / run).get("status") in FINISHED:  # of each artifact, its last step alone
            assert all(len(steps) == 1 for steps in list_artifacts(ROOT / run).values()), run
    header = re.search(r"from the run records under those folders: (\d+) runs", (RESULTS / "REPORT.md").read_text())
    assert header and int(header.group(1)) == len(runs)


def test_the_committed_records_fit_the_size_limit_and_are_gzipped_the_one_way():
    """All of results/runs as git holds it within COMMITTED_LIMIT (about 84 MB as plain text, 50 of them one
    experiment's rows, before they were gzipped), no file over 10 MiB; and each metrics.jsonl.gz exactly as
    thin_records writes it (no time stamp, level 9), so a reproduction thinned anywhere compares byte for byte."""
    files = committed_files()
    sizes = [(ROOT / name).stat().st_size for name in files]
    assert sum(sizes) <= COMMITTED_LIMIT, f"results/runs holds {sum(sizes)} bytes in git, over {COMMITTED_LIMIT}"
    assert max(sizes) < 10 * 2**20
    for name in (name for name in files if name.endswith(METRICS_GZ)):
        content = (ROOT / name).read_bytes()
        assert gzip_bytes(gzip.decompress(content)) == content, f"{name} is not in thin_records' form"
