"""Blanc et al.: the models, data and probes against independent computations, the trainer's blocks of steps
against single steps (SGD's arithmetic, batch order, compiled against eager, resumes), and every figure drawn from a
real smoke sweep with its JSON checked against the records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose, run_cli
from test_figures import check_series_against_records, declared_sweep, metrics_by_run
from test_resume import RUN, Crash, records, stopping_at, summary_without_timing

from noisereg.app import build, prepare, run
from noisereg.curvature import hessian_trace
from noisereg.curvature.regularizers import output_gradient_norm_squared
from noisereg.data import BatchIterator, matrix_sensing, points_1d, single_point
from noisereg.errors import SettingError
from noisereg.figures.statistics import Evidence, between, share
from noisereg.losses import build_loss
from noisereg.models import build_model
from noisereg.models.relu_1d import Relu1dSettings
from noisereg.noise import LabelNoise
from noisereg.papers import CLAIMS, plot_experiment
from noisereg.probes import ProbeContext
from noisereg.probes.function_1d import Function1dProbe
from noisereg.probes.matrix_recovery import MatrixRecoveryProbe
from noisereg.probes.unit_outputs import UnitOutputsProbe, stationary_activation
from noisereg.records import load_runs
from noisereg.tracking import read_metrics
from noisereg.tracking.job import run_job
from noisereg.tracking.records import read_artifact
from noisereg.train import OptimizerSettings, TrainerSettings, train

BLANC = (
    "blanc_fig1_matrix_sensing",
    "blanc_fig1_lr_sweep",
    "blanc_fig2_relu_interpolation",
    "blanc_fig3_curve_length",
    "blanc_thm3_single_point",
)


def context(model, data) -> ProbeContext:
    return ProbeContext(
        model=model,
        data=data,
        loss_fn=build_loss("mse"),
        loss_targets=lambda t: t,
        noise=LabelNoise(delta=0.0, seed=0),
        steps_per_epoch=data.n_train,
        make_noise=None,
    )


# -- models, data, probes ------------------------------------------------------------------------------------------


def test_the_relu_networks_output_scale_scales_the_output_weights_alone():
    """model.output_scale κ: cᵢ ~ N(0, (κs)²/m), every other draw as at κ = 1, the default (Figs 2-3 take κ = 7)."""
    default, same, scaled = (
        build_model("relu_1d", (1,), 1, torch.Generator().manual_seed(5), **settings)
        for settings in ({}, {"output_scale": 1.0}, {"output_scale": 7.0})
    )
    for name, value in default.state_dict().items():
        assert torch.equal(same.state_dict()[name], value), name
        expected = 7.0 * value if name == "output.weight" else value
        torch.testing.assert_close(scaled.state_dict()[name], expected, msg=name)
    with pytest.raises(SettingError, match="model.output_scale"):
        Relu1dSettings(output_scale=0.0).check()


def test_the_relu_network_regularizer_is_equation_16_and_its_trace_is_exact():
    data = points_1d()
    model = build_model("relu_1d", (1,), 1, torch.Generator().manual_seed(3))
    a, b = model.hidden.weight[:, 0].detach().double(), model.hidden.bias.detach().double()
    c, x = model.output.weight[0].detach().double(), data.train_inputs[:, 0].double()
    kinks = -b / a
    assert kinks.min() >= -1.2 and kinks.max() <= 1.2, "kinks start inside the data range"
    pre = a[:, None] * x[None, :] + b[:, None]  # (units, points)
    active = (pre > 0).double()
    # Eq. 16: Σⱼ Σᵢ (σ(aᵢxⱼ + bᵢ))² + cᵢ²(1 + xⱼ²)·1[aᵢxⱼ + bᵢ > 0], plus Σⱼ (xⱼ² + 1) for the linear/constant units.
    equation_16 = (pre.clamp(min=0) ** 2 + c[:, None] ** 2 * (1 + x**2) * active).sum() + (x**2 + 1).sum()
    measured = output_gradient_norm_squared(model, data.train_inputs)
    assert measured == pytest.approx(float(equation_16) / len(x), rel=1e-5)
    estimate = hessian_trace(model, build_loss("mse"), data.train_inputs, data.train_targets, method="exact")
    assert estimate.method == "exact"


def dense_hessian_trace(model, loss_fn, inputs, targets) -> float:
    ((name, parameter),) = model.named_parameters()

    def loss(value):
        return loss_fn(torch.func.functional_call(model, {name: value}, (inputs,)), targets)

    hessian = torch.autograd.functional.hessian(loss, parameter.detach().double())
    return float(hessian.reshape(parameter.numel(), -1).diagonal().sum())


def test_the_factorized_model_is_refused_by_the_exact_trace_and_served_by_hutchinson():
    data = matrix_sensing(dimension=4, rank=1, seed=2)
    model = build_model("factorized_matrix", data.input_shape, 1, torch.Generator().manual_seed(0), init="gaussian")
    loss_fn = build_loss("mse")
    with pytest.raises(ValueError, match="piecewise linear"):
        hessian_trace(model, loss_fn, data.train_inputs, data.train_targets, method="exact")
    model.double()
    inputs, targets = data.train_inputs.double(), data.train_targets.double()
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="auto", probes=400, seed=1)
    exact = dense_hessian_trace(model, loss_fn, inputs, targets)
    assert estimate.method == "hutchinson" and abs(estimate.value - exact) < 4 * estimate.stderr


def test_matrix_sensing_closed_forms_match_fresh_measurements():
    data = matrix_sensing(dimension=5, rank=2, measurements_factor=100, n_test=20000, seed=1)
    planted = data.truth["planted_matrix"]
    assert torch.linalg.matrix_rank(planted) == 2 and float(planted.pow(2).sum()) == pytest.approx(2, rel=1e-5)
    assert torch.allclose(data.train_targets[:, 0], (data.train_inputs * planted).sum(dim=(1, 2)), atol=1e-5)
    model = build_model("factorized_matrix", data.input_shape, 1, torch.Generator().manual_seed(4), init="gaussian")
    metrics = MatrixRecoveryProbe(context(model, data), every=1, unit="steps").measure(0).metrics
    with torch.no_grad():  # the test error in closed form is the mean squared error on fresh measurements
        fresh = (model(data.test_inputs) - data.test_targets).pow(2)[:, 0].double()
    assert abs(metrics["matrix/test_error"] - float(fresh.mean())) < 4 * float(fresh.std() / math.sqrt(len(fresh)))
    factor_norm = float(model.factor.detach().double().pow(2).sum())
    assert metrics["matrix/nuclear_norm"] == pytest.approx(factor_norm, rel=1e-6), "‖UUᵀ‖_* = ‖U‖²_F"
    # Eq. 2: E‖(A + Aᵀ)U‖²_F = 2(d + 1)‖U‖²_F, over the 1000 measurements.
    assert output_gradient_norm_squared(model, data.train_inputs) == pytest.approx(2 * 6 * factor_norm, rel=0.05)


def test_the_function_probe_measures_the_interpolant_it_is_given():
    data = points_1d()
    model = build_model("relu_1d", (1,), 1, torch.Generator().manual_seed(0), width=10)
    x, y = data.train_inputs[:, 0], data.train_targets[:, 0]
    slopes = torch.diff(y) / torch.diff(x)
    with torch.no_grad():  # f = the piecewise-linear interpolant: one unit per interior knot
        model.hidden.weight.fill_(1.0)
        model.hidden.bias.copy_(-x[1:11])
        model.output.weight[0].copy_(torch.diff(slopes))
        model.linear_unit.weight.fill_(float(slopes[0]))
        model.linear_unit.bias.fill_(float(y[0] - slopes[0] * x[0]))
    probe = Function1dProbe(context(model, data), every=1, unit="steps", grid_points=4001, saved_points=401)
    measured, metrics = probe.measure(0), probe.measure(0).metrics
    exact_length = float(torch.sqrt(torch.diff(x) ** 2 + torch.diff(y) ** 2).sum())
    assert metrics["function/max_deviation"] < 1e-5
    assert metrics["function/curve_length"] == pytest.approx(metrics["function/interpolant_curve_length"])
    assert metrics["function/curve_length"] == pytest.approx(exact_length, rel=1e-3)  # 5.0330 (grid: 5.031)
    arrays = measured.artifacts["function_1d"]
    bends = x[1:11][torch.diff(slopes).abs() > 1e-2]  # co-linear triples do not bend: 4 kinks
    assert arrays["grid"].shape == (401,) and np.allclose(arrays["kinks"], bends.numpy(), atol=1e-5)
    with torch.no_grad():
        model.linear_unit.bias.add_(0.1)  # shifted by 0.1 everywhere
    deviations = probe.measure(0).artifacts["function_1d"]["interval_deviation"]
    assert deviations.shape == (11,) and np.allclose(deviations, 0.1, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_the_unit_probe_finds_theorem_3s_stationary_points(activation):
    data = single_point(seed=1)
    model = build_model(
        "smooth_two_layer", data.input_shape, 1, torch.Generator().manual_seed(0), width=6, activation=activation
    )
    probe = UnitOutputsProbe(context(model, data), every=1, unit="steps")
    assert probe.measure(0).metrics["units/stationarity_residual"] > 0.1, "a random network is not stationary"
    # Build a stationary point: four units with output o = 0.4 and h from Eq. 21/23, two units with c = h = 0.
    o = torch.tensor(0.4, dtype=torch.float64)
    h = stationary_activation(o, 1.0, activation)
    h = h if activation == "sigmoid" else h.sqrt()
    preactivation = torch.logit(h) if activation == "sigmoid" else torch.atanh(h)
    x = data.train_inputs[0].double()
    with torch.no_grad():
        model.hidden.weight.copy_(
            torch.outer(torch.tensor([1.0] * 4 + [0.0] * 2, dtype=torch.float64), x) * preactivation
        )  # wᵢᵀx = σ⁻¹(h) (‖x‖ = 1)
        model.output.weight[0].copy_(torch.tensor([float(o / h)] * 4 + [0.0] * 2))
    metrics = probe.measure(1).metrics
    assert metrics["units/active"] == 4 and metrics["units/clusters"] == 1
    assert metrics["units/output_cv"] < 1e-5 and metrics["units/stationarity_residual"] < 1e-5


# -- the trainer's blocks of steps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 4, None])
def test_taking_a_block_of_batches_equals_taking_them_one_by_one(batch_size):
    inputs, targets = torch.arange(12.0).unsqueeze(1), torch.zeros(12, 1)
    one_by_one, at_once = (BatchIterator(inputs, targets, batch_size, seed=7) for _ in range(2))
    next(one_by_one), next(at_once)  # part-way into an epoch
    for steps in (5, 1, 13, 3):
        expected = torch.stack([next(one_by_one).indices for _ in range(steps)])
        rows, epoch = at_once.take(steps)
        assert torch.equal(rows, expected)
        assert at_once.state_dict().keys() == one_by_one.state_dict().keys()
        for key, value in one_by_one.state_dict().items():
            other = at_once.state_dict()[key]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, key


def trained(steps_per_call: int, compile_: bool = False, steps: int = 60, **optimizer):
    data = points_1d()
    model = build_model("relu_1d", (1,), 1, torch.Generator().manual_seed(1), width=16)
    noise = LabelNoise(delta=0.0, seed=2)  # δ = 0: the same targets whichever way the noise is drawn
    noise.attach(model, data)
    settings = TrainerSettings(
        loss="mse",
        batch_size=2,
        steps=steps,
        schedule="cosine",
        eval_every=25,
        optimizer=OptimizerSettings(lr=0.01, **optimizer),
        progress_bar=False,
        steps_per_call=steps_per_call,
        compile=compile_,
    )
    rows = []
    train(model, data, noise, settings, rows.append, seed=3)
    return model, rows


@pytest.mark.parametrize("optimizer", [{}, {"momentum": 0.9, "weight_decay": 0.01}, {"momentum": 0.9, "nesterov": 1}])
def test_blocks_of_steps_apply_sgd_as_single_steps_do(optimizer):
    """Same batches, same learning rates, same SGD arithmetic: a functional block equals torch.optim.SGD's steps."""
    single, single_rows = trained(1, **optimizer)
    blocks, block_rows = trained(16, **optimizer)
    for (name, expected), actual in zip(single.state_dict().items(), blocks.state_dict().values()):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=name)
    assert [row["step"] for row in block_rows] == [row["step"] for row in single_rows] == [0, 25, 50, 60]
    assert block_rows[-1]["lr"] == single_rows[-1]["lr"] and block_rows[-1]["train/loss"] < block_rows[0]["train/loss"]


def test_compiled_blocks_follow_eager_blocks():
    eager, _ = trained(100, steps=400, momentum=0.5)
    compiled, rows = trained(100, compile_=True, steps=400, momentum=0.5)
    for (name, expected), actual in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5, msg=name)
    assert rows[-1]["step"] == 400


def test_settings_blocks_cannot_take_are_one_line_errors(tmp_path):
    with pytest.raises(SettingError, match="noise=gd_noise cannot take part"):
        build(prepare(compose("noise=gd_noise", "trainer.steps_per_call=10", "logger.mode=disabled")))
    with pytest.raises(SettingError, match="trainer.batch_size=7 must divide the 40 training points"):
        build(prepare(compose("noise=gd", "trainer.batch_size=7", "trainer.steps_per_call=10", "logger.mode=disabled")))
    result = run_cli("noise=gni", "trainer.steps_per_call=10", "logger.mode=disabled", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "trainer.steps_per_call=10" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing written"


BLOCKS = RUN + ["noise=label_noise", "noise.delta=0.3", "trainer.steps_per_call=8"]


def test_a_run_in_blocks_resumes_to_identical_records(tmp_path):
    run(compose(*BLOCKS), tmp_path / "reference")
    summary = run_job(compose(*BLOCKS), tmp_path / "stopped", prepare=prepare, build=stopping_at(23))
    assert summary["status"] == "interrupted" and summary["steps"] == 25, "blocks end at evaluations (every 5)"
    run(compose(*BLOCKS), tmp_path / "stopped")
    with pytest.raises(Crash):
        run_job(compose(*BLOCKS), tmp_path / "killed", prepare=prepare, build=stopping_at(27, crash=True))
    assert read_metrics(tmp_path / "killed")[-1]["step"] > 20, "rows past the checkpoint (step 20) exist"
    run(compose(*BLOCKS), tmp_path / "killed")
    for resumed in ("stopped", "killed"):
        assert records(tmp_path / resumed) == records(tmp_path / "reference"), resumed
    assert summary_without_timing(tmp_path / "stopped") == summary_without_timing(tmp_path / "reference")


# -- claims helpers ---------------------------------------------------------------------------------------------------


def test_interval_and_share_verdicts():
    tight = Evidence("slope", {0: -2.0, 1: -2.1, 2: -1.9})
    assert between(tight, -2.5, -1.5).verdict == "holds"
    assert between(Evidence("slope", {0: -1.0, 1: -1.1, 2: -0.9}), -2.5, -1.5).verdict == "fails"
    assert between(Evidence("slope", {0: -1.0, 1: -2.5, 2: -1.9}), -2.5, -1.5).verdict == "inconclusive"
    deviations = Evidence("max deviation", dict(enumerate([0.01] * 8 + [0.05, 0.03])))
    assert share(deviations, lambda v: v < 0.02, 0.8, "within 0.02").verdict == "holds"
    assert share(deviations, lambda v: v < 0.02, 0.9, "within 0.02").verdict == "fails"


# -- figures from real smoke sweeps -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("blanc-records")
    for experiment in BLANC:
        for number, job in enumerate(declared_sweep(experiment)):  # (two seeds of each)
            run(
                compose(f"+experiment={experiment}", "scale=smoke", "logger.mode=disabled", *job),
                root / experiment / str(number),
            )
    return root


@pytest.mark.parametrize("experiment", BLANC)
def test_each_blanc_figure_is_drawn_from_a_smoke_sweep_and_its_json_is_the_records(smoke_records, experiment, tmp_path):
    folder = smoke_records / experiment
    png, data = plot_experiment(experiment, [folder], tmp_path)
    assert png.stat().st_size > 10_000
    figure = json.loads(data.read_text())
    assert figure["experiment"] == experiment and "scale=smoke" in figure["caption"]
    records = metrics_by_run(folder)
    for panel in figure["panels"]:
        assert panel["series"] or (panel.get("note") and experiment == "blanc_fig1_lr_sweep"), panel["title"]
        for series in panel["series"]:
            if "run" in series:  # a run's curve from its artifacts: exactly what it saved last
                arrays = read_artifact(series["run"], series["artifact"], series["step"])
                expected = arrays["outputs"] if "grid" in arrays else np.sort(arrays["outputs"])
                assert np.allclose(series["y"], expected), panel["title"]
                assert series["step"] == records[series["run"]]["summary"]["steps"]
            elif panel["x"] == "step" and "mean" in series and series["config"].get("noise.delta") != "interpolant":
                check_series_against_records(series, panel, records)
    verdicts = [c.evaluate(load_runs(folder)).verdict for c in CLAIMS if c.experiment == experiment]
    assert verdicts and set(verdicts) <= {"holds", "fails", "inconclusive"}


# -- at the experiments' own sizes (opt in: make test-paper) ---------------------------------------------------------


@pytest.mark.paper_scale
@pytest.mark.parametrize("experiment", ["blanc_thm3_single_point", "blanc_fig1_matrix_sensing"])
def test_the_claims_hold_at_the_experiments_sizes(experiment, tmp_path):
    """Theorem 3 (12 runs of 4e5 steps) and Fig. 1 (6 runs of 1e6 steps): every claim holds, a few minutes each."""
    for number, job in enumerate(declared_sweep(experiment, narrow=False)):
        run(compose(f"+experiment={experiment}", "logger.mode=disabled", *job), tmp_path / str(number))
    runs = load_runs(tmp_path)
    verdicts = {c.quote[:60]: c.evaluate(runs) for c in CLAIMS if c.experiment == experiment}
    for quote, verdict in verdicts.items():
        print(f"{verdict.verdict}: {quote} | {verdict.numbers}")
    assert all(verdict.verdict == "holds" for verdict in verdicts.values())
