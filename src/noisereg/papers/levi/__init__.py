"""Levi, Bloch, Freytsis, Volansky (2022), noise injection nodes (see noisereg/papers/__init__.py):

- science.py: the phase rule of Sec. 3 (`run_phase`, its thresholds and catapult windows), the decay fits of Eq. 9
  and App. D, the per-run table of phases and time scales;
- figures.py: one function per figure (Figs 1-3), drawn from that table;
- claims.py: the paper's claims and the regime they were made in, with the thresholds that are ours.

Importing the package registers its figures and claims.
"""

from noisereg.papers.levi import claims, figures  # noqa: F401  (registers its figures and claims)
