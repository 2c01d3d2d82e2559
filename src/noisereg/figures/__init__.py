"""The shared machinery from run records to figures and verdicts: the figure registry (registry.py) and the canvas
figures are drawn on (canvas.py), runs grouped by condition (grouping.py), the statistics behind a verdict
(statistics.py), the selection of evidence from runs (selection.py), the claim and regime registries (claims.py),
curve fits (fits.py) and the report (report.py). Each paper's figures and claims live in noisereg/papers/<paper>/;
importing `noisereg.papers` registers them all.

    python scripts/plot.py fig2_synthetic multirun/fig2          # results/fig2_synthetic/fig2_synthetic.png + .json
    python scripts/report.py multirun/                            # results/REPORT.md
"""
