"""The claims report: every registered claim against the runs found, its regime, its verdict; and the runs table.

Each experiment is judged on its own records alone: its rows are cut out of everything loaded and keep only the
columns its runs logged, so no statistic, figure or row can change with what else was loaded beside it. A claim
whose experiment misses a precondition of its regime (claims.REGIMES, checked per condition), or of its own gates
(`@claim(..., gates=...)`, the same), is `not in regime`: the row names the measured value, the threshold and what
would reach it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.claims import CLAIMS, PARTS, Claim, Gate, Precondition, condition_preconditions, registered_claims
from noisereg.figures.grouping import SCALES, experiment_rows
from noisereg.figures.registry import FIGURES, plot_experiment
from noisereg.figures.selection import condition_keys, finished
from noisereg.figures.statistics import CONFIDENCE, MIN_SEEDS, POWER
from noisereg.records import load_runs
from noisereg.tracking.provenance import PROVENANCE, describe_provenance
from noisereg.tracking.records import FINISHED, IDENTITY, read_identity

VERDICTS = ("holds", "fails", "inconclusive", "not in regime", "not run")


@dataclass
class ReportRow:
    claim: Claim
    scale: str = "-"
    verdict: str = "not run"
    shown: str = "not run"  # the verdict as the table shows it, e.g. "inconclusive (n < 3)"
    numbers: str = ""
    rule: str = ""
    settle: str = ""  # what would settle an inconclusive row, or reach the regime
    figure_link: str | None = None


def experiment_runs(runs: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """One experiment's rows (grouping.experiment_rows: its own runs, or those its figure reads also)."""
    spec = FIGURES.get(experiment)
    return experiment_rows(runs, experiment, spec.reads_also if spec is not None else ())


def conditions(runs: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """The experiment's conditions: its runs grouped by every config key but seed-like ones; each with the values of
    the fewest keys that tell it from the others (chosen greedily, the key that splits most first), for its label."""
    keys = condition_keys(runs)
    firsts = runs.groupby("run").head(1)
    varying = [k for k in keys if firsts[k].map(repr).nunique() > 1]
    if not varying:
        return [({}, runs)]
    labels = runs[varying].apply(lambda row: "\x1f".join(repr(v) for v in row), axis=1)
    groups = [group for _, group in runs.groupby(labels, sort=True)]
    table = pd.DataFrame([{k: repr(group[k].iloc[0]) for k in varying} for group in groups])
    shown: list[str] = []
    while table.groupby(shown).ngroups < len(table) if shown else len(table) > 1:
        shown.append(
            max(
                (k for k in varying if k not in shown),
                key=lambda k: (table.groupby([*shown, k]).ngroups, -varying.index(k)),
            )
        )
    shown.sort(key=varying.index)
    return [({k: group[k].iloc[0] for k in shown}, group) for group in groups]


def condition_label(config: dict) -> str:
    shown = [(k, v) for k, v in config.items() if not (isinstance(v, float) and math.isnan(v))]
    return ", ".join(f"{k}={v}" for k, v in shown) or "all"


def unmet_preconditions(
    experiment: str, runs: pd.DataFrame, gates: Sequence[Gate] = ()
) -> list[tuple[str, Precondition]]:
    return [
        (condition_label(config), p)
        for config, group in conditions(runs)
        for p in condition_preconditions(experiment, group, gates)
        if not p.met
    ]


def parts_concerned(
    experiment: str, runs: pd.DataFrame, concerns: Callable[[pd.DataFrame], bool]
) -> list[pd.DataFrame]:
    """The parts of an experiment judged by parts (PARTS: one per value of its key) that a claim is about."""
    key = PARTS[experiment]
    if key not in runs:
        return []
    return [part for _, part in runs.groupby(runs[key].map(repr), sort=True) if concerns(part)]


def in_regime_parts(
    experiment: str,
    runs: pd.DataFrame,
    gates: Sequence[Gate] = (),
    concerns: Callable[[pd.DataFrame], bool] | None = None,
) -> tuple[pd.DataFrame, list[tuple[str, Precondition]], str]:
    """The runs a claim is judged on, the preconditions missed (its experiment's and its own `gates`), and a note on
    what was left out: with PARTS, the values of the part key whose conditions all met their preconditions (the
    others left out and named; `concerns`: only the parts the claim is about count, where any is present);
    without, every run, or nothing when any condition missed one."""
    key = PARTS.get(experiment)
    if concerns is not None and key is not None and key in runs:
        parts = parts_concerned(experiment, runs, concerns)
        if not parts:  # a partial sweep without the part the claim is about: the claim says so, naming no other's gates
            return runs, [], ""
        runs = pd.concat(parts)
    unmet = unmet_preconditions(experiment, runs, gates)
    if not unmet or key is None or key not in runs:
        return (runs.iloc[0:0] if unmet else runs), unmet, ""
    kept, missed = [], []
    for _, part in runs.groupby(runs[key].map(repr), sort=True):
        part_unmet = unmet_preconditions(experiment, part, gates)
        if not part_unmet:
            kept.append(part)
        missed += [(f"{key}={part[key].iloc[0]}, {label}", p) for label, p in part_unmet]
    if not kept:
        return runs.iloc[0:0], unmet, ""
    note, _, _ = not_in_regime(missed)
    return pd.concat(kept), missed, f" (not in regime, left out: {note})"


def not_in_regime(unmet: list[tuple[str, Precondition]]) -> tuple[str, str, str]:
    numbers = "; ".join(f"{label}: {p}" for label, p in unmet[:4])
    if len(unmet) > 4:
        numbers += f"; and {len(unmet) - 4} more"
    remedies = sorted({p.remedy for _, p in unmet})
    return numbers, "the paper's regime: every precondition of its figure and of this claim met", "; ".join(remedies)


def evaluate_claims(
    folders: Sequence[str | os.PathLike],
    out: Path,
    draw: bool = True,
    runs: pd.DataFrame | None = None,
    images: bool = True,
) -> list[ReportRow]:
    """Every registered claim against the runs under `folders` (`runs`: already loaded from them); figures drawn into
    `out/<experiment>/` (`images`: false, their data alone). The claims are those `noisereg.papers` registers
    (imported before: `from noisereg.papers import evaluate_claims`)."""
    claims = registered_claims()
    runs = load_runs(folders) if runs is None else runs
    rows: list[ReportRow] = []
    # Per experiment and scale, once for all its claims: its runs, figure, regime and the finished runs judged.
    prepared: dict[str, list[ExperimentAtScale]] = {}
    for item in claims:
        if item.experiment not in prepared:
            prepared[item.experiment] = prepare_experiment(item.experiment, runs, folders, out, draw, images)
        if not prepared[item.experiment]:
            rows.append(ReportRow(item))
            continue
        for at in scales_judging(prepared[item.experiment], item):
            row = ReportRow(item, scale=at.scale, figure_link=at.figure_link)
            judged, unmet, left_out_parts = at.regime(item)
            if judged.empty:
                row.verdict = row.shown = "not in regime"
                row.numbers, row.rule, row.settle = not_in_regime(unmet)
                rows.append(row)
                continue
            try:  # only finished runs are evidence: every claim sees those alone
                verdict = item.evaluate(judged)
                row.verdict, row.shown, row.numbers, row.rule = (
                    verdict.verdict,
                    verdict.shown,
                    verdict.numbers,
                    verdict.rule,
                )
                row.settle = verdict.settle
            except SettingError as error:  # a metric the runs did not log, runs of two conditions
                row.verdict = row.shown = "inconclusive"
                row.numbers = str(error)
            if at.unfinished:
                row.numbers += f" ({at.unfinished} unfinished runs left out)"
            if left_out_parts:
                row.numbers += left_out_parts
                row.settle = "; ".join(filter(None, [row.settle, f"the part left out: {not_in_regime(unmet)[2]}"]))
            rows.append(row)
    return rows


def scales_judging(found: list[ExperimentAtScale], item: Claim) -> list[ExperimentAtScale]:
    """The scales a claim gets a row at: each one, except that a claim about one part of an experiment run at several
    scales (Orvieto Fig. 4's narrow net at the paper's width, its wide one at scale=cpu) is judged where its part
    was run, not also where only the other part was (the largest scale where no scale has its part)."""
    if item.concerns is None or item.experiment not in PARTS or len(found) < 2:
        return found
    return [at for at in found if parts_concerned(item.experiment, at.runs, item.concerns)] or found[:1]


@dataclass
class ExperimentAtScale:
    """What every claim of one experiment at one scale is judged from, worked out once (its regime once per set of
    claim gates)."""

    experiment: str
    scale: str
    figure_link: str | None  # its figure, drawn beside the report
    runs: pd.DataFrame  # its runs at this scale, finished or not
    unfinished: int  # runs left out because they never finished
    gated: dict = field(default_factory=dict)  # (claim gates, concerns) -> what `regime` returns

    def regime(self, item: Claim) -> tuple[pd.DataFrame, list[tuple[str, Precondition]], str]:
        """The finished runs the claim sees (empty: not in regime), the preconditions missed by condition (its
        experiment's and its own), and the note on a part left out of regime (PARTS)."""
        key = (item.gates, item.concerns)
        if key not in self.gated:
            judged, unmet, left_out_parts = in_regime_parts(self.experiment, self.runs, item.gates, item.concerns)
            self.gated[key] = (finished(judged), unmet, left_out_parts)
        return self.gated[key]


def scale_figure_folders(out: Path, experiment: str) -> list[Path]:
    """An experiment's figure folders under the report's `out`, <experiment>-<scale>/, one a scale, where its runs
    are at several (prepare_experiment names them; at one scale, the folder is <experiment>/)."""
    return sorted(out.glob(f"{experiment}-*"))


def prepare_experiment(
    experiment: str,
    runs: pd.DataFrame,
    folders: Sequence[str | os.PathLike],
    out: Path,
    draw: bool,
    images: bool = True,
) -> list[ExperimentAtScale]:
    """One `ExperimentAtScale` per scale the experiment's runs were made at, the largest first (figures drawn into
    `out/`); none when the experiment has no records."""
    present = experiment_runs(runs, experiment)
    if present.empty:
        return []
    found = []
    for scale in sorted(present["scale"].unique(), key=lambda s: -SCALES.index(s) if s in SCALES else 1):
        scaled = present[present["scale"] == scale].dropna(axis=1, how="all")
        figure_link = None
        if draw and experiment in FIGURES:
            name = experiment if present["scale"].nunique() == 1 else f"{experiment}-{scale}"
            png, _ = plot_experiment(experiment, folders, out / name, runs=scaled, image=images)
            figure_link = os.path.relpath(png, out)
        unfinished = scaled.loc[~scaled["status"].isin(FINISHED), "run"].nunique()
        found.append(ExperimentAtScale(experiment, scale, figure_link, scaled, unfinished))
    return found


# What the runs table shows of each condition's final values, where the runs logged it: whether they trained.
RUN_METRICS = ("train/acc", "test/acc", "train/loss", "test/loss")


def runs_table(runs: pd.DataFrame) -> list[str]:
    """One line per experiment × scale × condition (config minus seed-like keys): the runs' statuses and seeds, the
    final train and test metrics of the completed runs (mean ± std over seeds) and whether the condition met the
    preconditions of its experiment's regime and of its claims' own gates (`gate_cell`)."""
    if runs.empty:
        return []
    lines = [
        "| experiment | scale | condition | runs | " + " | ".join(f"final {m}" for m in RUN_METRICS) + " | regime |",
        "|---|---|---|---|" + "---|" * (len(RUN_METRICS) + 1),
    ]
    for experiment in sorted(runs["experiment"].dropna().unique()):
        present = experiment_runs(runs, experiment)
        for scale in sorted(present["scale"].unique(), key=str):
            scaled = present[present["scale"] == scale].dropna(axis=1, how="all")
            for config, group in conditions(scaled):
                ordered = group.sort_values(["run", "step"])
                statuses = ordered.groupby("run")["status"].last().value_counts()
                seeds = ordered.groupby("run")["seed"].first().nunique()
                completed = ordered[ordered["status"] == "completed"]
                cells = []
                for metric in RUN_METRICS:
                    last = completed.groupby("run")[metric].last().dropna() if metric in ordered else pd.Series()
                    cells.append(
                        f"{last.mean():.4g} ± {last.std(ddof=1) if len(last) > 1 else 0:.2g}" if len(last) else ""
                    )
                status = ", ".join(f"{n} {name}" for name, n in sorted(statuses.items()))
                gate = (
                    "; ".join(
                        ("met: " if p.met else "**not met**: ")
                        + str(p)
                        + (f" (for {', '.join(claims)})" if claims else "")
                        for p, claims in gate_cell(experiment, group)
                    )
                    or "–"
                )
                lines.append(
                    f"| {experiment} | {scale} | {_cell(condition_label(config))} | {status} ({seeds} "
                    f"seeds) | " + " | ".join(cells) + f" | {_cell(gate)} |"
                )
    return lines


def gate_cell(experiment: str, condition: pd.DataFrame) -> list[tuple[Precondition, list[str]]]:
    """Every precondition set on one condition: its experiment's regime (gating every claim: no claim named), then
    each claim's own gates with the claims they gate."""
    regime = condition_preconditions(experiment, condition)
    shown = {str(p): (p, []) for p in regime}
    for item in CLAIMS:
        if item.experiment == experiment and item.gates:
            for p in condition_preconditions(experiment, condition, item.gates)[len(regime) :]:
                shown.setdefault(str(p), (p, []))[1].append(item.label)
    return list(shown.values())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def recorded_provenance(runs: pd.DataFrame) -> list[dict | None]:
    """Each run's `provenance` from its run.json; None for a run recorded before provenance (or without run.json)."""
    found = []
    for run in sorted(runs["run"].unique()) if not runs.empty else []:
        identity = read_identity(Path(run)) if (Path(run) / IDENTITY).exists() else {}
        found.append(identity.get(PROVENANCE))
    return found


def write_report(
    folders: Sequence[str | os.PathLike], out: str | os.PathLike = "results/REPORT.md", images: bool = True
) -> Path:
    """The claims report at `out`, every figure beside it (`images`: false, the figures' JSON without their PNGs)."""
    out = Path(out)
    runs = load_runs(folders)
    rows = evaluate_claims(folders, out.parent, runs=runs, images=images)
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in VERDICTS}
    total = runs["run"].nunique() if not runs.empty else 0
    unfinished = runs.loc[~runs["status"].isin(FINISHED), "run"].nunique() if not runs.empty else 0
    damaged = runs.attrs.get("damaged", [])
    skipped = (
        f"; {len(damaged)} damaged runs skipped ({', '.join(damaged[:3])}{', …' if len(damaged) > 3 else ''})"
        if damaged
        else ""
    )
    duplicates = runs.attrs.get("duplicates", [])
    skipped += (
        f"; {len(duplicates)} runs skipped as repeats of a run's config and seed ({', '.join(duplicates[:3])}"
        f"{', …' if len(duplicates) > 3 else ''})"
        if duplicates
        else ""
    )
    lines = [
        "# Claims report",
        "",
        f"Built by `python scripts/report.py {' '.join(str(f) for f in folders)}` from the run records under those "
        f"folders: {total} runs, {unfinished} of them unfinished (counted in the runs table, never in a claim)"
        f"{skipped}. Each "
        "claim is quoted from its paper. First its regime: every condition of the experiment must show the "
        "preconditions under which the paper made its figure (e.g. GD fits the training set), and those the claim's "
        "own statistic needs (e.g. that what it reads at the end of the runs has stopped drifting); if one does not, "
        "the verdict is `not in regime` and the row gives the measured value, the threshold and what would reach it. "
        "Otherwise the numbers are mean ± standard error over seeds (n, diverged runs counted and left out) and the "
        f"verdict is a one-sided Student-t test at {CONFIDENCE:.0%}: paired by seed where both sides have the same "
        "seeds (df = n − 1), else Welch's; `holds` / `fails` when t passes the critical value in the claimed / the "
        f"other direction, `inconclusive` otherwise, `inconclusive (n < {MIN_SEEDS})` with fewer than {MIN_SEEDS} "
        "seeds whatever the numbers; for an inconclusive one the last column names the seeds to plan a new run with, "
        f"sized for {POWER:.0%} power on the observed difference at its observed spread (not seeds to add to this one: "
        "adding seeds until p < 0.05 voids the test). Thresholds marked `ours` are the suite's, where the paper states "
        "its claim in "
        "words. `not run`: no records of the experiment were found. The scale column says how the runs "
        "were made: paper (the paper's sizes), cpu and cpu_quarter (reduced to fit a 2-core machine, see docs/reproducing.md), "
        "smoke (a few steps, for tests only).",
        "",
        describe_provenance(recorded_provenance(runs)),
        "",
        f"**{counts['holds']} hold, {counts['fails']} fail, {counts['inconclusive']} inconclusive, "
        f"{counts['not in regime']} not in regime, {counts['not run']} not run.**",
        "",
        "| paper | figure | claim | numbers | scale | verdict | rule | what would settle it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        figure = f"[{row.claim.figure}]({row.figure_link})" if row.figure_link else row.claim.figure
        lines.append(
            f"| {row.claim.paper} | {figure} ({row.claim.experiment}) | “{_cell(row.claim.quote)}” | "
            f"{_cell(row.numbers)} | {row.scale} | **{row.shown}** | {_cell(row.rule)} | {_cell(row.settle)} |"
        )
    table = runs_table(runs)
    if table:
        lines += [
            "",
            "## Runs",
            "",
            "Every condition of every experiment found (its config minus seed-like keys): "
            "how many runs ended in each status and over how many seeds, the final logged metrics of the "
            "completed ones (mean ± std over seeds), and whether the condition met its experiment's regime "
            "and its claims' own preconditions (those name the claims they gate; – where nothing sets a "
            "precondition on it).",
            "",
            *table,
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out
