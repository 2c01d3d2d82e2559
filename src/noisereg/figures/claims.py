"""The papers' claims, checked on run records, and the report that lists them with a verdict.

Each figure module registers the claims its paper makes about the figure: the sentence quoted from the paper, and
a function that computes the statistic from the experiment's runs and returns a `Verdict`:

    @claim("fig2_synthetic", "Fig. 2", ORVIETO, "for 300 hidden neurons, only injecting noise layer-wise ...")
    def layerwise_reaches_the_regularised_minimum(runs):
        layerwise = final(runs, "loss/regularized", **{"noise.name": "layerwise"})
        ...
        return less(layerwise, all_parameters)

Verdicts compare per-seed values: seeds share the initialisation and the batch order across noise modes
(app.py's random streams), so a comparison is paired by seed where both sides have the same seeds. A claim
`holds` when the difference goes the claimed way by more than twice its standard error, `fails` when it goes the
other way by more than that, and is `inconclusive` otherwise — also with fewer than two seeds on a side.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from noisereg.errors import SettingError
from noisereg.figures.base import FIGURES, SCALES, group_keys, plot_experiment, runs_of
from noisereg.records import load_runs

MARGIN = 2.0  # standard errors a difference must exceed


@dataclass
class Evidence:
    """One quantity per seed, e.g. the final test accuracy of the layer-wise runs."""

    name: str
    values: dict[Any, float]  # seed -> value
    diverged: int = 0  # runs left out because they diverged

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values()))) if self.values else math.nan

    @property
    def sem(self) -> float:
        if self.n < 2:
            return math.nan
        return float(np.std(list(self.values.values()), ddof=1) / math.sqrt(self.n))

    def __str__(self) -> str:
        note = f", {self.diverged} diverged" if self.diverged else ""
        return f"{self.name} {_fmt(self.mean)} ± {_fmt(self.sem)} (n={self.n}{note})"


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


@dataclass
class Verdict:
    verdict: str  # holds | fails | inconclusive
    numbers: str
    rule: str


def _difference(a: Evidence, b: Evidence) -> tuple[float, float, int, str]:
    shared = sorted(set(a.values) & set(b.values), key=str)
    if len(shared) >= 2 and len(shared) == a.n == b.n:
        differences = np.array([a.values[s] - b.values[s] for s in shared])
        return float(differences.mean()), float(differences.std(ddof=1) / math.sqrt(len(shared))), len(shared), "paired by seed"
    n = min(a.n, b.n)
    return a.mean - b.mean, math.sqrt(a.sem**2 + b.sem**2) if n >= 2 else math.nan, n, "unpaired"


def _decide(signed: float, error: float, n: int) -> str:
    if n < 2 or not math.isfinite(signed):
        return "inconclusive"
    if signed > 0 and (error == 0 or signed > MARGIN * error):
        return "holds"
    if signed < 0 and (error == 0 or -signed > MARGIN * error):
        return "fails"
    return "inconclusive"


def _compare(a: Evidence, b: Evidence, sign: int, symbol: str) -> Verdict:
    difference, error, n, how = _difference(a, b)
    numbers = f"{a}; {b}; difference {_fmt(difference)} ± {_fmt(error)}"
    return Verdict(_decide(sign * difference, error, n), numbers,
                   f"{a.name} {symbol} {b.name} by > {MARGIN:g} SE of the difference ({how})")  # fmt: skip


def greater(a: Evidence, b: Evidence) -> Verdict:
    """a > b by more than 2 standard errors of the difference."""
    return _compare(a, b, +1, ">")


def less(a: Evidence, b: Evidence) -> Verdict:
    """a < b by more than 2 standard errors of the difference."""
    return _compare(a, b, -1, "<")


def above(a: Evidence, threshold: float, what: str | None = None) -> Verdict:
    """mean of a above a threshold by more than 2 standard errors."""
    difference = a.mean - threshold
    return Verdict(_decide(difference, a.sem, a.n), str(a), f"{what or a.name} > {threshold:g} by > {MARGIN:g} SE")


def below(a: Evidence, threshold: float, what: str | None = None) -> Verdict:
    """mean of a below a threshold by more than 2 standard errors."""
    difference = threshold - a.mean
    return Verdict(_decide(difference, a.sem, a.n), str(a), f"{what or a.name} < {threshold:g} by > {MARGIN:g} SE")


def exceeds(value: float, bound: float, error: float, what: str) -> Verdict:
    """One measured value (e.g. a Monte-Carlo estimate with its standard error) above a bound by more than 2 of its
    standard errors: holds, below it by as much: fails, otherwise inconclusive."""
    decided = _decide(value - bound, error, 2) if math.isfinite(error) else "inconclusive"
    return Verdict(decided, f"{what}: {_fmt(value)} vs {_fmt(bound)} ± {_fmt(error)}",
                   f"{what} above the bound by > {MARGIN:g} SE")  # fmt: skip


def tally(verdicts: Sequence[Verdict], what: str, at_least: float = 1.0) -> Verdict:
    """One statement checked many times (at every point, every step): holds if at least the share `at_least` of
    the checks holds, fails if more than the share 1 − `at_least` fails, inconclusive otherwise; the numbers count
    the verdicts and quote the first failing (else inconclusive) check."""
    states = [v.verdict for v in verdicts]
    counts = {state: states.count(state) for state in ("holds", "fails", "inconclusive")}
    total = len(states)
    if total == 0:
        return Verdict("inconclusive", f"{what}: nothing to check", "")
    if counts["fails"] > (1 - at_least) * total + 1e-9:
        verdict = "fails"
    elif counts["holds"] >= at_least * total - 1e-9:
        verdict = "holds"
    else:
        verdict = "inconclusive"
    worst = next((v for v in verdicts if v.verdict == "fails"), None) or next(
        (v for v in verdicts if v.verdict == "inconclusive"), None)  # fmt: skip
    numbers = (f"{what}: {counts['holds']} of {total} hold, {counts['fails']} fail, "
               f"{counts['inconclusive']} inconclusive")  # fmt: skip
    if worst is not None:
        numbers += f"; e.g. {worst.numbers}"
    share = "every" if at_least >= 1 else f"≥ {at_least:.0%} of the"
    return Verdict(verdict, numbers, f"{share} check(s) hold: {verdicts[0].rule}")


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's ρ: the Pearson correlation of the ranks (ties share their mean rank)."""
    x_ranks = pd.Series(list(xs), dtype=float).rank().to_numpy()
    y_ranks = pd.Series(list(ys), dtype=float).rank().to_numpy()
    if len(x_ranks) < 2 or x_ranks.std() == 0 or y_ranks.std() == 0:
        return math.nan
    return float(np.corrcoef(x_ranks, y_ranks)[0, 1])


def within(a: Evidence, b: Evidence | float, tolerance: float, what: str | None = None) -> Verdict:
    """a and b agree to within ± tolerance: holds when the difference ± 2 standard errors lies inside the band,
    fails when it lies outside by more than 2 standard errors, inconclusive otherwise (paired by seed as above)."""
    if isinstance(b, Evidence):
        difference, error, n, how = _difference(a, b)
        numbers, name = f"{a}; {b}; difference {_fmt(difference)} ± {_fmt(error)}", f"{a.name} − {b.name}"
    else:
        difference, error, n, how = a.mean - b, a.sem, a.n, "one sample"
        numbers, name = f"{a}; against {b:g}", f"{a.name} − {b:g}"
    if n < 2 or not math.isfinite(difference) or not math.isfinite(error):
        verdict = "inconclusive"
    elif abs(difference) + MARGIN * error < tolerance:
        verdict = "holds"
    elif abs(difference) - MARGIN * error > tolerance:
        verdict = "fails"
    else:
        verdict = "inconclusive"
    rule = f"|{what or name}| < {tolerance:g} with {MARGIN:g} SE to spare ({how})"
    return Verdict(verdict, numbers, rule)


def unanimous(name: str, outcomes: dict[Any, bool], what: str) -> Verdict:
    """A yes/no outcome per seed (or per run): holds when every one of at least two says yes, fails when more than
    half say no, inconclusive otherwise."""
    yes = sum(bool(v) for v in outcomes.values())
    n = len(outcomes)
    verdict = "holds" if n >= 2 and yes == n else "fails" if n and yes < n / 2 else "inconclusive"
    return Verdict(verdict, f"{name}: {yes} of {n}", f"{what} for every one (≥ 2); fails if for fewer than half")


def between(a: Evidence, low: float, high: float, what: str | None = None) -> Verdict:
    """mean of a inside (low, high) by more than 2 standard errors on both sides; fails when outside by as much."""
    states = (_decide(a.mean - low, a.sem, a.n), _decide(high - a.mean, a.sem, a.n))
    verdict = "fails" if "fails" in states else "holds" if states == ("holds", "holds") else "inconclusive"
    return Verdict(verdict, str(a), f"{low:g} < {what or a.name} < {high:g} by > {MARGIN:g} SE")


def share(a: Evidence, condition: Callable[[float], bool], at_least: float, what: str) -> Verdict:
    """The fraction of runs whose value meets `condition` (`what` says how): holds when it is at least `at_least`,
    fails otherwise; a count over the runs, so no standard error (inconclusive with fewer than two runs)."""
    met = sum(1 for value in a.values.values() if condition(value))
    verdict = "inconclusive" if a.n < 2 else "holds" if met >= at_least * a.n else "fails"
    return Verdict(verdict, f"{a}; {met} of {a.n} {what}", f"at least {at_least:.0%} of runs {what}")


def all_of(*verdicts: Verdict) -> Verdict:
    """Holds if every part holds, fails if any part fails, inconclusive otherwise."""
    states = [v.verdict for v in verdicts]
    verdict = "fails" if "fails" in states else "holds" if all(s == "holds" for s in states) else "inconclusive"
    return Verdict(verdict, " | ".join(v.numbers for v in verdicts), " and ".join(v.rule for v in verdicts))


def select(runs: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """Runs whose config has these values (keys with dots: write them as `**{"noise.name": "gd"}`)."""
    mask = pd.Series(True, index=runs.index)
    for key, value in where.items():
        if key not in runs:
            return runs.iloc[0:0]
        wanted = tuple(value) if isinstance(value, list) else value
        mask &= runs[key].map(lambda v: v == wanted)
    return runs[mask]


def final(runs: pd.DataFrame, metric: str, name: str | None = None, **where: Any) -> Evidence:
    """Each selected run's last finite value of `metric`, by seed; diverged runs are counted, not used."""
    chosen = select(runs, **where)
    values, diverged = {}, 0
    for _, rows in chosen.groupby("run"):
        if rows["status"].iloc[0] == "diverged":
            diverged += 1
            continue
        finite = rows[np.isfinite(rows[metric].astype(float))] if metric in rows else rows.iloc[0:0]
        if len(finite):
            values[rows["seed"].iloc[0]] = float(finite.sort_values("step")[metric].iloc[-1])
    label = name or ", ".join(f"{k.split('.')[-1]}={v}" for k, v in where.items())
    return Evidence(f"{label} {metric}", values, diverged)


def per_run(runs: pd.DataFrame, statistic: Callable[[pd.DataFrame], float], name: str, **where: Any) -> Evidence:
    """`statistic(rows)` of each selected run's rows (sorted by step), by seed, e.g. the step where a metric first
    falls below a threshold; diverged runs are counted, not used, and a NaN statistic leaves the run out."""
    values, diverged = {}, 0
    for _, rows in select(runs, **where).groupby("run"):
        if rows["status"].iloc[0] == "diverged":
            diverged += 1
            continue
        value = statistic(rows.sort_values("step"))
        if math.isfinite(value):
            values[rows["seed"].iloc[0]] = float(value)
    return Evidence(name, values, diverged)


@dataclass
class Claim:
    experiment: str
    figure: str  # as the paper numbers it, e.g. "Fig. 2"
    paper: str
    quote: str
    evaluate: Callable[[pd.DataFrame], Verdict]


CLAIMS: list[Claim] = []


def claim(experiment: str, figure: str, paper: str, quote: str):
    def register(evaluate: Callable[[pd.DataFrame], Verdict]) -> Callable[[pd.DataFrame], Verdict]:
        CLAIMS.append(Claim(experiment, figure, paper, quote, evaluate))
        return evaluate

    return register


@dataclass
class ReportRow:
    claim: Claim
    scale: str = "-"
    verdict: str = "not run"
    numbers: str = ""
    rule: str = ""
    figure_link: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_claims(
    folders: Sequence[str | os.PathLike], out: Path, draw: bool = True, runs: pd.DataFrame | None = None
) -> list[ReportRow]:
    """Every registered claim against the runs under `folders` (`runs`: already loaded from them); figures drawn into
    `out/<experiment>/`."""
    import noisereg.figures  # noqa: F401  (registers every paper's figures and claims)

    runs = load_runs(folders) if runs is None else runs
    rows: list[ReportRow] = []
    drawn: dict[tuple[str, str], str] = {}
    for item in CLAIMS:
        present = runs[runs["experiment"] == item.experiment] if not runs.empty else runs
        if present.empty:
            rows.append(ReportRow(item))
            continue
        for scale in sorted(present["scale"].unique(), key=lambda s: -SCALES.index(s) if s in SCALES else 1):
            scaled = present[present["scale"] == scale]
            row = ReportRow(item, scale=scale)
            key = (item.experiment, scale)
            if draw and key not in drawn and item.experiment in FIGURES:
                name = item.experiment if present["scale"].nunique() == 1 else f"{item.experiment}-{scale}"
                png, _ = plot_experiment(item.experiment, folders, out / name, runs=scaled)
                drawn[key] = os.path.relpath(png, out)
            row.figure_link = drawn.get(key)
            try:
                verdict = item.evaluate(scaled)
                row.verdict, row.numbers, row.rule = verdict.verdict, verdict.numbers, verdict.rule
            except SettingError as error:  # a metric the runs did not log
                row.verdict, row.numbers = "inconclusive", str(error)
            rows.append(row)
    return rows


# What the runs table shows of each group's final values, where the runs logged it: whether they trained.
RUN_METRICS = ("train/acc", "test/acc", "train/loss", "test/loss")


def runs_table(runs: pd.DataFrame) -> list[str]:
    """One line per group of runs (config minus seed) of every experiment in `runs`: statuses and final train and
    test metrics of the completed runs, mean ± std over seeds, so a reader sees whether the runs reached the paper's
    regime."""
    if runs.empty:
        return []
    lines = ["| experiment | scale | group | runs | " + " | ".join(f"final {m}" for m in RUN_METRICS) + " |",
             "|---|---|---|---|" + "---|" * len(RUN_METRICS)]  # fmt: skip
    for (experiment, scale), present in runs.groupby(["experiment", "scale"], sort=True):
        keys = group_keys(present)
        groups = present.groupby(keys, sort=True, dropna=False) if keys else [((), present)]
        for values, group in groups:
            values = values if isinstance(values, tuple) else (values,)
            shown = [(k, v) for k, v in zip(keys, values) if not (isinstance(v, float) and math.isnan(v))]
            label = ", ".join(f"{k}={v}" for k, v in shown) or "all"
            ordered = group.sort_values(["run", "step"])
            statuses = ordered.groupby("run")["status"].last().value_counts()
            completed = ordered[ordered["status"] == "completed"]
            cells = []
            for metric in RUN_METRICS:
                last = completed.groupby("run")[metric].last().dropna() if metric in ordered else pd.Series(dtype=float)
                cells.append(f"{last.mean():.4g} ± {last.std(ddof=1) if len(last) > 1 else 0:.2g}" if len(last) else "")
            status = ", ".join(f"{n} {name}" for name, n in statuses.items())
            lines.append(f"| {experiment} | {scale} | {_cell(label)} | {status} | " + " | ".join(cells) + " |")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(folders: Sequence[str | os.PathLike], out: str | os.PathLike = "results/REPORT.md") -> Path:
    out = Path(out)
    runs = load_runs(folders)
    rows = evaluate_claims(folders, out.parent, runs=runs)
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in ("holds", "fails", "inconclusive", "not run")}
    lines = [
        "# Claims report",
        "",
        f"Built by `python scripts/report.py {' '.join(str(f) for f in folders)}` from the run records under those "
        "folders. Each claim is quoted from its paper; the numbers are mean ± standard error over seeds of each run's "
        "final logged value; `holds` / `fails` means the difference goes the claimed / the other way by more than "
        f"{MARGIN:g} standard errors (paired by seed where both sides have the same seeds), `inconclusive` that it "
        "does not (or that fewer than two seeds were run), `not run` that no records of the experiment were found. "
        "The scale column says how the runs were made: paper (the paper's sizes), cpu and cpu_quarter (reduced to "
        "fit a 2-core machine, see README), smoke (a few steps, for tests only).",
        "",
        f"**{counts['holds']} hold, {counts['fails']} fail, {counts['inconclusive']} inconclusive, "
        f"{counts['not run']} not run.**",
        "",
        "| paper | figure | claim | numbers | scale | verdict | rule |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        figure = f"[{row.claim.figure}]({row.figure_link})" if row.figure_link else row.claim.figure
        lines.append(
            f"| {row.claim.paper} | {figure} ({row.claim.experiment}) | “{_cell(row.claim.quote)}” | "
            f"{_cell(row.numbers)} | {row.scale} | **{row.verdict}** | {_cell(row.rule)} |"
        )
    table = runs_table(runs)
    if table:
        lines += ["", "## Runs", "", "Every group of runs found (config minus seed): how many ended in each status, "
                  "and the final logged metrics of the completed ones, mean ± std over seeds.", "", *table]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out
