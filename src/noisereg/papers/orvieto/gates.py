"""Orvieto et al. (AISTATS 2023): the regime each figure was made in, as preconditions a condition's runs must
show (GD interpolates the synthetic data, fits the FMNIST subset, at the paper's widths); a claim whose runs miss
one is `not in regime`. Thresholds of ours are marked "ours"."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from noisereg.figures.claims import Precondition, regime
from noisereg.figures.selection import final_over_initial, mean_final
from noisereg.papers.orvieto.science import (
    NARROW_WIDTH,
    WIDE_WIDTH,
    configured_width,
)


@regime("fig2_synthetic")
def gd_interpolates(condition: pd.DataFrame) -> list[Precondition]:
    """Fig. 2's GD reaches zero training loss (the overparametrised linear net interpolates): the noisy runs are
    judged by how much of GD's excess regularised loss they remove."""
    if condition.iloc[0]["noise.name"] != "gd":
        return []
    shares = final_over_initial(condition, "train/loss")
    return [
        Precondition(
            "GD final / initial train/loss (largest over seeds; ours)",
            max(shares, default=math.nan),
            1e-6,
            False,
            "more steps (trainer.steps)",
        )
    ]


FITS = 0.95  # ours: App. F trains full-batch GD on the 1024-image subset to (near) zero training error
WIDE = ("fig3_fmnist_sigma", "fig8_mlp2", "fig10_mlp4")  # the claims about wide nets (App. F): WIDE_WIDTH wide


@dataclass
class OurPrecondition(Precondition):
    """A precondition whose threshold is ours, not the paper's: its text says so after the threshold (`what` stays
    the measured quantity alone)."""

    ours: str  # why the threshold is ours, e.g. "GD fits the subset, ≥ 95 % train accuracy"

    def __str__(self) -> str:
        return f"{super().__str__()} (ours: {self.ours})"


def scale_remedy(runs: pd.DataFrame, more: str) -> str:
    """What would reach the regime: the paper's sizes where the runs were reduced, else `more`."""
    scale = runs["scale"].iloc[0] if len(runs) else "paper"
    return more if scale == "paper" else f"the paper's scale (scale=paper; on a GPU: make reproduce-gpu), or {more}"


@regime("fig3_fmnist_sigma", "fig7_mlp1", "fig8_mlp2", "fig9_mlp3", "fig10_mlp4")
def gd_fits_the_training_subset(condition: pd.DataFrame) -> list[Precondition]:
    """The FMNIST figures compare noise against a GD that fits the 1024 training images; a GD that never trained
    says nothing about them. GD: noise=gd, or σ = 0 in the σ sweep of Fig. 3."""
    first = condition.iloc[0]
    if first["noise.name"] != "gd" and float(first.get("noise.sigma", math.nan)) != 0.0:
        return []
    preconditions: list[Precondition] = [
        OurPrecondition(
            "GD final train/acc (mean over seeds)",
            mean_final(condition, "train/acc"),
            FITS,
            True,
            scale_remedy(condition, "more steps (trainer.steps)"),
            "GD fits the subset, ≥ 95 % train accuracy",
        )
    ]
    if first["experiment"] in WIDE:  # the claim is about width: "for this wide model", "since the network is wide"
        preconditions.append(
            Precondition(
                "hidden width",
                float(max(first["model.widths"])),
                WIDE_WIDTH,
                True,
                scale_remedy(condition, "the paper's widths"),
            )
        )
    return preconditions


@regime("fig4_deep_mlp", part="model.widths")  # two claims, one per net: each width is judged apart
def each_fig4_net_fits_at_its_width(condition: pd.DataFrame) -> list[Precondition]:
    """As for the other FMNIST figures, GD fits the training subset; and each of Fig. 4's nets is as wide as the
    paper's: the wide one (configured at 5000 before its scale) at least 5000, the narrow one at least 1000."""
    preconditions = gd_fits_the_training_subset(condition)
    width, remedy = float(max(condition.iloc[0]["model.widths"])), scale_remedy(condition, "the paper's widths")
    if is_the_wide_net(condition):
        preconditions.append(Precondition("hidden width of the wide net", width, WIDE_WIDTH, True, remedy))
    else:
        preconditions.append(
            Precondition(
                f"hidden width of the narrow net (ours: at least the paper's {NARROW_WIDTH})",
                width,
                NARROW_WIDTH,
                True,
                remedy,
            )
        )
    return preconditions


def is_the_wide_net(part: pd.DataFrame) -> bool:
    """Whether one width's runs are Fig. 4's wide net (configured at 5000 before the scale), or its narrow one."""
    return configured_width(part) >= WIDE_WIDTH
