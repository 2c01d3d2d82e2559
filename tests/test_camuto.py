"""Camuto et al.: GNI's defaults and strengths, the explicit regulariser R as a training term (values against the
measured R, its gradient against finite differences, the trainer's step), Adam, the datasets, the probes against
independent computations, and every camuto_* figure drawn from a real smoke sweep with its claims evaluated."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, compose, run_cli
from torch import nn

from noisereg.app import run
from noisereg.curvature.regularizers import camuto_regularizer
from noisereg.data import diabetes, sum_of_sines
from noisereg.data.tensors import TensorDataset
from noisereg.errors import SettingError
from noisereg.figures.statistics import Evidence, below, exceeds, rank_correlation, tally
from noisereg.losses import HalfMSELoss
from noisereg.models import MLP, StridedCNN
from noisereg.noise import ActivationNoise, ExplicitActivationRegularizer
from noisereg.papers import CLAIMS, evaluate_claims, plot_experiment
from noisereg.probes.base import ProbeContext
from noisereg.probes.calibration import CalibrationProbe
from noisereg.probes.fourier import FourierProbe
from noisereg.probes.layer_statistics import LayerStatisticsProbe
from noisereg.probes.remainder import RemainderProbe
from noisereg.records import load_runs
from noisereg.tracking import read_metrics
from noisereg.tracking.records import list_artifacts, read_artifact
from noisereg.train import OptimizerSettings, TrainerSettings, train

LOSSES = {"cross_entropy": nn.CrossEntropyLoss(), "half_mse": HalfMSELoss(), "mse": nn.MSELoss()}


def problem(kind: str, loss: str, n: int = 12, seed: int = 0):
    """A small float64 model, its data and loss: `mlp` (our MLP: R through its chain of layers), `cnn` (the strided
    CNN: R by one backward pass per output, the input a leaf) or `sequential` (a Linear first layer seeing the input,
    not our MLP: R by backward passes, the input's term at the first layer)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    classes = 4 if loss == "cross_entropy" else 2
    shape = (1, 8, 8) if kind == "cnn" else (6,)
    if kind == "mlp":
        model = MLP(6, classes, [5, 7], activation="elu", generator=generator)
    elif kind == "cnn":
        model = StridedCNN(shape, classes, widths=[3, 4], generator=generator)
    else:
        model = nn.Sequential(nn.Linear(6, 5), nn.ELU(), nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, classes))
    model = model.double()
    inputs = torch.randn(n, *shape, dtype=torch.float64)
    classification = loss == "cross_entropy"
    targets = torch.randint(0, classes, (n,)) if classification else torch.randn(n, classes, dtype=torch.float64)
    task = "classification" if classification else "regression"
    data = TensorDataset(inputs, targets, inputs, targets, task, classes)
    return model, data, LOSSES[loss]


def explicit_penalty(model, data, loss_fn, variance=(0.3,), noise_input=True):
    mode = ExplicitActivationRegularizer(variance=list(variance), noise_input=noise_input)
    mode.attach(model, data)
    model.train()
    outputs = model(data.train_inputs)
    return mode, mode.penalty(outputs, data.train_targets, loss_fn)


@pytest.mark.parametrize(
    "kind, loss",
    [
        ("mlp", "cross_entropy"),
        ("mlp", "half_mse"),
        ("mlp", "mse"),
        ("cnn", "cross_entropy"),
        ("sequential", "cross_entropy"),
        ("sequential", "half_mse"),
    ],
)
def test_the_explicit_regulariser_equals_the_measured_one(kind, loss):
    """R as a training term (noise=gni_explicit) against the measurement behind reg/camuto (factor of H_L, one
    backward pass per column, in eval mode): two separate implementations of Camuto Eq. 9."""
    model, data, loss_fn = problem(kind, loss)
    variances = [0.3, 0.1, 0.05]  # the input, then each hidden layer
    mode, value = explicit_penalty(model, data, loss_fn, variances)
    measured = camuto_regularizer(
        model, loss_fn, data.train_inputs, data.train_targets, mode.sites, [math.sqrt(v) for v in variances]
    )
    assert value.item() == pytest.approx(measured, rel=1e-10) and measured > 0
    _, hidden_only = explicit_penalty(*problem(kind, loss)[:3], variances[1:], noise_input=False)
    assert 0 < hidden_only.item() < value.item()


@pytest.mark.parametrize("kind", ["mlp", "cnn", "sequential"])
def test_the_gradient_of_the_explicit_regulariser_matches_finite_differences(kind):
    """∇θ R by double backward against central differences of R along a random direction, per parameter tensor
    (cross-entropy, so R's dependence on H_L through the softmax counts too)."""
    model, data, loss_fn = problem(kind, "cross_entropy")
    _, value = explicit_penalty(model, data, loss_fn)
    grads = torch.autograd.grad(value, list(model.parameters()))
    generator = torch.Generator().manual_seed(1)
    step = 1e-5
    for parameter, grad in zip(model.parameters(), grads):
        direction = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                parameter.add_(sign * step * direction)
            values.append(explicit_penalty(model, data, loss_fn)[1].item())
            with torch.no_grad():
                parameter.sub_(sign * step * direction)
        finite_difference = (values[0] - values[1]) / (2 * step)
        analytic = float((grad * direction).sum())
        assert analytic == pytest.approx(finite_difference, rel=1e-6, abs=1e-10), parameter.shape


def test_the_input_term_through_the_first_layer_equals_the_input_gradient_either_way():
    """A 2000-wide first layer takes ‖gW₁‖², a narrow one gᵀ(W₁W₁ᵀ)g: both equal R with the input a leaf."""
    for width in (3, 2000):
        model, data, loss_fn = problem("mlp", "cross_entropy")
        model = MLP(6, 4, [width, 5], activation="elu", generator=torch.Generator().manual_seed(2)).double()
        mode, value = explicit_penalty(model, data, loss_fn)
        measured = camuto_regularizer(model, loss_fn, data.train_inputs, data.train_targets, mode.sites, [0.3**0.5] * 3)
        assert value.item() == pytest.approx(measured, rel=1e-10)


def test_the_trainer_descends_on_loss_plus_R_and_logs_R():
    model, data, loss_fn = problem("mlp", "cross_entropy", n=16)
    model.float()
    tensors = (data.train_inputs, data.train_targets, data.test_inputs, data.test_targets)
    data = TensorDataset(*(t.float() if t.is_floating_point() else t for t in tensors), data.task, data.num_outputs)
    reference = MLP(6, 4, [5, 7], activation="elu")
    reference.load_state_dict(model.state_dict())
    mode = ExplicitActivationRegularizer(variance=0.2)
    mode.attach(model, data)
    rows = []
    settings = TrainerSettings(
        loss="cross_entropy", steps=1, eval_every=1, progress_bar=False, optimizer=OptimizerSettings(lr=0.5)
    )
    train(model, data, mode, settings, rows.append)
    by_hand = ExplicitActivationRegularizer(variance=0.2)
    by_hand.attach(reference, data)
    reference.train()
    outputs = reference(data.train_inputs)
    penalty = by_hand.penalty(outputs, data.train_targets, loss_fn)
    (loss_fn(outputs, data.train_targets) + penalty).backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.5 * p.grad
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert rows[-1]["noise/explicit_R"] == pytest.approx(penalty.item(), rel=1e-5)
    objective = loss_fn(outputs, data.train_targets) + penalty
    assert rows[-1]["train/batch_loss"] == pytest.approx(objective.item(), rel=1e-5)


def test_gni_noises_the_input_by_default_with_the_papers_variance():
    model = MLP(30, 3, [20], activation="linear", generator=torch.Generator().manual_seed(0))
    noise = ActivationNoise(seed=0)
    noise.attach(model)
    assert noise.variances == [0.1, 0.1] and noise.noise_input
    seen = []
    model.layers[0].register_forward_hook(lambda module, args, output: seen.append(args[0]))
    x = torch.zeros(4000, 30)
    model.train()
    model(x)
    assert seen[0].std().item() == pytest.approx(math.sqrt(0.1), rel=0.02)  # σ² = 0.1 on the input
    model.eval()
    model(x)
    assert torch.equal(seen[1], x), "off at evaluation"
    assert ActivationNoise(variance=0.25).attach(model) is None and ActivationNoise(sigma=0.5).sigma == 0.5
    by_std, by_variance = ActivationNoise(sigma=0.5), ActivationNoise(variance=0.25)
    for mode in (by_std, by_variance):
        mode.attach(MLP(30, 3, [20]))
    assert by_std.variances == by_variance.variances == [0.25, 0.25]
    with pytest.raises(SettingError, match="both set the noise strength"):
        ActivationNoise(sigma=0.5, variance=0.25)
    with pytest.raises(SettingError, match="a variance"):
        ActivationNoise(variance=-1.0)


def test_both_strengths_on_the_command_line_is_a_one_line_error(tmp_path):
    result = run_cli("noise=gni", "noise.sigma=0.3", "noise.variance=0.1", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "noise.sigma=0.3 and noise.variance=0.1 both set" in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_adam_is_a_trainer_option_and_sgd_stays_the_default():
    model, data, loss_fn = problem("mlp", "half_mse", n=16)
    model.float()
    data = TensorDataset(
        *(t.float() for t in (data.train_inputs, data.train_targets, data.test_inputs, data.test_targets)),
        "regression",
        2,
    )
    reference = MLP(6, 2, [5, 7], activation="elu")
    reference.load_state_dict(model.state_dict())
    adam = OptimizerSettings(name="adam", lr=0.01, betas=[0.8, 0.9])
    train(
        model,
        data,
        ActivationNoise(variance=0.0),
        TrainerSettings(loss="half_mse", steps=3, eval_every=3, progress_bar=False, optimizer=adam),
        lambda row: None,
    )
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.01, betas=(0.8, 0.9))
    for _ in range(3):
        optimizer.zero_grad()
        loss_fn(reference(data.train_inputs), data.train_targets).backward()
        optimizer.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)
    assert TrainerSettings().optimizer.name == "sgd"
    with pytest.raises(SettingError, match="SGD's"):
        TrainerSettings(steps=1, optimizer=OptimizerSettings(name="adam", momentum=0.9)).check()
    with pytest.raises(SettingError, match="choose one of"):
        TrainerSettings(steps=1, optimizer=OptimizerSettings(name="rmsprop")).check()


def test_the_datasets():
    first, again, other = diabetes(), diabetes(), diabetes(seed=1)
    assert first.train_inputs.shape == (354, 10) and first.test_inputs.shape == (88, 10)
    assert torch.equal(first.train_targets, again.train_targets)
    assert not torch.equal(first.train_targets, other.train_targets)
    assert first.train_inputs.mean(0).abs().max() < 1e-5
    assert first.train_targets.std().item() == pytest.approx(1, rel=0.01)
    sines = sum_of_sines(seed=3)
    spectrum = torch.fft.rfft(sines.train_targets[:, 0].double()).abs() * 2 / 200
    assert torch.allclose(spectrum[5:55:5], torch.ones(10, dtype=torch.float64), atol=1e-5)
    assert spectrum[[3, 7, 51]].max() < 1e-5
    assert not torch.equal(sum_of_sines(seed=4).train_targets, sines.train_targets)


def context_for(model, data, loss_fn=None, noise=None) -> ProbeContext:
    return ProbeContext(
        model=model,
        data=data,
        loss_fn=loss_fn or nn.MSELoss(),
        loss_targets=lambda t: t,
        noise=noise or ActivationNoise(),
        steps_per_epoch=1,
        make_noise=lambda stream: None,
    )


class KnownFunction(nn.Module):
    """f(t) = 0.5 sin(2π·10 t) + sin(2π·20 t + 1): amplitude ½ at 10, 1 at 20, none elsewhere."""

    def forward(self, t):
        return 0.5 * torch.sin(2 * math.pi * 10 * t) + torch.sin(2 * math.pi * 20 * t + 1)


def test_the_fourier_probe_reads_amplitudes_relative_to_the_target():
    data = sum_of_sines(frequencies=[10, 20, 30], seed=0)
    measurement = FourierProbe(context_for(KnownFunction(), data), 1, "steps", [10, 20, 30]).measure(0)
    assert measurement.metrics["fourier/amplitude_k10"] == pytest.approx(0.5, abs=1e-5)
    assert measurement.metrics["fourier/amplitude_k20"] == pytest.approx(1.0, abs=1e-5)
    assert measurement.metrics["fourier/amplitude_k30"] == pytest.approx(0.0, abs=1e-5)
    assert measurement.artifacts["fourier"]["outputs"].shape == (200,)
    with pytest.raises(SettingError, match="grid"):
        FourierProbe(context_for(KnownFunction(), diabetes()), 1, "steps", [10])


def test_layer_statistics_are_the_layer_to_layer_jacobians():
    model = MLP(3, 2, [6, 6, 6], activation="relu", generator=torch.Generator().manual_seed(0))
    data = TensorDataset(torch.randn(20, 3), torch.randn(20, 2), torch.randn(5, 3), torch.randn(5, 2), "regression", 2)
    metrics = LayerStatisticsProbe(context_for(model, data), 1, "steps", 1024).measure(0).metrics
    assert set(metrics) == {
        f"layers/{q}/{k}" for q in ("masked_weight_norm", "masked_weight_norm_squared", "weight_trace") for k in (2, 3)
    }

    def hidden(x: torch.Tensor, k: int) -> torch.Tensor:  # hₖ of the noise-free network
        for layer, activation in zip(model.layers[:k], model.activations[:k]):
            x = activation(layer(x))
        return x

    for k in (2, 3):
        norms = []
        for x in data.train_inputs:  # ‖∂hₖ/∂hₖ₋₁‖_F from the dense Jacobian
            step = lambda h: model.activations[k - 1](model.layers[k - 1](h))  # noqa: E731
            norms.append(torch.autograd.functional.jacobian(step, hidden(x, k - 1)).norm().item())
        assert metrics[f"layers/masked_weight_norm/{k}"] == pytest.approx(statistics.fmean(norms), rel=1e-5)
        assert metrics[f"layers/masked_weight_norm_squared/{k}"] == pytest.approx(
            statistics.fmean(n**2 for n in norms), rel=1e-5
        )
        assert metrics[f"layers/weight_trace/{k}"] == pytest.approx(torch.trace(model.layers[k - 1].weight).item())


def test_calibration_is_the_expected_calibration_error_of_15_bins():
    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(500, 4, generator=generator), torch.randint(0, 3, (500,), generator=generator)
    model = nn.Linear(4, 3)
    data = TensorDataset(inputs, labels, inputs, labels, "classification", 3)
    measurement = CalibrationProbe(context_for(model, data), 1, "steps", "test", 15, 128).measure(0)
    with torch.no_grad():
        probabilities = model(inputs).softmax(dim=1).numpy()
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels.numpy()
    ece = 0.0
    for b in range(15):  # bins (b/15, (b+1)/15]
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert measurement.metrics["calibration/ece"] == pytest.approx(ece, rel=1e-6)  # float32 probabilities
    # Signed: mean confidence − accuracy (Guo et al.'s overconfidence when > 0).
    assert measurement.metrics["calibration/overconfidence"] == pytest.approx(
        confidence.mean() - correct.mean(), rel=1e-5, abs=1e-7
    )
    table = measurement.artifacts["calibration"]
    assert table["counts"].sum() == 500 and len(table["accuracy"]) == 15


@pytest.mark.parametrize("activation", ["linear", "elu"])
def test_the_remainder_probe_against_independent_monte_carlo(activation):
    """For a linear network with squared error, E[L̃] = L + R exactly: the remainder is 0 within its error bar.
    For ELU, the probe's antithetic estimate agrees with plain independent draws."""
    generator = torch.Generator().manual_seed(0)
    model = MLP(5, 2, [8, 8], activation=activation, generator=generator)
    data = TensorDataset(
        torch.randn(64, 5, generator=generator),
        torch.randn(64, 2, generator=generator),
        torch.randn(8, 5),
        torch.randn(8, 2),
        "regression",
        2,
    )
    noise = ActivationNoise(variance=[0.2, 0.1, 0.3])
    noise.attach(model, data)
    probe = RemainderProbe(context_for(model, data, HalfMSELoss(), noise), 1, "steps", 16, 2000, 500, 7)
    metrics = probe.measure(0).metrics
    assert metrics["remainder/R"] > 0 and metrics["remainder/expected_C_sem"] > 0
    if activation == "linear":
        assert abs(metrics["remainder/expected_C"]) < 4 * metrics["remainder/expected_C_sem"]
        return
    twin = MLP(5, 2, [8, 8], activation=activation)
    twin.load_state_dict(model.state_dict())
    ActivationNoise(variance=[0.2, 0.1, 0.3], seed=11).attach(twin, data)
    twin.train()  # GNI's own hooks: independent draws
    with torch.no_grad():
        losses = torch.tensor(
            [HalfMSELoss()(twin(probe.inputs), probe.targets).item() for _ in range(4000)], dtype=torch.float64
        )
    difference = losses.mean().item() - metrics["remainder/noisy_loss"]
    error = math.hypot(losses.std().item() / math.sqrt(len(losses)), metrics["remainder/expected_C_sem"])
    assert abs(difference) < 4 * error
    assert metrics["remainder/expected_C_sem"] < losses.std().item() / math.sqrt(1000), "antithetic pairs help"


def test_the_probes_never_change_the_training_trajectory(tmp_path):
    """GNI draws from the run's stream in train mode: a probe that ran a noised module would shift every draw after."""
    common = [
        "noise=gni",
        "dataset=sum_of_sines",
        "model=mlp",
        "model.widths=[8,8,8]",
        "trainer.loss=mse",
        "trainer.steps=12",
        "trainer.eval_every=4",
        "logger.mode=disabled",
        "trainer.progress_bar=false",
    ]
    run(compose(*common), tmp_path / "off")
    run(
        compose(
            *common,
            "+probes.layer_statistics.every=3",
            "+probes.fourier.every=3",
            "+probes.remainder.every=3",
            "+probes.remainder.draws=10",
        ),
        tmp_path / "on",
    )
    rows_off, rows_on = read_metrics(tmp_path / "off"), read_metrics(tmp_path / "on")
    on_by_step = {row["step"]: row for row in rows_on}
    for row in rows_off:
        assert {k: v for k, v in on_by_step[row["step"]].items() if k in row} == row


def test_every_cpu_budget_of_the_reproduction_plan_composes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_cpu", ROOT / "scripts" / "reproduce_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from noisereg.app import prepare

    budgets = [
        (experiment, scale, override.split("=", 1)[1])
        for _, experiment, scale, *overrides in module.PLAN
        for override in overrides
        if override.startswith("+cpu_budget=")
    ]
    # Figs 4-5 run at the paper's scale (their plan entry narrows the seeds and arms), the others with a budget
    camuto_entries = {experiment for paper, experiment, *_ in module.PLAN if paper == "camuto"}
    assert {entry[0] for entry in budgets} == camuto_entries - {"camuto_fig4_fourier"}
    assert camuto_entries | {"camuto_fig5_layer_frequencies"} == set(CAMUTO)  # Fig. 5 reads Fig. 4's runs
    for experiment, scale, budget in budgets:
        cpu = prepare(compose(f"+experiment={experiment}", f"scale={scale}", f"+cpu_budget={budget}"))
        paper = prepare(compose(f"+experiment={experiment}"))
        assert cpu.scale.name == "cpu"
        if budget != "camuto_fig3_cnn":  # the paper's widths (not scale=cpu's tenth); the CNN at half width
            assert list(cpu.model.widths) == list(paper.model.widths), budget


def test_the_claims_helpers_use_one_sided_tests():
    assert below(Evidence("r", {0: 0.2, 1: 0.3, 2: 0.25}), 1.0).verdict == "holds"
    assert below(Evidence("r", {0: 1.5, 1: 1.6, 2: 1.55}), 1.0).verdict == "fails"
    assert below(Evidence("r", {0: 0.5, 1: 1.5}), 1.0).verdict == "inconclusive"
    assert exceeds(1.0, 0.5, 0.1, "R").verdict == "holds" and exceeds(1.0, 0.9, 0.1, "R").verdict == "inconclusive"
    assert exceeds(1.0, 1.5, 0.1, "R").verdict == "fails"
    checks = [exceeds(1.0, 0.5, 0.1, "R")] * 99 + [exceeds(1.0, 1.5, 0.1, "R")]
    assert (
        tally(checks, "x", "100 seeds", at_least=0.99).verdict == "holds"
        and tally(checks, "x", "100").verdict == "fails"
    )
    assert tally(checks[:-1] + [exceeds(1.0, 0.9, 0.1, "R")], "x", "100").verdict == "inconclusive"
    assert "independent: 100 seeds" in tally(checks, "x", "100 seeds").numbers
    assert rank_correlation([1, 2, 3, 4], [9, 7, 5, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


# -- every camuto_* figure from a real smoke sweep -------------------------------------------------------------------

# Each experiment's declared sweep, narrowed to keep the suite fast (the values stay the experiment's own).
NARROWED = {"seed": "0,1", "noise.variance": "0.1,4.0"}


def declared_sweep(experiment: str) -> list[list[str]]:
    params = compose(f"+experiment={experiment}", return_hydra_config=True).hydra.sweeper.params
    axes = [[f"{key}={value}" for value in NARROWED.get(key, str(values)).split(",")] for key, values in params.items()]
    return [list(job) for job in itertools.product(*axes)]


CAMUTO = [
    "camuto_fig2_remainder",
    "camuto_fig3_explicit_vs_gni",
    "camuto_fig4_fourier",
    "camuto_fig5_layer_frequencies",
]


@pytest.fixture(scope="module")
def smoke_records(tmp_path_factory, request) -> Path:
    root = tmp_path_factory.mktemp("camuto-records")
    fmnist = Path("/usr/share/datasets/fashion-mnist").is_dir()
    for experiment in CAMUTO:
        for number, job in enumerate(declared_sweep(experiment)):
            if not fmnist and any("fmnist" in part or "camuto/fig3_model" in part for part in job):
                continue
            cfg = compose(
                f"+experiment={experiment}", "scale=smoke", "logger.mode=disabled", "trainer.progress_bar=false", *job
            )
            if experiment == "camuto_fig3_explicit_vs_gni":  # keep the suite fast: fewer Hutchinson probes
                cfg.curvature.probes = 5
            if experiment == "camuto_fig2_remainder":  # and fewer Monte-Carlo draws
                cfg.probes.remainder.draws = 100
            assert run(cfg, root / experiment / str(number))["status"] == "completed", job
    return root


def runs_matching(folder: Path, config: dict) -> list[list[dict]]:
    """metrics.jsonl of the runs whose config has these dotted values, read with json alone."""
    found = []
    for summary_path in folder.rglob("summary.json"):
        summary = json.loads(summary_path.read_text())

        def value(key):
            node = summary["config"]
            for part in key.split("."):
                node = node[part]
            return node

        if all(value(k) == v for k, v in config.items()):
            found.append(read_metrics(summary_path.parent))
    return found


@pytest.mark.parametrize("experiment", CAMUTO)
def test_each_camuto_figure_is_drawn_and_its_json_is_the_records(smoke_records, experiment, tmp_path):
    """Lines: per x, n and the mean over the matching runs' metrics.jsonl; scatter points: each run's logged values.
    (Heat maps and artifact curves: the two tests below.)"""
    folder = smoke_records / experiment
    if not any(folder.rglob("summary.json")):
        pytest.skip("real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    png, data = plot_experiment(experiment, [folder], tmp_path)
    assert png.stat().st_size > 10_000
    figure = json.loads(data.read_text())
    assert "scale=smoke" in figure["caption"]
    checked = 0
    for panel in figure["panels"]:
        assert panel["series"], panel["title"]
        for series in panel["series"]:
            if "points" in series:
                for point in series["points"]:
                    row = next(r for r in read_metrics(point["run"]) if r["step"] == point["step"])
                    assert (point["x"], point["y"]) == (row["remainder/R"], row["remainder/expected_C"])
                    assert point["y_error"] == row["remainder/expected_C_sem"]
                    checked += 1
            elif "steps" not in series and panel["x"] in ("step", "epoch"):
                config = {k: v for k, v in series["config"].items() if not isinstance(v, list)}
                members = runs_matching(folder, config)
                assert len(members) == series["runs"]
                for x, n, mean in zip(series["x"], series["n"], series["mean"]):
                    values = [
                        row[series["metric"]]
                        for rows in members
                        for row in rows
                        if row.get(panel["x"]) == x and isinstance(row.get(series["metric"]), float)
                    ]
                    assert n == len(values) and mean == pytest.approx(statistics.fmean(values), rel=1e-12)
                checked += 1
    assert checked or experiment == "camuto_fig4_fourier"  # heat maps and artifact curves only: checked below


def test_fig5_is_drawn_and_judged_from_fig4s_runs_where_it_has_none(smoke_records, tmp_path):
    """The paper draws Fig. 5 from Fig. 4's networks: camuto_fig4_fourier's runs carry the layer statistics, and
    Fig. 5's figure and claim read them (their gd and gni arms) where Fig. 5 has no runs of its own; where it has,
    its own runs alone."""
    fig4 = smoke_records / "camuto_fig4_fourier"
    _, data = plot_experiment("camuto_fig5_layer_frequencies", [fig4], tmp_path / "from_fig4")
    figure = json.loads(data.read_text())
    fig4_runs = len(list(fig4.rglob("summary.json")))
    assert f"{fig4_runs} runs" in figure["caption"]
    (panel,) = [p for p in figure["panels"] if (p["row"], p["column"]) == (0, 0)]  # GNI: ‖W̃ₖ‖ per layer k
    assert {s["metric"] for s in panel["series"]} == {f"layers/masked_weight_norm/{k}" for k in (2, 3, 4, 5)}
    series = panel["series"][0]
    members = runs_matching(fig4, {"noise.name": "gni"})
    assert series["runs"] == len(members) == 2
    rows = [
        row
        for row in evaluate_claims([fig4], tmp_path / "out", draw=False, runs=load_runs(fig4))
        if row.claim.experiment == "camuto_fig5_layer_frequencies"
    ]
    assert rows and all(row.verdict != "not run" for row in rows)

    both = [fig4, smoke_records / "camuto_fig5_layer_frequencies"]
    _, data = plot_experiment("camuto_fig5_layer_frequencies", both, tmp_path / "own")
    own_runs = len(list(both[1].rglob("summary.json")))
    assert own_runs != fig4_runs and f"{own_runs} runs" in json.loads(data.read_text())["caption"]


def test_the_heat_map_is_the_mean_amplitude_over_runs(smoke_records, tmp_path):
    folder = smoke_records / "camuto_fig4_fourier"
    _, data = plot_experiment("camuto_fig4_fourier", [folder], tmp_path)
    panel = json.loads(data.read_text())["panels"][0]
    (series,) = panel["series"]
    gd = runs_matching(folder, {"noise.name": "gd"})
    for step, n, means in zip(series["steps"], series["n"], series["mean"]):
        for metric, mean in zip(series["metrics"], means):
            values = [row[metric] for rows in gd for row in rows if row["step"] == step and metric in row]
            assert n == len(values) and mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    panels = json.loads(data.read_text())["panels"]
    (below,) = [p for p in panels if (p["row"], p["column"]) == (1, 0)]  # the baseline's functions, first seed
    (learnt,) = [s for s in below["series"] if s["metric"] == "fourier/outputs"]
    (run_dir,) = [
        path.parent
        for path in folder.rglob("summary.json")
        if json.loads(path.read_text())["config"]["noise"]["name"] == "gd"
        and json.loads(path.read_text())["config"]["seed"] == 0
    ]
    arrays = read_artifact(run_dir, "fourier", list_artifacts(run_dir)["fourier"][-1])
    assert learnt["metric"] == "fourier/outputs" and learnt["n"] == [1] * len(arrays["inputs"])
    np.testing.assert_allclose(learnt["mean"], arrays["outputs"][np.argsort(arrays["inputs"])], rtol=1e-6)


def test_the_reliability_diagram_is_the_mean_of_the_saved_bins(smoke_records, tmp_path):
    folder = smoke_records / "camuto_fig3_explicit_vs_gni"
    if not any(folder.rglob("summary.json")):
        pytest.skip("real Fashion-MNIST not installed")
    _, data = plot_experiment("camuto_fig3_explicit_vs_gni", [folder], tmp_path)
    panel = next(p for p in json.loads(data.read_text())["panels"] if p["x"] == "bin_centers")
    series = next(s for s in panel["series"] if s["config"]["noise.name"] == "gni")
    tables = []
    for summary_path in folder.rglob("summary.json"):
        config = json.loads(summary_path.read_text())["config"]
        if config["noise"]["name"] == "gni" and config["model"]["name"] == "mlp":
            steps = list_artifacts(summary_path.parent)["calibration"]
            tables.append(read_artifact(summary_path.parent, "calibration", steps[-1]))
    for x, n, mean in zip(series["x"], series["n"], series["mean"]):
        values = [t["accuracy"][i] for t in tables for i in range(15) if t["bin_centers"][i] == x and t["counts"][i]]
        assert n == len(values) and mean == pytest.approx(statistics.fmean(values), rel=1e-12)


def test_every_camuto_claim_reaches_a_verdict_on_smoke_records(smoke_records):
    runs = load_runs([smoke_records])
    claims = [c for c in CLAIMS if c.experiment.startswith("camuto_")]
    assert {c.experiment for c in claims} == set(CAMUTO)
    for item in claims:
        chosen = runs[runs["experiment"] == item.experiment]
        if chosen.empty:
            continue
        verdict = item.evaluate(chosen)
        assert verdict.verdict in ("holds", "fails", "inconclusive") and verdict.numbers, item.quote


def test_fig4s_claim_compares_gni_with_the_baseline_and_the_explicit_arm_where_it_ran(smoke_records):
    """The quote compares GNI with the baseline; the explicit-R arm joins the verdict only where it was run."""
    from noisereg.papers.camuto.claims import noise_suppresses_high_frequencies

    runs = load_runs(smoke_records / "camuto_fig4_fourier")
    every_arm = noise_suppresses_high_frequencies(runs)
    assert "GNI mean amplitude" in every_arm.numbers and "explicit R mean amplitude" in every_arm.numbers
    without = noise_suppresses_high_frequencies(runs[runs["noise.name"] != "gni_explicit"])
    assert "GNI mean amplitude" in without.numbers and "explicit R" not in without.numbers
