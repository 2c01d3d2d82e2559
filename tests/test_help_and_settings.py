"""Probe settings are checked whether or not the probe is switched on; scale=smoke says that it switches
trainer.compile off; `python run.py --help` lists the groups a user picks from (conf/hydra/help/noisereg.yaml)."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import compose, run_cli
from omegaconf import DictConfig, OmegaConf

from noisereg import config
from noisereg.app import prepare
from noisereg.config import validate
from noisereg.errors import SettingError
from noisereg.probes import PredictionsProbe, ProbeSettings
from noisereg.registry import PROBES

# (override, what the one-line error says): each names the setting, its value and what it must be.
BAD_PROBE_SETTINGS = [
    (
        "+probes.predictions.split=validation",
        "probes.predictions.split='validation' is unknown; choose one of ['train', 'test']",
    ),
    ("+probes.predictions.n_samples=0", "probes.predictions.n_samples=0 must be >= 1"),
    ("+probes.calibration.split=val", "probes.calibration.split='val' is unknown; choose one of ['train', 'test']"),
    ("+probes.calibration.bins=0", "probes.calibration.bins=0 must be >= 1"),
    ("+probes.fourier.frequencies=[0,5]", "probes.fourier.frequencies=[0, 5] must be a non-empty list"),
    (
        "+probes.function_1d.saved_points=1",
        "probes.function_1d.saved_points=1 must lie in [2, probes.function_1d.grid_points=4001]",
    ),
    ("+probes.label_noise_regularizer.n_samples=0", "probes.label_noise_regularizer.n_samples=0 must be >= 1, or null"),
    ("+probes.layer_statistics.n_samples=0", "probes.layer_statistics.n_samples=0 must be >= 1"),
    ("+probes.nin_time_scales.n_samples=0", "probes.nin_time_scales.n_samples=0 must be >= 1"),
    ("+probes.remainder.draws=3", "probes.remainder.draws=3 must be an even number >= 2"),
    ("+probes.remainder.draws_per_pass=1", "probes.remainder.draws_per_pass=1 must be >= 2"),
    ("+probes.matrix_recovery.unit=days", "probes.matrix_recovery.unit='days' is unknown; choose steps or epochs"),
]


@pytest.fixture(scope="module")
def default_config() -> DictConfig:
    return compose("logger.mode=disabled")


def overridden(cfg: DictConfig, *overrides: str) -> DictConfig:
    """`cfg` with `key=value` overrides (values parsed as YAML, as Hydra does), without composing again (0.3 s)."""
    return OmegaConf.merge(
        OmegaConf.create(OmegaConf.to_container(cfg)), OmegaConf.from_dotlist([o.lstrip("+") for o in overrides])
    )


def setting_error(cfg: DictConfig) -> str:
    with pytest.raises(SettingError) as raised:
        validate(cfg)
    message = str(raised.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("override, expected", BAD_PROBE_SETTINGS, ids=[o for o, _ in BAD_PROBE_SETTINGS])
def test_a_probes_settings_are_checked_while_its_every_is_unset(default_config, override, expected):
    assert expected in setting_error(overridden(default_config, override))


def test_a_switched_on_probe_gives_the_same_one_line_error(default_config):
    off = setting_error(overridden(default_config, "probes.predictions.split=validation"))
    on = setting_error(overridden(default_config, "probes.predictions.split=validation", "probes.predictions.every=5"))
    assert off == on
    with pytest.raises(SettingError) as built:  # the probe built directly (no config) checks the same way
        PredictionsProbe(None, every=5, unit="steps", split="validation", n_samples=4)
    assert str(built.value) == off


def test_every_probes_default_settings_pass_and_each_probe_with_settings_checks_them(default_config):
    cfg = validate(overridden(default_config, *(f"probes.{name}.unit=steps" for name in PROBES.names())))
    assert sorted(cfg.probes) == PROBES.names()
    for name in PROBES.names():
        assert cfg.probes[name].every is None
        schema = PROBES.entry(name).schema
        own = {f.name for f in dataclasses.fields(schema)} - {f.name for f in dataclasses.fields(ProbeSettings)}
        if own - {"seed"}:  # settings of its own that can be wrong: its schema checks them, not its constructor
            assert schema.check is not ProbeSettings.check, f"probes.{name} ({sorted(own)}) has no settings check"


def test_probes_set_as_a_whole_is_one_line_listing_the_probes(default_config):
    message = setting_error(compose("probes=?"))  # `python run.py probes=?`, as Hydra composes it
    assert message.startswith("probes=? is not how probes are set") and "+probes.predictions.every=100" in message
    assert all(name in message for name in PROBES.names())


def test_scale_smoke_says_once_that_it_switches_compile_off(default_config, capsys, monkeypatch):
    monkeypatch.setattr(config, "_NOTED", set())
    smoke = compose("trainer.compile=true", "scale=smoke", "logger.mode=disabled")
    assert prepare(smoke).trainer.compile is False
    prepare(smoke)  # run.py's check before Hydra starts and the job itself prepare the same config
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "noisereg: scale=smoke runs eager: trainer.compile=true is switched off "
        "(scale=paper, cpu or cpu_quarter keeps it)"
    ]
    assert prepare(overridden(default_config, "trainer.compile=true")).trainer.compile is True  # scale=paper
    assert prepare(overridden(smoke, "trainer.compile=false")).trainer.compile is False
    assert capsys.readouterr().err == "", "nothing to say where nothing is switched off"


def test_help_lists_the_groups_a_user_picks_from_and_not_the_internal_ones(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "python run.py experiment=<paper>/<figure>" in text
    assert "python run.py -m experiment=<paper>/<figure>" in text
    assert "+experiment=fig6_resnet" in text, "the older form, which still works, is named"
    assert "docs/" in text and "--cfg job" in text and "<group>=?" in text
    for group in (
        "experiment",
        "dataset",
        "model",
        "noise",
        "trainer",
        "curvature",
        "logger",
        "scale",
        "probes",
        "hydra/launcher",
        "orvieto/fig4_width",
        "camuto/fig3_model",
    ):
        assert f"\n  {group} " in text, f"{group} is not listed"
    for option in (
        "orvieto/fig2_synthetic",
        "blanc/thm3_single_point",
        "gd_noise",
        "smoke",
        "predictions",
        "remainder",
        "submitit_local",
        "paper (now)",
    ):
        assert option in text
    for internal in ("_schema", "cpu_budget", "base:", "orvieto_fmnist_mlp", "$"):
        assert internal not in text, f"{internal!r} in the help"
    assert not any(tmp_path.iterdir()), "--help writes nothing"
