"""The papers' claims, checked on run records: the evidence per seed, the decision rules, the regime gates.

Each figure module registers the claims its paper makes about the figure: the sentence quoted from the paper, and
a function that computes the statistic from the experiment's runs and returns a `Verdict`:

    @claim("fig2_synthetic", "Fig. 2", ORVIETO, "for 300 hidden neurons, only injecting noise layer-wise ...")
    def layerwise_reaches_the_regularised_minimum(runs):
        layerwise = final(runs, "loss/regularized", **{"noise.name": "layerwise"})
        ...
        return less(layerwise, all_parameters)

and the preconditions under which the paper made the figure (`@regime`, one condition's runs at a time): a claim
whose experiment misses one is `not in regime`, never `fails` (report.py). A claim may carry preconditions of its
own (`@claim(..., gates=...)`, the same kind of function), e.g. that the statistic it reads at the end of a run has
stopped drifting: those gate that claim alone, beside its experiment's.

Decisions are one-sided Student-t tests at 95 % on per-seed values. Seeds share the initialisation and the batch
order across noise modes (app.py's random streams), so a comparison is paired by seed where both sides have the
same seeds (df = n − 1), else Welch's (Welch–Satterthwaite df). A claim `holds` when the difference goes the
claimed way with t above the critical value, `fails` when it goes the other way as clearly, and is `inconclusive`
otherwise; with fewer than 3 seeds it is `inconclusive (n < 3)` whatever the numbers. An inconclusive comparison
names the seeds to plan a new experiment with, sized on its observed difference at its observed spread: never seeds
to add to this one (adding seeds until p < 0.05 would make the 5 % error rate a fiction).

Only finished runs (completed or diverged) are evidence; a diverged run is counted and left out of the means, an
unfinished one (interrupted, failed, or records without a summary) is counted apart. Every selection must be one
condition: runs that differ in any setting but a seed never pool into one Evidence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from noisereg.errors import SettingError
from noisereg.tracking.records import FINISHED

CONFIDENCE = 0.95  # one-sided
MIN_SEEDS = 3  # fewer decide nothing
MOST_SEEDS = 1000  # "what would settle it" looks this far
POWER = 0.80  # ... for a new run that would find the observed difference this often, were it the true one


def critical_t(df: float) -> float:
    """The one-sided 95 % critical value of Student's t with df degrees of freedom (1.645 as df → ∞)."""
    return float(stats.t.ppf(CONFIDENCE, df)) if math.isfinite(df) else float(stats.norm.ppf(CONFIDENCE))


@dataclass
class Evidence:
    """One quantity per seed, e.g. the final test accuracy of the layer-wise runs."""

    name: str
    values: dict[Any, float]  # seed -> value
    diverged: int = 0  # finished runs left out because they diverged
    unfinished: int = 0  # runs left out because they never finished (interrupted, failed, no summary)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values()))) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(list(self.values.values()), ddof=1)) if self.n >= 2 else math.nan

    @property
    def sem(self) -> float:
        return self.std / math.sqrt(self.n) if self.n >= 2 else math.nan

    def __str__(self) -> str:
        notes = [f"n={self.n}"]
        if self.diverged:
            notes.append(f"{self.diverged} diverged")
        if self.unfinished:
            notes.append(f"{self.unfinished} unfinished left out")
        return f"{self.name} {_fmt(self.mean)} ± {_fmt(self.sem)} ({', '.join(notes)})"


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


@dataclass
class Test:
    """A one-sided test of `estimate` > 0 (the claimed direction): its standard error, degrees of freedom, the
    number of seeds behind it and how it was paired; `spread(n)` is the standard error it would have with n seeds
    at the observed spread (for "what would settle it")."""

    estimate: float
    error: float
    df: float
    n: int
    how: str
    spread: Callable[[int], float] | None = None

    @property
    def t(self) -> float:
        if not math.isfinite(self.estimate) or not math.isfinite(self.error):
            return math.nan
        if self.error == 0:
            return math.copysign(math.inf, self.estimate) if self.estimate else 0.0
        return self.estimate / self.error

    def decide(self) -> str:
        if self.n < MIN_SEEDS or not math.isfinite(self.df) and self.how != "Monte Carlo" or math.isnan(self.t):
            return "inconclusive"
        critical = critical_t(self.df)
        return "holds" if self.t > critical else "fails" if self.t < -critical else "inconclusive"

    def describe(self) -> str:
        df = "∞" if not math.isfinite(self.df) else f"{self.df:.3g}"
        if self.n < MIN_SEEDS:
            return f"{self.how}, n={self.n} < {MIN_SEEDS}"
        return f"{self.how}, n={self.n}, df {df}: t = {_fmt(self.t)} vs ±{critical_t(self.df):.3g}"

    def seeds_to_settle(self) -> Settle:
        """The seeds to plan a new experiment with: the fewest at which the observed difference, were it the true one,
        would be found significant with 80 % power at the observed spread (a power calculation for the next run, not
        a count to extend this one to: the smallest n that merely reaches significance has only about 50 % power)."""
        if self.spread is None or not math.isfinite(self.estimate) or not math.isfinite(self.error):
            return NOTHING_TO_SETTLE
        if self.estimate == 0 or self.error == 0:
            return Settle(math.inf, "no new run of any size: the difference is smaller than its spread") \
                if self.estimate == 0 else NOTHING_TO_SETTLE  # fmt: skip
        for n in range(max(self.n, MIN_SEEDS), MOST_SEEDS + 1):
            if abs(self.estimate) / self.spread(n) > critical_t(n - 1) + float(stats.t.ppf(POWER, n - 1)):
                return Settle(n, f"plan ≥ {n} seeds for a new run (sized for {POWER:.0%} power on the observed "
                                 f"difference, which points to `{'holds' if self.estimate > 0 else 'fails'}`, at its "
                                 "observed spread; not seeds added to this one)")  # fmt: skip
        return Settle(math.inf, f"no new run of up to {MOST_SEEDS} seeds: the difference is smaller than its spread")


@dataclass(frozen=True)
class Settle:
    """What would settle an inconclusive test: the seeds a new experiment needs (inf: none would) and the sentence
    saying so."""

    seeds: float
    text: str


NOTHING_TO_SETTLE = Settle(0.0, "")


def _hardest(settles: Sequence[Settle]) -> Settle:
    """Of several parts' settles, the one needing the most seeds."""
    return max(settles, key=lambda settle: settle.seeds, default=NOTHING_TO_SETTLE)


@dataclass
class Verdict:
    verdict: str  # holds | fails | inconclusive | not in regime
    numbers: str
    rule: str
    settled_by: Settle = NOTHING_TO_SETTLE  # for an inconclusive one: what would settle it
    small: bool = False  # some part had fewer than MIN_SEEDS seeds

    @property
    def settle(self) -> str:
        return self.settled_by.text

    @property
    def shown(self) -> str:
        return f"{self.verdict} (n < {MIN_SEEDS})" if self.verdict == "inconclusive" and self.small else self.verdict


def _judged(test: Test, numbers: str, rule: str) -> Verdict:
    verdict = test.decide()
    return Verdict(verdict, numbers, f"{rule} ({test.describe()})",
                   settled_by=test.seeds_to_settle() if verdict == "inconclusive" else NOTHING_TO_SETTLE,
                   small=test.n < MIN_SEEDS)  # fmt: skip


def _one_sample(a: Evidence, signed: float) -> Test:
    """`signed` = the claimed direction's distance of a's mean from a threshold, tested against a's spread."""
    spread = a.std
    return Test(signed, a.sem, a.n - 1, a.n, "one sample", (lambda n: spread / math.sqrt(n)) if a.n >= 2 else None)


def _difference(a: Evidence, b: Evidence, sign: int) -> Test:
    """sign · (a − b): paired by seed where both sides have the same seeds, else Welch's."""
    shared = sorted(set(a.values) & set(b.values), key=str)
    if len(shared) >= 2 and len(shared) == a.n == b.n:
        differences = np.array([a.values[s] - b.values[s] for s in shared]) * sign
        spread = float(differences.std(ddof=1))
        return Test(float(differences.mean()), spread / math.sqrt(len(shared)), len(shared) - 1, len(shared),
                    "paired by seed", lambda n: spread / math.sqrt(n))  # fmt: skip
    n = min(a.n, b.n)
    if n < 2:
        return Test(sign * (a.mean - b.mean), math.nan, math.nan, n, "unpaired")
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    error = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1)) if va + vb > 0 else a.n + b.n - 2
    spread = lambda count: math.sqrt((a.std**2 + b.std**2) / count)  # noqa: E731  (both sides grown to count)
    return Test(sign * (a.mean - b.mean), error, df, n, "Welch", spread)


def _compare(a: Evidence, b: Evidence, sign: int, symbol: str) -> Verdict:
    test = _difference(a, b, sign)
    numbers = f"{a}; {b}; difference {_fmt(sign * test.estimate)} ± {_fmt(test.error)}"
    return _judged(test, numbers, f"{a.name} {symbol} {b.name}, one-sided t at {CONFIDENCE:.0%}")


def greater(a: Evidence, b: Evidence) -> Verdict:
    """a > b: a one-sided t-test at 95 % on the differences (paired by seed, else Welch)."""
    return _compare(a, b, +1, ">")


def less(a: Evidence, b: Evidence) -> Verdict:
    """a < b: a one-sided t-test at 95 % on the differences (paired by seed, else Welch)."""
    return _compare(a, b, -1, "<")


def above(a: Evidence, threshold: float, what: str | None = None) -> Verdict:
    """mean of a above a threshold: a one-sample one-sided t-test at 95 %."""
    return _judged(_one_sample(a, a.mean - threshold), str(a),
                   f"{what or a.name} > {threshold:g}, one-sided t at {CONFIDENCE:.0%}")  # fmt: skip


def below(a: Evidence, threshold: float, what: str | None = None) -> Verdict:
    """mean of a below a threshold: a one-sample one-sided t-test at 95 %."""
    return _judged(_one_sample(a, threshold - a.mean), str(a),
                   f"{what or a.name} < {threshold:g}, one-sided t at {CONFIDENCE:.0%}")  # fmt: skip


def exceeds(value: float, bound: float, error: float, what: str) -> Verdict:
    """One Monte-Carlo estimate (many draws, its standard error given) above a bound: a one-sided z-test at 95 %
    (holds above, fails below as clearly, otherwise inconclusive)."""
    test = Test(value - bound, error, math.inf, MIN_SEEDS, "Monte Carlo") if math.isfinite(error) else \
        Test(math.nan, math.nan, math.inf, 0, "Monte Carlo")  # fmt: skip
    verdict = test.decide()
    return Verdict(verdict, f"{what}: {_fmt(value)} vs {_fmt(bound)} ± {_fmt(error)}",
                   f"{what} above the bound, one-sided z at {CONFIDENCE:.0%} on the Monte-Carlo error")  # fmt: skip


def tally(verdicts: Sequence[Verdict], what: str, independent: str, at_least: float = 1.0) -> Verdict:
    """One statement checked many times (at every point, every step): holds if at least the share `at_least` of
    the checks holds, fails if more than the share 1 − `at_least` fails, inconclusive otherwise; the numbers count
    the verdicts, say how many of the checks are independent (`independent`, e.g. "20 initialisations: 2 tasks × 10
    seeds") and quote the first failing (else inconclusive) check."""
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
               f"{counts['inconclusive']} inconclusive; independent: {independent}")  # fmt: skip
    if worst is not None:
        numbers += f"; e.g. {worst.numbers}"
    share_of = "every" if at_least >= 1 else f"≥ {at_least:.0%} of the"
    return Verdict(verdict, numbers, f"{share_of} check(s) hold: {verdicts[0].rule}",
                   small=any(v.small for v in verdicts))  # fmt: skip


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's ρ: the Pearson correlation of the ranks (ties share their mean rank)."""
    x_ranks = pd.Series(list(xs), dtype=float).rank().to_numpy()
    y_ranks = pd.Series(list(ys), dtype=float).rank().to_numpy()
    if len(x_ranks) < 2 or x_ranks.std() == 0 or y_ranks.std() == 0:
        return math.nan
    return float(np.corrcoef(x_ranks, y_ranks)[0, 1])


def within(a: Evidence, b: Evidence | float, tolerance: float, what: str | None = None) -> Verdict:
    """a and b agree to within ± tolerance: two one-sided t-tests at 95 % (holds when the difference lies inside the
    band by more than its critical margin, fails when outside by as much, inconclusive otherwise)."""
    if isinstance(b, Evidence):
        test = _difference(a, b, +1)
        numbers, name = f"{a}; {b}; difference {_fmt(test.estimate)} ± {_fmt(test.error)}", f"{a.name} − {b.name}"
    else:
        test = _one_sample(a, a.mean - b)
        numbers, name = f"{a}; against {b:g}", f"{a.name} − {b:g}"
    inside = Test(tolerance - abs(test.estimate), test.error, test.df, test.n, test.how, test.spread)
    verdict = inside.decide()
    return Verdict(verdict, numbers, f"|{what or name}| < {tolerance:g}, two one-sided t at {CONFIDENCE:.0%} "
                   f"({inside.describe()})", small=test.n < MIN_SEEDS,
                   settled_by=inside.seeds_to_settle() if verdict == "inconclusive" else NOTHING_TO_SETTLE)  # fmt: skip


def unanimous(name: str, outcomes: dict[Any, bool], what: str) -> Verdict:
    """A yes/no outcome per seed (or per run): holds when every one of at least 3 says yes, fails when more than
    half say no, inconclusive otherwise."""
    yes = sum(bool(v) for v in outcomes.values())
    n = len(outcomes)
    verdict = "fails" if n >= MIN_SEEDS and yes < n / 2 else "holds" if n >= MIN_SEEDS and yes == n else "inconclusive"
    return Verdict(verdict, f"{name}: {yes} of {n}",
                   f"{what} for every one (≥ {MIN_SEEDS}); fails if for fewer than half", small=n < MIN_SEEDS)


def between(a: Evidence, low: float, high: float, what: str | None = None) -> Verdict:
    """mean of a inside (low, high): one-sided t-tests at 95 % on both sides; fails when outside by as much."""
    tests = (_one_sample(a, a.mean - low), _one_sample(a, high - a.mean))
    states = [test.decide() for test in tests]
    verdict = "fails" if "fails" in states else "holds" if states == ["holds", "holds"] else "inconclusive"
    settle = _hardest([t.seeds_to_settle() for t, state in zip(tests, states) if state == "inconclusive"])
    sides = "; ".join(f"{side}: {test.describe()}" for side, test in zip(("low", "high"), tests))
    return Verdict(verdict, str(a), f"{low:g} < {what or a.name} < {high:g}, one-sided t at {CONFIDENCE:.0%} on "
                   f"each side ({sides})", settled_by=settle if verdict == "inconclusive" else NOTHING_TO_SETTLE,
                   small=a.n < MIN_SEEDS)  # fmt: skip


def share(a: Evidence, condition: Callable[[float], bool], at_least: float, what: str) -> Verdict:
    """The fraction of runs whose value meets `condition` (`what` says how): holds when it is at least `at_least`,
    fails otherwise; a count over the runs (inconclusive with fewer than 3 runs)."""
    met = sum(1 for value in a.values.values() if condition(value))
    verdict = "inconclusive" if a.n < MIN_SEEDS else "holds" if met >= at_least * a.n else "fails"
    return Verdict(verdict, f"{a}; {met} of {a.n} {what}", f"at least {at_least:.0%} of runs {what}",
                   small=a.n < MIN_SEEDS)  # fmt: skip


def all_of(*verdicts: Verdict) -> Verdict:
    """Holds if every part holds, fails if any part fails, inconclusive otherwise (settled by the most seeds any
    inconclusive part needs)."""
    states = [v.verdict for v in verdicts]
    verdict = "fails" if "fails" in states else "holds" if all(s == "holds" for s in states) else "inconclusive"
    settles = [v.settled_by for v in verdicts if v.verdict == "inconclusive" and v.settle]
    return Verdict(verdict, " | ".join(v.numbers for v in verdicts), " and ".join(v.rule for v in verdicts),
                   settled_by=_hardest(settles) if verdict == "inconclusive" else NOTHING_TO_SETTLE,
                   small=verdict == "inconclusive" and any(v.small for v in verdicts if v.verdict == "inconclusive"))


def ours(verdict: Verdict) -> Verdict:
    """The verdict with its rule marked as ours: a threshold the paper does not state (it states the claim in words)."""
    return replace(verdict, rule=f"ours: {verdict.rule}")


# -- selecting evidence from runs --------------------------------------------------------------------------------


def is_seed_like(column: str) -> bool:
    """A config key named `seed` at any depth (`seed`, `dataset.seed`, `probes.remainder.seed`): it picks a draw, not
    a condition."""
    return column == "seed" or column.endswith(".seed")


def condition_keys(runs: pd.DataFrame) -> list[str]:
    """The config keys that make a condition: every dotted config column but the seed-like ones and those above."""
    from noisereg.records import config_columns, is_watching_only

    return [c for c in config_columns(runs) if not is_seed_like(c) and not is_watching_only(c)]


def select(runs: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """Runs whose config has these values (keys with dots: write them as `**{"noise.name": "gd"}`)."""
    mask = pd.Series(True, index=runs.index)
    for key, value in where.items():
        if key not in runs:
            return runs.iloc[0:0]
        wanted = tuple(value) if isinstance(value, list) else value
        mask &= runs[key].map(lambda v: v == wanted)
    return runs[mask]


def one_condition(chosen: pd.DataFrame, label: str) -> None:
    """Refuse to pool runs of different conditions (say, σ = 0.1 and σ = 1e30 from two folders) into one Evidence."""
    if chosen.empty:
        return
    firsts = chosen.groupby("run").head(1)
    differing = [key for key in condition_keys(firsts) if firsts[key].map(repr).nunique() > 1]
    if differing:
        shown = "; ".join(f"{key} = {', '.join(sorted(set(firsts[key].map(str))))}" for key in differing[:3])
        raise SettingError(f"{label}: runs of different conditions would pool ({shown}); load one sweep's folder, "
                           "or records that differ only by seed")  # fmt: skip


def _evidence_runs(runs: pd.DataFrame, label: str, where: dict[str, Any]):
    """The selected runs, one condition; yields (seed, rows sorted by step) of each finished, not diverged run and
    returns the counts of diverged and unfinished runs through the list it fills."""
    chosen = select(runs, **where)
    one_condition(chosen, label)
    kept, diverged, unfinished = [], 0, 0
    for _, rows in chosen.groupby("run"):
        status = rows["status"].iloc[0]
        if status not in FINISHED:
            unfinished += 1
        elif status == "diverged":
            diverged += 1
        else:
            kept.append((rows["seed"].iloc[0], rows.sort_values("step")))
    seeds = [seed for seed, _ in kept]
    if len(set(map(repr, seeds))) < len(seeds):
        raise SettingError(f"{label}: two finished runs of one condition have the same seed; load each run once")
    return kept, diverged, unfinished


def final(runs: pd.DataFrame, metric: str, name: str | None = None, **where: Any) -> Evidence:
    """Each selected run's last finite value of `metric`, by seed; diverged and unfinished runs are counted, not
    used."""
    label = name or ", ".join(f"{k.split('.')[-1]}={v}" for k, v in where.items())
    kept, diverged, unfinished = _evidence_runs(runs, f"{label} {metric}", where)
    values = {}
    for seed, rows in kept:
        finite = rows[np.isfinite(rows[metric].astype(float))] if metric in rows else rows.iloc[0:0]
        if len(finite):
            values[seed] = float(finite[metric].iloc[-1])
    return Evidence(f"{label} {metric}", values, diverged, unfinished)


def late_mean(runs: pd.DataFrame, metric: str, name: str | None = None, fraction: float = 0.1, **where: Any) -> Evidence:
    """Each selected run's mean of `metric` over the last `fraction` of its evaluations (at least one), by seed: the
    statistic for a last iterate that fluctuates under constant lr and noise."""
    label = name or ", ".join(f"{k.split('.')[-1]}={v}" for k, v in where.items())
    kept, diverged, unfinished = _evidence_runs(runs, f"{label} {metric}", where)
    values = {}
    for seed, rows in kept:
        finite = rows[np.isfinite(rows[metric].astype(float))][metric].astype(float) if metric in rows else []
        if len(finite):
            values[seed] = float(finite.iloc[-max(1, round(fraction * len(finite))):].mean())
    return Evidence(f"{label} {metric} (mean of the last {fraction:.0%} of evaluations)", values, diverged, unfinished)


def per_run(runs: pd.DataFrame, statistic: Callable[[pd.DataFrame], float], name: str, **where: Any) -> Evidence:
    """`statistic(rows)` of each selected run's rows (sorted by step), by seed, e.g. the step where a metric first
    falls below a threshold; diverged and unfinished runs are counted, not used, and a NaN statistic leaves the run
    out."""
    kept, diverged, unfinished = _evidence_runs(runs, name, where)
    values = {}
    for seed, rows in kept:
        value = statistic(rows)
        if math.isfinite(value):
            values[seed] = float(value)
    return Evidence(name, values, diverged, unfinished)


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of the finished runs (completed or diverged): what a claim computed on all rows at once may use."""
    return runs[runs["status"].isin(FINISHED)]


# -- claims and their regime -------------------------------------------------------------------------------------


@dataclass
class Claim:
    experiment: str
    figure: str  # as the paper numbers it, e.g. "Fig. 2"
    paper: str
    quote: str
    evaluate: Callable[[pd.DataFrame], Verdict]
    gates: tuple[Gate, ...] = field(default=())  # this claim's own preconditions, beside its experiment's regime

    @property
    def label(self) -> str:
        """The figure and the quote's first words, to name the claim in a table."""
        words = self.quote.split()
        return f"{self.figure} “{' '.join(words[:5])}{' …' if len(words) > 5 else ''}”"


CLAIMS: list[Claim] = []


def claim(experiment: str, figure: str, paper: str, quote: str, gates: Sequence[Gate] = ()):
    """Register a claim; `gates`: preconditions of this claim alone (one condition's runs at a time, as `@regime`'s),
    for what its own statistic needs, e.g. that the quantity it reads at the end of a run has stopped drifting."""

    def register(evaluate: Callable[[pd.DataFrame], Verdict]) -> Callable[[pd.DataFrame], Verdict]:
        CLAIMS.append(Claim(experiment, figure, paper, quote, evaluate, tuple(gates)))
        return evaluate

    return register


@dataclass
class Precondition:
    """One measured fact a condition's runs must show for the paper's figure to apply, e.g. GD's final training
    accuracy ≥ 0.95 on the FMNIST subset."""

    what: str  # e.g. "GD final train/acc (mean over seeds)"
    measured: float
    threshold: float
    at_least: bool  # True: measured ≥ threshold is needed; False: measured < threshold
    remedy: str  # what would reach it: the paper's scale, more steps, a GPU

    @property
    def met(self) -> bool:
        return math.isfinite(self.measured) and (self.measured >= self.threshold if self.at_least
                                                 else self.measured < self.threshold)  # fmt: skip

    def __str__(self) -> str:
        needed = f"{'≥' if self.at_least else '<'} {self.threshold:g}"
        return f"{self.what} {_fmt(self.measured)} (needs {needed})"


# The preconditions one condition's runs must show (an empty list: none), computed on its finished runs.
Gate = Callable[[pd.DataFrame], list[Precondition]]
# experiment -> the preconditions of one condition's runs (an empty list: this condition is not gated)
REGIMES: dict[str, Gate] = {}
# experiment -> a config key whose values the claims judge apart (Camuto Fig. 3's models): a value whose conditions
# miss a precondition is left out, the others are judged
PARTS: dict[str, str] = {}


def regime(*experiments: str, part: str | None = None):
    """Register the preconditions of the experiments' figures, computed on one condition's runs at a time; with
    `part`, the claims judge each value of that key apart (their functions loop over it), so a value out of regime
    is left out of the claim rather than taking the others with it."""

    def register(gate: Callable[[pd.DataFrame], list[Precondition]]):
        for experiment in experiments:
            REGIMES[experiment] = gate
            if part:
                PARTS[experiment] = part
        return gate

    return register


def condition_preconditions(experiment: str, condition: pd.DataFrame, gates: Sequence[Gate] = ()) -> list[Precondition]:
    """The preconditions of one condition's runs (finished runs only): its experiment's regime, then `gates` (a
    claim's own); none where there is no gate or the condition has no finished run."""
    done = finished(condition)
    chosen = [gate for gate in (REGIMES.get(experiment), *gates) if gate is not None]
    return [p for gate in chosen for p in _checked(gate, done)] if not done.empty else []


def _checked(gate: Gate, condition: pd.DataFrame) -> list[Precondition]:
    """A gate's preconditions; one that cannot be computed on these records (a metric they lack, a zero it divides
    by) is an unmet precondition that says why, never an exception that takes the whole report with it."""
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return list(gate(condition))
    except (ArithmeticError, KeyError, ValueError, SettingError) as error:
        name = getattr(gate, "__name__", "a precondition")
        return [Precondition(f"{name} could not be computed on these records ({type(error).__name__}: {error})",
                             math.nan, math.nan, True, "records that log what the gate reads")]  # fmt: skip


def mean_final(runs: pd.DataFrame, metric: str) -> float:
    """The mean over runs of each run's last finite value of `metric` (NaN where no run logged it): for gates."""
    if metric not in runs:
        return math.nan
    finite = runs[np.isfinite(runs[metric].astype(float))]
    last = finite.sort_values("step").groupby("run")[metric].last()
    return float(last.astype(float).mean()) if len(last) else math.nan


def final_over_initial(runs: pd.DataFrame, metric: str) -> list[float]:
    """Each run's last over first finite value of `metric` (runs with fewer than two values, or a first value that
    is not positive, left out): how far a loss fell, for gates."""
    ratios = []
    for _, rows in runs.groupby("run"):
        values = rows.sort_values("step")[metric].astype(float).dropna() if metric in rows else pd.Series(dtype=float)
        if len(values) >= 2 and values.iloc[0] > 0:
            ratios.append(float(values.iloc[-1] / values.iloc[0]))
    return ratios


@dataclass(frozen=True)
class LateTrend:
    """How much a metric still moved at the end of the runs: the mean over runs of each run's least-squares slope
    over its last `fraction` of steps × that window's length, relative to the run's mean level there (−0.01: it
    fell by 1 % across the window), with the standard error of that mean (each run's from its own residuals, the
    runs independent), and the fewest evaluations any run had in its window."""

    change: float
    error: float
    runs: int
    fraction: float
    fewest: int = 0

    @property
    def in_errors(self) -> float:
        """|change| / its standard error: how far the drift stands out of the evaluation-to-evaluation noise."""
        if not (math.isfinite(self.change) and math.isfinite(self.error)):
            return math.nan
        return abs(self.change) / self.error if self.error else 0.0 if self.change == 0 else math.inf

    def __str__(self) -> str:
        return (f"{self.change:+.2%} ± {self.error:.2%} over the last {self.fraction:.0%} (least-squares slope × "
                f"window, relative to the level; mean of {self.runs} runs)")  # fmt: skip


def _run_trend(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """One run's relative change across the window by least squares, and its standard error."""
    centred = steps - steps.mean()
    slope = float(centred @ values / (centred @ centred))
    residuals = values - values.mean() - slope * centred
    slope_error = math.sqrt(float(residuals @ residuals) / (len(steps) - 2) / float(centred @ centred))
    scale = (steps[-1] - steps[0]) / abs(values.mean()) if values.mean() else math.nan
    return slope * scale, slope_error * scale


def late_trend(runs: pd.DataFrame, metric: str, fraction: float = 0.2) -> LateTrend:
    """The late trend of `metric` (`LateTrend`) over the runs with at least 4 finite values in their last `fraction`
    of steps: whether a slowly moving quantity has stopped moving, judged against its own noise rather than a fixed
    tolerance (under label noise it fluctuates from one evaluation to the next)."""
    trends, counts = [], []
    for _, rows in runs.groupby("run"):
        rows = rows[np.isfinite(rows[metric].astype(float))].sort_values("step") if metric in rows else rows.iloc[0:0]
        if len(rows) < 4:
            counts.append(len(rows))
            continue
        steps, values = rows["step"].to_numpy(float), rows[metric].to_numpy(float)
        window = steps > steps[-1] - fraction * (steps[-1] - steps[0])
        counts.append(int(window.sum()))
        if window.sum() >= 4:
            trends.append(_run_trend(steps[window], values[window]))
    if not trends:
        return LateTrend(math.nan, math.nan, 0, fraction, min(counts, default=0))
    changes, errors = np.array(trends).T
    return LateTrend(float(changes.mean()), float(np.sqrt((errors**2).sum())) / len(trends), len(trends), fraction,
                     min(counts))  # fmt: skip
