"""Camuto, Willetts, Şimşekli, Roberts, Holmes (NeurIPS 2020): the science behind its figures and claims, neither
drawing nor judging. The arms (baseline, GNI, its explicit regulariser R of Eq. 9), tasks and models of the
experiments; and the per-run reductions the claims judge: R against the remainder E[C] at initialisation (Fig. 2),
the gap between two arms' trajectories through training (Fig. 3), the baseline's overconfidence (Fig. F.7), the
amplitude of the learnt function at high frequencies (Fig. 4) and the ordering of the layer statistics ‖W̃ₖ‖, Tr(Wₖ)
with the layer index k (Fig. 5).

Noise strengths are variances σ², as the paper quotes them (`noise.variance`). Seeds aggregate as mean ± 1 std
(Fig. 2c, d: "Shading corresponds to the standard deviation of values over the 10 networks").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from noisereg.figures.grouping import last_arrays
from noisereg.figures.selection import final, mean_final, select
from noisereg.figures.statistics import Evidence, rank_correlation
from noisereg.probes.calibration import overconfidence

PAPER = "Camuto et al. 2020"
ARMS = {"gd": "baseline (no noise)", "gni": "GNI", "gni_explicit": "explicit R"}
TASKS = {
    "fmnist_subset": "Fashion-MNIST, cross-entropy (CIFAR-10 in the paper)",
    "diabetes": "diabetes, squared error (Boston house prices in the paper)",
}
MODELS = {"mlp": "MLP", "strided_cnn": "CNN"}


def tasks(runs: pd.DataFrame) -> list[str]:
    return [t for t in TASKS if t in set(runs["dataset.name"])]


# -- Fig. 2: R against the remainder ---------------------------------------------------------------------------------


def at_initialisation(runs: pd.DataFrame) -> pd.DataFrame:
    rows = runs[(runs["step"] == 0) & runs["remainder/R"].notna()] if "remainder/R" in runs else runs.iloc[0:0]
    return rows


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


def trajectory_gap(runs: pd.DataFrame, metric: str, first: str, second: str, log: bool = False) -> Evidence:
    """Per seed: the mean over logged steps of |m(first) − m(second)| (of log m with `log`), paired by step."""
    values = {}
    column = runs[metric].astype(float) if metric in runs else None
    if column is None:
        return Evidence(f"mean |{metric}| gap {ARMS[first]}–{ARMS[second]}", {})
    runs = runs.assign(**{metric: np.log(column) if log else column})
    arms = {arm: select(runs, **{"noise.name": arm}) for arm in (first, second)}
    for seed in sorted(set(arms[first]["seed"]) & set(arms[second]["seed"])):
        series = [
            arms[arm][(arms[arm]["seed"] == seed) & arms[arm][metric].notna()].set_index("step")[metric]
            for arm in (first, second)
        ]
        shared = series[0].index.intersection(series[1].index)
        if len(shared):
            values[seed] = float((series[0][shared] - series[1][shared]).abs().mean())
    name = f"{'log ' if log else ''}{metric}: mean gap {ARMS[first]}–{ARMS[second]}"
    return Evidence(name, values)


def arm_evidence(runs: pd.DataFrame, metric: str, arm: str, title: str) -> Evidence:
    return final(runs, metric, f"{title} {ARMS[arm]}", **{"noise.name": arm})


def baseline_overconfidence(baseline: pd.DataFrame) -> list[float]:
    """Each baseline run's final mean confidence − accuracy: the logged metric, or (records made before it was
    logged) computed from the run's last reliability table."""
    values = []
    for run, rows in baseline.groupby("run"):
        logged = mean_final(rows, "calibration/overconfidence")
        table = None if math.isfinite(logged) else last_arrays(rows, "calibration")[0]
        values.append(logged if table is None else overconfidence(table[0][1][1]) if table else math.nan)
    return [value for value in values if math.isfinite(value)]


# -- Fig. 4: the Fourier spectrum of the learnt function -----------------------------------------------------------


def amplitude_metrics(runs: pd.DataFrame) -> list[tuple[int, str]]:
    found = [(int(c.rsplit("_k", 1)[1]), c) for c in runs.columns if c.startswith("fourier/amplitude_k")]
    return sorted(found)


def high_frequency_amplitude(runs: pd.DataFrame, arm: str, above: int = 30) -> Evidence:
    """Per seed: the final amplitude averaged over the target frequencies k ≥ `above`."""
    chosen = [metric for k, metric in amplitude_metrics(runs) if k >= above]
    per_metric = [final(runs, metric, **{"noise.name": arm}).values for metric in chosen]
    seeds = set.intersection(*(set(v) for v in per_metric)) if per_metric else set()
    values = {seed: float(np.mean([v[seed] for v in per_metric])) for seed in seeds}
    return Evidence(f"{ARMS[arm]} mean amplitude at k ≥ {above}", values)


# -- Fig. 5: layer-wise frequencies ----------------------------------------------------------------------------------

LAYER_QUANTITIES = {
    "layers/masked_weight_norm": "‖W̃ₖ‖_F (mean over inputs)",
    "layers/weight_trace": "Tr(Wₖ)",
}


def layer_metrics(runs: pd.DataFrame, quantity: str) -> list[tuple[int, str]]:
    prefix = f"{quantity}/"
    return sorted(
        (int(c[len(prefix) :]), c) for c in runs.columns if c.startswith(prefix) and c[len(prefix) :].isdigit()
    )


def layer_ordering(runs: pd.DataFrame, quantity: str, arm: str) -> Evidence:
    """Per seed: Spearman's ρ between the layer index k and the final value of the quantity (−1: it falls with k)."""
    per_layer = [(k, final(runs, metric, **{"noise.name": arm}).values) for k, metric in layer_metrics(runs, quantity)]
    seeds = set.intersection(*(set(v) for _, v in per_layer)) if per_layer else set()
    values = {seed: rank_correlation([k for k, _ in per_layer], [v[seed] for _, v in per_layer]) for seed in seeds}
    return Evidence(
        f"{ARMS[arm]} ρ(k, final {quantity.split('/')[-1]})", {s: v for s, v in values.items() if math.isfinite(v)}
    )
