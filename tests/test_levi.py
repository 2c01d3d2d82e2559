"""Levi et al. (noise injection nodes): the node's initialisation, draws and records, the linear toy model, its data
and App. D's time scales, the full Fashion-MNIST split, exponential fits, the phase rule, the claims' helpers, and
every levi_* experiment from a real smoke sweep to its figure (JSON against metrics.jsonl)."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import compose
from test_figures import metrics_by_run
from torch import nn

from noisereg.app import build, prepare, run
from noisereg.data import fmnist_full, scalar_regression
from noisereg.errors import SettingError
from noisereg.figures.fits import fit_exponential
from noisereg.figures.statistics import Evidence, below, unanimous, within
from noisereg.models import MLP, build_model
from noisereg.noise import NoiseInjectionNode
from noisereg.papers import plot_experiment
from noisereg.papers.levi.science import PHASES, run_phase
from noisereg.tracking import read_metrics
from noisereg.train.evaluation import parameter_norms

QUIET = ["logger.mode=disabled", "trainer.progress_bar=false"]


def assert_std_close(samples: torch.Tensor, expected: float, name: str) -> None:
    """Sample std within 5 standard errors of the expected one (s.e. of a Gaussian std: σ/√(2n)), mean within 5."""
    n = samples.numel()
    std = samples.double().std().item()
    assert abs(std - expected) < 5 * expected / math.sqrt(2 * n), f"{name}: std {std:.5f} vs {expected:.5f} (n={n})"
    assert abs(samples.double().mean().item()) < 5 * expected / math.sqrt(n), f"{name}: mean not 0"


# -- the node ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("init, scale, expected", [("fan_in", 0.01, 1 / math.sqrt(300)), ("normal", 0.05, 0.05)])
def test_nin_weights_start_at_the_papers_scale(init, scale, expected):
    model = MLP(300, 5, [4000], generator=torch.Generator().manual_seed(0))
    noise = NoiseInjectionNode(sigma=1.0, layer=0, init=init, init_scale=scale, seed=0)
    noise.attach(model)
    assert noise.node.weight.shape == (4000,)
    assert_std_close(noise.node.weight.detach(), expected, f"W_NI ({init})")


def test_nin_constant_start_and_bad_settings():
    noise = NoiseInjectionNode(sigma=1.0, layer=0, init="constant", init_scale=0.1, seed=0)
    noise.attach(MLP(1, 1, [1], activation="linear", bias=False))
    assert noise.node.weight.tolist() == [pytest.approx(0.1)]
    with pytest.raises(SettingError, match="noise.init='uniform' is unknown"):
        NoiseInjectionNode(sigma=1.0, init="uniform")
    with pytest.raises(SettingError, match=r"noise.resample='batch' is unknown; choose one of \['step', 'epoch'"):
        NoiseInjectionNode(sigma=1.0, resample="batch")
    with pytest.raises(SettingError, match="noise.resample=epoch needs the training-set size"):
        NoiseInjectionNode(sigma=1.0, resample="epoch").attach(MLP(3, 2, [4]))


def epsilons(noise: NoiseInjectionNode, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ε of each row of x, read off the output layer: train output − eval output = ε · W_NI."""
    model.eval()
    clean = model(x)
    model.train()
    return ((model(x) - clean) / noise.node.weight.detach()).mean(dim=1).detach()


def draw_epochs(resample: str, sigma: float, n: int = 600, epochs: int = 4, batch: int = 50, noise_state=None):
    """ε[epoch, sample] as the trainer would see them (a fresh permutation each epoch), and the node."""
    model = MLP(3, 4, [8], generator=torch.Generator().manual_seed(0))
    noise = NoiseInjectionNode(sigma=sigma, layer=-1, resample=resample, n_train=n, seed=3)
    noise.attach(model)
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    order = torch.Generator().manual_seed(2)
    table, step = torch.zeros(epochs, n), 0
    for epoch in range(epochs):
        for indices in torch.randperm(n, generator=order).split(batch):
            noise.begin_step(step, epoch, indices)
            table[epoch, indices] = epsilons(noise, model, x[indices])
            step += 1
    return table, noise, model, x


@pytest.mark.parametrize("resample", ["step", "epoch", "fixed"])
def test_each_resampling_mode_draws_sigma_and_renews_as_it_says(resample):
    sigma = 1.7
    table, noise, model, x = draw_epochs(resample, sigma)
    assert_std_close(table, sigma, f"ε ({resample})")
    across = np.corrcoef(table[0].numpy(), table[1].numpy())[0, 1]
    if resample == "fixed":
        torch.testing.assert_close(table[0], table[3], rtol=1e-4, atol=1e-5)  # one ε per sample, kept
    else:
        assert abs(across) < 5 / math.sqrt(table.shape[1]), f"{resample}: ε of one sample correlated across epochs"
    indices = torch.arange(10)
    noise.begin_step(10_000, 3, indices)  # the same epoch again, a later step
    again = epsilons(noise, model, x[indices])
    if resample == "step":
        assert not torch.allclose(again, table[3, :10]), "step: fresh ε at every forward pass"
    else:
        torch.testing.assert_close(again, table[3, :10], rtol=1e-4, atol=1e-5)  # per sample within the epoch


@pytest.mark.parametrize("resample", ["step", "epoch", "fixed"])
def test_a_restored_node_continues_its_draws_bitwise(resample):
    first = NoiseInjectionNode(sigma=0.7, layer=-1, resample=resample, n_train=40, seed=5)
    first.attach(MLP(3, 4, [6], generator=torch.Generator().manual_seed(0)))
    indices = torch.arange(8)
    first.begin_step(0, 0, indices)
    first._epsilon(8, torch.device("cpu"))
    first.begin_step(5, 1, indices)  # a new epoch: `epoch` draws its next table
    saved = first.state_dict()
    second = NoiseInjectionNode(sigma=0.7, layer=-1, resample=resample, n_train=40, seed=99)
    second.attach(MLP(3, 4, [6], generator=torch.Generator().manual_seed(0)))
    second.load_state_dict(saved)
    for step, epoch in ((6, 1), (7, 2), (8, 3)):
        first.begin_step(step, epoch, indices)
        second.begin_step(step, epoch, indices)
        assert torch.equal(first._epsilon(8, torch.device("cpu")), second._epsilon(8, torch.device("cpu")))


def test_nin_logs_the_three_weight_norms_and_l2_norm_counts_w_ni():
    model = MLP(6, 3, [9, 7], generator=torch.Generator().manual_seed(0))
    noise = NoiseInjectionNode(sigma=1.0, layer=1, seed=0)
    noise.attach(model)
    metrics = noise.metrics()
    assert metrics["noise/nin_weight_norm"] == pytest.approx(float(noise.node.weight.detach().norm()))
    assert metrics["noise/nin_layer_weight_norm"] == pytest.approx(float(model.layers[1].weight.detach().norm()))
    assert metrics["noise/next_layer_weight_norm"] == pytest.approx(float(model.layers[2].weight.detach().norm()))
    everything = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert parameter_norms(model)["params/l2_norm"] == pytest.approx(float(everything.norm()), rel=1e-6)
    assert noise.node.weight in set(model.parameters()), "params/l2_norm includes W_NI"
    output = NoiseInjectionNode(sigma=1.0, layer=-1, seed=0)
    output.attach(MLP(6, 3, [9]))
    assert "noise/next_layer_weight_norm" not in output.metrics(), "the output layer has no next layer"


def test_table1_strengths_resolve_to_the_papers_sigma():
    mse = prepare(compose("+experiment=levi_fig2_mlp_mse", "noise.strength=47"))
    assert mse.noise.sigma == pytest.approx(math.sqrt(47 * 784 / (1024 * 0.01)))  # Table 1: 3598.4
    ce = prepare(compose("+experiment=levi_fig3_mlp_ce", "noise.strength=1.8"))
    assert ce.noise.sigma**2 == pytest.approx(141120)
    fig1 = prepare(compose("+experiment=levi_fig1_decay_times", "noise.strength=0.1"))
    assert fig1.noise.sigma**2 == pytest.approx(0.1 * 784 / 0.05)


def test_a_nin_at_sigma_zero_trains_exactly_as_without_one(tmp_path):
    common = [
        "dataset=synthetic_sparse",
        "model=mlp",
        "model.widths=[12]",
        "trainer.steps=15",
        "trainer.batch_size=8",
        "trainer.eval_every=5",
        *QUIET,
    ]
    run(compose(*common, "noise=nin", "noise.sigma=0", "noise.resample=epoch"), tmp_path / "nin")
    run(compose(*common, "noise=gd"), tmp_path / "gd")
    keys = ("step", "train/loss", "test/loss", "train/batch_loss")
    rows = [[{k: r.get(k) for k in keys} for r in read_metrics(tmp_path / name)] for name in ("nin", "gd")]
    assert rows[0] == rows[1]


def test_eval_every_counts_epochs_when_asked(tmp_path):
    run(
        compose(
            "trainer.batch_size=10",
            "trainer.steps=null",
            "trainer.epochs=3",
            "trainer.eval_every=1",
            "trainer.eval_unit=epochs",
            *QUIET,
        ),
        tmp_path,
    )
    assert [row["step"] for row in read_metrics(tmp_path)] == [0, 4, 8, 12]  # 40 points, 4 steps per epoch


# -- the linear toy model, its data and App. D's time scales --------------------------------------------------------


def test_scalar_regression_is_y_equals_m_x():
    data = scalar_regression(n_train=20000, n_test=10, input_std=2.0, slope=-3.0, seed=1)
    assert torch.equal(data.train_targets, -3.0 * data.train_inputs) and data.input_shape == (1,)
    assert_std_close(data.train_inputs, 2.0, "x")


def test_linear_toy_starts_at_its_weights_and_refuses_other_sizes():
    model = build_model("linear_toy", (1,), 1, first_weight=0.5, second_weight=-2.0)
    assert model(torch.tensor([[3.0]])).item() == pytest.approx(-3.0)
    with pytest.raises(SettingError, match="model=linear_toy takes one input and one output"):
        build_model("linear_toy", (784,), 10)
    with pytest.raises(SettingError, match="model.widths=\\[2\\]"):
        prepare(compose("model=linear_toy", "model.widths=[2]"))


def test_the_time_scale_probe_gives_appendix_ds_closed_forms():
    cfg = prepare(
        compose(
            "+experiment=levi_fig2_linear_toy",
            "noise.sigma=1.3",
            "model.first_weight=0.7",
            "model.second_weight=-1.6",
            "dataset.n_train=300",
            "dataset.slope=2.5",
            *QUIET,
        )
    )
    experiment = build(cfg)
    probe = experiment.state.probes[0]
    metrics = probe.measure(0).metrics
    x2 = float(experiment.data.train_inputs.double().pow(2).mean())
    assert metrics["tau/noise_theory"] == pytest.approx(1 / (1.3**2 * 1.6**2), rel=1e-5)  # 1/(σ²(w⁽¹⁾)²)
    assert metrics["tau/loss_theory"] == pytest.approx(1 / (2 * x2 * (0.7**2 + 1.6**2)), rel=1e-5)


def test_the_time_scale_probe_matches_a_dense_local_hessian():
    """ŵᵀ⟨H_z⟩ŵ of a tanh MLP with the half-MSE loss against per-sample Hessians with respect to z, computed densely."""
    cfg = prepare(
        compose(
            "dataset=synthetic_sparse",
            "model=mlp",
            "model.widths=[6,5]",
            "model.activation=tanh",
            "noise=nin",
            "noise.sigma=0.8",
            "noise.layer=0",
            "+probes.nin_time_scales.every=1",
            "+probes.nin_time_scales.n_samples=30",
            "trainer.loss=half_mse",
            *QUIET,
        )
    )
    experiment = build(cfg)
    model, probe = experiment.model, experiment.state.probes[0]
    measured = probe.measure(0).metrics["tau/noise_theory"]
    weight = experiment.noise.node.weight.detach().double()
    direction = weight / weight.norm()
    layers = [layer.double() for layer in model.layers]

    def sample_loss(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = z
        for layer in layers[1:]:  # tanh after every hidden layer, then the next layer
            out = layer(torch.tanh(out))
        return 0.5 * (out - target).pow(2).sum()

    curvatures = []
    model.eval()  # ε = 0: NIN's hook on the first layer adds nothing
    with torch.no_grad():
        hidden = layers[0](probe.inputs.double())
    for z, target in zip(hidden, probe.targets.double()):
        hessian = torch.autograd.functional.hessian(lambda v: sample_loss(v, target), z)
        curvatures.append(float(direction @ hessian @ direction))
    assert measured == pytest.approx(1 / (0.8**2 * statistics.fmean(curvatures)), rel=1e-4)


# -- Fashion-MNIST as Levi et al. use it ----------------------------------------------------------------------------


def test_fmnist_full_pools_70k_splits_60_40_and_standardises(fmnist_available):
    data = fmnist_full()
    assert (data.n_train, data.test_inputs.shape[0], data.input_shape) == (42000, 28000, (1, 28, 28))
    assert abs(float(data.train_inputs.mean())) < 1e-4 and float(data.train_inputs.std()) == pytest.approx(1, rel=1e-4)
    again, other = fmnist_full(n_train=100, n_test=50), fmnist_full(n_train=100, seed=1)
    assert torch.equal(again.train_targets, data.train_targets[:100])
    assert not torch.equal(other.train_targets, data.train_targets[:100]), "the seed chooses the split"
    train = {bytes(row.numpy()) for row in data.train_inputs[:2000].flatten(1)}
    assert not any(bytes(row.numpy()) in train for row in data.test_inputs[:2000].flatten(1)), "disjoint shares"


# -- exponential fits, the phase rule and the claims' helpers --------------------------------------------------------


def test_exponential_fits_recover_tau_with_calibrated_errors():
    t = np.arange(0.0, 80.0)
    exact = fit_exponential(t, 2.0 * np.exp(-t / 13.0) + 0.5)
    assert (exact.tau, exact.amplitude, exact.offset) == pytest.approx((13.0, 2.0, 0.5), rel=1e-8)
    rng = np.random.default_rng(0)
    z = []
    for _ in range(200):
        fit = fit_exponential(t, 2.0 * np.exp(-t / 13.0) + 0.5 + rng.normal(0, 0.05, len(t)))
        z.append((fit.tau - 13.0) / fit.tau_stderr)
    assert 0.8 < np.std(z) < 1.2 and abs(np.mean(z)) < 0.3, "standard errors as large as the scatter of τ"
    assert fit_exponential(t, np.ones_like(t)).reason == "flat data"
    assert fit_exponential(t, t).reason == "decay longer than the data"
    assert fit_exponential(t, np.exp(-t / 0.05)).reason == "decay shorter than the sampling"
    assert math.isnan(fit_exponential(t[:3], t[:3]).tau)


def rows(loss, niw, status="completed", accuracy=None) -> pd.DataFrame:
    """A linear toy run (catapult window: its first 500 steps), evaluated every 10 steps."""
    table = pd.DataFrame(
        {
            "step": np.arange(len(loss)) * 10,
            "train/loss": loss,
            "noise/nin_weight_norm": niw,
            "status": status,
            "experiment": "levi_fig2_linear_toy",
        }
    )
    if accuracy is not None:
        table["train/acc"] = accuracy
    return table


def test_the_phase_rule_tells_the_four_phases_apart():
    steps = 40
    fall = np.exp(-np.arange(steps) / 5.0)
    assert run_phase(rows(fall, np.full(steps, 0.1) * (1 - 1e-3 * np.arange(steps)))) == "decoupled"
    assert run_phase(rows(fall, 0.1 * fall)) == "decay"
    catapult = fall.copy()
    catapult[2] = 1.5
    assert run_phase(rows(catapult, 0.1 * fall)) == "catapult"
    growing = 0.1 * fall
    growing[3] = 0.2
    assert run_phase(rows(fall, growing)) == "catapult", "a rising ‖W_NI‖ is a catapult too"
    assert run_phase(rows([*fall[:5], math.nan], 0.1 * fall[:6], "diverged")) == "divergent"
    assert run_phase(rows(fall, 0.1 * fall, accuracy=[0.1] * steps)) == "divergent", "never learns"
    assert run_phase(rows(fall[::-1], 0.1 * fall)) == "divergent", "the loss ends above its start"


def test_the_claims_helpers_reach_each_verdict():
    close = Evidence("a", {0: 0.901, 1: 0.899, 2: 0.900})
    far = Evidence("b", {0: 0.80, 1: 0.81, 2: 0.79})
    assert within(close, Evidence("base", {0: 0.9, 1: 0.9, 2: 0.9}), 0.01).verdict == "holds"
    assert within(far, Evidence("base", {0: 0.9, 1: 0.9, 2: 0.9}), 0.01).verdict == "fails"
    assert within(Evidence("wide", {0: 0.0, 1: 0.02}), 0.0, 0.01).verdict == "inconclusive"
    assert below(Evidence("slope", {0: -1.0, 1: -1.1, 2: -0.9}), 0.0).verdict == "holds"
    assert below(Evidence("slope", {0: 1.0, 1: 1.1, 2: 0.9}), 0.0).verdict == "fails"
    assert unanimous("x", {0: True, 1: True, 2: True}, "ok").verdict == "holds"
    assert unanimous("x", {0: True, 1: True}, "ok").verdict == "inconclusive"  # fewer than 3 decide nothing
    assert unanimous("x", {0: True, 1: False, 2: False}, "ok").verdict == "fails"
    assert unanimous("x", {0: True, 1: False}, "ok").verdict == "inconclusive"
    assert unanimous("x", {0: True}, "ok").verdict == "inconclusive"


# -- every levi_* experiment, from a smoke sweep to its figure ------------------------------------------------------

NARROWED = {"noise.sigma": "0.01,1,16,25", "noise.strength": "0,1e-4,10", "seed": "0,1"}
FMNIST_EXPERIMENTS = ("levi_fig1_decay_times", "levi_fig2_mlp_mse", "levi_fig3_mlp_ce")


def declared_jobs(experiment: str) -> list[list[str]]:
    """The experiment's own sweep (its keys and, narrowed where listed above, its values)."""
    params = compose(f"+experiment={experiment}", return_hydra_config=True).hydra.sweeper.params
    axes = []
    for key, values in params.items():
        if key == "noise.strength" and experiment != "levi_fig1_decay_times":
            chosen = str(values)  # Table 1's four strengths are the figure
        elif key == "seed" and experiment != "levi_fig2_linear_toy":
            chosen = "0"
        else:
            chosen = NARROWED.get(key, str(values))
        axes.append([f"{key}={value}" for value in chosen.split(",")])
    return [list(job) for job in itertools.product(*axes)]


@pytest.fixture(scope="module")
def levi_records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("levi")
    experiments = ["levi_fig2_linear_toy"]
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        experiments += list(FMNIST_EXPERIMENTS)
    for experiment in experiments:
        for number, job in enumerate(declared_jobs(experiment)):
            run(compose(f"+experiment={experiment}", "scale=smoke", *QUIET, *job), root / experiment / str(number))
    return root


# The catapult window of each experiment, as the module docstring of papers/levi states it.
WINDOWS = {
    "levi_fig2_linear_toy": ("step", 500),
    "levi_fig1_decay_times": ("epoch", 3),
    "levi_fig2_mlp_mse": ("epoch", 3),
    "levi_fig3_mlp_ce": ("epoch", 3),
}


def independent_phase(records: list[dict], status: str, experiment: str) -> str:
    """The phase rule of papers/levi, again, on the raw rows."""
    loss = [r.get("train/loss", math.nan) for r in records]
    niw = [r.get("noise/nin_weight_norm", math.nan) for r in records]
    values = [v if isinstance(v, float) else math.nan for v in loss + niw]
    if status == "diverged" or not all(math.isfinite(v) for v in values):
        return "divergent"
    if loss[-1] > loss[0] or ("train/acc" in records[-1] and records[-1]["train/acc"] < 0.2):
        return "divergent"
    unit, length = WINDOWS[experiment]
    early = [r for r in records if r[unit] <= length]
    rise = max(max(r["train/loss"] for r in early) / loss[0], max(r["noise/nin_weight_norm"] for r in early) / niw[0])
    if rise > 1.1:
        return "catapult"
    return "decay" if niw[-1] < 0.5 * niw[0] else "decoupled"


@pytest.mark.parametrize("experiment", ["levi_fig2_linear_toy", *FMNIST_EXPERIMENTS])
def test_each_levi_figure_is_drawn_from_a_smoke_sweep_and_its_json_is_the_records(levi_records, experiment, tmp_path):
    folder = levi_records / experiment
    if not folder.exists():
        pytest.skip("real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    png, data = plot_experiment(experiment, [folder], tmp_path)
    assert png.stat().st_size > 10_000
    figure = json.loads(data.read_text())
    assert "scale=smoke" in figure["caption"]
    runs = {key: (run["summary"], run["rows"]) for key, run in metrics_by_run(folder).items()}
    x_of = {
        "levi_fig2_linear_toy": lambda c: c["noise"]["sigma"],
        "levi_fig1_decay_times": lambda c: c["noise"]["sigma"] ** 2,
    }.get(experiment)
    x_of = x_of or (lambda c: c["noise"]["strength"])
    bar = next(panel for panel in figure["panels"] if panel["y"] == "phase")
    expected: dict[tuple, int] = {}
    for summary, records in runs.values():
        x = float(f"{x_of(summary['config']):.12g}")
        if x > 0:  # the bar's axis is logarithmic: fig1's baseline (c = 0) is not on it
            key = (x, independent_phase(records, summary["status"], experiment))
            expected[key] = expected.get(key, 0) + 1
    drawn = {
        (float(f"{x:.12g}"), series["label"]): n for series in bar["series"] for x, n in zip(series["x"], series["n"])
    }
    assert drawn == expected
    checked = 0
    for panel in figure["panels"]:
        for series in panel["series"]:
            if panel["x"] not in ("step", "epoch"):
                continue
            # Lines average every run of the group while it lasts, diverged ones too (canvas.Canvas.lines).
            members = [
                records
                for summary, records in runs.values()
                if all(_flat(summary["config"]).get(k) == v for k, v in series["config"].items())
            ]
            for x, mean, n in zip(series["x"], series["mean"], series["n"]):
                values = [
                    row[series["metric"]]
                    for records in members
                    for row in records
                    if row[panel["x"]] == x and isinstance(row.get(series["metric"]), float)
                ]
                assert n == len(values) and mean == pytest.approx(statistics.fmean(values), rel=1e-9)
            checked += 1
    assert checked or experiment == "levi_fig1_decay_times"  # its one line panel needs a decay-phase σ² (not at smoke)


def _flat(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def test_every_phase_has_a_colour_and_a_place():
    assert PHASES == ("decoupled", "decay", "catapult", "divergent")


@pytest.mark.paper_scale
def test_the_linear_toy_models_claims_hold_at_the_papers_scale(tmp_path):
    """The whole levi_fig2_linear_toy sweep (50 runs, about 3 minutes on 2 cores) through the CLI, then its claims."""
    from conftest import run_cli

    from noisereg.papers import CLAIMS
    from noisereg.records import load_runs

    result = run_cli(
        "-m", "+experiment=levi_fig2_linear_toy", *QUIET, f"hydra.sweep.dir={tmp_path}", cwd=tmp_path, timeout=1800
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = load_runs([tmp_path])
    verdicts = {c.figure: c.evaluate(runs) for c in CLAIMS if c.experiment == "levi_fig2_linear_toy"}
    assert len(verdicts) == 3 and all(v.verdict == "holds" for v in verdicts.values()), verdicts
