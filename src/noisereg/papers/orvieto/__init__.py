"""Orvieto, Raj, Kersting, Bach, "Explicit regularization in overparametrized models via noise injection"
(AISTATS 2023): layer-wise against all-parameter noise injection.

    science.py   the noise modes, the nets' widths, the regularised loss of Eq. 11 and its closed-form minimum, the
                 growth of R_σ − L with width (Sec. 3.1), the σ fixed in advance (App. F), the SGD baseline of Fig. 6
    figures.py   one function per figure (Figs 1-12) and the helpers that draw them
    claims.py    the paper's claims about each figure and the regime each was made in, with our thresholds

Importing the package registers its figures and claims (see noisereg/papers/__init__.py).
"""

from noisereg.papers.orvieto import claims, figures  # noqa: F401  (register its figures and claims)
