"""The decision rules and regime gates of Orvieto et al. and Levi et al., on run records written by hand (no
training): each test builds the case a rule used to get wrong (issue 29) and checks the rule that replaced it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose
from test_claims import write_run

from noisereg.figures.claims import condition_preconditions
from noisereg.papers import evaluate_claims
from noisereg.papers.levi import claims as levi
from noisereg.papers.levi.claims import (
    mlp_four_phases_in_order,
    toy_decay_time_falls_with_sigma,
    toy_decay_time_matches_appendix_d,
    toy_four_phases_in_order,
)
from noisereg.papers.levi.science import CATAPULT_WINDOWS, run_phase
from noisereg.papers.orvieto.claims import (
    layerwise_boosts_the_resnet_and_all_parameter_noise_breaks,
    layerwise_is_best_in_the_narrow_deep_mlp,
    layerwise_is_best_in_the_wide_deep_mlp,
    layerwise_noise_raises_test_accuracy_of_the_wide_mlp,
)
from noisereg.records import load_runs

NIW = "noise/nin_weight_norm"


def verdicts(folder: Path, experiment: str) -> dict[str, object]:
    """The report's rows of one experiment, by the name of the claim's function."""
    rows = evaluate_claims([folder], folder / "out", draw=False, runs=load_runs(folder))
    return {row.claim.evaluate.__name__: row for row in rows if row.claim.experiment == experiment}


# -- Levi et al.: records by hand -----------------------------------------------------------------------------------


def nin_config(
    experiment: str,
    seed: int,
    strength: float,
    resample: str = "epoch",
    widths=(1024, 1024, 1024),
    n_train: int | None = None,
    lr: float = 0.05,
) -> dict:
    return {
        "name": experiment,
        "seed": seed,
        "scale": {"name": "paper"},
        "noise": {"name": "nin", "strength": strength, "sigma": math.sqrt(strength * 784 / lr), "resample": resample},
        "model": {"name": "mlp", "widths": list(widths)},
        "dataset": {"name": "fmnist_full", "train_fraction": 0.6, "n_train": n_train, "seed": seed},
        "trainer": {"optimizer": {"lr": lr}},
    }


def epoch_rows(epochs: int, niw: np.ndarray, test_acc: float, every: int = 1, rise_at: int | None = None) -> list[dict]:
    """One evaluation every `every` epochs (100 steps an epoch): a loss that falls (at epoch `rise_at`, 1.5× its
    start), training accuracy to ~1, the test accuracy settling at `test_acc`, ‖W_NI‖ as given per epoch."""
    rows = []
    for epoch in range(0, epochs + 1, every):
        loss = 2 * math.exp(-epoch / 5) + 0.05 if epoch != rise_at else 1.5 * 2.05
        rows.append(
            {
                "step": 100 * epoch,
                "epoch": float(epoch),
                "train/loss": loss,
                "train/acc": 1 - 0.9 * math.exp(-epoch / 5),
                "test/loss": loss + 0.3,
                "test/acc": test_acc * (1 - math.exp(-epoch - 1)),
                NIW: float(niw[epoch]),
                "tau/noise_theory": 10.0,
                "tau/loss_theory": 1.0,
            }
        )
    return rows


def fig1_records(root: Path, n_train: int | None = None) -> Path:
    """levi_fig1_decay_times, 3 seeds × both NIN modes × c = 0 (the baseline: ‖W_NI‖ never moves) and two decay-phase
    strengths (‖W_NI‖ falls with τ = 6 epochs in both modes); every test accuracy within 0.2 points of the
    baseline."""
    epochs = np.arange(31)
    for seed in range(3):
        for resample in ("epoch", "fixed"):
            for strength in (0.0, 0.01, 0.1):
                niw = 0.5 * (np.exp(-epochs / 6) if strength else np.ones(len(epochs)))
                accuracy = 0.85 + 0.003 * seed + (0.002 if strength else 0.0)
                write_run(
                    root / f"{resample}-{strength}-{seed}",
                    nin_config("levi_fig1_decay_times", seed, strength, resample, n_train=n_train),
                    epoch_rows(30, niw, accuracy),
                )
    return root


def test_fig1_test_accuracy_is_judged_against_the_baseline_of_its_own_nin_mode(tmp_path):
    """Both modes ran σ = 0: the two modes' baselines are two conditions, never one Evidence. (Pooled, the rule
    raised inside and the claim could only ever read `inconclusive`.)"""
    # (levi.test_accuracy_…: a claim, not a test, whatever its name says to pytest)
    verdict = levi.test_accuracy_matches_the_baseline(load_runs(fig1_records(tmp_path)))
    assert verdict.verdict == "holds", verdict.numbers
    assert "re-initialized NIN without noise (c = 0)" in verdict.numbers
    assert "fixed NIN without noise (c = 0)" in verdict.numbers
    assert verdict.rule.startswith("ours: |test accuracy − baseline (1 point)| < 0.01")


def test_the_fixed_nin_claim_alone_is_judged_on_the_papers_42k_training_images(tmp_path):
    """A fixed ε per image is memorised (or not) among so many images: at n_train = 8400 the fixed-NIN claim is
    not in regime, the other claims of Fig. 1 are judged; at n_train = null (42,000 images) it is judged too."""
    small = verdicts(fig1_records(tmp_path / "small", n_train=8400), "levi_fig1_decay_times")
    fixed = small["fixed_and_reinitialized_agree"]
    assert fixed.verdict == "not in regime"
    assert "training images (dataset.n_train, fewest over seeds) 8400 (needs ≥ 42000)" in fixed.numbers
    assert "dataset.n_train=null" in fixed.settle
    others = [row for quote, row in small.items() if quote != "fixed_and_reinitialized_agree"]
    assert len(others) == 3 and all(row.verdict != "not in regime" for row in others), [r.numbers for r in others]
    full = verdicts(fig1_records(tmp_path / "full", n_train=None), "levi_fig1_decay_times")
    judged = full["fixed_and_reinitialized_agree"]
    assert judged.verdict == "holds", judged.numbers
    assert "ours: |log ratio (within ×2)| < 0.693" in judged.rule


def test_the_fig1_phase_claim_says_its_phase_thresholds_are_ours(tmp_path):
    verdict = mlp_four_phases_in_order(load_runs(fig1_records(tmp_path)))
    assert "ours: phases by a rise > 1.1× within the first 3 epochs (catapult)" in verdict.rule
    assert "< 0.5× its start (decay), < 20% train accuracy (divergent)" in verdict.rule


def mlp_run(epochs: int, rise_at: int | None, every: int = 1) -> pd.DataFrame:
    """A levi_fig3_mlp_ce run whose ‖W_NI‖ halves and more (decay), its loss at 1.5× its start at epoch `rise_at`."""
    niw = 0.5 * np.exp(-np.arange(epochs + 1) / 6)
    table = pd.DataFrame(epoch_rows(epochs, niw, 0.85, every, rise_at))
    return table.assign(status="completed", experiment="levi_fig3_mlp_ce")


def test_the_catapult_window_is_the_first_3_epochs_whatever_the_runs_length():
    """A rise at epoch 2 is a catapult in a 15-epoch run as in a 100-epoch one; a rise at epoch 5 is not, however
    long the run (10 % of the run made the first a decay at 15 epochs and the second a catapult at 100)."""
    assert run_phase(mlp_run(15, rise_at=2)) == "catapult"
    assert run_phase(mlp_run(100, rise_at=2)) == "catapult"
    assert run_phase(mlp_run(100, rise_at=5)) == "decay"
    assert run_phase(mlp_run(15, rise_at=None)) == "decay"


def test_the_window_gate_counts_evaluations_in_fixed_units():
    """One evaluation an epoch puts 3 after the start in the first 3 epochs, at 15 epochs as at 200; one every 2
    epochs puts 1 there (10 % of the run counted 1 evaluation at 15 epochs, 20 at 200)."""

    def window_precondition(table: pd.DataFrame):
        (found,) = [
            p
            for p in condition_preconditions("levi_fig3_mlp_ce", table.assign(run="a"))
            if "evaluations after the start" in p.what
        ]
        return found

    for epochs in (15, 200):
        met = window_precondition(mlp_run(epochs, rise_at=None))
        assert met.met and met.measured == 3
        assert "ours: evaluations after the start within the first 3 epochs" in str(met)
    sparse = window_precondition(mlp_run(30, rise_at=None, every=2))
    assert not sparse.met and sparse.measured == 1 and "trainer.eval_every" in sparse.remedy


def test_the_linear_toys_window_is_10_percent_of_its_configured_length():
    """So its verdicts stay those judged with 10 % of the run: 500 of its 5,000 steps."""
    cfg = compose("+experiment=levi_fig2_linear_toy")
    window = CATAPULT_WINDOWS["levi_fig2_linear_toy"]
    assert (window.unit, window.length) == ("step", 0.1 * cfg.trainer.steps)


@pytest.mark.parametrize("width, met", [(256, False), (1024, True), (2048, False)])
def test_the_mse_phases_are_judged_at_the_papers_width_alone(tmp_path, width, met):
    """Table 1's MSE strengths are σ² = c · d_in / (N_w η): their phases are where they are at N_w = 1024."""
    write_run(
        tmp_path / "run",
        nin_config("levi_fig2_mlp_mse", 0, 30.0, widths=[width], lr=0.01),
        epoch_rows(30, 0.5 * np.exp(-np.arange(31) / 6), 0.85),
    )
    preconditions = condition_preconditions("levi_fig2_mlp_mse", load_runs(tmp_path))
    widths = [p for p in preconditions if "hidden width N_w" in p.what]
    assert widths and all(p.measured == width for p in widths)
    assert all(p.met for p in widths) == met and all(p.remedy == "the paper's width N_w = 1024" for p in widths)
    assert all(p.met for p in preconditions) == met  # 30 epochs at one evaluation an epoch: the window is seen


def toy_records(root: Path) -> Path:
    """levi_fig2_linear_toy, 3 seeds × σ = 1, 1.5, 2, 3 in the decay phase: ‖W_NI‖ falls as e^(−t/τ) with τ = 100/σ²
    steps, App. D's prediction (in η·steps) exactly that."""
    steps = np.arange(0, 1001, 5)
    for seed in range(3):
        for sigma in (1.0, 1.5, 2.0, 3.0):
            tau = 100 / sigma**2
            config = {
                "name": "levi_fig2_linear_toy",
                "seed": seed,
                "scale": {"name": "paper"},
                "noise": {"name": "nin", "sigma": sigma, "resample": "epoch"},
                "model": {"name": "linear_toy", "widths": [1]},
                "trainer": {"optimizer": {"lr": 0.01}},
            }
            rows = [
                {
                    "step": int(step),
                    "epoch": step / 100,
                    "train/loss": 0.5 * math.exp(-step / 50) + 0.01,
                    "test/loss": 0.5 * math.exp(-step / 50) + 0.02,
                    NIW: 0.1 * math.exp(-step / tau),
                    "tau/noise_theory": tau * 0.01,
                    "tau/loss_theory": 0.5,
                }
                for step in steps
            ]
            write_run(root / f"{sigma}-{seed}", config, rows)
    return root


def test_the_linear_toys_rules_say_which_thresholds_are_ours(tmp_path):
    runs = load_runs(toy_records(tmp_path))
    slope = toy_decay_time_falls_with_sigma(runs)
    assert slope.verdict == "holds" and "ours: |slope − (−1)| < 0.25" in slope.rule
    appendix = toy_decay_time_matches_appendix_d(runs)
    assert appendix.verdict == "holds" and "ours: ±10 %" in appendix.rule
    phases = toy_four_phases_in_order(runs)
    assert "ours: phases by a rise > 1.1× within the first 500 steps" in phases.rule


# -- Orvieto et al. Fig. 4: one claim per net, each judged at its own width ----------------------------------------


def fig4_records(root: Path, nets: dict[int, float], scale: str = "paper", width_factor: float | None = None) -> Path:
    """fig4_deep_mlp, 3 seeds × 3 modes at each width in `nets` (width → GD's final training accuracy); layer-wise
    has the best test accuracy and the lowest Hessian trace."""
    for width, gd_train_acc in nets.items():
        for seed in range(3):
            for mode, train, test, trace in (
                ("gd", gd_train_acc, 0.78, 800.0),
                ("gd_noise", 0.99, 0.79, 500.0),
                ("layerwise", 0.99, 0.81 + 0.001 * seed, 250.0),
            ):
                config = {
                    "name": "fig4_deep_mlp",
                    "seed": seed,
                    "scale": {"name": scale, "width_factor": width_factor},
                    "noise": {"name": mode, "sigma": 0.05},
                    "model": {"name": "mlp", "widths": [width] * 5},
                    "trainer": {"steps": 1000},
                }
                rows = [
                    {
                        "step": step,
                        "train/acc": train * step / 1000,
                        "test/acc": test * step / 1000,
                        "train/loss": 2.3 - 2 * step / 1000,
                        "hessian/trace": trace,
                    }
                    for step in (0, 500, 1000)
                ]
                write_run(root / f"{width}-{mode}-{seed}", config, rows)
    return root


NARROW, WIDE = "layerwise_is_best_in_the_narrow_deep_mlp", "layerwise_is_best_in_the_wide_deep_mlp"


def test_fig4s_narrow_net_is_judged_when_its_wide_net_is_out_of_regime(tmp_path):
    """One regime part per width: the wide net's GD not fitting leaves the narrow claim judged (one regime for both
    blocked it), and the wide claim `not in regime`."""
    rows = verdicts(fig4_records(tmp_path, {1000: 0.99, 5000: 0.5}), "fig4_deep_mlp")
    assert rows[NARROW].verdict == "holds", rows[NARROW].numbers
    assert "5000" not in rows[NARROW].numbers, "the narrow claim's row names the wide net"
    assert rows[WIDE].verdict == "not in regime"
    assert (
        "GD final train/acc (mean over seeds) 0.5 (needs ≥ 0.95) (ours: GD fits the subset, ≥ 95 % train "
        "accuracy)" in rows[WIDE].numbers
    )


def test_a_fig4_claim_out_of_regime_names_its_own_net_alone(tmp_path):
    """At scale=cpu both nets miss the paper's widths: each claim's row lists its own net's unmet preconditions,
    never the other net's (the narrow claim's row used to list the wide net's width too)."""
    rows = verdicts(fig4_records(tmp_path, {100: 0.5, 500: 0.5}, scale="cpu", width_factor=0.1), "fig4_deep_mlp")
    narrow, wide = rows[NARROW], rows[WIDE]
    assert narrow.verdict == wide.verdict == "not in regime"
    assert "narrow net" in narrow.numbers and "wide net" not in narrow.numbers, narrow.numbers
    assert "wide net" in wide.numbers and "narrow net" not in wide.numbers, wide.numbers
    # A narrow-only sweep whose net misses its regime: the wide claim says its net has no runs, naming no other.
    rows = verdicts(fig4_records(tmp_path / "narrow", {100: 0.5}, scale="cpu", width_factor=0.1), "fig4_deep_mlp")
    assert rows[WIDE].verdict == "not in regime" and "narrow net" not in rows[WIDE].numbers, rows[WIDE].numbers
    assert "no runs in regime at hidden width ≥ 5000 (widths here: 5×100)" in rows[WIDE].numbers


def test_fig4s_claims_need_the_papers_widths(tmp_path):
    """The wide claim is never judged below 5000 (here 2000: a narrow net, its claim judged), the narrow one never
    below 1000; at scale=cpu (widths / 10) the wide net's gate says it needs 5000."""
    rows = verdicts(fig4_records(tmp_path / "two", {1000: 0.99, 2000: 0.99}), "fig4_deep_mlp")
    assert rows[WIDE].verdict == "not in regime" and "no runs in regime at hidden width ≥ 5000" in rows[WIDE].numbers
    assert rows[NARROW].verdict == "holds"
    cpu = fig4_records(tmp_path / "cpu", {100: 0.99, 500: 0.99}, scale="cpu", width_factor=0.1)
    rows = verdicts(cpu, "fig4_deep_mlp")
    assert {row.verdict for row in rows.values()} == {"not in regime"}
    runs = load_runs(cpu)
    narrow = "hidden width of the narrow net (ours: at least the paper's 1000) 100 (needs ≥ 1000)"
    for width, expected in ((500, "hidden width of the wide net 500 (needs ≥ 5000)"), (100, narrow)):
        gd = runs[(runs["noise.name"] == "gd") & (runs["model.widths"] == (width,) * 5)]
        assert expected in [str(p) for p in condition_preconditions("fig4_deep_mlp", gd)]


def test_each_fig4_claim_is_judged_at_the_scale_its_net_ran_at(tmp_path):
    """The narrow net at its paper width, the wide one at scale=cpu (a tenth of 5000): one row per claim, each at
    the scale of its own net (the report gave each claim a row at both scales, one of them about a net the other
    scale did not run)."""
    fig4_records(tmp_path / "narrow", {1000: 0.99})
    fig4_records(tmp_path / "wide", {500: 0.5}, scale="cpu", width_factor=0.1)
    rows = evaluate_claims([tmp_path], tmp_path / "out", draw=False, runs=load_runs(tmp_path))
    shown = sorted(
        (r.claim.evaluate.__name__, r.scale, r.verdict) for r in rows if r.claim.experiment == "fig4_deep_mlp"
    )
    assert shown == [(NARROW, "paper", "holds"), (WIDE, "cpu", "not in regime")], shown


@pytest.mark.parametrize("nets", [{1000: 0.99}, {5000: 0.99}, {}])
def test_fig4s_claims_survive_a_partial_sweep(tmp_path, nets):
    """Only the narrow net, only the wide one, or nothing: each claim returns a verdict, `not in regime` where its
    net is missing (the wide rule indexed a missing width; the narrow one judged a wide-only sweep as narrow)."""
    runs = load_runs(fig4_records(tmp_path, nets)) if nets else load_runs(tmp_path)
    narrow, wide = layerwise_is_best_in_the_narrow_deep_mlp(runs), layerwise_is_best_in_the_wide_deep_mlp(runs)
    assert narrow.verdict == ("holds" if 1000 in nets else "not in regime"), narrow.numbers
    assert wide.verdict == ("holds" if 5000 in nets else "not in regime"), wide.numbers


# -- Orvieto et al. Figs 3 and 6: σ fixed in advance, never the best on the tested accuracy -------------------------


def sigma_records(
    root: Path,
    experiment: str,
    accuracies: dict[tuple[str, float], float],
    diverged: set[tuple[str, float]] = frozenset(),
) -> Path:
    """3 seeds of each (mode, σ) with its final test accuracy (± 0.002 by seed); (mode, σ) in `diverged` diverge."""
    for (mode, sigma), accuracy in accuracies.items():
        for seed in range(3):
            config = {
                "name": experiment,
                "seed": seed,
                "scale": {"name": "paper"},
                "noise": {"name": mode, "sigma": sigma},
                "model": {"name": "mlp", "widths": [5000, 5000]},
            }
            value = accuracy + 0.002 * (seed - 1) + 0.0005 * seed**2
            rows = [{"step": 0, "train/acc": 0.1, "test/acc": 0.1}, {"step": 100, "train/acc": 1.0, "test/acc": value}]
            status = "completed"
            if (mode, sigma) in diverged:
                rows, status = [rows[0], {"step": 50, "train/loss": "nan"}], "diverged"
            write_run(root / f"{mode}-{sigma}-{seed}", config, rows, status)
    return root


def test_fig3_is_judged_at_sigma_0_05_not_at_the_best_sigma(tmp_path):
    """Layer-wise noise beats GD at σ = 0.2 only: the best σ on the tested accuracy would read `holds`; at the σ
    fixed in advance (App. F's 0.05) it fails."""
    accuracies = {
        ("layerwise", 0.0): 0.80,
        ("layerwise", 0.05): 0.79,
        ("layerwise", 0.2): 0.83,
        ("gd_noise", 0.0): 0.80,
        ("gd_noise", 0.05): 0.78,
        ("gd_noise", 0.2): 0.75,
    }
    verdict = layerwise_noise_raises_test_accuracy_of_the_wide_mlp(
        load_runs(sigma_records(tmp_path, "fig3_fmnist_sigma", accuracies))
    )
    assert verdict.verdict == "fails", verdict.numbers
    assert verdict.rule.startswith(
        'at σ = 0.05, fixed in advance (App. F: "a value around 0.05 works in all settings"), not the best σ'
    )
    assert "layer-wise σ=0.05" in verdict.numbers and "σ=0.2" not in verdict.numbers


def test_fig6_is_judged_at_its_high_sigma_fixed_in_advance(tmp_path):
    """Fig. 6's caption: layer-wise noise boosts the ResNet "with a high σ": judged at σ = 0.1 (ours, fixed before
    any run), not at the best σ (0.3 here) nor at Fig. 3's 0.05 (whose nearest on this grid, 0.03, is a low σ)."""
    accuracies = {(mode, sigma): 0.94 for mode in ("layerwise", "gd_noise") for sigma in (0.0, 0.01)}
    accuracies.update(
        {
            ("layerwise", 0.03): 0.96,
            ("layerwise", 0.1): 0.93,
            ("layerwise", 0.3): 0.97,
            ("gd_noise", 0.03): 0.94,
            ("gd_noise", 0.1): 0.92,
            ("gd_noise", 0.3): 0.5,
        }
    )
    runs = load_runs(sigma_records(tmp_path, "fig6_resnet", accuracies, diverged={("gd_noise", 0.3)}))
    verdict = layerwise_boosts_the_resnet_and_all_parameter_noise_breaks(runs)
    assert verdict.verdict == "fails", verdict.numbers
    assert verdict.rule.startswith('at σ = 0.1, fixed in advance (ours: the caption\'s "high σ"')
    assert "layer-wise σ=0.1" in verdict.numbers and "3 of 3 diverged" in verdict.numbers


def test_a_preset_sigma_the_grid_lacks_is_not_judged_at_a_far_one(tmp_path):
    """A grid of {0.2, 0.5} has nothing within ×2 of 0.05: no verdict at 0.2 passed off as "fixed in advance"."""
    accuracies = {(mode, sigma): 0.8 + sigma / 10 for mode in ("layerwise", "gd_noise") for sigma in (0.0, 0.2, 0.5)}
    verdict = layerwise_noise_raises_test_accuracy_of_the_wide_mlp(
        load_runs(sigma_records(tmp_path, "fig3_fmnist_sigma", accuracies))
    )
    assert verdict.verdict == "inconclusive" and "within ×2 of 0.05" in verdict.numbers, verdict.numbers


def test_fig1_verdicts_at_a_reduced_width_say_so(tmp_path):
    """Fig. 1 judged on 256-wide runs (results/ on a CPU) names its width before its numbers; at 1024, nothing."""
    narrow = tmp_path / "narrow"
    for seed in range(3):
        for resample in ("epoch", "fixed"):
            for strength in (0.0, 0.01, 0.1):
                niw = 0.5 * (np.exp(-np.arange(31) / 6) if strength else np.ones(31))
                write_run(
                    narrow / f"{resample}-{strength}-{seed}",
                    nin_config("levi_fig1_decay_times", seed, strength, resample, widths=(256, 256, 256)),
                    epoch_rows(30, niw, 0.85),
                )
    for verdict in (
        levi.test_accuracy_matches_the_baseline(load_runs(narrow)),
        levi.mlp_decay_time_falls_with_sigma(load_runs(narrow)),
    ):
        assert verdict.numbers.startswith("reduced width N_w = 256 (the paper's 1024): "), verdict.numbers
    paper = levi.test_accuracy_matches_the_baseline(load_runs(fig1_records(tmp_path / "paper")))
    assert "reduced width" not in paper.numbers
