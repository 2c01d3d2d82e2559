"""Blanc et al.'s decision rules on records written by hand (no training): each claim gated on what it measures,
the drift gate judged against the noise, Figs 2-3's premise that SGD finds a complex model, and thresholds that are
ours marked so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_claims import rows_of, write_run

from noisereg.figures.report import runs_table
from noisereg.papers import evaluate_claims
from noisereg.records import load_runs

SEEDS = range(3)


def blanc_run(
    root: Path, experiment: str, delta: float, seed: int, series: dict[str, np.ndarray], steps: np.ndarray, **config
) -> None:
    """One run's records: `series` metric -> one value per step."""
    rows = [
        {"step": int(step), **{metric: float(values[i]) for metric, values in series.items()}}
        for i, step in enumerate(steps)
    ]
    noise = {"name": "label_noise", "delta": delta, **config.pop("noise", {})}
    write_run(
        root / f"{experiment}-{delta}-{'-'.join(map(str, config.values()))}-{seed}",
        {"name": experiment, "seed": seed, "scale": {"name": "paper"}, "noise": noise, **config},
        rows,
    )


def verdicts(root: Path, experiment: str) -> dict[str, object]:
    """The report rows of one experiment, by the first words of their quote."""
    rows = rows_of(evaluate_claims([root], root / "out", draw=False, runs=load_runs(root)), experiment)
    return {" ".join(row.claim.quote.split()[:4]): row for row in rows}


# -- Fig. 1: the drift gate on the claim that reads the end state only ----------------------------------------------


def fig1_records(root: Path) -> Path:
    """Matrix sensing, 3 seeds a side: both training errors fall by 1e6, the label-noise test error to 0.003‖X*‖²,
    but ‖U‖²_F (and reg/blanc with it) is still falling linearly at the end."""
    steps = np.arange(0, 1_000_001, 10_000)
    for seed in SEEDS:
        fall = np.exp(-steps / 2e4) * (1 + 0.1 * seed) + 1e-9
        for delta in (0.0, 0.3162):
            norm = 3.0 - 1.5 * steps / steps[-1] if delta else np.full(len(steps), 5.0 + seed)
            test = 0.003 + 3 * fall if delta else np.full(len(steps), 10.0 + seed)
            blanc_run(
                root,
                "blanc_fig1_matrix_sensing",
                delta,
                seed,
                {
                    "train/mse": fall,
                    "matrix/test_error": test,
                    "matrix/relative_test_error": test,
                    "matrix/nuclear_norm": norm,
                    "matrix/planted_nuclear_norm": np.ones(len(steps)),
                    "reg/blanc": 42 * norm,
                },
                steps,
                model={"name": "factorized_matrix"},
            )
    return root


def test_a_claim_about_an_event_every_run_reached_is_not_blocked_by_the_drift_gate(tmp_path):
    """Fig. 1's training and test errors fell in every run: judged although ‖U‖²_F still drifts; the nuclear-norm
    claim, read at the end state, is not in regime, and the runs table names the claim that precondition gates."""
    rows = verdicts(fig1_records(tmp_path), "blanc_fig1_matrix_sensing")
    assert rows["For both training dynamics,"].verdict == "holds", rows["For both training dynamics,"].numbers
    assert rows["The test error without"].verdict == "holds", rows["The test error without"].numbers
    nuclear = rows["the squared Frobenius norm"]
    assert nuclear.verdict == "not in regime" and "late trend of matrix/nuclear_norm -" in nuclear.numbers
    table = "\n".join(runs_table(load_runs(tmp_path)))
    assert "**not met**: label noise: late trend of matrix/nuclear_norm" in table
    assert "(for Fig. 1 “the squared Frobenius norm of …”)" in table


# -- Theorem 3: the drift gate against the noise ----------------------------------------------------------------------


def thm3_records(root: Path, tanh_drifts: tuple[float, ...] = (0.0, 0.0, 0.0), residual_rise: float = 0.0) -> Path:
    """Theorem 3, 3 seeds a side: tanh's reg/blanc is flat but fluctuates by 4 % from one evaluation to the next
    (window means of 10 evaluations differ by ~2 % by chance); logistic's still falls, by 0.5 % per 10 % of the
    run, with hardly any noise. Both end at the stationary points the theorem names. `tanh_drifts`: a relative
    change of each tanh seed's reg/blanc over the run (its noise then an alternating ±0.5 %); `residual_rise`: how much the
    tanh stationarity residual rises over the run."""
    steps = np.arange(0, 400_001, 4_000)
    rng = np.random.default_rng(5)
    for seed in SEEDS:
        for activation in ("tanh", "sigmoid"):
            for delta in (0.0, 0.5):
                noise = rng.standard_normal(len(steps))
                if delta and activation == "tanh" and any(tanh_drifts):  # the same ±0.5 % wiggle in every run
                    reg = 1.0 + tanh_drifts[seed] * steps / steps[-1] + 0.005 * (-1.0) ** np.arange(len(steps))
                elif delta and activation == "tanh":
                    reg = 1.0 + 0.04 * noise
                elif delta:
                    reg = 1.0 - 0.05 * steps / steps[-1] + 1e-4 * noise
                else:
                    reg = np.full(len(steps), 2.0)
                spread = 0.01 + 0.001 * seed if delta else 1.0 + 0.1 * seed
                blanc_run(
                    root,
                    "blanc_thm3_single_point",
                    delta,
                    seed,
                    {
                        "reg/blanc": reg,
                        "units/output_cv": np.full(len(steps), spread),
                        "units/stationarity_residual": 0.01
                        + 0.001 * seed
                        + (residual_rise * steps / steps[-1] if activation == "tanh" else 0.0)
                        + 1e-4 * noise,
                        "units/clusters": np.ones(len(steps)),
                    },
                    steps,
                    model={"name": "smooth_two_layer", "activation": activation},
                )
    return root


def test_the_drift_gate_tells_noise_from_drift_and_gates_each_activation_apart(tmp_path):
    """tanh's flat, noisy regulariser has finished its drift (a 1 % gate on window means called it moving); the
    logistic one's slow, clean fall has not (the 1 % gate let it through), and blocks the logistic claim alone."""
    rows = verdicts(thm3_records(tmp_path), "blanc_thm3_single_point")
    tanh, logistic = rows["(tanh) for each hidden"], rows["(logistic) there exists α₁,"]
    assert tanh.verdict == "holds", tanh.numbers
    assert logistic.verdict == "not in regime" and "model.activation=sigmoid" in logistic.numbers
    assert "tanh" not in logistic.numbers and "late trend of reg/blanc -" in logistic.numbers
    assert "ours: < 2, no run drifting beyond its noise, either way" in logistic.numbers


def test_runs_drifting_opposite_ways_do_not_cancel_in_the_drift_gate(tmp_path):
    """One tanh seed's regulariser still rises by 25 % over the run, one falls by 17 % (4 % either way across the
    late window, relative to its level), one is flat: their mean trend is flat within its error (the rule of the
    last session passed it), but two runs have not settled."""
    from noisereg.figures.selection import late_trend
    from noisereg.papers.blanc.science import noisy_phase
    from noisereg.records import load_runs

    root = thm3_records(tmp_path, tanh_drifts=(0.25, -0.1721, 0.0))
    runs = load_runs(root)
    tanh = runs[(runs["model.activation"] == "tanh") & (runs["noise.delta"] > 0)]
    trend = late_trend(noisy_phase(tanh), "reg/blanc", 0.2)
    assert trend.in_errors < 2 < trend.rms_in_errors, (trend.in_errors, trend.per_run)
    row = verdicts(root, "blanc_thm3_single_point")["(tanh) for each hidden"]
    assert row.verdict == "not in regime" and "late trend of reg/blanc" in row.numbers, row.numbers


def test_theorem_3_is_gated_on_its_own_statistic_not_rising(tmp_path):
    """tanh's regulariser is flat, but the stationarity residual the claim reads against 0.05 still rises (0.01 to
    0.04 over the run): under the gate on reg/blanc alone the claim held; a longer run could cross 0.05."""
    rows = verdicts(thm3_records(tmp_path, residual_rise=0.03), "blanc_thm3_single_point")
    tanh = rows["(tanh) for each hidden"]
    assert tanh.verdict == "not in regime", tanh.numbers
    assert "late trend of units/stationarity_residual" in tanh.numbers and "not rising" in tanh.numbers
    steady = verdicts(thm3_records(tmp_path / "steady"), "blanc_thm3_single_point")["(tanh) for each hidden"]
    assert steady.verdict == "holds", steady.numbers


# -- Figs 2-3: SGD's complex model, and the drift of the claim's own statistic ----------------------------------------


def relu_records(root: Path, sgd_excess: float, noisy_length: np.ndarray) -> Path:
    """Figs 2 and 3 alike, 3 seeds a side: SGD's curve `sgd_excess` × the interpolant's (5.03); label noise's
    curve length `noisy_length` over its noisy phase (then measured at rest), its reg/blanc and max deviation
    flat under 0.2 % noise."""
    steps = np.arange(0, 1_020_001, 10_000)
    rng = np.random.default_rng(7)
    for experiment in ("blanc_fig2_relu_interpolation", "blanc_fig3_curve_length"):
        for seed in SEEDS:
            flat = lambda level: level * (1 + 0.002 * rng.standard_normal(len(steps)))  # noqa: E731
            length = np.concatenate([noisy_length, np.full(len(steps) - len(noisy_length), noisy_length[-1])])
            runs = {
                0.0: {
                    "function/curve_length": np.full(len(steps), 5.03 * sgd_excess + 0.01 * (seed - 1)),
                    "function/max_deviation": np.full(len(steps), 0.3 + 0.01 * seed),
                    "reg/blanc": np.full(len(steps), 60.0),
                },
                0.15: {
                    "function/curve_length": length + 0.001 * seed,
                    "function/max_deviation": flat(0.01),
                    "reg/blanc": flat(2.0),
                },
            }
            for delta, series in runs.items():
                fitted = 1e-8 + np.exp(-steps / 1e4) * (1 + 0.1 * seed)
                blanc_run(
                    root,
                    experiment,
                    delta,
                    seed,
                    {**series, "train/mse": fitted, "function/interpolant_curve_length": np.full(len(steps), 5.03)},
                    steps,
                    noise={"stop_step": 1_000_000} if delta else {},
                )
    return root


NOISY_STEPS = 101  # evaluations up to noise.stop_step = 1e6


def test_figs_2_and_3_without_a_complex_sgd_model_are_not_in_regime(tmp_path):
    """SGD's curves 1.013× the interpolant's (ours today; the paper's ≈ 1.21×): nothing for label noise to simplify,
    so the three comparisons are not in regime, with the ratio and the remedy; the fit and the time scale are
    judged."""
    root = relu_records(tmp_path, 1.013, np.full(NOISY_STEPS, 5.05))
    rows = {**verdicts(root, "blanc_fig2_relu_interpolation"), **verdicts(root, "blanc_fig3_curve_length")}
    for quote in ("for any three co-linear", "training without label noise", "SGD with independent label"):
        assert rows[quote].verdict == "not in regime", (quote, rows[quote].verdict)
        assert "SGD: curve length / the piecewise-linear interpolant's" in rows[quote].numbers
        assert "1.013 (needs ≥ 1.1)" in rows[quote].numbers and "overshoots the interpolant" in rows[quote].settle
    assert rows["In all cases, the"].verdict == "holds" and rows["training first finds a"].verdict != "not in regime"


def test_the_curve_length_claim_is_gated_on_the_length_and_the_interpolant_claims_marked_ours(tmp_path):
    """SGD's curves 1.2× the interpolant's and label noise's reg/blanc flat, but its length still falling over the
    noisy phase: the function has not stopped moving, so the shorter-curve claim and Fig. 2's claims about the
    function at rest are not in regime on that length; once it is flat, Fig. 2's claims are judged, their tolerance
    and spread ratio marked as ours."""
    root = relu_records(tmp_path / "falling", 1.2, np.linspace(5.6, 5.3, NOISY_STEPS))
    shorter = verdicts(root, "blanc_fig3_curve_length")["SGD with independent label"]
    assert shorter.verdict == "not in regime" and "late trend of function/curve_length -" in shorter.numbers
    assert "SGD: curve length" not in shorter.numbers, "the premise is met"
    assert verdicts(root, "blanc_fig2_relu_interpolation")["for any three co-linear"].verdict == "not in regime"
    fig2 = verdicts(relu_records(tmp_path / "flat", 1.2, np.full(NOISY_STEPS, 5.3)), "blanc_fig2_relu_interpolation")
    linear, spread = fig2["for any three co-linear"], fig2["training without label noise"]
    assert linear.verdict == "holds" and linear.rule.startswith("ours: at least 80% of runs within 0.02")
    assert spread.verdict != "not in regime" and "ours: spread with label noise < ¼" in spread.rule


def test_a_flat_noisy_length_passes_the_gate(tmp_path):
    """The noisy iterate's length swings (5.02-5.23 in our runs) without drifting: in regime at 4 % noise."""
    rng = np.random.default_rng(11)
    root = relu_records(tmp_path, 1.2, 5.1 * (1 + 0.04 * rng.standard_normal(NOISY_STEPS)))
    shorter = verdicts(root, "blanc_fig3_curve_length")["SGD with independent label"]
    assert shorter.verdict != "not in regime", shorter.numbers


def test_a_drift_hidden_in_noise_does_not_pass_for_a_settled_one(tmp_path):
    """An 8 % fall across the window under 15 % noise stands out of its noise by less than 2 standard errors, which
    alone let it through: the precision it was measured with (2 SE ≈ 10 % of the level) must also be under 5 %."""
    rng = np.random.default_rng(3)
    falling = np.linspace(5.6, 5.15, NOISY_STEPS) * (1 + 0.15 * rng.standard_normal(NOISY_STEPS))
    shorter = verdicts(relu_records(tmp_path, 1.2, falling), "blanc_fig3_curve_length")["SGD with independent label"]
    assert shorter.verdict == "not in regime", shorter.numbers
    assert "2 standard errors of that trend" in shorter.numbers, shorter.numbers


def test_the_time_scale_claim_needs_a_loss_floor_under_the_fit_threshold():
    """Under label noise the clean loss hovers at a floor ∝ ηδ²; at δ = 0.5 it sits near 4e-3, so "steps until the
    loss < 1e-3" dates the floor, not the fit, and the claim's 2.8× (needs > 10) would be a `fails` of our reading:
    the gate puts it `not in regime` instead, and lets a floor of 1e-8 through."""
    import pandas as pd

    from noisereg.figures.claims import CLAIMS
    from noisereg.papers.blanc.claims import regularizer_falls_on_a_longer_time_scale
    from noisereg.papers.blanc.gates import the_fit_is_seen_above_the_noise_floor

    steps = np.arange(0, 1_000_001, 10_000)
    for floor, met in ((3.6e-3, False), (1e-8, True)):
        condition = pd.DataFrame(
            {
                "run": "a",
                "step": steps,
                "train/mse": floor + np.exp(-steps / 1e4),
                "noise.delta": 0.5,
                "noise.stop_step": 1e6,
                "noise.anneal_steps": 1e5,
            }
        )
        [premise] = the_fit_is_seen_above_the_noise_floor(condition)
        assert premise.met is met and premise.measured == pytest.approx(floor, rel=1e-3), premise
    claim = next(c for c in CLAIMS if c.evaluate is regularizer_falls_on_a_longer_time_scale)
    assert the_fit_is_seen_above_the_noise_floor in claim.gates


def test_the_drift_is_judged_at_full_noise_not_while_it_is_annealed_away():
    """δ annealed to 0 over the last 10 % takes the jitter out of the iterate on purpose (its max deviation fell
    130 % across the window that held the annealing): the trend is read before it begins."""
    import pandas as pd

    from noisereg.papers.blanc.science import noisy_phase

    steps = np.arange(0, 1_000_001, 10_000)
    condition = pd.DataFrame({"step": steps, "noise.stop_step": 9e5, "noise.anneal_steps": 1e5})
    assert noisy_phase(condition)["step"].max() == 800_000
    assert noisy_phase(condition.assign(**{"noise.anneal_steps": 0}))["step"].max() == 900_000
