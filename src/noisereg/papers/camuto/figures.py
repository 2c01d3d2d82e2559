"""Camuto, Willetts, Şimşekli, Roberts, Holmes (NeurIPS 2020): one function per figure (Figs 2-5 and F.7), and the
labels they draw with. What they plot is derived in science.py; the claims about each figure are in claims.py.

Noise strengths are variances σ², as the paper quotes them (`noise.variance`). Seeds aggregate as mean ± 1 std
(Fig. 2c, d: "Shading corresponds to the standard deviation of values over the 10 networks").
"""

from __future__ import annotations

import pandas as pd

from noisereg.figures.canvas import Canvas
from noisereg.figures.registry import figure
from noisereg.figures.selection import select
from noisereg.papers.camuto.science import (
    ARMS,
    LAYER_QUANTITIES,
    PAPER,
    TASKS,
    amplitude_metrics,
    layer_metrics,
    model_runs,
    model_title,
    models,
    tasks,
)


def by_arm(config: dict) -> str:
    return ARMS.get(config.get("noise.name"), str(config.get("noise.name")))


def by_variance(config: dict) -> str:
    return f"σ² = {config.get('noise.variance'):g}"


# -- Fig. 2: R against the remainder ---------------------------------------------------------------------------------


@figure(
    "camuto_fig2_remainder",
    PAPER,
    "Fig. 2: R (Eq. 9) against the remainder E[C] = E[L̃] − L − R, 5 hidden "
    "layers of 256 with GNI on the input and every hidden layer",
    panels=(2, 2),
)
def fig2_remainder(runs: pd.DataFrame, canvas: Canvas) -> None:
    for column, task in enumerate(tasks(runs)):
        chosen = select(runs, **{"dataset.name": task})
        canvas.scatter(
            (0, column),
            chosen,
            "remainder/R",
            "remainder/expected_C",
            by="noise.variance",
            label=by_variance,
            step=0,
            y_error="remainder/expected_C_sem",
            log_x=True,
            log_y=True,
            identity_line=True,
            magnitude=True,
            title=f"{TASKS[task]}: at initialisation, one point per seed",
        )
        canvas.lines(
            (1, column),
            chosen,
            "remainder/ratio",
            by="noise.variance",
            label=by_variance,
            title=f"{TASKS[task]}: E[C]/R over GNI-SGD iterations",
        )


# -- Fig. 3: GNI against its explicit regulariser R and the baseline ----------------------------------------------


@figure(
    "camuto_fig3_explicit_vs_gni",
    PAPER,
    "Fig. 3 and F.7: training with GNI (σ² = 0.1), with its explicit "
    "regulariser R instead, and without noise; Fashion-MNIST (SVHN in the paper)",
    panels=(3, 3),
)
def fig3_explicit_vs_gni(runs: pd.DataFrame, canvas: Canvas) -> None:
    chosen = models(runs)[:3]
    for column, (name, widths) in enumerate(chosen):
        group, title = model_runs(runs, name, widths), model_title(name, widths)
        canvas.lines(
            (0, column),
            group,
            "test/loss",
            by="noise.name",
            label=by_arm,
            x="epoch",
            title=f"{title}: test loss (Fig. 3a)",
        )
        canvas.lines(
            (1, column),
            group,
            "hessian/trace",
            by="noise.name",
            label=by_arm,
            x="epoch",
            log_y=True,
            title=f"{title}: Hessian trace of the loss (Fig. 3b)",
        )
        canvas.lines(
            (2, column),
            group,
            "accuracy",
            by="noise.name",
            label=by_arm,
            x="bin_centers",
            artifact="calibration",
            identity_line=True,
            title=f"{title}: accuracy per confidence bin at the end (Fig. F.7)",
        )
    for column in range(len(chosen), 3):
        for row in range(3):
            canvas.axes[row, column].set_visible(False)


# -- Fig. 4: the Fourier spectrum of the learnt function -----------------------------------------------------------


@figure(
    "camuto_fig4_fourier",
    PAPER,
    "Fig. 4: amplitude of the learnt function at the target frequencies over "
    "training (mean over seeds, clipped to [0, 1]) and the learnt function of the first seed",
    panels=(2, 3),
)
def fig4_fourier(runs: pd.DataFrame, canvas: Canvas) -> None:
    frequencies = amplitude_metrics(runs)
    arms = [arm for arm in ARMS if arm in set(runs["noise.name"])]
    first_seed = min(runs["seed"])
    for column, arm in enumerate(arms):
        chosen = select(runs, **{"noise.name": arm})
        canvas.heatmap(
            (0, column),
            chosen,
            [metric for _, metric in frequencies],
            [k for k, _ in frequencies],
            title=f"{ARMS[arm]}: amplitude |F[f](k)| / |F[y](k)|",
            x_label="frequency k",
            value_range=(0.0, 1.0),
        )
        one = chosen[chosen["seed"] == first_seed]
        canvas.lines(
            (1, column),
            one,
            "targets",
            label=lambda c: "target",
            x="inputs",
            artifact="fourier",
            individual=True,
            title=f"{ARMS[arm]}: seed {first_seed}, at the end",
        )
        canvas.lines(
            (1, column),
            one,
            "outputs",
            label=lambda c, a=arm: f"learnt ({ARMS[a]})",
            x="inputs",
            artifact="fourier",
            individual=True,
            title=f"{ARMS[arm]}: seed {first_seed}, at the end",
        )


# -- Fig. 5: layer-wise frequencies ----------------------------------------------------------------------------------


# The paper draws Fig. 5 from Fig. 4's networks: camuto_fig4_fourier's runs carry the layer statistics too, and Fig. 5
# reads them where it has no runs of its own (one sweep for both figures).
@figure(
    "camuto_fig5_layer_frequencies",
    PAPER,
    "Fig. 5: per square layer k, ‖W̃ₖ‖ (the layer-to-layer Jacobian) and Tr(Wₖ) over training, with and without GNI",
    panels=(2, 2),
    reads_also=("camuto_fig4_fourier",),
)
def fig5_layer_frequencies(runs: pd.DataFrame, canvas: Canvas) -> None:
    for row, (quantity, title) in enumerate(LAYER_QUANTITIES.items()):
        for column, arm in enumerate(("gni", "gd")):
            chosen = select(runs, **{"noise.name": arm})
            for k, metric in layer_metrics(runs, quantity):
                canvas.lines(
                    (row, column), chosen, metric, label=lambda c, k=k: f"k = {k}", title=f"{ARMS[arm]}: {title}"
                )
