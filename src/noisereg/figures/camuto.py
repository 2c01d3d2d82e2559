"""Camuto, Willetts, Şimşekli, Roberts, Holmes (NeurIPS 2020): one function per figure, and the paper's claims.

Noise strengths are variances σ², as the paper quotes them (`noise.variance`). Seeds aggregate as mean ± 1 std
(Fig. 2c, d: "Shading corresponds to the standard deviation of values over the 10 networks").
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from noisereg.figures.canvas import Canvas
from noisereg.figures.claims import (
    Evidence,
    Precondition,
    Settle,
    Verdict,
    above,
    all_of,
    below,
    claim,
    exceeds,
    final,
    final_over_initial,
    less,
    mean_final,
    ours,
    rank_correlation,
    regime,
    select,
    share,
    tally,
)
from noisereg.figures.grouping import last_arrays
from noisereg.figures.registry import figure
from noisereg.probes.calibration import overconfidence

PAPER = "Camuto et al. 2020"
ARMS = {"gd": "baseline (no noise)", "gni": "GNI", "gni_explicit": "explicit R"}
TASKS = {"fmnist_subset": "Fashion-MNIST, cross-entropy (CIFAR-10 in the paper)",
         "diabetes": "diabetes, squared error (Boston house prices in the paper)"}  # fmt: skip
MODELS = {"mlp": "MLP", "strided_cnn": "CNN"}


TRAINED_STEPS, TRAINED_ACCURACY = 1000, 0.80  # ours: the paper trains Fig. 3's nets for 250 epochs
OVERCONFIDENT, OVERFIT = 0.0, 0.05  # ours: the calibration claim's premise (mean confidence − accuracy; train − test)
CALIBRATION_REMEDY = "a baseline that overfits: camuto_fig3_model=deep_mlp (the 4×256 MLP, 100 epochs)"
FITTED = 0.1  # ours: Figs 4-5's baseline must fit the sines (final train loss at most this share of the initial)


@regime("camuto_fig3_explicit_vs_gni", part="model.name")  # its claims judge each model apart (for_each_model)
def the_baseline_has_trained(condition: pd.DataFrame) -> list[Precondition]:
    """Fig. 3 compares trajectories through training: the baseline (no noise) must have trained for long enough to
    have one (SGD steps, training accuracy)."""
    if condition.iloc[0]["noise.name"] != "gd":
        return []
    steps = float(condition.groupby("run")["step"].max().min())
    remedy = "the paper's width and length (scale=paper, 100 epochs; a GPU: make reproduce-gpu)"
    return [Precondition("baseline SGD steps (fewest over seeds; ours)", steps, TRAINED_STEPS, True, remedy),
            Precondition("baseline final train/acc (ours)", mean_final(condition, "train/acc"), TRAINED_ACCURACY,
                         True, remedy)]  # fmt: skip


@regime("camuto_fig4_fourier", "camuto_fig5_layer_frequencies")
def the_baseline_fits_the_sines(condition: pd.DataFrame) -> list[Precondition]:
    """'Don't overfit' and the frequency ordering are about nets that fit their targets: the baseline's final
    training loss must be a small share of its initial one."""
    if condition.iloc[0]["noise.name"] != "gd" or "train/loss" not in condition:
        return []
    shares = final_over_initial(condition, "train/loss")
    return [Precondition("baseline final / initial train/loss (mean over seeds; ours)", float(np.mean(shares)) if shares
                         else math.nan, FITTED, False, "the paper's 60,000 steps (scale=paper)")]  # fmt: skip


def by_arm(config: dict) -> str:
    return ARMS.get(config.get("noise.name"), str(config.get("noise.name")))


def by_variance(config: dict) -> str:
    return f"σ² = {config.get('noise.variance'):g}"


def tasks(runs: pd.DataFrame) -> list[str]:
    return [t for t in TASKS if t in set(runs["dataset.name"])]


# -- Fig. 2: R against the remainder ---------------------------------------------------------------------------------


@figure("camuto_fig2_remainder", PAPER, "Fig. 2: R (Eq. 9) against the remainder E[C] = E[L̃] − L − R, 5 hidden "
        "layers of 256 with GNI on the input and every hidden layer", panels=(2, 2))  # fmt: skip
def fig2_remainder(runs: pd.DataFrame, canvas: Canvas) -> None:
    for column, task in enumerate(tasks(runs)):
        chosen = select(runs, **{"dataset.name": task})
        canvas.scatter((0, column), chosen, "remainder/R", "remainder/expected_C", by="noise.variance",
                       label=by_variance, step=0, y_error="remainder/expected_C_sem", log_x=True, log_y=True,
                       identity_line=True, magnitude=True,
                       title=f"{TASKS[task]}: at initialisation, one point per seed")  # fmt: skip
        canvas.lines((1, column), chosen, "remainder/ratio", by="noise.variance", label=by_variance,
                     title=f"{TASKS[task]}: E[C]/R over GNI-SGD iterations")  # fmt: skip


def at_initialisation(runs: pd.DataFrame) -> pd.DataFrame:
    rows = runs[(runs["step"] == 0) & runs["remainder/R"].notna()] if "remainder/R" in runs else runs.iloc[0:0]
    return rows


def initialisations(points: pd.DataFrame) -> str:
    """How many of the checks at initialisation are independent: one network per (task, seed); its σ² values share
    the initialisation and the batch."""
    count = points.groupby(["dataset.name", "seed"]).ngroups if len(points) else 0
    return (f"{count} initialisations (task × seed) of {len(points)} checks; the σ² values of one initialisation "
            "share it")  # fmt: skip


@claim("camuto_fig2_remainder", "Fig. 2a, b", PAPER, "for all batches and GNI variances R is greater than E[C]")
def regulariser_exceeds_the_remainder(runs: pd.DataFrame) -> Verdict:
    points = at_initialisation(runs)
    checks = [exceeds(row["remainder/R"], row["remainder/expected_C"], row["remainder/expected_C_sem"],
                      f"{row['dataset.name']} σ²={row['noise.variance']:g} seed {row['seed']}: R vs E[C]")
              for _, row in points.iterrows()]  # fmt: skip
    return ours(tally(checks, "R > E[C] at initialisation", initialisations(points), at_least=0.99))


@claim("camuto_fig2_remainder", "Fig. 2a, b", PAPER, "It [R] dominates the remainder E[C] in norm and is always "
       "positive")
def regulariser_dominates_the_remainder_in_norm(runs: pd.DataFrame) -> Verdict:
    points = at_initialisation(runs)
    checks = [exceeds(row["remainder/R"], abs(row["remainder/expected_C"]), row["remainder/expected_C_sem"],
                      f"{row['dataset.name']} σ²={row['noise.variance']:g} seed {row['seed']}: R vs |E[C]|")
              for _, row in points.iterrows()]  # fmt: skip
    positive = [exceeds(row["remainder/R"], 0.0, 0.0, "R") for _, row in points.iterrows()]
    independent = initialisations(points)
    return all_of(ours(tally(checks, "R > |E[C]| at initialisation", independent, at_least=0.99)),
                  tally(positive, "R > 0", independent))  # fmt: skip


@claim("camuto_fig2_remainder", "Fig. 2c, d", PAPER, "R(·) remains dominant in early stages of training as the ratio "
       "is less than 1 for all steps")
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
    return tally(checks, "|E[C]|/R < 1 per task, σ² and step", f"{pairs} (task, σ²) pairs, each a test over its "
                 "seeds; the steps of one run are not independent of each other")  # fmt: skip


# -- Fig. 3: GNI against its explicit regulariser R and the baseline ----------------------------------------------


def models(runs: pd.DataFrame) -> list[tuple[str, tuple]]:
    """Each model of the experiment (name and widths), the MLPs first."""
    pairs = runs.groupby(["model.name", "model.widths"]).size().index.tolist()
    return sorted(pairs, key=lambda pair: (pair[0] != "mlp", len(pair[1]), pair[1]))


def model_title(name: str, widths: tuple) -> str:
    shape = "×".join(str(w) for w in widths) if name == "strided_cnn" else f"{len(widths)}×{widths[0]}"
    return f"{MODELS.get(name, name)} {shape}"


def model_runs(runs: pd.DataFrame, name: str, widths: tuple) -> pd.DataFrame:
    return select(runs, **{"model.name": name, "model.widths": list(widths)})


@figure("camuto_fig3_explicit_vs_gni", PAPER, "Fig. 3 and F.7: training with GNI (σ² = 0.1), with its explicit "
        "regulariser R instead, and without noise; Fashion-MNIST (SVHN in the paper)", panels=(3, 3))  # fmt: skip
def fig3_explicit_vs_gni(runs: pd.DataFrame, canvas: Canvas) -> None:
    chosen = models(runs)[:3]
    for column, (name, widths) in enumerate(chosen):
        group, title = model_runs(runs, name, widths), model_title(name, widths)
        canvas.lines((0, column), group, "test/loss", by="noise.name", label=by_arm, x="epoch",
                     title=f"{title}: test loss (Fig. 3a)")  # fmt: skip
        canvas.lines((1, column), group, "hessian/trace", by="noise.name", label=by_arm, x="epoch", log_y=True,
                     title=f"{title}: Hessian trace of the loss (Fig. 3b)")  # fmt: skip
        canvas.lines((2, column), group, "accuracy", by="noise.name", label=by_arm, x="bin_centers",
                     artifact="calibration", identity_line=True,
                     title=f"{title}: accuracy per confidence bin at the end (Fig. F.7)")  # fmt: skip
    for column in range(len(chosen), 3):
        for row in range(3):
            canvas.axes[row, column].set_visible(False)


def trajectory_gap(runs: pd.DataFrame, metric: str, first: str, second: str, log: bool = False) -> Evidence:
    """Per seed: the mean over logged steps of |m(first) − m(second)| (of log m with `log`), paired by step."""
    values = {}
    column = runs[metric].astype(float) if metric in runs else None
    if column is None:
        return Evidence(f"mean |{metric}| gap {ARMS[first]}–{ARMS[second]}", {})
    runs = runs.assign(**{metric: np.log(column) if log else column})
    arms = {arm: select(runs, **{"noise.name": arm}) for arm in (first, second)}
    for seed in sorted(set(arms[first]["seed"]) & set(arms[second]["seed"])):
        series = [arms[arm][(arms[arm]["seed"] == seed) & arms[arm][metric].notna()].set_index("step")[metric]
                  for arm in (first, second)]  # fmt: skip
        shared = series[0].index.intersection(series[1].index)
        if len(shared):
            values[seed] = float((series[0][shared] - series[1][shared]).abs().mean())
    name = f"{'log ' if log else ''}{metric}: mean gap {ARMS[first]}–{ARMS[second]}"
    return Evidence(name, values)


def for_each_model(runs: pd.DataFrame, check: Callable[[pd.DataFrame, str], list[Verdict]],
                   arms: Sequence[str] = ("gd", "gni"), only: Sequence[tuple] | None = None) -> Verdict:
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
        return [less(together, trajectory_gap(group, metric, "gni", "gd", log)),
                less(together, trajectory_gap(group, metric, "gni_explicit", "gd", log))]  # fmt: skip

    return for_each_model(runs, check, arms=tuple(ARMS))


@claim("camuto_fig3_explicit_vs_gni", "Fig. 3a", PAPER, "models trained with R and GNIs have similar training "
       "profiles, whereby they have similar test-set loss ... throughout training (and both differ from the "
       "baseline)")
def gni_and_regulariser_share_the_test_loss_trajectory(runs: pd.DataFrame) -> Verdict:
    return arms_follow_one_trajectory(runs, "test/loss")


@claim("camuto_fig3_explicit_vs_gni", "Fig. 3b", PAPER, "models trained with R and GNIs have ... similar ... parameter "
       "Hessians throughout training, meaning that they have almost identical trajectories through the loss "
       "landscape (and both differ from the baseline)")
def gni_and_regulariser_share_the_hessian_trajectory(runs: pd.DataFrame) -> Verdict:
    return arms_follow_one_trajectory(runs, "hessian/trace", log=True)


def arm_evidence(runs: pd.DataFrame, metric: str, arm: str, title: str) -> Evidence:
    return final(runs, metric, f"{title} {ARMS[arm]}", **{"noise.name": arm})


@claim("camuto_fig3_explicit_vs_gni", "Fig. 3b", PAPER, "By penalising this we are more likely to land in wider "
       "(smoother) minima (see Figure 3)")
def noise_and_regulariser_land_in_wider_minima(runs: pd.DataFrame) -> Verdict:
    def check(group: pd.DataFrame, title: str) -> list[Verdict]:
        baseline = arm_evidence(group, "hessian/trace", "gd", title)
        return [less(arm_evidence(group, "hessian/trace", arm, title), baseline) for arm in ("gni", "gni_explicit")]

    return for_each_model(runs, check, arms=tuple(ARMS))


def baseline_overconfidence(baseline: pd.DataFrame) -> list[float]:
    """Each baseline run's final mean confidence − accuracy: the logged metric, or (records made before it was
    logged) computed from the run's last reliability table."""
    values = []
    for run, rows in baseline.groupby("run"):
        logged = mean_final(rows, "calibration/overconfidence")
        table = None if math.isfinite(logged) else last_arrays(rows, "calibration")[0]
        values.append(logged if table is None else overconfidence(table[0][1][1]) if table else math.nan)
    return [value for value in values if math.isfinite(value)]


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
    return Precondition(f"{title} baseline overconfident or overfit: the larger of confidence − accuracy less 2 "
                        f"standard errors ({bound:.3g}) and train − test accuracy − {OVERFIT:g} ({gap - OVERFIT:.3g}) "
                        "(ours)", max(margins) if margins else math.nan, 0.0, True, CALIBRATION_REMEDY)  # fmt: skip


@claim("camuto_fig3_explicit_vs_gni", "Fig. F.7", PAPER, "lower values of which have been shown empirically to induce "
       "better calibrated models ... In Figure F.7 we show that this holds true for models trained with GNIs")
def noise_calibrates(runs: pd.DataFrame) -> Verdict:
    premises = {(name, widths): calibration_premise(model_runs(runs, name, widths), model_title(name, widths))
                for name, widths in models(runs)}  # fmt: skip
    judged = [model for model, premise in premises.items() if premise.met]
    left_out = "; ".join(str(premise) for premise in premises.values() if not premise.met)
    if not judged:
        return Verdict("not in regime", left_out, "the claim's premise: a miscalibrated (overconfident or overfit) "
                       "baseline", settled_by=Settle(math.inf, CALIBRATION_REMEDY))  # fmt: skip

    def check(group: pd.DataFrame, title: str) -> list[Verdict]:
        return [less(arm_evidence(group, "calibration/ece", "gni", title),
                     arm_evidence(group, "calibration/ece", "gd", title))]  # fmt: skip

    verdict = for_each_model(runs, check, only=judged)
    if left_out:
        verdict.numbers += f" (premise not met, left out: {left_out})"
    return verdict


# -- Fig. 4: the Fourier spectrum of the learnt function -----------------------------------------------------------


def amplitude_metrics(runs: pd.DataFrame) -> list[tuple[int, str]]:
    found = [(int(c.rsplit("_k", 1)[1]), c) for c in runs.columns if c.startswith("fourier/amplitude_k")]
    return sorted(found)


@figure("camuto_fig4_fourier", PAPER, "Fig. 4: amplitude of the learnt function at the target frequencies over "
        "training (mean over seeds, clipped to [0, 1]) and the learnt function of the first seed", panels=(2, 3))
def fig4_fourier(runs: pd.DataFrame, canvas: Canvas) -> None:
    frequencies = amplitude_metrics(runs)
    arms = [arm for arm in ARMS if arm in set(runs["noise.name"])]
    first_seed = min(runs["seed"])
    for column, arm in enumerate(arms):
        chosen = select(runs, **{"noise.name": arm})
        canvas.heatmap((0, column), chosen, [metric for _, metric in frequencies], [k for k, _ in frequencies],
                       title=f"{ARMS[arm]}: amplitude |F[f](k)| / |F[y](k)|", x_label="frequency k",
                       value_range=(0.0, 1.0))  # fmt: skip
        one = chosen[chosen["seed"] == first_seed]
        canvas.lines((1, column), one, "targets", label=lambda c: "target", x="inputs", artifact="fourier",
                     individual=True, title=f"{ARMS[arm]}: seed {first_seed}, at the end")  # fmt: skip
        canvas.lines((1, column), one, "outputs", label=lambda c, a=arm: f"learnt ({ARMS[a]})", x="inputs",
                     artifact="fourier", individual=True,
                     title=f"{ARMS[arm]}: seed {first_seed}, at the end")  # fmt: skip


def high_frequency_amplitude(runs: pd.DataFrame, arm: str, above: int = 30) -> Evidence:
    """Per seed: the final amplitude averaged over the target frequencies k ≥ `above`."""
    chosen = [metric for k, metric in amplitude_metrics(runs) if k >= above]
    per_metric = [final(runs, metric, **{"noise.name": arm}).values for metric in chosen]
    seeds = set.intersection(*(set(v) for v in per_metric)) if per_metric else set()
    values = {seed: float(np.mean([v[seed] for v in per_metric])) for seed in seeds}
    return Evidence(f"{ARMS[arm]} mean amplitude at k ≥ {above}", values)


@claim("camuto_fig4_fourier", "Fig. 4", PAPER, "networks trained with GNIs learn functions that don't overfit; with "
       "lower-frequency components relative to their non-noised counterparts")
def noise_suppresses_high_frequencies(runs: pd.DataFrame) -> Verdict:
    """The quote's comparison, GNI against the baseline; the figure's third arm, the explicit regulariser R in
    GNI's place, too where it was run (results/ has not: its runs cost 3× a GNI run on a CPU)."""
    baseline = high_frequency_amplitude(runs, "gd")
    parts = [less(high_frequency_amplitude(runs, "gni"), baseline)]
    if "gni_explicit" in set(runs["noise.name"]):
        parts.append(less(high_frequency_amplitude(runs, "gni_explicit"), baseline))
    return all_of(*parts)


# -- Fig. 5: layer-wise frequencies ----------------------------------------------------------------------------------

LAYER_QUANTITIES = {
    "layers/masked_weight_norm": "‖W̃ₖ‖_F (mean over inputs)",
    "layers/weight_trace": "Tr(Wₖ)",
}


def layer_metrics(runs: pd.DataFrame, quantity: str) -> list[tuple[int, str]]:
    prefix = f"{quantity}/"
    return sorted((int(c[len(prefix):]), c) for c in runs.columns if c.startswith(prefix) and c[len(prefix):].isdigit())


# The paper draws Fig. 5 from Fig. 4's networks: camuto_fig4_fourier's runs carry the layer statistics too, and Fig. 5
# reads them where it has no runs of its own (one sweep for both figures).
@figure("camuto_fig5_layer_frequencies", PAPER, "Fig. 5: per square layer k, ‖W̃ₖ‖ (the layer-to-layer Jacobian) "
        "and Tr(Wₖ) over training, with and without GNI", panels=(2, 2),
        reads_also=("camuto_fig4_fourier",))  # fmt: skip
def fig5_layer_frequencies(runs: pd.DataFrame, canvas: Canvas) -> None:
    for row, (quantity, title) in enumerate(LAYER_QUANTITIES.items()):
        for column, arm in enumerate(("gni", "gd")):
            chosen = select(runs, **{"noise.name": arm})
            for k, metric in layer_metrics(runs, quantity):
                canvas.lines((row, column), chosen, metric, label=lambda c, k=k: f"k = {k}",
                             title=f"{ARMS[arm]}: {title}")  # fmt: skip


def layer_ordering(runs: pd.DataFrame, quantity: str, arm: str) -> Evidence:
    """Per seed: Spearman's ρ between the layer index k and the final value of the quantity (−1: it falls with k)."""
    per_layer = [(k, final(runs, metric, **{"noise.name": arm}).values) for k, metric in layer_metrics(runs, quantity)]
    seeds = set.intersection(*(set(v) for _, v in per_layer)) if per_layer else set()
    values = {seed: rank_correlation([k for k, _ in per_layer], [v[seed] for _, v in per_layer]) for seed in seeds}
    return Evidence(f"{ARMS[arm]} ρ(k, final {quantity.split('/')[-1]})",
                    {s: v for s, v in values.items() if math.isfinite(v)})  # fmt: skip


@claim("camuto_fig5_layer_frequencies", "Fig. 5", PAPER, "‖W̃ₖ‖²₂ and Tr(Wₖ) decrease as k increases for "
       "ReLU-networks trained with GNIs ... This striation and ordering is clearly absent in the baselines")
def deeper_layers_learn_lower_frequencies(runs: pd.DataFrame) -> Verdict:
    """"Decrease as k increases": the GNI runs' layers in order (Spearman's ρ ≤ −0.8 in at least 80 % of runs); "the
    ordering is clearly absent in the baselines": their mean ρ above −0.5, and below the GNI runs' by the test."""
    parts = []
    for quantity in LAYER_QUANTITIES:
        noise, baseline = layer_ordering(runs, quantity, "gni"), layer_ordering(runs, quantity, "gd")
        parts += [ours(share(noise, lambda rho: rho <= -0.8, 0.8, "with ρ ≤ −0.8 (layers in decreasing order)")),
                  ours(above(baseline, -0.5)), less(noise, baseline)]  # fmt: skip
    return all_of(*parts)
