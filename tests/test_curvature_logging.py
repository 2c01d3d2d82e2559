"""`curvature.every`: the Hessian trace and each paper's regularizer, logged into the run records."""

from __future__ import annotations

import math

import pytest
from conftest import compose

from noisereg.app import run
from noisereg.tracking import read_metrics

QUIET = ("logger.mode=disabled", "trainer.eval_every=10")


def curvature_rows(path):
    return [row for row in read_metrics(path) if "hessian/trace" in row]


def test_fig4_smoke_logs_hessian_trace_and_orvieto_regularizer(tmp_path, fmnist_available):
    summary = run(compose("+experiment=fig4_deep_mlp", "scale=smoke", "noise=gd_noise", *QUIET), tmp_path)
    assert summary["status"] == "completed"
    rows = curvature_rows(tmp_path)
    assert [row["step"] for row in rows] == [0, summary["steps"]]
    groups = 12  # six Linear layers, weight and bias
    for row in rows:
        assert row["hessian/trace_sem"] == 0.0, "ReLU network: exact trace"
        assert row["hessian/trace"] == pytest.approx(row["reg/ggn_trace"])
        per_group = [v for k, v in row.items() if k.startswith("reg/ggn_trace/")]
        assert len(per_group) == groups and sum(per_group) == pytest.approx(row["reg/ggn_trace"], rel=1e-6)
        assert row["reg/orvieto"] == pytest.approx(0.05**2 / groups / 2 * row["reg/ggn_trace"], rel=1e-9)
        assert row["loss/regularized"] > row["reg/orvieto"]


@pytest.mark.parametrize("noise", ["gd_noise", "layerwise"])
def test_linear_network_regularizer_matches_closed_form_and_monte_carlo(tmp_path, noise):
    cfg = compose(
        f"noise={noise}",
        "noise.sigma=0.2",
        "trainer.steps=100",
        "curvature.every=50",
        "curvature.monte_carlo_repeats=400",
        "model.widths=[30]",
        *QUIET,
    )
    run(cfg, tmp_path)
    for row in curvature_rows(tmp_path):
        # Measured Gauss–Newton regularizer against Orvieto's closed form (Sec. 3.1 / 3.2), in float32.
        assert row["reg/orvieto"] == pytest.approx(row["theory/orvieto_layerwise"], rel=1e-4)
        assert row["reg/orvieto"] == pytest.approx(row["theory/orvieto_all_second_order"], rel=1e-4)
        gap = abs(row["theory/R_sigma_mc"] - row["theory/R_sigma_closed_form"])
        assert gap < 4 * row["theory/R_sigma_mc_sem"], row
        if noise == "layerwise":
            assert row["theory/R_sigma_closed_form"] == pytest.approx(row["loss/regularized"], rel=1e-4)


def test_all_parameter_variance_grows_with_width_and_layerwise_does_not(tmp_path):
    values = {}
    for width in (10, 1000):
        for noise in ("gd_noise", "layerwise"):
            folder = tmp_path / f"{noise}{width}"
            run(
                compose(
                    f"noise={noise}",
                    "noise.sigma=0.3",
                    "trainer.steps=0",
                    "curvature.every=1",
                    "curvature.monte_carlo_repeats=200",
                    f"model.widths=[{width}]",
                    *QUIET,
                ),
                folder,
            )
            row = curvature_rows(folder)[0]
            values[noise, width] = row["theory/R_sigma_mc"] - row["train/loss"]
    assert values["gd_noise", 1000] > 5 * values["gd_noise", 10]
    assert values["layerwise", 1000] < 3 * values["layerwise", 10]


def test_curvature_does_not_change_the_training_trajectory(tmp_path):
    common = [
        "noise=layerwise",
        "trainer.steps=40",
        "trainer.batch_size=10",
        "model=mlp",
        "model.widths=[16,16]",
        *QUIET,
    ]
    run(compose(*common), tmp_path / "off")
    run(compose(*common, "curvature.every=10", "curvature.monte_carlo_repeats=5"), tmp_path / "on")
    rows_off, rows_on = read_metrics(tmp_path / "off"), read_metrics(tmp_path / "on")
    assert len(rows_off) == len(rows_on) == 5
    for off, on in zip(rows_off, rows_on):
        assert {k: v for k, v in on.items() if k in off} == off


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["noise=gni", "model=mlp", "model.widths=[16,16]"], "reg/camuto"),
        (["noise=label_noise", "model=mlp", "model.widths=[16]"], "reg/blanc"),
        (["noise=gd_noise", "model=diagonal_net"], "theory/orvieto_diagonal"),
    ],
)
def test_each_papers_regularizer_is_logged(tmp_path, overrides, key):
    run(compose(*overrides, "trainer.steps=10", "curvature.every=10", *QUIET), tmp_path)
    rows = curvature_rows(tmp_path)
    assert len(rows) == 2 and all(math.isfinite(row[key]) and row[key] >= 0 for row in rows)


def test_curvature_every_can_count_epochs(tmp_path):
    run(
        compose(
            "trainer.steps=null",
            "trainer.epochs=4",
            "trainer.batch_size=10",
            "curvature.every=2",
            "curvature.unit=epochs",
            *QUIET,
        ),
        tmp_path,
    )  # 4 steps per epoch
    assert [row["step"] for row in curvature_rows(tmp_path)] == [0, 8, 16]


def test_camuto_regularizer_counts_the_noised_input_as_layer_zero(tmp_path):
    common = [
        "noise=gni",
        "noise.sigma=0.2",
        "model=mlp",
        "model.widths=[16,16]",
        "trainer.steps=0",
        "curvature.every=1",
        *QUIET,
    ]
    run(compose(*common, "noise.noise_input=false"), tmp_path / "hidden")
    run(compose(*common), tmp_path / "input")  # the default: the input is noised (Camuto Theorem 1)
    hidden, with_input = (curvature_rows(tmp_path / name)[0]["reg/camuto"] for name in ("hidden", "input"))
    assert with_input > hidden > 0


def test_diagonal_network_closed_form_only_where_it_is_derived(tmp_path):
    for noise in ("gd_noise", "layerwise"):
        run(
            compose(f"noise={noise}", "model=diagonal_net", "trainer.steps=0", "curvature.every=1", *QUIET),
            tmp_path / noise,
        )
    all_parameters, layerwise = (curvature_rows(tmp_path / n)[0] for n in ("gd_noise", "layerwise"))
    assert all_parameters["theory/orvieto_diagonal"] == pytest.approx(layerwise["theory/orvieto_diagonal"])
    assert "theory/R_sigma_closed_form" in all_parameters and "theory/R_sigma_closed_form" not in layerwise


def test_nin_keeps_the_exact_trace(tmp_path):
    run(
        compose("noise=nin", "model=mlp", "model.widths=[16,16]", "trainer.steps=5", "curvature.every=5", *QUIET),
        tmp_path,
    )
    assert all(row["hessian/trace_sem"] == 0.0 for row in curvature_rows(tmp_path))


def test_non_piecewise_linear_models_get_hutchinson_with_an_error_bar(tmp_path):
    run(
        compose(
            "model=mlp",
            "model.activation=tanh",
            "model.widths=[8]",
            "trainer.steps=10",
            "curvature.every=10",
            "curvature.probes=20",
            *QUIET,
        ),
        tmp_path,
    )
    rows = curvature_rows(tmp_path)
    assert all(row["hessian/trace_sem"] > 0 for row in rows)
    assert all(row["hessian/trace"] != row["reg/ggn_trace"] for row in rows)
    assert all(row["hessian/probes"] == 20 for row in rows), "the probes the value and its error rest on"


def test_the_pyhessian_method_logs_every_probe_it_was_asked_for(tmp_path):
    pytest.importorskip("pyhessian")
    run(
        compose(
            "model=mlp",
            "model.widths=[16,16]",
            "trainer.steps=2",
            "curvature.every=2",
            "curvature.probes=30",
            "curvature.method=pyhessian",
            *QUIET,
        ),
        tmp_path,
    )
    rows = curvature_rows(tmp_path)
    assert rows and all(row["hessian/probes"] == 30 and row["hessian/trace_sem"] > 0 for row in rows)
