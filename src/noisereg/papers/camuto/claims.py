"""Camuto, Willetts, Şimşekli, Roberts, Holmes (NeurIPS 2020): the paper's claims about Figs 2-5 and F.7, quoted,
and the regime each was made in (a baseline that has trained, that fits the sines, that is miscalibrated). The
thresholds of ours are marked "ours"; what the claims measure is derived in science.py.

Noise strengths are variances σ², as the paper quotes them (`noise.variance`). Seeds aggregate as mean ± 1 std
(Fig. 2c, d: "Shading corresponds to the standard deviation of values over the 10 networks").
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from noisereg.figures.claims import Precondition, claim, regime
from noisereg.figures.selection import final_over_initial, mean_final, select
from noisereg.figures.statistics import (
    Evidence,
    Settle,
    Verdict,
    above,
    all_of,
    below,
    exceeds,
    less,
    ours,
    share,
    tally,
)
from noisereg.papers.camuto.science import (
    ARMS,
    LAYER_QUANTITIES,
    PAPER,
    arm_evidence,
    at_initialisation,
    baseline_overconfidence,
    high_frequency_amplitude,
    layer_ordering,
    model_runs,
    model_title,
    models,
    trajectory_gap,
)

TRAINED_STEPS, TRAINED_ACCURACY = 1000, 0.80  # ours: the paper trains Fig. 3's nets for 250 epochs
OVERCONFIDENT, OVERFIT = 0.0, 0.05  # ours: the calibration claim's premise (mean confidence − accuracy; train − test)
CALIBRATION_REMEDY = "a baseline that overfits: camuto/fig3_model=deep_mlp (the 4×256 MLP, 100 epochs)"
FITTED = 0.1  # ours: Figs 4-5's baseline must fit the sines (final train loss at most this share of the initial)


@regime("camuto_fig3_explicit_vs_gni", part="model.name")  # its claims judge each model apart (for_each_model)
def the_baseline_has_trained(condition: pd.DataFrame) -> list[Precondition]:
    """Fig. 3 compares trajectories through training: the baseline (no noise) must have trained for long enough to
    have one (SGD steps, training accuracy)."""
    if condition.iloc[0]["noise.name"] != "gd":
        return []
    steps = float(condition.groupby("run")["step"].max().min())
    remedy = "the paper's width and length (scale=paper, 100 epochs; a GPU: make reproduce-gpu)"
    return [
        Precondition("baseline SGD steps (fewest over seeds; ours)", steps, TRAINED_STEPS, True, remedy),
        Precondition(
            "baseline final train/acc (ours)", mean_final(condition, "train/acc"), TRAINED_ACCURACY, True, remedy
        ),
    ]


@regime("camuto_fig4_fourier", "camuto_fig5_layer_frequencies")
def the_baseline_fits_the_sines(condition: pd.DataFrame) -> list[Precondition]:
    """'Don't overfit' and the frequency ordering are about nets that fit their targets: the baseline's final
    training loss must be a small share of its initial one."""
    if condition.iloc[0]["noise.name"] != "gd" or "train/loss" not in condition:
        return []
    shares = final_over_initial(condition, "train/loss")
    return [
        Precondition(
            "baseline final / initial train/loss (mean over seeds; ours)",
            float(np.mean(shares)) if shares else math.nan,
            FITTED,
            False,
            "the paper's 60,000 steps (scale=paper)",
        )
    ]


# -- Fig. 2: R against the remainder ---------------------------------------------------------------------------------


def initialisations(points: pd.DataFrame) -> str:
    """How many of the checks at initialisation are independent: one network per (task, seed); its σ² values share
    the initialisation and the batch."""
    count = points.groupby(["dataset.name", "seed"]).ngroups if len(points) else 0
    return (
        f"{count} initialisations (task × seed) of {len(points)} checks; the σ² values of one initialisation share it"
    )


@claim("camuto_fig2_remainder", "Fig. 2a, b", PAPER, "for all batches and GNI variances R is greater than E[C]")
def regulariser_exceeds_the_remainder(runs: pd.DataFrame) -> Verdict:
    points = at_initialisation(runs)
    checks = [
        exceeds(
            row["remainder/R"],
            row["remainder/expected_C"],
            row["remainder/expected_C_sem"],
            f"{row['dataset.name']} σ²={row['noise.variance']:g} seed {row['seed']}: R vs E[C]",
        )
        for _, row in points.iterrows()
    ]
    return ours(tally(checks, "R > E[C] at initialisation", initialisations(points), at_least=0.99))


@claim(
    "camuto_fig2_remainder", "Fig. 2a, b", PAPER, "It [R] dominates the remainder E[C] in norm and is always positive"
)
def regulariser_dominates_the_remainder_in_norm(runs: pd.DataFrame) -> Verdict:
    points = at_initialisation(runs)
    checks = [
        exceeds(
            row["remainder/R"],
            abs(row["remainder/expected_C"]),
            row["remainder/expected_C_sem"],
            f"{row['dataset.name']} σ²={row['noise.variance']:g} seed {row['seed']}: R vs |E[C]|",
        )
        for _, row in points.iterrows()
    ]
    positive = [exceeds(row["remainder/R"], 0.0, 0.0, "R") for _, row in points.iterrows()]
    independent = initialisations(points)
    return all_of(
        ours(tally(checks, "R > |E[C]| at initialisation", independent, at_least=0.99)),
        tally(positive, "R > 0", independent),
    )


@claim(
    "camuto_fig2_remainder",
    "Fig. 2c, d",
    PAPER,
    "R(·) remains dominant in early stages of training as the ratio is less than 1 for all steps",
)
def regulariser_stays_dominant_early_in_training(runs: pd.DataFrame) -> Verdict:
    """|E[C]|/R below 1 at every logged step, for every task and σ², by 2 SE over seeds."""
    runs = runs.assign(**{"remainder/abs_ratio": runs["remainder/ratio"].abs()}) if "remainder/ratio" in runs else runs
    checks = []
    for (task, variance), group in runs.groupby(["dataset.name", "noise.variance"]):
        for step, rows in group[group["remainder/abs_ratio"].notna()].groupby("step"):
            values = dict(zip(rows["seed"], rows["remainder/abs_ratio"].astype(float)))
            evidence = Evidence(f"{task} σ²={variance:g} step {int(step)} |E[C]|/R", values)
            checks.append(below(evidence, 1.0))
    pairs = runs.groupby(["dataset.name", "noise.variance"]).ngroups
    return tally(
        checks,
        "|E[C]|/R < 1 per task, σ² and step",
        f"{pairs} (task, σ²) pairs, each a test over its seeds; the steps of one run are not independent of each other",
    )


# -- Fig. 3: GNI against its explicit regulariser R and the baseline ----------------------------------------------


def for_each_model(
    runs: pd.DataFrame,
    check: Callable[[pd.DataFrame, str], list[Verdict]],
    arms: Sequence[str] = ("gd", "gni"),
    only: Sequence[tuple] | None = None,
) -> Verdict:
    """`check(runs of one model, its title)` for every model of the experiment whose sweep ran the `arms` the check
    compares (the 4×256 MLP runs only the baseline and GNI: its explicit-R step costs 9× a plain one), or the
    models `only`; holds if every part holds."""
    parts = []
    for name, widths in models(runs) if only is None else only:
        group = model_runs(runs, name, widths)
        if set(arms) <= set(group["noise.name"]):
            parts += check(group, model_title(name, widths))
    return all_of(*parts) if parts else Verdict("inconclusive", f"no model ran all of {', '.join(arms)}", "")


def arms_follow_one_trajectory(runs: pd.DataFrame, metric: str, log: bool = False) -> Verdict:
    """GNI and R closer to each other over training than either is to the baseline, for every model."""

    def check(group: pd.DataFrame, title: str) -> list[Verdict]:
        together = trajectory_gap(group, metric, "gni", "gni_explicit", log)
        together.name = f"{title} {together.name}"
        return [
            less(together, trajectory_gap(group, metric, "gni", "gd", log)),
            less(together, trajectory_gap(group, metric, "gni_explicit", "gd", log)),
        ]

    return for_each_model(runs, check, arms=tuple(ARMS))


@claim(
    "camuto_fig3_explicit_vs_gni",
    "Fig. 3a",
    PAPER,
    "models trained with R and GNIs have similar training "
    "profiles, whereby they have similar test-set loss ... throughout training (and both differ from the "
    "baseline)",
)
def gni_and_regulariser_share_the_test_loss_trajectory(runs: pd.DataFrame) -> Verdict:
    return arms_follow_one_trajectory(runs, "test/loss")


@claim(
    "camuto_fig3_explicit_vs_gni",
    "Fig. 3b",
    PAPER,
    "models trained with R and GNIs have ... similar ... parameter "
    "Hessians throughout training, meaning that they have almost identical trajectories through the loss "
    "landscape (and both differ from the baseline)",
)
def gni_and_regulariser_share_the_hessian_trajectory(runs: pd.DataFrame) -> Verdict:
    return arms_follow_one_trajectory(runs, "hessian/trace", log=True)


@claim(
    "camuto_fig3_explicit_vs_gni",
    "Fig. 3b",
    PAPER,
    "By penalising this we are more likely to land in wider (smoother) minima (see Figure 3)",
)
def noise_and_regulariser_land_in_wider_minima(runs: pd.DataFrame) -> Verdict:
    def check(group: pd.DataFrame, title: str) -> list[Verdict]:
        baseline = arm_evidence(group, "hessian/trace", "gd", title)
        return [less(arm_evidence(group, "hessian/trace", arm, title), baseline) for arm in ("gni", "gni_explicit")]

    return for_each_model(runs, check, arms=tuple(ARMS))


def calibration_premise(group: pd.DataFrame, title: str) -> Precondition:
    """Guo et al.'s miscalibration, which Camuto et al. say GNI reduces, is overconfidence of networks that overfit:
    the baseline (no noise) must be overconfident beyond its spread over seeds (mean − 2 standard errors of
    confidence − accuracy above 0) or overfit (train − test accuracy ≥ 0.05), else there is nothing for the noise
    to correct."""
    baseline = select(group, **{"noise.name": "gd"})
    over = baseline_overconfidence(baseline)
    bound = float(np.mean(over) - 2 * np.std(over, ddof=1) / math.sqrt(len(over))) if len(over) >= 2 else math.nan
    gap = mean_final(baseline, "train/acc") - mean_final(baseline, "test/acc")
    margins = [m for m in (bound - OVERCONFIDENT, gap - OVERFIT) if math.isfinite(m)]
    return Precondition(
        f"{title} baseline overconfident or overfit: the larger of confidence − accuracy less 2 "
        f"standard errors ({bound:.3g}) and train − test accuracy − {OVERFIT:g} ({gap - OVERFIT:.3g}) "
        "(ours)",
        max(margins) if margins else math.nan,
        0.0,
        True,
        CALIBRATION_REMEDY,
    )


@claim(
    "camuto_fig3_explicit_vs_gni",
    "Fig. F.7",
    PAPER,
    "lower values of which have been shown empirically to induce "
    "better calibrated models ... In Figure F.7 we show that this holds true for models trained with GNIs",
)
def noise_calibrates(runs: pd.DataFrame) -> Verdict:
    premises = {
        (name, widths): calibration_premise(model_runs(runs, name, widths), model_title(name, widths))
        for name, widths in models(runs)
    }
    judged = [model for model, premise in premises.items() if premise.met]
    left_out = "; ".join(str(premise) for premise in premises.values() if not premise.met)
    if not judged:
        return Verdict(
            "not in regime",
            left_out,
            "the claim's premise: a miscalibrated (overconfident or overfit) baseline",
            settled_by=Settle(math.inf, CALIBRATION_REMEDY),
        )

    def check(group: pd.DataFrame, title: str) -> list[Verdict]:
        return [
            less(
                arm_evidence(group, "calibration/ece", "gni", title),
                arm_evidence(group, "calibration/ece", "gd", title),
            )
        ]

    verdict = for_each_model(runs, check, only=judged)
    if left_out:
        verdict.numbers += f" (premise not met, left out: {left_out})"
    return verdict


# -- Fig. 4: the Fourier spectrum of the learnt function -----------------------------------------------------------


@claim(
    "camuto_fig4_fourier",
    "Fig. 4",
    PAPER,
    "networks trained with GNIs learn functions that don't overfit; with "
    "lower-frequency components relative to their non-noised counterparts",
)
def noise_suppresses_high_frequencies(runs: pd.DataFrame) -> Verdict:
    """The quote's comparison, GNI against the baseline; the figure's third arm, the explicit regulariser R in
    GNI's place, too where it was run (results/ has not: its runs cost 3× a GNI run on a CPU)."""
    baseline = high_frequency_amplitude(runs, "gd")
    parts = [less(high_frequency_amplitude(runs, "gni"), baseline)]
    if "gni_explicit" in set(runs["noise.name"]):
        parts.append(less(high_frequency_amplitude(runs, "gni_explicit"), baseline))
    return all_of(*parts)


# -- Fig. 5: layer-wise frequencies ----------------------------------------------------------------------------------


@claim(
    "camuto_fig5_layer_frequencies",
    "Fig. 5",
    PAPER,
    "‖W̃ₖ‖²₂ and Tr(Wₖ) decrease as k increases for "
    "ReLU-networks trained with GNIs ... This striation and ordering is clearly absent in the baselines",
)
def deeper_layers_learn_lower_frequencies(runs: pd.DataFrame) -> Verdict:
    """ "Decrease as k increases": the GNI runs' layers in order (Spearman's ρ ≤ −0.8 in at least 80 % of runs); "the
    ordering is clearly absent in the baselines": their mean ρ above −0.5, and below the GNI runs' by the test."""
    parts = []
    for quantity in LAYER_QUANTITIES:
        noise, baseline = layer_ordering(runs, quantity, "gni"), layer_ordering(runs, quantity, "gd")
        parts += [
            ours(share(noise, lambda rho: rho <= -0.8, 0.8, "with ρ ≤ −0.8 (layers in decreasing order)")),
            ours(above(baseline, -0.5)),
            less(noise, baseline),
        ]
    return all_of(*parts)
