"""Blanc, Gupta, Valiant, Valiant (COLT 2020), SGD with label noise (see noisereg/papers/__init__.py):

- science.py: the noisy phase of a run, the time to threshold of Fig. 1's time scale, the statistics read off a run
  (first step below a level, reg/blanc once fitted and once settled) and the final functions of Figs 2-3;
- figures.py: one function per figure (Figs 1-3, Theorem 3);
- claims.py: the paper's claims and the thresholds that are ours;
- gates.py: the preconditions its claims are judged under (label noise's drift has ended, the statistic a claim
  reads is not rising, SGD finds a complex model, the fit is seen above the noise floor).

Importing the package registers its figures and claims.
"""

from noisereg.papers.blanc import claims, figures, gates  # noqa: F401  (registers its figures, claims, gates)
