"""Every experiment config composes and runs a few steps at scale=smoke (one test over the experiment/ folder)."""

from __future__ import annotations

import pytest
import yaml
from conftest import CONFIG_DIR, compose, run_cli_in_process

from noisereg.app import run
from noisereg.tracking import read_metrics

PAPERS = ("orvieto", "camuto", "levi", "blanc")
# Every experiment file, wherever it sits under conf/experiment/: `experiment=<paper>/<figure>`.
EXPERIMENTS = sorted(
    str(p.relative_to(CONFIG_DIR / "experiment").with_suffix("")) for p in (CONFIG_DIR / "experiment").rglob("*.yaml")
)
# Each one's `name:`: its records folder (results/runs/<name>/) and the old form, `+experiment=<name>`.
NAMES = {e: yaml.safe_load((CONFIG_DIR / "experiment" / f"{e}.yaml").read_text())["name"] for e in EXPERIMENTS}


def test_the_experiment_folder_is_not_empty():
    assert {
        "orvieto/fig2_synthetic",
        "orvieto/fig3_fmnist_sigma",
        "orvieto/fig4_deep_mlp",
        "orvieto/fig7_mlp1",
        "orvieto/fig10_mlp4",
        "camuto/fig2_remainder",
        "levi/fig2_linear_toy",
        "blanc/thm3_single_point",
    } <= set(EXPERIMENTS)


def test_the_experiments_are_grouped_by_paper():
    """conf/experiment/<paper>/<figure>.yaml; a paper's own groups and shared bases in conf/<paper>/; each `name:` the
    paper's prefix (none for Orvieto's) and the file's name, unique."""
    for experiment in EXPERIMENTS:
        paper, _, figure = experiment.partition("/")
        assert paper in PAPERS and "/" not in figure, experiment
        assert NAMES[experiment] == (figure if paper == "orvieto" else f"{paper}_{figure}"), experiment
    assert len(set(NAMES.values())) == len(NAMES)
    assert not list(CONFIG_DIR.glob("experiment/*.yaml")) and not (CONFIG_DIR / "base").exists()
    for group in (
        "orvieto/fig4_width",
        "orvieto/fig5_model",
        "camuto/fig3_model",
        "camuto/task",
        "blanc/relu_run",
        "orvieto/base",
        "camuto/base",
        "levi/base",
        "blanc/base",
    ):
        assert list((CONFIG_DIR / group).glob("*.yaml")), group


def test_every_old_experiment_name_translates_to_its_file():
    """The older command, `+experiment=<name>` (the records' folder name), is translated to
    `experiment=<paper>/<figure>` for every experiment (noisereg.config.translate_overrides)."""
    from noisereg.config import translate_overrides

    for experiment in EXPERIMENTS:
        assert translate_overrides([f"+experiment={NAMES[experiment]}"]) == [f"experiment={experiment}"]


# One experiment a paper: the translation is one rule, composing both forms costs a second or more each.
ONE_A_PAPER = sorted({experiment.split("/")[0]: experiment for experiment in EXPERIMENTS}.values())


@pytest.mark.parametrize("experiment", ONE_A_PAPER)
def test_an_experiment_composes_by_its_file_and_by_its_old_name_alike(experiment):
    """`experiment=<paper>/<figure>` composes, and the older `+experiment=<name>` composes to the same config, its
    sweep included."""
    new = compose(f"experiment={experiment}", return_hydra_config=True)
    old = compose(f"+experiment={NAMES[experiment]}", return_hydra_config=True)
    assert new.name == NAMES[experiment] and new.hydra.runtime.choices.experiment == experiment
    assert {k: v for k, v in new.items() if k != "hydra"} == {k: v for k, v in old.items() if k != "hydra"}
    assert new.hydra.sweeper.params == old.hydra.sweeper.params


def test_the_translation_keeps_what_it_does_not_rename():
    from noisereg.config import translate_overrides

    assert translate_overrides(
        [
            "-m",
            "+experiment=fig1_variance,camuto_fig4_fourier",
            "fig4_width=wide",
            "camuto_fig3_model=deep_mlp",
            "noise=gd",
            "+experiment=orvieto/fig6_resnet",
            "experiment=fig99",
            "scale=smoke",
            "seed=0,1",
            "experiment=?",
        ]
    ) == [
        "-m",
        "experiment=orvieto/fig1_variance,camuto/fig4_fourier",
        "orvieto/fig4_width=wide",
        "camuto/fig3_model=deep_mlp",
        "noise=gd",
        "experiment=orvieto/fig6_resnet",
        "experiment=fig99",
        "scale=smoke",
        "seed=0,1",
        "experiment=?",
    ]


@pytest.mark.parametrize(
    "arguments",
    [["+experiment=fig99"], ["experiment=orvieto/fig99", "scale=smoke"], ["-m", "experiment=fig6_resnet,fig99"]],
)
def test_an_unknown_experiment_is_one_line_naming_the_options(arguments, tmp_path, capsys, monkeypatch):
    result = run_cli_in_process(*arguments, cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "is unknown; choose one of: " in line and "fig99" in line, line
    assert all(experiment in line for experiment in EXPERIMENTS), line
    assert not any(tmp_path.iterdir())


def test_the_experiment_options_are_listed_by_their_files(tmp_path, capsys, monkeypatch):
    for asked in ("experiment=?", "+experiment=?"):
        result = run_cli_in_process(asked, cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
        assert result.returncode == 0
        assert result.stdout.split()[-len(EXPERIMENTS) :] == EXPERIMENTS, result.stdout
    result = run_cli_in_process("fig4_width=?", cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    assert result.returncode == 0 and result.stdout.split()[-2:] == ["narrow", "wide"], result.stdout


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_at_smoke_scale(experiment, tmp_path, request):
    overrides = [f"experiment={experiment}", "scale=smoke", "logger.mode=disabled"]
    cfg = compose(*overrides)
    if cfg.dataset.name.startswith("fmnist"):
        request.getfixturevalue("fmnist_available")
    if cfg.dataset.name == "cifar10":  # the fixture in the real layout: real CIFAR-10 cannot be had here
        cfg = compose(*overrides, f"dataset.root={request.getfixturevalue('cifar10_root')}")
    assert cfg.name == NAMES[experiment]
    summary = run(cfg, tmp_path)
    assert summary["status"] == "completed", summary.get("reason")
    # A batched job (trainer.members=N: Blanc Figs 2-3) writes a run directory per member.
    members = summary.get("members", [{**summary, "directory": tmp_path}])
    assert len(members) == cfg.trainer.members
    for member in members:
        assert member["status"] == "completed", member.get("reason")
        resolved = member["config"]
        assert resolved["scale"]["name"] == "smoke"
        if "widths" in resolved["model"]:  # (models without hidden widths: matrix sensing, Blanc's 1-D net)
            assert max(resolved["model"]["widths"]) <= resolved["scale"]["max_width"]
        rows = read_metrics(member["directory"])
        assert rows[-1]["step"] == member["steps"] > 0
        assert all(key in rows[-1] for key in ("train/loss", "test/loss", "params/l2_norm"))
        if cfg.dataset.name == "cifar10":  # what Figs 5, 6, 11 and 12 plot, at the end and over training
            assert all(key in row for row in (rows[0], rows[-1]) for key in ("test/acc", "train/acc", "hessian/trace"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_declares_its_sweep(experiment):
    cfg = compose(f"experiment={experiment}", return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert "noise" in params, "a figure's sweep covers noise modes"
    assert "seed" in params or cfg.trainer.members > 1, "and seeds: swept, or as the members of each job"


def test_smoke_keeps_depth_and_width_ratios():
    paper = compose("experiment=orvieto/fig4_deep_mlp", "orvieto/fig4_width=narrow")
    from noisereg.app import prepare

    smoke = prepare(compose("experiment=orvieto/fig4_deep_mlp", "orvieto/fig4_width=narrow", "scale=smoke"))
    assert len(smoke.model.widths) == len(paper.model.widths) == 5
    fig2 = [
        prepare(compose("+experiment=fig2_synthetic", f"model.widths=[{w}]", "scale=smoke")).model.widths[0]
        for w in (50, 300)
    ]
    assert fig2[0] < fig2[1], "the narrow/wide contrast survives scale=smoke"
    assert smoke.trainer.steps <= smoke.scale.max_steps and smoke.dataset.n_train <= smoke.scale.max_train


def test_slurm_preset_composes_into_the_submitit_slurm_launcher():
    cfg = compose(
        "+experiment=fig2_synthetic", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", return_hydra_config=True
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.array_parallelism == 32
    assert launcher.max_num_timeout > 0, "a job that hits its time limit is requeued and resumes"
    assert "gres" not in launcher or launcher.gres is None


def test_the_fmnist_figures_differ_from_their_shared_base_only_where_the_paper_does():
    """Figs 7-10 are one base (conf/orvieto/base/fmnist_mlp.yaml) plus widths, σ and lr (Orvieto App. F.1); Figs 7
    and 9 also their length (3000 steps: GD fits the subset by then, not by 2000)."""
    expected = {
        "fig7_mlp1": ([500] * 3, 0.05, 0.005, 3000),
        "fig8_mlp2": ([5000] * 3, 0.1, 0.005, 2000),
        "fig9_mlp3": ([1000] * 5, 0.1, 0.005, 3000),
        "fig10_mlp4": ([5000] * 5, 0.05, 0.001, 2000),
    }
    for experiment, (widths, sigma, lr, steps) in expected.items():
        cfg = compose(f"+experiment={experiment}")
        assert (list(cfg.model.widths), cfg.noise.sigma, cfg.trainer.optimizer.lr) == (widths, sigma, lr)
        assert (cfg.dataset.name, cfg.trainer.loss, cfg.trainer.steps, cfg.curvature.every) == (
            "fmnist_subset",
            "cross_entropy",
            steps,
            100,
        )


def test_every_registered_option_composes_and_checks_its_settings():
    from noisereg.app import prepare
    from noisereg.config import REGISTERED_GROUPS

    for group, registry in REGISTERED_GROUPS.items():
        for name in registry.names():
            cfg = compose(f"{group}={name}")
            assert cfg[group].name == name
    for name in REGISTERED_GROUPS["noise"].names():
        cfg = prepare(compose(f"noise={name}", "noise.stop_step=3", "noise.stop_epoch=1"))
        assert (cfg.noise.stop_step, cfg.noise.stop_epoch) == (3, 1), "every mode takes stop_step and stop_epoch"


def test_unknown_registry_names_list_the_choices():
    from noisereg.errors import SettingError
    from noisereg.registry import NOISE_MODES

    with pytest.raises(
        SettingError, match="noise=shake is unknown; choose one of: gd, gd_noise, gni, gni_explicit, label_noise"
    ):
        NOISE_MODES.entry("shake")


def test_the_cifar_figures_follow_the_paper():
    """Figs 5/11/12 and 6 (Orvieto Sec. 5, App. F.2): models, learning rates, batch sizes, σ, noise stop, sweeps."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from noisereg.config import register_with_hydra

    expected = {
        "fig11_toy_cnn": ("toy_cnn", 0.001),
        "fig12_wide_cnn": ("wide_cnn", 0.005),
        "fig5_cnn": ("toy_cnn", 0.001),
    }
    for experiment, (model, lr) in expected.items():
        cfg = compose(f"+experiment={experiment}")
        trainer = cfg.trainer
        assert (cfg.model.name, trainer.optimizer.lr, trainer.batch_size, cfg.noise.sigma) == (model, lr, 1024, 0.05)
        assert (cfg.dataset.name, cfg.dataset.n_train, cfg.dataset.augment) == ("cifar10", None, True)
    wide = compose("experiment=orvieto/fig5_cnn", "orvieto/fig5_model=wide")
    assert (wide.model.name, wide.trainer.optimizer.lr) == ("wide_cnn", 0.005)
    fig6 = compose("+experiment=fig6_resnet")
    trainer = fig6.trainer
    assert (fig6.model.name, trainer.batch_size, trainer.epochs, trainer.optimizer.lr) == ("resnet18", 128, 150, 0.01)
    assert (trainer.optimizer.momentum, trainer.optimizer.weight_decay, fig6.noise.stop_epoch) == (0.9, 5e-4, 135)
    assert trainer.schedule == "cosine"
    assert (fig6.curvature.method, fig6.curvature.n_samples, fig6.trainer.checkpoint_unit) == ("exact", 5000, "epochs")
    register_with_hydra()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        sweep = hydra_compose(
            config_name="config", overrides=["experiment=orvieto/fig6_resnet"], return_hydra_config=True
        )
    params = sweep.hydra.sweeper.params
    assert params["noise"] == "gd_noise,layerwise" and params["noise.sigma"].split(",")[0] == "0.0", "SGD is σ = 0"
