"""Orvieto, Raj, Kersting, Bach (AISTATS 2023): one function per figure, and the helpers that draw them (the noise
modes' labels, the panels shared by Figs 4, 7-10 and by Figs 5, 11, 12). What they plot is derived in science.py;
the claims about each figure are in claims.py.

Seeds aggregate as the paper does: mean ± 1 std over 3 runs (App. F, "Setup"), mean ± SEM for Fig. 6.
"""

from __future__ import annotations

import pandas as pd

from noisereg.figures.canvas import Canvas
from noisereg.figures.registry import figure
from noisereg.figures.selection import select
from noisereg.papers.orvieto.science import (
    CNNS,
    MLPS,
    MODES,
    PAPER,
    SGD_MODES,
    describe,
    widths,
    with_regularized_loss,
    with_sgd_baseline,
)


def by_mode(config: dict) -> str:
    return MODES.get(config.get("noise.name"), str(config.get("noise.name")))


def by_sgd_mode(config: dict) -> str:
    return SGD_MODES.get(config.get("noise.name"), str(config.get("noise.name")))


# -- Fig. 1 ----------------------------------------------------------------------------------------------------------


@figure(
    "fig1_variance",
    PAPER,
    "Fig. 1: R_σ = E L(w + noise) against the hidden width d₁ (linear net, Sec. 3.1, 3.2)",
    panels=(1, 2),
)
def fig1_variance(runs: pd.DataFrame, canvas: Canvas) -> None:
    width = lambda w: float(w[0])  # noqa: E731  (one hidden layer: d₁)
    for column, mode in enumerate(("gd_noise", "layerwise")):
        chosen = select(runs, **{"noise.name": mode})
        title = f"{MODES[mode]}: noise on {'all weights' if mode == 'gd_noise' else 'one layer at a time'}"
        canvas.points(
            (0, column),
            chosen,
            "model.widths",
            "theory/R_sigma_mc",
            label=lambda c: "Monte Carlo",
            title=title,
            log_x=True,
            log_y=True,
            x_value=width,
        )
        canvas.points(
            (0, column),
            chosen,
            "model.widths",
            "theory/R_sigma_closed_form",
            label=lambda c: "closed form",
            title=title,
            log_x=True,
            log_y=True,
            x_value=width,
        )


# -- Fig. 2 ----------------------------------------------------------------------------------------------------------


@figure(
    "fig2_synthetic", PAPER, "Fig. 2: original and regularised loss, linear net on sparse synthetic data", panels=(2, 2)
)
def fig2_synthetic(runs: pd.DataFrame, canvas: Canvas) -> None:
    runs = with_regularized_loss(runs)
    for column, width in enumerate(widths(runs)):
        chosen = select(runs, **{"model.widths": list(width)})
        canvas.lines(
            (0, column),
            chosen,
            "train/loss",
            by="noise.name",
            label=by_mode,
            title=f"{width[0]} hidden neurons: loss",
            log_y=True,
        )
        canvas.lines(
            (1, column),
            chosen,
            "loss/regularized",
            by="noise.name",
            label=by_mode,
            title=f"{width[0]} hidden neurons: regularised loss (Eq. 11)",
            log_y=True,
        )
        if "theory/regularized_minimum" in chosen:
            canvas.lines(
                (1, column),
                select(chosen, **{"noise.name": "layerwise"}),
                "theory/regularized_minimum",
                label=lambda c: "its minimum (closed form)",
                title=f"{width[0]} hidden neurons: regularised loss (Eq. 11)",
                log_y=True,
            )


# -- Fig. 3 ----------------------------------------------------------------------------------------------------------


def by_sigma(config: dict) -> str:
    sigma = config.get("noise.sigma")
    return "σ = 0 (GD)" if sigma == 0 else f"σ = {sigma:g}"


@figure(
    "fig3_fmnist_sigma",
    PAPER,
    "Fig. 3: test accuracy over training for each σ, MLP 784-5000-5000-10 on FMNIST",
    panels=(1, 2),
)
def fig3_fmnist_sigma(runs: pd.DataFrame, canvas: Canvas) -> None:
    for column, mode in enumerate(("gd_noise", "layerwise")):
        canvas.lines(
            (0, column),
            select(runs, **{"noise.name": mode}),
            "test/acc",
            by="noise.sigma",
            label=by_sigma,
            title=MODES[mode],
        )


# -- Figs 4, 7-10: deep and wide MLPs ------------------------------------------------------------------------------


def training_panels(canvas: Canvas, runs: pd.DataFrame, row: int, title: str, sgd: bool = False) -> None:
    label = by_sgd_mode if sgd else by_mode
    canvas.lines((row, 0), runs, "train/loss", by="noise.name", label=label, title=f"{title}: train loss", log_y=True)
    canvas.lines((row, 1), runs, "test/acc", by="noise.name", label=label, title=f"{title}: test accuracy")
    canvas.lines(
        (row, 2), runs, "hessian/trace", by="noise.name", label=label, title=f"{title}: Hessian trace", log_y=True
    )


@figure(
    "fig4_deep_mlp",
    PAPER,
    "Fig. 4: MLP with 5 hidden layers, narrow (1000) and wide (5000), FMNIST subset",
    panels=(2, 3),
)
def fig4_deep_mlp(runs: pd.DataFrame, canvas: Canvas) -> None:
    for row, width in enumerate(widths(runs)):
        training_panels(canvas, select(runs, **{"model.widths": list(width)}), row, describe(width))


for _experiment, (_number, _name) in MLPS.items():

    def _draw(runs: pd.DataFrame, canvas: Canvas, name: str = _name) -> None:
        training_panels(canvas, runs, 0, name.split(" (")[0])

    figure(_experiment, PAPER, f"{_number}: Fashion-MNIST {_name}, full batch", panels=(1, 3))(_draw)


# -- CIFAR-10: Figs 5, 11, 12 (CNNs) and 6 (ResNet18) ----------------------------------------------------------------


def cnn_panels(canvas: Canvas, runs: pd.DataFrame, row: int, title: str) -> None:
    canvas.lines(
        (row, 0), runs, "train/loss", by="noise.name", label=by_sgd_mode, title=f"{title}: train loss", log_y=True
    )
    canvas.lines((row, 1), runs, "test/loss", by="noise.name", label=by_sgd_mode, title=f"{title}: test loss")
    canvas.lines((row, 2), runs, "test/acc", by="noise.name", label=by_sgd_mode, title=f"{title}: test accuracy")
    canvas.lines(
        (row, 3), runs, "hessian/trace", by="noise.name", label=by_sgd_mode, title=f"{title}: Hessian trace", log_y=True
    )


@figure("fig5_cnn", PAPER, "Fig. 5: CIFAR-10, toy and wide CNN, SGD batch 1024", panels=(2, 4))
def fig5_cnn(runs: pd.DataFrame, canvas: Canvas) -> None:
    for row, model in enumerate(m for m in CNNS if m in set(runs["model.name"])):
        cnn_panels(canvas, select(runs, **{"model.name": model}), row, CNNS[model])


for _experiment, (_number, _model) in {
    "fig11_toy_cnn": ("Fig. 11", "toy_cnn"),
    "fig12_wide_cnn": ("Fig. 12", "wide_cnn"),
}.items():

    def _draw_cnn(runs: pd.DataFrame, canvas: Canvas, model: str = _model) -> None:
        cnn_panels(canvas, runs, 0, CNNS[model])

    figure(_experiment, PAPER, f"{_number}: CIFAR-10, {CNNS[_model]}, SGD batch 1024", panels=(1, 4))(_draw_cnn)


@figure(
    "fig6_resnet",
    PAPER,
    "Fig. 6: final test accuracy and Hessian trace against σ, ResNet18 on CIFAR-10",
    spread="sem",
    panels=(1, 2),
)
def fig6_resnet(runs: pd.DataFrame, canvas: Canvas) -> None:
    runs = with_sgd_baseline(runs)
    for column, metric in enumerate(("test/acc", "hessian/trace")):
        canvas.points(
            (0, column),
            runs,
            "noise.sigma",
            metric,
            by="noise.name",
            label=by_sgd_mode,
            log_x=True,
            log_y=metric == "hessian/trace",
            title=f"final {metric} (mean ± SEM)",
        )
