"""notebooks/explore_runs.ipynb runs top to bottom (it makes its own smoke sweep when there are no records)."""
from __future__ import annotations

import pytest

from conftest import ROOT


def test_the_notebook_executes(tmp_path, monkeypatch, fmnist_available):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("NOISEREG_RECORDS", str(tmp_path / "none"))
    monkeypatch.setenv("NOISEREG_SMOKE_DIR", str(tmp_path / "smoke"))
    notebook = nbformat.read(ROOT / "notebooks" / "explore_runs.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "runs of ['fig3_fmnist_sigma']" in text and "test/acc" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the plot was drawn"
    assert len(list((tmp_path / "smoke").rglob("summary.json"))) == 24
