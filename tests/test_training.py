"""The trainer: exact GD/SGD arithmetic, noise protocol in the loop, schedules, reproducibility, records."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose

from noisereg.app import run
from noisereg.data import synthetic_sparse
from noisereg.errors import SettingError
from noisereg.losses import HalfMSELoss
from noisereg.models import MLP
from noisereg.noise import LayerwiseNoise, NoiseMode
from noisereg.train import OptimizerSettings, TrainerSettings, train


def model_and_data(seed: int = 0):
    data = synthetic_sparse(n_train=40, n_test=50, seed=seed)
    model = MLP(
        10, 1, [8], activation="linear", bias=False, init="mean_field", generator=torch.Generator().manual_seed(1)
    )
    return model, data


def clone(model: MLP) -> MLP:
    twin = MLP(10, 1, [8], activation="linear", bias=False, init="mean_field")
    twin.load_state_dict(model.state_dict())
    return twin


def settings(**overrides) -> TrainerSettings:
    base = dict(loss="half_mse", steps=5, eval_every=5, progress_bar=False, optimizer=OptimizerSettings(lr=0.1))
    base.update(overrides)
    return TrainerSettings(**base)


def hand_written_gd(model: MLP, data, steps: int, noise: NoiseMode, lr: float = 0.1) -> None:
    for _ in range(steps):
        model.zero_grad()
        with noise.perturbed():
            HalfMSELoss()(model(data.train_inputs), data.train_targets).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad


def assert_same_parameters(model: MLP, reference: MLP) -> None:
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_full_batch_gd_is_exactly_gradient_descent():
    model, data = model_and_data()
    reference = clone(model)
    train(model, data, NoiseMode(), settings(), log=lambda row: None)
    hand_written_gd(reference, data, 5, NoiseMode())
    assert_same_parameters(model, reference)


def test_layerwise_step_applies_the_perturbed_gradient_to_the_unperturbed_weights():
    model, data = model_and_data()
    reference = clone(model)
    train(model, data, LayerwiseNoise(model, sigma=0.3, seed=7), settings(steps=3, eval_every=3), log=lambda r: None)
    hand_written_gd(reference, data, 3, LayerwiseNoise(reference, sigma=0.3, seed=7))  # same seed: same draws
    assert_same_parameters(model, reference)


def test_cosine_schedule_and_epoch_length():
    model, data = model_and_data()
    rows = []
    result = train(
        model,
        data,
        NoiseMode(),
        settings(steps=None, epochs=3, batch_size=16, eval_every=1, schedule="cosine"),
        log=rows.append,
    )
    assert result.steps == 3 * math.ceil(40 / 16)
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert rows[1]["lr"] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 9)))
    assert rows[-1]["epoch"] == pytest.approx(3.0)


def test_noise_switches_off_at_its_stop_epoch_in_the_loop():
    model, data = model_and_data()
    rows = []
    noise = LayerwiseNoise(model, sigma=0.1, seed=0, stop_epoch=2)
    train(model, data, noise, settings(steps=None, epochs=4, batch_size=20, eval_every=2), log=rows.append)
    assert [r["noise/active"] for r in rows] == [1.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_early_evaluations_come_every_few_steps_up_to_their_end(steps_per_call):
    """A catapult rises and recovers within Levi's first epoch, between evaluations once an epoch: with
    early_eval_every=1 up to epoch 1 (4 steps of 10 of 40 points) rows come at steps 0-4, then at every other epoch,
    in one-step loops and in blocks of steps alike."""
    model, data = model_and_data()
    rows = []
    train(
        model,
        data,
        NoiseMode(),
        settings(
            steps=None,
            epochs=6,
            batch_size=10,
            eval_every=2,
            eval_unit="epochs",
            early_eval_every=1,
            early_eval_until=1,
            steps_per_call=steps_per_call,
        ),
        log=rows.append,
    )
    assert [row["step"] for row in rows] == [0, 1, 2, 3, 4, 8, 16, 24]


def test_mse_on_one_hot_targets_for_classification():
    from noisereg.train.loop import loss_targets

    targets = loss_targets(torch.tensor([2, 0]), "mse", 3)
    assert torch.equal(targets, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert torch.equal(loss_targets(torch.tensor([2, 0]), "cross_entropy", 3), torch.tensor([2, 0]))


@pytest.mark.parametrize(
    "bad, setting",
    [
        (dict(steps=None, epochs=None), "trainer.steps"),
        (dict(schedule="step"), "trainer.schedule"),
        (dict(batch_size=0), "trainer.batch_size"),
        (dict(optimizer=OptimizerSettings(lr=0.1, nesterov=True)), "nesterov"),
        (dict(early_eval_every=2), "trainer.early_eval_until"),
    ],
)
def test_bad_trainer_settings(bad, setting):
    model, data = model_and_data()
    with pytest.raises(SettingError, match=setting):
        train(model, data, NoiseMode(), settings(**bad), log=lambda row: None)


@pytest.mark.parametrize("noise", ["layerwise", "gd_noise", "gni", "nin", "label_noise"])
def test_same_seed_same_records(tmp_path, noise):
    overrides = [
        f"noise={noise}",
        "trainer.steps=30",
        "trainer.batch_size=8",
        "trainer.eval_every=10",
        "trainer.optimizer.momentum=0.9",
        "logger.mode=disabled",
        "seed=3",
    ]
    records = []
    for attempt in ("first", "second"):
        run(compose(*overrides), tmp_path / attempt)
        records.append((tmp_path / attempt / "metrics.jsonl").read_bytes())
    assert records[0] == records[1]
    run(compose(*overrides[:-1], "seed=4"), tmp_path / "other")
    assert (tmp_path / "other" / "metrics.jsonl").read_bytes() != records[0]


def test_gd_and_noise_share_init_and_batch_order_and_sigma_zero_is_gd(tmp_path):
    common = ["trainer.steps=20", "trainer.batch_size=8", "logger.mode=disabled", "trainer.eval_every=10"]
    run(compose("noise=gd", *common), tmp_path / "gd")
    run(compose("noise=layerwise", "noise.sigma=0", *common), tmp_path / "zero")
    gd, zero = (tmp_path / "gd" / "metrics.jsonl").read_text(), (tmp_path / "zero" / "metrics.jsonl").read_text()
    assert gd == zero


def test_bad_settings_write_nothing_but_a_sweep_job_records_why(tmp_path):
    with pytest.raises(SettingError, match="model.activation"):
        run(compose("model.activation=swish", "logger.mode=disabled"), tmp_path / "single")
    assert not (tmp_path / "single").exists()
    summary = run(compose("model.activation=swish", "logger.mode=disabled"), tmp_path / "job", in_sweep=True)
    from noisereg.tracking import read_summary

    assert read_summary(tmp_path / "job") == summary
    assert summary["status"] == "failed" and "model.activation" in summary["reason"]
