"""Drawing phases on a canvas (Levi et al.'s phase diagrams): `phase_bar`, a row-wide axis of the phase most runs
at each x value are in, and `shade`, a panel's x axis shaded by phase. `Canvas` inherits them; they use its grid
(`axes`, `figure`), its panels' JSON (`panels`) and its `_panel`."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from noisereg.figures.grouping import phase_counts, phase_series

Panel = tuple[int, int]  # (row, column) in the grid


class PhasePanels:
    """The phase-drawing methods of `Canvas` (canvas.py)."""

    def phase_bar(
        self,
        row: int,
        cells: pd.DataFrame,
        x: str,
        order: Sequence[str],
        colors: dict[str, str],
        title: str | None = None,
        log_x: bool = True,
    ) -> None:
        """One axis across the whole row: for each value of x (e.g. σ), the phase most of its runs are in, as
        coloured regions meeting halfway between neighbouring values, a marker per value and the runs' count.
        `cells` has one row per run with columns x and `phase`; the JSON holds one series per phase: per x value
        the number of runs in that phase (n) and their fraction of the runs at x (mean)."""
        grid = self.axes[row, 0].get_gridspec()
        for axis in self.axes[row, :]:
            axis.remove()
        axis = self.figure.add_subplot(grid[row, :])
        self.axes[row, 0] = axis
        self.axes[row, 1:] = None
        _, panel = self._panel((row, 0), x, "phase", title, log_x, False)
        axis.set_yticks([])
        counts, spans = phase_counts(cells, x, order, log_x)
        for phase, low, high in spans:
            axis.axvspan(low, high, color=colors[phase], alpha=0.35, lw=0)
            axis.text(
                math.sqrt(low * high) if log_x else (low + high) / 2, 0.5, phase, ha="center", va="center", fontsize=8
            )
        for x_value, by_phase in counts.items():
            majority = max(order, key=lambda p: (by_phase.get(p, 0), order.index(p)))
            axis.plot([x_value], [0.15], marker="*", ms=9, color=colors[majority])
            axis.text(
                x_value,
                0.85,
                "/".join(str(by_phase.get(p, 0)) for p in order if by_phase.get(p)),
                ha="center",
                fontsize=6,
            )
        axis.set_ylim(0, 1)
        if spans:
            axis.set_xlim(spans[0][1], spans[-1][2])
        panel["series"].extend(series.as_json() for series in phase_series(counts, order))
        panel["spans"] = [{"phase": phase, "from": low, "to": high} for phase, low, high in spans]

    def shade(
        self,
        where: Panel,
        cells: pd.DataFrame,
        x: str,
        order: Sequence[str],
        colors: dict[str, str],
        log_x: bool = True,
    ) -> None:
        """Shade a panel's x axis by phase (as `phase_bar` draws them), recorded as the panel's `spans`."""
        axis = self.axes[where]
        _, spans = phase_counts(cells, x, order, log_x)
        for phase, low, high in spans:
            axis.axvspan(low, high, color=colors[phase], alpha=0.15, lw=0)
        self.panels.setdefault(
            where,
            {
                "row": where[0],
                "column": where[1],
                "title": None,
                "x": x,
                "y": None,
                "log_x": log_x,
                "log_y": False,
                "series": [],
            },
        )
        self.panels[where]["spans"] = [{"phase": phase, "from": low, "to": high} for phase, low, high in spans]
