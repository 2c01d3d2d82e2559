"""One package per paper: its science (closed forms, phase rules, fits: science.py), its figures (figures.py), its
claims (claims.py) and the regime they were made in (gates.py, where a paper has its own file for them), on the
shared machinery of noisereg/figures/. Importing
this package registers every paper's figures and claims:

    from noisereg.papers import CLAIMS, FIGURES, plot_experiment, write_report
"""

from noisereg.figures.claims import CLAIMS
from noisereg.figures.registry import FIGURES, plot_experiment
from noisereg.figures.report import evaluate_claims, write_report
from noisereg.papers import blanc, camuto, levi, orvieto  # noqa: F401  (register their figures and claims)

__all__ = ["CLAIMS", "FIGURES", "evaluate_claims", "plot_experiment", "write_report"]
