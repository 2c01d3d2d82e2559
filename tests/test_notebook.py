"""notebooks/explore_runs.ipynb runs top to bottom (it makes its own smoke sweep when there are no records)."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT
from nbclient.exceptions import CellExecutionError


def execute(monkeypatch, records: Path, smoke: Path) -> list[dict]:
    """The notebook run top to bottom reading `records` (a smoke sweep into `smoke` where it holds none): the outputs
    of its code cells; stops at the first error."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("NOISEREG_RECORDS", str(records))
    monkeypatch.setenv("NOISEREG_SMOKE_DIR", str(smoke))
    notebook = nbformat.read(ROOT / "notebooks" / "explore_runs.ipynb", as_version=4)
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
        ).execute()
    except CellExecutionError:
        pass  # its outputs hold the error
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def test_the_notebook_executes(tmp_path, monkeypatch, fmnist_available):
    outputs = execute(monkeypatch, tmp_path / "none", tmp_path / "smoke")
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "runs of ['fig3_fmnist_sigma']" in text and "test/acc" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the plot was drawn"
    assert len(list((tmp_path / "smoke").rglob("summary.json"))) == 24


def test_the_notebook_reads_records_without_test_accuracy(tmp_path, monkeypatch):
    """Blanc's Thm 3 runs (committed): no test/acc, no noise.sigma; the tables and curves use what they logged."""
    outputs = execute(monkeypatch, ROOT / "results" / "runs" / "blanc_thm3_single_point", tmp_path / "smoke")
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    text = "".join(str(o.get("text", "")) for o in outputs)
    metrics = re.search(r"metrics \[([^\]]*)\]", text)
    assert "runs of ['blanc_thm3_single_point']" in text and metrics and "test/acc" not in metrics.group(1), text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not (tmp_path / "smoke").exists(), "records were there: no smoke sweep"


def test_a_failed_smoke_sweep_says_its_reason(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")  # the sweep folder cannot be made under a file
    outputs = execute(monkeypatch, tmp_path / "none", tmp_path / "file" / "smoke")
    (error,) = [o for o in outputs if o.get("output_type") == "error"]
    assert error["ename"] == "RuntimeError" and "the smoke sweep failed: noisereg:" in error["evalue"], error
