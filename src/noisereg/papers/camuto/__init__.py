"""Camuto, Willetts, Şimşekli, Roberts, Holmes, "Explicit Regularisation in Gaussian Noise Injections" (NeurIPS 2020):
Gaussian noise on activations against its explicit regulariser R (Eq. 9).

    science.py   the arms, tasks and models; R against the remainder E[C], the gap between two arms' trajectories,
                 the baseline's overconfidence, high-frequency amplitudes, the layer statistics' ordering with k
    figures.py   one function per figure (Figs 2-5 and F.7) and the labels they draw with
    claims.py    the paper's claims about each figure and the regime each was made in, with our thresholds

Importing the package registers its figures and claims (see noisereg/papers/__init__.py).
"""

from noisereg.papers.camuto import claims, figures  # noqa: F401  (register its figures and claims)
