"""From run records to the papers' figures and a verdict on each of their claims: one module per paper, one
function per figure (registered in registry.py, drawn on canvas.py's `Canvas` from runs grouped by grouping.py),
the claims (claims.py) and the report (report.py). Importing the package imports every paper's module, so their
figures and claims are registered before any of its modules is used.

    python scripts/plot.py fig2_synthetic multirun/fig2          # results/fig2_synthetic/fig2_synthetic.png + .json
    python scripts/report.py multirun/                            # results/REPORT.md
"""
from noisereg.figures import blanc, camuto, levi, orvieto  # noqa: F401  (register their figures and claims)
from noisereg.figures.claims import CLAIMS
from noisereg.figures.registry import FIGURES, plot_experiment
from noisereg.figures.report import write_report

__all__ = ["CLAIMS", "FIGURES", "plot_experiment", "write_report"]
