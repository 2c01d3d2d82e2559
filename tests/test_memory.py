"""The memory check (noisereg/memory.py): parameters and the activations of the largest batch, in-process."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import compose
from omegaconf import OmegaConf

import noisereg.memory as memory
from noisereg.app import build, prepare
from noisereg.errors import SettingError
from noisereg.models.mlp import MLP
from noisereg.registry import DATASETS, MODELS

LIMIT = 6 * 2**30  # a 6 GB machine


@pytest.fixture
def six_gigabytes(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: LIMIT)


@pytest.fixture(scope="module")
def default_job():
    return compose("logger.mode=disabled")


def with_settings(cfg, *overrides: str):
    """`cfg` with plain `key=value` overrides, prepared (one Hydra composition per test would cost 0.2 s each)."""
    cfg = copy.deepcopy(cfg)
    for override in overrides:
        key, value = override.split("=", 1)
        OmegaConf.update(cfg, key, yaml.safe_load(value))
    return prepare(cfg)


def on_meta(cfg):
    """The job's data and its model on the meta device, as `build` checks them."""
    data = DATASETS.build(OmegaConf.to_container(cfg.dataset))
    with torch.device("meta"):
        return MODELS.build(
            OmegaConf.to_container(cfg.model), input_shape=data.input_shape, num_outputs=data.num_outputs
        ), data


@pytest.mark.parametrize(
    "activation, outputs",
    [
        ("relu", [50, 50, 30, 30, 3]),  # each Linear's output and each ReLU's
        ("linear", [50, 30, 3]),  # Identity passes its input through: counted once
    ],
)
def test_activation_elements_of_a_small_mlp_are_counted_by_hand(activation, outputs):
    with torch.device("meta"):
        model = MLP(2 * 5, 3, [50, 30], activation=activation)
    # The (2, 5) input is flattened to 10 features by a view: not a second tensor.
    inputs, counted = memory.activation_elements(model, (2, 5))
    assert inputs == 10 and sorted(counted) == sorted(outputs)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        # The default job (40 training, 1000 test points in R^10, here widths [50, 30] linear, 1 output): full-batch
        # training keeps 10 + 2·(50 + 30 + 1) = 172 numbers per point, evaluation holds 10 + 50 + 30 = 90 at a time.
        ([], (1000 * 90 * 4, "a 1000-example evaluation batch", "trainer.eval_batch_size")),
        (["trainer.eval_batch_size=10"], (40 * 172 * 4, "a 40-example training batch", "trainer.batch_size")),
        (
            ["trainer.eval_batch_size=10", "trainer.batch_size=10", "curvature.every=1", "curvature.method=hutchinson"],
            (40 * 172 * 4, "the 40-example curvature subset", "curvature.n_samples"),
        ),
        (
            [
                "trainer.eval_batch_size=10",
                "trainer.batch_size=10",
                "curvature.every=1",
                "curvature.method=exact",
                "curvature.chunk_size=30",
            ],
            (30 * 172 * 4, "a 30-example curvature chunk", "curvature.chunk_size"),
        ),
    ],
)
def test_activation_bytes_are_those_of_the_largest_batch(default_job, overrides, expected):
    cfg = with_settings(default_job, "model.widths=[50,30]", *overrides)
    model, data = on_meta(cfg)
    with torch.device("meta"):
        assert memory.activation_bytes(model, data, cfg) == expected


def test_a_model_whose_evaluation_does_not_fit_is_refused_in_one_line(six_gigabytes):
    cfg = prepare(compose("model.widths=[2000000]", "logger.mode=disabled"))  # as `python run.py` composes it
    assert memory.training_bytes(2_000_000 * (10 + 1), cfg) < LIMIT, "its parameters alone fit: activations do not"
    with pytest.raises(SettingError) as raised:
        build(cfg)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in (
        "model.widths=[2000000]",
        "GB",
        "1000-example evaluation batch",
        "smaller widths",
        "trainer.eval_batch_size",
        "scale=smoke",
    ):
        assert fragment in message, message


def test_a_model_whose_parameters_do_not_fit_is_not_told_to_shrink_batches(default_job, six_gigabytes):
    with pytest.raises(SettingError, match=r"model.widths=\[100000, 100000\].*GB.*use smaller widths or scale=smoke"):
        build(with_settings(default_job, "model.widths=[100000,100000]"))


def test_the_default_job_is_built(default_job, six_gigabytes):
    assert build(with_settings(default_job, "model.widths=[50]")).summary()["n_parameters"] == 10 * 50 + 50


def test_a_smaller_evaluation_batch_fits(default_job, six_gigabytes):
    cfg = with_settings(default_job, "model.widths=[2000000]", "trainer.eval_batch_size=100")
    model, data = on_meta(cfg)
    with torch.device("meta"):
        memory.check_fits(model, data, cfg, torch.device("cpu"))
