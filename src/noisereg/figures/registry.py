"""The figure registry: run records -> the paper's figure (PNG) and its data (JSON).

Each paper's figures.py (noisereg/papers/<paper>/) has one function per figure, registered under the name of the
experiment whose runs it draws:

    @figure("fig2_synthetic", paper=ORVIETO, title="Fig. 2: original and regularised loss, widths 50 and 300")
    def fig2_synthetic(runs: pd.DataFrame, canvas: Canvas) -> None:
        canvas.lines((0, 0), runs, "train/loss", by="noise.name")

`plot_experiment(name, folders, out)` finds the experiment's runs (noisereg.records.load_runs), groups them by
their config minus the seed (grouping.py), lets the figure function draw on a `Canvas` (canvas.py), and writes
`<out>/<name>.png` and `<out>/<name>.json`. This module imports none of the papers' modules: importing
`noisereg.papers` registers them (`from noisereg.papers import plot_experiment`); without it, an error says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.canvas import Canvas
from noisereg.figures.grouping import caption, group_keys, runs_of, scale_of


@dataclass
class FigureSpec:
    experiment: str
    paper: str
    title: str
    draw: Callable[[pd.DataFrame, Canvas], None]
    spread: str  # the band drawn around a mean: std (Orvieto App. F) or sem (Orvieto Fig. 6)
    panels: tuple[int, int]
    reads_also: tuple[str, ...] = ()  # experiments whose runs it is drawn and judged from where it has none of its own


FIGURES: dict[str, FigureSpec] = {}


def figure(
    experiment: str,
    paper: str,
    title: str,
    spread: str = "std",
    panels: tuple[int, int] = (1, 1),
    reads_also: Sequence[str] = (),
):
    """Register a figure function under its experiment. `reads_also`: experiments whose runs carry this figure's
    metrics too (the paper draws both figures from the same networks), read where the experiment has no runs of its
    own, so one sweep serves both."""

    def register(draw: Callable[[pd.DataFrame, Canvas], None]) -> Callable[[pd.DataFrame, Canvas], None]:
        FIGURES[experiment] = FigureSpec(experiment, paper, title, draw, spread, panels, tuple(reads_also))
        return draw

    return register


def plot_experiment(
    experiment: str,
    folders: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    runs: pd.DataFrame | None = None,
    image: bool = True,
) -> tuple[Path, Path]:
    """Draw `experiment`'s figure from the runs under `folders` into `out` (default results/<experiment>/); `image`:
    false writes its data (JSON) alone."""
    if not FIGURES:
        raise RuntimeError("no figures are registered: import noisereg.papers first (it registers every paper's)")
    if experiment not in FIGURES:
        raise SettingError(f"no figure is defined for {experiment}; figures exist for: {', '.join(sorted(FIGURES))}")
    folders = [str(f) for f in folders]
    selected = runs_of(experiment, folders, runs, FIGURES[experiment].reads_also)
    scale = scale_of(selected, experiment, folders)
    spec = FIGURES[experiment]
    canvas = Canvas(spec, caption(selected, scale), group_keys(selected))
    spec.draw(selected, canvas)
    return canvas.save(Path(out) if out is not None else Path("results") / experiment, experiment, image=image)
