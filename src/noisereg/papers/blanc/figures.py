"""Blanc, Gupta, Valiant, Valiant (COLT 2020), SGD with label noise: one function per figure (Fig. 1 and its
learning-rate sweep, Figs 2-3's two-layer ReLU network on 1-D points, Theorem 3's unit outputs); the claims about
them are in claims.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from noisereg.figures.canvas import Canvas
from noisereg.figures.registry import figure
from noisereg.figures.selection import select
from noisereg.papers.blanc.science import PAPER, by_noise, noise_levels, time_to_threshold

# -- Fig. 1: matrix sensing ------------------------------------------------------------------------------------------


@figure(
    "blanc_fig1_matrix_sensing",
    PAPER,
    "Fig. 1: matrix sensing, h(A, U) = ⟨A, UUᵀ⟩, U₀ = I, with and without label noise",
    panels=(2, 2),
)
def blanc_fig1_matrix_sensing(runs: pd.DataFrame, canvas: Canvas) -> None:
    canvas.lines((0, 0), runs, "train/mse", by="noise.delta", label=by_noise, title="train error", log_y=True)
    canvas.lines(
        (0, 1),
        runs,
        "matrix/test_error",
        by="noise.delta",
        label=by_noise,
        title="test error ‖UUᵀ − X*‖²_F",
        log_y=True,
    )
    canvas.lines(
        (1, 0),
        runs,
        "matrix/nuclear_norm",
        by="noise.delta",
        label=by_noise,
        title="‖U‖²_F = ‖UUᵀ‖_* (‖X*‖_* = rank)",
        log_y=True,
    )
    canvas.lines(
        (1, 1), runs, "reg/blanc", by="noise.delta", label=by_noise, title="implicit regularizer (Eq. 1)", log_y=True
    )


# -- Fig. 1's time scale: the learning-rate sweep --------------------------------------------------------------------


@figure(
    "blanc_fig1_lr_sweep",
    PAPER,
    "Fig. 1's time scale: matrix sensing with label noise at three learning rates",
    panels=(1, 3),
)
def blanc_fig1_lr_sweep(runs: pd.DataFrame, canvas: Canvas) -> None:
    label = lambda config: f"η = {config['trainer.optimizer.lr']:g}"  # noqa: E731
    lr = "trainer.optimizer.lr"
    runs = time_to_threshold(runs.assign(**{"η² · step": runs[lr].astype(float) ** 2 * runs["step"]}))
    canvas.lines(
        (0, 0), runs, "matrix/relative_test_error", by=lr, label=label, title="test error / ‖X*‖²_F", log_y=True
    )
    canvas.lines(
        (0, 1),
        runs,
        "matrix/relative_test_error",
        by=lr,
        label=label,
        x="η² · step",
        title="against η² · step: one curve if the time scale is 1/η²",
        log_y=True,
    )
    title = "steps until test error < 0.1‖X*‖²_F (slope −2: 1/η²)"
    if runs["steps to 0.1‖X*‖²"].notna().any():
        canvas.points(
            (0, 2),
            runs,
            lr,
            "steps to 0.1‖X*‖²",
            label=lambda config: "label noise",
            log_x=True,
            log_y=True,
            title=title,
        )
    else:
        canvas.note((0, 2), "no run reached a test error below 0.1‖X*‖²_F", title=title)


# -- Figs 2 and 3: two-layer ReLU network on 1-D points --------------------------------------------------------------


def function_on_grid(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    return arrays["grid"], arrays["outputs"]


def training_points(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    return arrays["inputs"], arrays["targets"]


@figure(
    "blanc_fig2_relu_interpolation",
    PAPER,
    "Fig. 2: final functions of a two-layer ReLU network on 12 points, every initialisation",
    panels=(1, 2),
)
def blanc_fig2_relu_interpolation(runs: pd.DataFrame, canvas: Canvas) -> None:
    for column, delta in enumerate(noise_levels(runs)):
        chosen = select(runs, **{"noise.delta": delta})
        canvas.run_curves(
            (0, column),
            chosen,
            "function_1d",
            function_on_grid,
            by="noise.delta",
            label=by_noise,
            x="x",
            y="f(x)",
            title=by_noise({"noise.delta": delta}),
            points=training_points,
            points_label="data (dashed: piecewise-linear interpolant)",
        )


# Fig. 3 plots Fig. 2's runs over the iterations (the paper: the same two runs): its experiment file is Fig. 2's, so
# it reads Fig. 2's records where it has none of its own, and results/ stores them once.
@figure(
    "blanc_fig3_curve_length",
    PAPER,
    "Fig. 3: training loss, curve length and reg over iterations, two-layer ReLU network on 12 points",
    panels=(3, 2),
    reads_also=("blanc_fig2_relu_interpolation",),
)
def blanc_fig3_curve_length(runs: pd.DataFrame, canvas: Canvas) -> None:
    """One column per run kind, as the paper's two panels (without label noise, 4e5 steps; with it, 2e7), linear in
    the iterations: the loss falls at the very start, the length and reg much later."""
    for column, delta in enumerate(noise_levels(runs)):
        chosen, name = select(runs, **{"noise.delta": delta}), by_noise({"noise.delta": delta})
        canvas.lines(
            (0, column),
            chosen,
            "train/mse",
            by="noise.delta",
            label=by_noise,
            title=f"{name}: training loss (clean labels)",
            log_y=True,
        )
        title = f"{name}: curve length ∫√(1 + f′²) dx"
        canvas.lines((1, column), chosen, "function/curve_length", by="noise.delta", label=by_noise, title=title)
        canvas.lines(
            (1, column),
            chosen.assign(**{"noise.delta": "interpolant"}),
            "function/interpolant_curve_length",
            by="noise.delta",
            label=lambda config: "piecewise-linear interpolant",
            title=title,
        )
        canvas.lines(
            (2, column),
            chosen,
            "reg/blanc",
            by="noise.delta",
            label=by_noise,
            title=f"{name}: implicit regularizer (Eq. 1)",
            log_y=delta > 0,
        )


# -- Theorem 3: one point, tanh and logistic units -------------------------------------------------------------------


def sorted_unit_outputs(arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    outputs = np.sort(arrays["outputs"])
    return np.arange(len(outputs)), outputs


ACTIVATIONS = {"tanh": "tanh", "sigmoid": "logistic"}


@figure(
    "blanc_thm3_single_point",
    PAPER,
    "Theorem 3: unit outputs oᵢ = cᵢσ(wᵢᵀx) of a two-layer net trained on one point",
    panels=(2, 3),
)
def blanc_thm3_single_point(runs: pd.DataFrame, canvas: Canvas) -> None:
    for row, activation in enumerate(sorted(runs["model.activation"].unique())):
        chosen, name = select(runs, **{"model.activation": activation}), ACTIVATIONS.get(activation, activation)
        canvas.lines(
            (row, 0),
            chosen,
            "units/output_cv",
            by="noise.delta",
            label=by_noise,
            title=f"{name}: spread of the active units' outputs (std / |mean|)",
        )
        canvas.lines(
            (row, 1),
            chosen,
            "units/active",
            by="noise.delta",
            label=by_noise,
            title=f"{name}: active units (|oᵢ| > 1e-3 max |o|)",
        )
        canvas.run_curves(
            (row, 2),
            chosen,
            "unit_outputs",
            sorted_unit_outputs,
            by="noise.delta",
            label=by_noise,
            x="unit (sorted by output)",
            y="oᵢ",
            title=f"{name}: final unit outputs",
        )
