"""The papers' claims and the regime they were made in: the registries each paper's claims.py fills.

Each paper registers the claims it makes about a figure: the sentence quoted from the paper, and a function that
computes the statistic from the experiment's runs (selection.py) and returns a `Verdict` (statistics.py):

    @claim("fig2_synthetic", "Fig. 2", ORVIETO, "for 300 hidden neurons, only injecting noise layer-wise ...")
    def layerwise_reaches_the_regularised_minimum(runs):
        layerwise = final(runs, "loss/regularized", **{"noise.name": "layerwise"})
        ...
        return less(layerwise, all_parameters)

and the preconditions under which the paper made the figure (`@regime`, one condition's runs at a time): a claim
whose experiment misses one is `not in regime`, never `fails` (report.py). A claim may carry preconditions of its
own (`@claim(..., gates=...)`, the same kind of function), e.g. that the statistic it reads at the end of a run has
stopped drifting: those gate that claim alone, beside its experiment's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.selection import finished
from noisereg.figures.statistics import Verdict, _fmt


@dataclass
class Claim:
    experiment: str
    figure: str  # as the paper numbers it, e.g. "Fig. 2"
    paper: str
    quote: str
    evaluate: Callable[[pd.DataFrame], Verdict]
    gates: tuple[Gate, ...] = field(default=())  # this claim's own preconditions, beside its experiment's regime
    # With a part-judged experiment (PARTS): whether one part's runs are what this claim is about (Fig. 4's narrow
    # net); the other parts are neither judged nor named in its row. None: every part.
    concerns: Callable[[pd.DataFrame], bool] | None = None

    @property
    def label(self) -> str:
        """The figure and the quote's first words, to name the claim in a table."""
        words = self.quote.split()
        return f"{self.figure} “{' '.join(words[:5])}{' …' if len(words) > 5 else ''}”"


CLAIMS: list[Claim] = []


def registered_claims() -> list[Claim]:
    """The claims the papers registered; an error naming the import that registers them where none is (this
    package imports no paper: `noisereg.papers` does, and a caller that skipped it would report every claim as
    not run)."""
    if not CLAIMS:
        raise RuntimeError("no claims are registered: import noisereg.papers first (it registers every paper's)")
    return CLAIMS


def claim(
    experiment: str,
    figure: str,
    paper: str,
    quote: str,
    gates: Sequence[Gate] = (),
    concerns: Callable[[pd.DataFrame], bool] | None = None,
):
    """Register a claim; `gates`: preconditions of this claim alone (one condition's runs at a time, as `@regime`'s),
    for what its own statistic needs, e.g. that the quantity it reads at the end of a run has stopped drifting;
    `concerns`: for an experiment judged by parts, which parts the claim is about (`Claim.concerns`)."""

    def register(evaluate: Callable[[pd.DataFrame], Verdict]) -> Callable[[pd.DataFrame], Verdict]:
        CLAIMS.append(Claim(experiment, figure, paper, quote, evaluate, tuple(gates), concerns))
        return evaluate

    return register


@dataclass
class Precondition:
    """One measured fact a condition's runs must show for the paper's figure to apply, e.g. GD's final training
    accuracy ≥ 0.95 on the FMNIST subset."""

    what: str  # e.g. "GD final train/acc (mean over seeds)"
    measured: float
    threshold: float
    at_least: bool  # True: measured ≥ threshold is needed; False: measured < threshold
    remedy: str  # what would reach it: the paper's scale, more steps, a GPU

    @property
    def met(self) -> bool:
        return math.isfinite(self.measured) and (
            self.measured >= self.threshold if self.at_least else self.measured < self.threshold
        )

    def __str__(self) -> str:
        needed = f"{'≥' if self.at_least else '<'} {self.threshold:g}"
        return f"{self.what} {_fmt(self.measured)} (needs {needed})"


# The preconditions one condition's runs must show (an empty list: none), computed on its finished runs.
Gate = Callable[[pd.DataFrame], list[Precondition]]
# experiment -> the preconditions of one condition's runs (an empty list: this condition is not gated)
REGIMES: dict[str, Gate] = {}
# experiment -> a config key whose values the claims judge apart (Camuto Fig. 3's models): a value whose conditions
# miss a precondition is left out, the others are judged
PARTS: dict[str, str] = {}


def regime(*experiments: str, part: str | None = None):
    """Register the preconditions of the experiments' figures, computed on one condition's runs at a time; with
    `part`, the claims judge each value of that key apart (their functions loop over it), so a value out of regime
    is left out of the claim rather than taking the others with it."""

    def register(gate: Callable[[pd.DataFrame], list[Precondition]]):
        for experiment in experiments:
            REGIMES[experiment] = gate
            if part:
                PARTS[experiment] = part
        return gate

    return register


def condition_preconditions(experiment: str, condition: pd.DataFrame, gates: Sequence[Gate] = ()) -> list[Precondition]:
    """The preconditions of one condition's runs (finished runs only): its experiment's regime, then `gates` (a
    claim's own); none where there is no gate or the condition has no finished run."""
    done = finished(condition)
    chosen = [gate for gate in (REGIMES.get(experiment), *gates) if gate is not None]
    return [p for gate in chosen for p in _checked(gate, done)] if not done.empty else []


def _checked(gate: Gate, condition: pd.DataFrame) -> list[Precondition]:
    """A gate's preconditions; one that cannot be computed on these records (a metric they lack, a zero it divides
    by) is an unmet precondition that says why, never an exception that takes the whole report with it."""
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return list(gate(condition))
    except (ArithmeticError, KeyError, ValueError, SettingError) as error:
        name = getattr(gate, "__name__", "a precondition")
        return [
            Precondition(
                f"{name} could not be computed on these records ({type(error).__name__}: {error})",
                math.nan,
                math.nan,
                True,
                "records that log what the gate reads",
            )
        ]
