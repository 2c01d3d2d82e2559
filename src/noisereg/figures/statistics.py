"""The statistics behind every verdict: per-seed evidence, one-sided Student-t tests and the verdicts they give.

Decisions are one-sided Student-t tests at 95 % on per-seed values. Seeds share the initialisation and the batch
order across noise modes (app.py's random streams), so a comparison is paired by seed where both sides have the
same seeds (df = n − 1), else Welch's (Welch–Satterthwaite df). A claim `holds` when the difference goes the
claimed way with t above the critical value, `fails` when it goes the other way as clearly, and is `inconclusive`
otherwise; with fewer than 3 seeds it is `inconclusive (n < 3)` whatever the numbers. An inconclusive comparison
names the seeds to plan a new experiment with, sized on its observed difference at its observed spread: never seeds
to add to this one (adding seeds until p < 0.05 would make the 5 % error rate a fiction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

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
            return (
                Settle(math.inf, "no new run of any size: the difference is smaller than its spread")
                if self.estimate == 0
                else NOTHING_TO_SETTLE
            )
        for n in range(max(self.n, MIN_SEEDS), MOST_SEEDS + 1):
            if abs(self.estimate) / self.spread(n) > critical_t(n - 1) + float(stats.t.ppf(POWER, n - 1)):
                return Settle(
                    n,
                    f"plan ≥ {n} seeds for a new run (sized for {POWER:.0%} power on the observed "
                    f"difference, which points to `{'holds' if self.estimate > 0 else 'fails'}`, at its "
                    "observed spread; not seeds added to this one)",
                )
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
    return Verdict(
        verdict,
        numbers,
        f"{rule} ({test.describe()})",
        settled_by=test.seeds_to_settle() if verdict == "inconclusive" else NOTHING_TO_SETTLE,
        small=test.n < MIN_SEEDS,
    )


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
        return Test(
            float(differences.mean()),
            spread / math.sqrt(len(shared)),
            len(shared) - 1,
            len(shared),
            "paired by seed",
            lambda n: spread / math.sqrt(n),
        )
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
    return _judged(
        _one_sample(a, a.mean - threshold), str(a), f"{what or a.name} > {threshold:g}, one-sided t at {CONFIDENCE:.0%}"
    )


def below(a: Evidence, threshold: float, what: str | None = None) -> Verdict:
    """mean of a below a threshold: a one-sample one-sided t-test at 95 %."""
    return _judged(
        _one_sample(a, threshold - a.mean), str(a), f"{what or a.name} < {threshold:g}, one-sided t at {CONFIDENCE:.0%}"
    )


def exceeds(value: float, bound: float, error: float, what: str) -> Verdict:
    """One Monte-Carlo estimate (many draws, its standard error given) above a bound: a one-sided z-test at 95 %
    (holds above, fails below as clearly, otherwise inconclusive)."""
    test = (
        Test(value - bound, error, math.inf, MIN_SEEDS, "Monte Carlo")
        if math.isfinite(error)
        else Test(math.nan, math.nan, math.inf, 0, "Monte Carlo")
    )
    verdict = test.decide()
    return Verdict(
        verdict,
        f"{what}: {_fmt(value)} vs {_fmt(bound)} ± {_fmt(error)}",
        f"{what} above the bound, one-sided z at {CONFIDENCE:.0%} on the Monte-Carlo error",
    )


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
        (v for v in verdicts if v.verdict == "inconclusive"), None
    )
    numbers = (
        f"{what}: {counts['holds']} of {total} hold, {counts['fails']} fail, "
        f"{counts['inconclusive']} inconclusive; independent: {independent}"
    )
    if worst is not None:
        numbers += f"; e.g. {worst.numbers}"
    share_of = "every" if at_least >= 1 else f"≥ {at_least:.0%} of the"
    return Verdict(
        verdict, numbers, f"{share_of} check(s) hold: {verdicts[0].rule}", small=any(v.small for v in verdicts)
    )


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
    return Verdict(
        verdict,
        numbers,
        f"|{what or name}| < {tolerance:g}, two one-sided t at {CONFIDENCE:.0%} ({inside.describe()})",
        small=test.n < MIN_SEEDS,
        settled_by=inside.seeds_to_settle() if verdict == "inconclusive" else NOTHING_TO_SETTLE,
    )


def unanimous(name: str, outcomes: dict[Any, bool], what: str) -> Verdict:
    """A yes/no outcome per seed (or per run): holds when every one of at least 3 says yes, fails when more than
    half say no, inconclusive otherwise."""
    yes = sum(bool(v) for v in outcomes.values())
    n = len(outcomes)
    verdict = "fails" if n >= MIN_SEEDS and yes < n / 2 else "holds" if n >= MIN_SEEDS and yes == n else "inconclusive"
    return Verdict(
        verdict,
        f"{name}: {yes} of {n}",
        f"{what} for every one (≥ {MIN_SEEDS}); fails if for fewer than half",
        small=n < MIN_SEEDS,
    )


def between(a: Evidence, low: float, high: float, what: str | None = None) -> Verdict:
    """mean of a inside (low, high): one-sided t-tests at 95 % on both sides; fails when outside by as much."""
    tests = (_one_sample(a, a.mean - low), _one_sample(a, high - a.mean))
    states = [test.decide() for test in tests]
    verdict = "fails" if "fails" in states else "holds" if states == ["holds", "holds"] else "inconclusive"
    settle = _hardest([t.seeds_to_settle() for t, state in zip(tests, states) if state == "inconclusive"])
    sides = "; ".join(f"{side}: {test.describe()}" for side, test in zip(("low", "high"), tests))
    return Verdict(
        verdict,
        str(a),
        f"{low:g} < {what or a.name} < {high:g}, one-sided t at {CONFIDENCE:.0%} on each side ({sides})",
        settled_by=settle if verdict == "inconclusive" else NOTHING_TO_SETTLE,
        small=a.n < MIN_SEEDS,
    )


def share(a: Evidence, condition: Callable[[float], bool], at_least: float, what: str) -> Verdict:
    """The fraction of runs whose value meets `condition` (`what` says how): holds when it is at least `at_least`,
    fails otherwise; a count over the runs (inconclusive with fewer than 3 runs)."""
    met = sum(1 for value in a.values.values() if condition(value))
    verdict = "inconclusive" if a.n < MIN_SEEDS else "holds" if met >= at_least * a.n else "fails"
    return Verdict(
        verdict, f"{a}; {met} of {a.n} {what}", f"at least {at_least:.0%} of runs {what}", small=a.n < MIN_SEEDS
    )


def all_of(*verdicts: Verdict) -> Verdict:
    """Holds if every part holds, fails if any part fails, inconclusive otherwise (settled by the most seeds any
    inconclusive part needs)."""
    states = [v.verdict for v in verdicts]
    verdict = "fails" if "fails" in states else "holds" if all(s == "holds" for s in states) else "inconclusive"
    settles = [v.settled_by for v in verdicts if v.verdict == "inconclusive" and v.settle]
    return Verdict(
        verdict,
        " | ".join(v.numbers for v in verdicts),
        " and ".join(v.rule for v in verdicts),
        settled_by=_hardest(settles) if verdict == "inconclusive" else NOTHING_TO_SETTLE,
        small=verdict == "inconclusive" and any(v.small for v in verdicts if v.verdict == "inconclusive"),
    )


def ours(verdict: Verdict) -> Verdict:
    """The verdict with its rule marked as ours: a threshold the paper does not state (it states the claim in words)."""
    return replace(verdict, rule=f"ours: {verdict.rule}")
