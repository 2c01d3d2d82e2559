"""Orvieto, Raj, Kersting, Bach (AISTATS 2023): the science behind its figures and claims, neither drawing nor
judging. The noise modes and their labels, the nets' widths (App. F, Eqs. 50-53), the regularised loss of Eq. 11 and
its closed-form minimum, the growth of R_σ − L with d₁ (Sec. 3.1), the σ fixed in advance (App. F) and the SGD
baseline of Fig. 6; and the per-run reductions the claims judge.

Seeds aggregate as the paper does: mean ± 1 std over 3 runs (App. F, "Setup"), mean ± SEM for Fig. 6.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from noisereg.figures.selection import final, late_mean, select
from noisereg.figures.statistics import Evidence

PAPER = "Orvieto et al. 2023"
MODES = {"gd": "GD", "gd_noise": "GD+noise", "layerwise": "GD+noise (layer)"}
SGD_MODES = {"gd": "SGD", "gd_noise": "SGD+noise", "layerwise": "SGD+noise (layer)"}


def widths(runs: pd.DataFrame) -> list[tuple]:
    return sorted(runs["model.widths"].unique(), key=lambda w: (max(w), len(w)))


def describe(width: tuple) -> str:
    return f"{len(width)}×{width[0]}"


# -- Fig. 1 ----------------------------------------------------------------------------------------------------------


def excess_growth(runs: pd.DataFrame, mode: str, sizes: list[tuple]) -> Evidence:
    """log of (R_σ − L) at the largest of `sizes` over (R_σ − L) at the smallest, per seed: how much the noise's
    penalty grows with d₁ (the σ⁴ d₁ d₂ variance term of Sec. 3.1 makes it grow linearly for all-parameter noise)."""
    chosen = select(runs, **{"noise.name": mode})

    def excess(width: tuple) -> dict:
        expected = final(chosen, "theory/R_sigma_mc", **{"model.widths": list(width)}).values
        loss = final(chosen, "train/loss", **{"model.widths": list(width)}).values
        return {seed: expected[seed] - loss[seed] for seed in expected.keys() & loss.keys()}

    small, large = excess(sizes[0]), excess(sizes[-1])
    values = {s: math.log(large[s] / small[s]) for s in small.keys() & large.keys() if small[s] > 0 and large[s] > 0}
    return Evidence(f"{MODES[mode]} log(excess at d₁={sizes[-1][0]} / d₁={sizes[0][0]})", values)


# -- Fig. 2 ----------------------------------------------------------------------------------------------------------


def with_regularized_loss(runs: pd.DataFrame) -> pd.DataFrame:
    """GD runs log no `loss/regularized` (they inject nothing); give them the loss they would be judged by: their
    loss plus σ_p²/2 · tr(Jᵀ H_L J) (Eq. 11) at the σ of the noise runs, σ_p = σ/√M, M the parameter groups of that
    run (the `reg/ggn_trace/<group>` columns it logged itself, never those of other runs). The train set is the
    curvature subset here (40 points), so train/loss is the loss of Eq. 11."""
    if "reg/ggn_trace" not in runs:  # curvature was off: nothing to derive it from (the figure says so)
        return runs
    runs = runs.copy()
    if "loss/regularized" not in runs:
        runs["loss/regularized"] = math.nan
    group_columns = [column for column in runs.columns if column.startswith("reg/ggn_trace/")]
    groups = runs[group_columns].notna().groupby(runs["run"]).transform("any").sum(axis=1) if group_columns else 1
    missing = runs["loss/regularized"].isna() & runs["reg/ggn_trace"].notna() & (runs["noise.name"] == "gd")
    sigma_p2 = runs["noise.sigma"].astype(float) ** 2 / np.maximum(groups, 1)
    runs.loc[missing, "loss/regularized"] = runs["train/loss"] + 0.5 * sigma_p2 * runs["reg/ggn_trace"]
    return runs


# The last iterate under constant lr and noise fluctuates by about an order of magnitude between evaluations (the
# figure): each run is judged by its mean over the last 10 % of its evaluations.
LATE = 0.1


def regularized_minimum(runs: pd.DataFrame, width: tuple) -> dict:
    """Per seed, the closed-form minimum of the regularised loss (the same data for every mode of a seed: logged
    by its noisy runs, `theory/regularized_minimum`)."""
    chosen = select(runs, **{"model.widths": list(width)})
    minima = {}
    for mode in ("layerwise", "gd_noise"):
        minima.update(
            {
                s: v
                for s, v in final(
                    chosen, "theory/regularized_minimum", MODES[mode], **{"noise.name": mode}
                ).values.items()
                if s not in minima
            }
        )
    return minima


def distance_to_minimum(runs: pd.DataFrame, width: tuple, mode: str) -> Evidence:
    """Per seed, (R_mode − min R) / (R_GD − min R): how much of GD's excess of the regularised loss over its
    minimum the noise mode is left with (0: at the minimiser; 1: no nearer than plain GD), R the late mean."""
    runs = with_regularized_loss(runs)
    where = {"model.widths": list(width)}
    mode_r = late_mean(runs, "loss/regularized", MODES[mode], LATE, **where, **{"noise.name": mode})
    gd_r = late_mean(runs, "loss/regularized", MODES["gd"], LATE, **where, **{"noise.name": "gd"})
    minimum = regularized_minimum(runs, width)
    values = {
        seed: (mode_r.values[seed] - minimum[seed]) / (gd_r.values[seed] - minimum[seed])
        for seed in mode_r.values.keys() & gd_r.values.keys() & minimum.keys()
        if gd_r.values[seed] > minimum[seed]
    }
    return Evidence(
        f"d₁={width[0]} {MODES[mode]}: (R − min R)/(R_GD − min R)",
        values,
        mode_r.diverged + gd_r.diverged,
        mode_r.unfinished + gd_r.unfinished,
    )


# -- Figs 3 and 6: the σ fixed in advance ------------------------------------------------------------------------------

# σ is fixed before any accuracy is seen: picking the σ with the best test accuracy and then testing that accuracy
# would lean towards `holds`. App. F: "picking a value around 0.05 works in all settings". Fig. 6's caption says
# "with a high σ", where all-parameter noise already hurts ("for σ > 0.1 it hurts performance"): 0.1 (ours).
PRESET_SIGMA = 0.05
FIG6_SIGMA = 0.1
PRESET_SPAN = 2.0  # ours: the swept σ used for a preset must lie within ×2 of it, or the claim is not judged


def preset_sigma(runs: pd.DataFrame, mode: str, preset: float = PRESET_SIGMA) -> float | None:
    """The swept σ > 0 of `mode` nearest `preset` on a log scale (the preset itself where the sweep has it), chosen
    by the grid alone; None where no swept σ lies within ×2 of it."""
    chosen = select(runs, **{"noise.name": mode})
    sigmas = sorted(float(s) for s in chosen["noise.sigma"].unique() if s > 0) if "noise.sigma" in chosen else []
    near = [s for s in sigmas if abs(math.log(s / preset)) <= math.log(PRESET_SPAN)]
    return min(near, key=lambda s: abs(math.log(s / preset)), default=None)


# -- Figs 4, 7-10: deep and wide MLPs ------------------------------------------------------------------------------

WIDE_WIDTH = 5000  # the wide nets' hidden width (App. F, Eq. 51)
NARROW_WIDTH = 1000  # Fig. 4's narrow net (App. F, Eq. 50); its wide one is WIDE_WIDTH wide (Eq. 51)


def configured_width(condition: pd.DataFrame) -> float:
    """The hidden width the runs were configured at, before their scale divided it (scale.width_factor, e.g. 0.1 at
    scale=cpu): whether they are Fig. 4's narrow or its wide net."""
    first = condition.iloc[0]
    factor = first.get("scale.width_factor")
    factor = 1.0 if factor is None or pd.isna(factor) else float(factor)
    return float(round(max(first["model.widths"]) / factor))


def mode_evidence(runs: pd.DataFrame, metric: str, mode: str) -> Evidence:
    return final(runs, metric, MODES[mode], **{"noise.name": mode})


MLPS = {
    "fig7_mlp1": ("Fig. 7", "MLP 1 (shallow narrow, 784-500³-10)"),
    "fig8_mlp2": ("Fig. 8", "MLP 2 (shallow wide, 784-5000³-10)"),
    "fig9_mlp3": ("Fig. 9", "MLP 3 (deep narrow, 784-1000⁵-10)"),
    "fig10_mlp4": ("Fig. 10", "MLP 4 (deep wide, 784-5000⁵-10)"),
}


# -- CIFAR-10: Figs 5, 11, 12 (CNNs) and 6 (ResNet18) ----------------------------------------------------------------

CNNS = {"toy_cnn": "toy CNN+MLP (Eq. 52)", "wide_cnn": "wide CNN (Eq. 53)"}

BASELINE_SIGMA = 1e-3  # "SGD is plotted at σ = 1e-3 instead of σ = 0 for better visualization"


def with_sgd_baseline(runs: pd.DataFrame) -> pd.DataFrame:
    """The SGD baseline as one group (`noise.name` gd, at σ = 1e-3): the runs with noise=gd, or else the σ = 0 runs
    of one mode (either mode at σ = 0 trains exactly as SGD, conf/experiment/orvieto/fig6_resnet.yaml; one copy is
    kept so no seed counts twice); the noisy runs (σ > 0) as they are."""
    plain = runs[runs["noise.name"] == "gd"]
    if plain.empty:
        zero = runs[runs["noise.sigma"] == 0]
        plain = zero[zero["noise.name"] == min(zero["noise.name"], default=None)]
    noisy = runs[(runs["noise.name"] != "gd") & (runs["noise.sigma"] > 0)]
    return pd.concat([plain.assign(**{"noise.name": "gd", "noise.sigma": BASELINE_SIGMA}), noisy], ignore_index=True)
