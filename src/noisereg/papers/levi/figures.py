"""Levi, Bloch, Freytsis, Volansky (2022), noise injection nodes: one function per figure (Figs 1-3), drawn from
science.py's run table (phases, fitted and predicted decay time scales); the claims about them are in claims.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from noisereg.figures.canvas import Canvas
from noisereg.figures.registry import figure
from noisereg.papers.levi.science import (
    LAYER,
    MODES,
    NEXT,
    NIW,
    PAPER,
    PHASES,
    SIGMA2,
    majority_phases,
    representatives,
    run_table,
    sigma_label,
)

COLORS = {"decoupled": "tab:green", "decay": "tab:blue", "catapult": "tab:orange", "divergent": "tab:red"}


def time_scale_points(
    canvas: Canvas, where: tuple[int, int], table: pd.DataFrame, title: str, series: list[tuple[str, str]], unit: str
) -> None:
    """Time scales against σ², log–log, phases shaded; runs whose fit was not resolved are left out and counted."""
    drawn = False
    for column, label in series:
        resolved = table[np.isfinite(table[column].astype(float))]
        if resolved.empty:
            continue
        text = f"{label} ({resolved['run'].nunique()} of {table['run'].nunique()} runs resolved)"
        canvas.points(
            where, resolved, SIGMA2, column, label=lambda config, text=text: text, title=title, log_x=True, log_y=True
        )
        drawn = True
    if not drawn:
        canvas.note(where, "no decay time scale resolved by the fits", title, x=SIGMA2, y=f"time scale ({unit})")
    canvas.axes[where].set_xlabel("σ²", fontsize=8)
    canvas.axes[where].set_ylabel(f"time scale ({unit})", fontsize=8)
    canvas.shade(where, table, SIGMA2, PHASES, COLORS)


# -- Fig. 2 (top): the linear toy model ------------------------------------------------------------------------------


@figure(
    "levi_fig2_linear_toy", PAPER, "Fig. 2 (top): linear toy model with a NIN (Eq. 4), SGD, η = 0.01", panels=(3, 4)
)
def levi_fig2_linear_toy(runs: pd.DataFrame, canvas: Canvas) -> None:
    table = run_table(runs, "step")
    canvas.phase_bar(0, table, "noise.sigma", PHASES, COLORS, title="phase of each σ (runs per phase)")
    canvas.axes[0, 0].set_xlabel("σ", fontsize=8)
    chosen = representatives(table, "noise.sigma")
    for column, phase in enumerate(PHASES):
        where = (1, column)
        if phase not in chosen:
            canvas.note(where, "no run in this phase", f"{phase}: no σ in this phase", x="step", y="value")
            continue
        sigma = chosen[phase]
        chosen_runs = runs[runs["run"].isin(table.loc[np.isclose(table["noise.sigma"], sigma), "run"])]
        for metric, name in ((LAYER, "w⁽⁰⁾"), (NEXT, "w⁽¹⁾"), (NIW, "|w_NI|"), ("train/loss", "loss (ε = 0)")):
            canvas.lines(
                where,
                chosen_runs,
                metric,
                label=lambda config, name=name: name,
                log_y=True,
                title=f"{phase}: σ = {sigma_label(sigma)}",
            )
        canvas.axes[where].set_ylabel("|weight|, loss", fontsize=8)
    time_scale_points(
        canvas,
        (2, 0),
        table,
        "NIW decay time vs App. D",
        [
            ("fit/tau_niw", "fit to |w_NI|"),
            ("theory/tau_noise_start", "1/(σ²(w⁽¹⁾)²) at start"),
            ("theory/tau_noise_end", "1/(σ²(w⁽¹⁾)²) at end"),
        ],
        "steps",
    )
    time_scale_points(
        canvas,
        (2, 1),
        table,
        "loss decay time vs App. D",
        [("fit/tau_train", "fit to the loss"), ("theory/tau_loss_start", "1/(2σ_x²((w⁽⁰⁾)²+(w⁽¹⁾)²)) at start")],
        "steps",
    )


# -- Fig. 1: decay time scales of a 3-hidden-layer MLP ---------------------------------------------------------------


@figure(
    "levi_fig1_decay_times",
    PAPER,
    "Fig. 1: decay times of the NIW and the losses against σ², MLP 784-1024³-10, FMNIST, CE",
    panels=(2, 3),
)
def levi_fig1_decay_times(runs: pd.DataFrame, canvas: Canvas) -> None:
    table = run_table(runs, "epoch")
    canvas.phase_bar(0, table, SIGMA2, PHASES, COLORS, title="phase of each σ² (both NIN modes; runs per phase)")
    canvas.axes[0, 0].set_xlabel("σ²", fontsize=8)
    chosen = representatives(table[table[SIGMA2] > 0], SIGMA2).get("decay")
    if chosen is None:
        canvas.note((1, 0), "no σ² in the decay phase", "decay phase: example", x="epoch", y="value")
    else:
        example = runs[runs["run"].isin(table.loc[np.isclose(table[SIGMA2], chosen), "run"])]
        for metric, name in ((NIW, "‖W_NI‖"), ("test/loss", "test loss"), ("train/loss", "train loss")):
            canvas.lines(
                (1, 0),
                example,
                metric,
                by="noise.resample",
                x="epoch",
                log_y=True,
                label=lambda config, name=name: f"{name}, {MODES.get(config['noise.resample'], '')}",
                title=f"decay phase, σ² = {sigma_label(chosen)}",
            )
        canvas.axes[1, 0].set_ylabel("‖W_NI‖, loss", fontsize=8)
    for column, mode in ((1, "epoch"), (2, "fixed")):
        chosen_table = table[table["noise.resample"] == mode]
        if chosen_table.empty:
            canvas.note(
                (1, column), f"no runs with noise.resample={mode}", MODES[mode], x=SIGMA2, y="time scale (epochs)"
            )
            continue
        time_scale_points(
            canvas,
            (1, column),
            chosen_table,
            f"{MODES[mode]}: decay times",
            [("fit/tau_niw", "τ_NIW"), ("fit/tau_test", "τ test loss"), ("fit/tau_train", "τ train loss")],
            "epochs",
        )


# -- Fig. 2 (bottom) and Fig. 3: one hidden layer at Table 1's noise strengths ---------------------------------------


def table1_figure(runs: pd.DataFrame, canvas: Canvas) -> None:
    table = run_table(runs, "epoch")
    canvas.phase_bar(
        0, table, "noise.strength", PHASES, COLORS, title="phase of each Table 1 strength c (runs per phase)"
    )
    canvas.axes[0, 0].set_xlabel("c (Table 1)", fontsize=8)
    majority = majority_phases(table, "noise.strength")
    for column, strength in enumerate(sorted(table["noise.strength"].unique())[:4]):
        chosen = runs[runs["noise.strength"] == strength]
        title = f"c = {strength:g}: {majority.get(strength)}"
        for metric in ("train/loss", "test/loss"):
            canvas.lines(
                (1, column),
                chosen,
                metric,
                x="epoch",
                log_y=True,
                title=f"{title}: loss",
                label=lambda config, metric=metric: metric,
            )
        for metric in ("train/acc", "test/acc"):
            canvas.lines(
                (2, column),
                chosen,
                metric,
                x="epoch",
                title=f"{title}: accuracy",
                label=lambda config, metric=metric: metric,
            )
        for metric, name in ((NIW, "‖W_NI‖"), (NEXT, "‖W⁽¹⁾‖ (next layer)"), (LAYER, "‖W⁽⁰⁾‖ (NIN layer)")):
            canvas.lines(
                (3, column),
                chosen,
                metric,
                x="epoch",
                log_y=True,
                title=f"{title}: weight norms",
                label=lambda config, name=name: name,
            )
        for row, what in ((1, "loss"), (2, "accuracy"), (3, "norm")):
            canvas.axes[row, column].set_ylabel(what, fontsize=8)


figure(
    "levi_fig2_mlp_mse",
    PAPER,
    "Fig. 2 (bottom): MLP 784-1024-10, MSE, FMNIST, at Table 1's noise strengths",
    panels=(4, 4),
)(table1_figure)
figure(
    "levi_fig3_mlp_ce",
    PAPER,
    "Fig. 3: MLP 784-1024-10, cross-entropy, FMNIST, at Table 1's noise strengths",
    panels=(4, 4),
)(table1_figure)
