"""Orvieto, Raj, Kersting, Bach, "Explicit regularization in overparametrized models via noise injection"
(AISTATS 2023): layer-wise against all-parameter noise injection.

    science.py   the noise modes, the nets' widths, the regularised loss of Eq. 11 and its closed-form minimum, the
                 growth of R_σ − L with width (Sec. 3.1), the σ fixed in advance (App. F), the SGD baseline of Fig. 6
    figures.py   one function per figure (Figs 1-12) and the helpers that draw them
    claims.py    the paper's claims about each figure, with our thresholds
    gates.py     the regime each figure was made in (GD interpolates, fits the subset, at the paper's widths)

Importing the package registers its figures and claims (see noisereg/papers/__init__.py).
"""

from noisereg.papers.orvieto import claims, figures, gates  # noqa: F401  (register its figures, claims, regimes)
