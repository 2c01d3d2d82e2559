"""Figures and the claims report, from real smoke sweeps: PNG and JSON exist, the JSON's means equal an independent
computation from metrics.jsonl, diverged runs appear, errors are one line, claims reach each verdict."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, ROOT, compose

from noisereg.app import run
from noisereg.papers import CLAIMS, FIGURES, plot_experiment, write_report
from noisereg.records import load_runs

ORVIETO_FMNIST = ("fig3_fmnist_sigma", "fig4_deep_mlp", "fig7_mlp1", "fig8_mlp2", "fig9_mlp3", "fig10_mlp4")
ORVIETO_CIFAR = ("fig5_cnn", "fig6_resnet", "fig11_toy_cnn", "fig12_wide_cnn")
# Each experiment's own declared sweep, narrowed to these of its values (or its first two) to keep the suite fast.
NARROWED = {"seed": {"0", "1"}, "noise.sigma": {"0", "0.0", "0.05", "0.1"}, "model.widths": {"[10]", "[1000]"}}


def declared_sweep(experiment: str, narrow: bool = True) -> list[list[str]]:
    """The jobs of `python run.py -m +experiment=...`, narrowed (or, narrow=False, all of them): the experiment's own
    sweep params."""
    params = compose(f"+experiment={experiment}", return_hydra_config=True).hydra.sweeper.params
    axes = []
    for key, values in params.items():
        text = str(values)
        choices = text.replace("],[", "]|[").split("|") if "[" in text else text.split(",")
        if narrow and key in NARROWED:
            choices = [c for c in choices if c in NARROWED[key]] or choices[:2]
        axes.append([f"{key}={choice}" for choice in choices])
    return [list(job) for job in itertools.product(*axes)]


@pytest.fixture(scope="module")
def smoke_records(tmp_path_factory, cifar10_root) -> Path:
    root = tmp_path_factory.mktemp("records")
    experiments = ["fig1_variance", "fig2_synthetic", *ORVIETO_CIFAR]
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        experiments += list(ORVIETO_FMNIST)
    for experiment in experiments:
        data = [f"dataset.root={cifar10_root}"] if experiment in ORVIETO_CIFAR else []
        for number, job in enumerate(declared_sweep(experiment)):
            cfg = compose(f"+experiment={experiment}", "scale=smoke", "logger.mode=disabled", *data, *job)
            run(cfg, root / experiment / str(number))
    # A run that diverges: all-parameter noise with a learning rate far too large.
    run(
        compose(
            "+experiment=fig2_synthetic",
            "scale=smoke",
            "logger.mode=disabled",
            "noise=gd_noise",
            "seed=2",
            "model.widths=[50]",
            "trainer.optimizer.lr=60",
        ),
        root / "diverged",
    )
    return root


def metrics_by_run(root: Path) -> dict[str, dict]:
    """metrics.jsonl and summary.json of every run, read with json alone (independent of the figure code)."""
    runs = {}
    for summary_path in root.rglob("summary.json"):
        rows = [json.loads(line) for line in (summary_path.parent / "metrics.jsonl").read_text().splitlines()]
        runs[str(summary_path.parent)] = {"summary": json.loads(summary_path.read_text()), "rows": rows}
    return runs


def check_series_against_records(series: dict, panel: dict, records: dict[str, dict]) -> None:
    """Recompute a line series' per-step means from the raw rows of the runs whose config matches its group."""

    def matches(config: dict) -> bool:
        flat = {}

        def walk(node, prefix=""):
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(value, f"{prefix}{key}.")
                else:
                    flat[prefix + key] = value

        walk(config)
        return all(flat.get(key) == value for key, value in series["config"].items())

    def value(row: dict, config: dict):
        if y == "loss/regularized" and config["noise"]["name"] == "gd":  # Fig. 2 judges GD by Eq. 11 at the runs' σ
            groups = sum(1 for key in row if key.startswith("reg/ggn_trace/"))
            return row["train/loss"] + 0.5 * config["noise"]["sigma"] ** 2 / groups * row["reg/ggn_trace"]
        return row.get(y)

    y = series.get("metric") or panel["y"]  # a panel may hold several metrics (Fig. 2: R and its minimum)
    members = [r for r in records.values() if matches(r["summary"]["config"]) and r["summary"]["status"] != "diverged"]
    for x, mean, n in zip(series["x"], series["mean"], series["n"]):
        values = [value(row, r["summary"]["config"]) for r in members for row in r["rows"] if row["step"] == x]
        values = [v for v in values if isinstance(v, float)]
        assert n == len(values) and mean == pytest.approx(statistics.fmean(values), rel=1e-12), (y, x)


@pytest.mark.parametrize("experiment", ["fig1_variance", "fig2_synthetic", *ORVIETO_FMNIST, *ORVIETO_CIFAR])
def test_each_figure_is_drawn_from_a_smoke_sweep_and_its_json_is_the_records(smoke_records, experiment, tmp_path):
    folder = smoke_records / experiment
    if not folder.exists():
        pytest.skip("real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    png, data = plot_experiment(experiment, [folder], tmp_path)
    assert png.stat().st_size > 10_000
    figure = json.loads(data.read_text())
    assert figure["experiment"] == experiment and "scale=smoke" in figure["caption"]
    records = metrics_by_run(folder)
    checked = 0
    for panel in figure["panels"]:
        assert panel["series"], panel["title"]
        for series in panel["series"]:
            assert series["runs"] >= 2 and all(n >= 1 for n in series["n"])
            if panel["x"] == "step":
                check_series_against_records(series, panel, records)
                checked += 1
    assert checked or experiment in ("fig1_variance", "fig6_resnet")  # points against σ: checked below


def test_a_row_of_panels_without_runs_takes_no_space(smoke_records, tmp_path):
    """Fig. 5 draws a row per CNN: the toy CNN's records alone give a figure one row high, its panels at the top."""
    import matplotlib.image

    toy = tmp_path / "toy"
    for job in (smoke_records / "fig5_cnn").iterdir():
        if job.is_dir() and json.loads((job / "run.json").read_text())["config"]["model"]["name"] == "toy_cnn":
            shutil.copytree(job, toy / job.name)
    both, _ = plot_experiment("fig5_cnn", [smoke_records / "fig5_cnn"], tmp_path / "both")
    one, data = plot_experiment("fig5_cnn", [toy], tmp_path / "one")
    height_both, height_one = (matplotlib.image.imread(png).shape[0] for png in (both, one))
    assert height_one < 0.6 * height_both, (height_one, height_both)  # half of it and the title: 440 of 770 px
    assert {panel["row"] for panel in json.loads(data.read_text())["panels"]} == {0}


def test_fig6_draws_sgd_at_the_baseline_sigma_from_one_mode_and_each_noisy_point_from_its_runs(smoke_records, tmp_path):
    """Fig. 6: σ = 0 of a mode is SGD; one mode's σ = 0 runs are the SGD point at σ = 1e-3 (no seed counted twice)."""
    _, data = plot_experiment("fig6_resnet", [smoke_records / "fig6_resnet"], tmp_path)
    panel = json.loads(data.read_text())["panels"][0]
    records = metrics_by_run(smoke_records / "fig6_resnet")
    finals = {}
    for record in records.values():
        noise = record["summary"]["config"]["noise"]
        finals.setdefault((noise["name"], noise["sigma"]), []).append(record["summary"]["final_metrics"]["test/acc"])
    seeds = len(finals[("layerwise", 0.0)])
    assert seeds >= 2 and len(finals[("gd_noise", 0.0)]) == seeds
    by_label = {series["label"]: series for series in panel["series"]}
    sgd = next(series for label, series in by_label.items() if "SGD" in label and "noise" not in label)
    assert sgd["x"] == [pytest.approx(1e-3)] and sgd["n"] == [seeds]
    assert sgd["mean"][0] == pytest.approx(statistics.fmean(finals[("gd_noise", 0.0)]), rel=1e-12)
    noisy = [(name, sigma) for name, sigma in finals if sigma > 0]
    assert noisy and sum(len(series["x"]) for series in panel["series"]) == 1 + len(noisy)
    for series in panel["series"]:
        for x, mean in zip(series["x"], series["mean"]):
            if series is not sgd:
                name = next(
                    name
                    for name, sigma in noisy
                    if sigma == pytest.approx(x)
                    and statistics.fmean(finals[(name, sigma)]) == pytest.approx(mean, rel=1e-12)
                )
                assert name in ("gd_noise", "layerwise")


def test_fig1_points_are_the_final_monte_carlo_values(smoke_records, tmp_path):
    _, data = plot_experiment("fig1_variance", [smoke_records / "fig1_variance"], tmp_path)
    panel = json.loads(data.read_text())["panels"][0]
    monte_carlo = next(s for s in panel["series"] if s["label"] == "Monte Carlo")
    records = metrics_by_run(smoke_records / "fig1_variance")
    for width, mean in zip(monte_carlo["x"], monte_carlo["mean"]):
        finals = [
            r["rows"][-1]["theory/R_sigma_mc"]
            for r in records.values()
            if r["summary"]["config"]["noise"]["name"] == "gd_noise"
            and r["summary"]["config"]["model"]["widths"] == [int(width)]
        ]
        assert mean == pytest.approx(statistics.fmean(finals), rel=1e-12)


def test_a_diverged_run_is_marked_and_counted_not_dropped(smoke_records, tmp_path):
    runs = load_runs([smoke_records / "fig2_synthetic", smoke_records / "diverged"])
    _, data = plot_experiment("fig2_synthetic", [], tmp_path, runs=runs)
    panel = json.loads(data.read_text())["panels"][0]  # width 5 (smoke), train loss
    # Its learning rate differs, so it is a condition of its own: its own series, never pooled into the sweep's.
    noisy = [s for s in panel["series"] if s["config"]["noise.name"] == "gd_noise"]
    everything = next(s for s in noisy if s["diverged"])
    assert len(everything["diverged"]) == 1 and everything["diverged"][0]["run"].endswith("diverged")
    assert everything["runs"] == 1 and "trainer.optimizer.lr=60" in everything["label"]
    assert [s["runs"] for s in noisy if s is not everything] == [2]
    stop = everything["diverged"][0]
    assert stop["x"] < 20 and math.isfinite(stop["value"])


def test_plot_errors_are_one_line(smoke_records, tmp_path):
    def plot(*arguments):
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "plot.py"), *arguments],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )

    missing = plot("fig4_deep_mlp", str(smoke_records / "fig2_synthetic"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    jobs = len(declared_sweep("fig2_synthetic"))
    assert "no runs of fig4_deep_mlp" in missing.stderr and f"found: fig2_synthetic ({jobs} runs)" in missing.stderr
    no_curvature = tmp_path / "no-curvature"
    run(
        compose("+experiment=fig2_synthetic", "scale=smoke", "logger.mode=disabled", "curvature.every=null"),
        no_curvature / "0",
    )
    unlogged = plot("fig2_synthetic", str(no_curvature))
    assert unlogged.returncode == 2 and unlogged.stderr.count("\n") == 1
    assert "loss/regularized" in unlogged.stderr and "curvature.every" in unlogged.stderr
    run(compose("+experiment=fig2_synthetic", "logger.mode=disabled", "trainer.steps=3"), no_curvature / "paper")
    mixed = plot("fig2_synthetic", str(no_curvature))
    assert mixed.returncode == 2 and "mixed scales" in mixed.stderr and "smoke" in mixed.stderr


def fake_run(folder: Path, seed: int, mode: str, test_acc: float) -> None:
    """A run's records written by hand, to steer a claim's statistic (the verdict logic is what is tested)."""
    folder.mkdir(parents=True)
    config = {
        "name": "fig7_mlp1",
        "seed": seed,
        "noise": {"name": mode, "sigma": 0.05},
        "scale": {"name": "paper"},
        "model": {"name": "mlp", "widths": [500, 500, 500]},
    }
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 10, "config": config}))
    rows = [{"step": 0, "test/acc": 0.1}, {"step": 10, "test/acc": test_acc}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize(
    "layerwise, all_parameters, verdict",
    [
        ([0.80, 0.81, 0.82], [0.70, 0.72, 0.71], "holds"),
        ([0.70, 0.72, 0.71], [0.80, 0.81, 0.82], "fails"),
        ([0.80, 0.70, 0.82], [0.79, 0.78, 0.75], "inconclusive"),  # within the seeds' spread
        ([0.90], [0.50], "inconclusive"),  # one seed
    ],
)
def test_a_claim_reaches_each_verdict(tmp_path, layerwise, all_parameters, verdict):
    for seed, (a, b) in enumerate(zip(layerwise, all_parameters)):
        fake_run(tmp_path / f"layerwise{seed}", seed, "layerwise", a)
        fake_run(tmp_path / f"gd_noise{seed}", seed, "gd_noise", b)
    (claim,) = [c for c in CLAIMS if c.experiment == "fig7_mlp1" and "outperforms" in c.quote]
    result = claim.evaluate(load_runs(tmp_path))
    assert result.verdict == verdict, result.numbers
    if verdict != "inconclusive" or len(layerwise) > 1:
        assert "n=3" in result.numbers and "paired by seed" in result.rule


def test_the_report_lists_every_claim_with_a_verdict_or_not_run(smoke_records, tmp_path):
    report = write_report([smoke_records / "fig1_variance", smoke_records / "fig2_synthetic"], tmp_path / "REPORT.md")
    claims_table = report.read_text().split("## Runs")[0].splitlines()
    table = [line for line in claims_table if line.startswith("| ") and not line.startswith("| paper")]
    assert len(table) == len(CLAIMS)  # every paper's claims, those without records as not run
    fig2 = [line for line in table if "(fig2_synthetic)" in line]
    assert fig2 and all("| smoke |" in line for line in fig2)
    assert all(any(f"**{v}" in line for v in ("holds", "fails", "inconclusive", "not in regime")) for line in fig2)
    assert "[Fig. 2](fig2_synthetic/fig2_synthetic.png)" in fig2[0] and (tmp_path / "fig2_synthetic").is_dir()
    assert all("**not run**" in line for line in table if "(fig6_resnet)" in line)
    # The runs table: one line per group (mode × width), its seeds' statuses and final train loss from the records.
    records = metrics_by_run(smoke_records / "fig2_synthetic")
    runs = [line for line in report.read_text().splitlines() if line.startswith("| fig2_synthetic | smoke |")]
    groups = {
        (r["summary"]["config"]["noise"]["name"], tuple(r["summary"]["config"]["model"]["widths"]))
        for r in records.values()
    }
    assert len(runs) == len(groups)
    for line in runs:
        mode = line.split("noise.name=")[1].split(",")[0].split(" ")[0]
        width = line.split("model.widths=(")[1].split(",")[0]
        finals = [
            r["rows"][-1]["train/loss"]
            for r in records.values()
            if r["summary"]["config"]["noise"]["name"] == mode
            and r["summary"]["config"]["model"]["widths"][0] == int(width)
            and r["summary"]["status"] == "completed"
        ]
        statuses = [
            r["summary"]["status"]
            for r in records.values()
            if r["summary"]["config"]["noise"]["name"] == mode
            and r["summary"]["config"]["model"]["widths"][0] == int(width)
        ]
        assert f"{len(finals)} completed" in line and f"| {statistics.fmean(finals):.4g} ± " in line
        assert len(statuses) == len(finals) + ("diverged" in line)


def test_every_figure_has_a_claim_and_a_registered_experiment():
    experiments = {
        str(p.relative_to(CONFIG_DIR / "experiment").with_suffix(""))
        for p in (CONFIG_DIR / "experiment").rglob("*.yaml")
    }
    orvieto_experiments = {e.partition("/")[2] for e in experiments if e.startswith("orvieto/")}  # named as the files
    assert orvieto_experiments <= set(FIGURES), "every Orvieto experiment has its figure"
    assert {c.experiment for c in CLAIMS} <= set(FIGURES)


def drawn_canvas(experiment: str, folder: Path):
    """The experiment's figure drawn on a canvas, before it is saved (and closed): its axes to inspect."""
    from noisereg.figures.canvas import Canvas
    from noisereg.figures.grouping import group_keys, runs_of

    runs = runs_of(experiment, [folder])
    canvas = Canvas(FIGURES[experiment], "", group_keys(runs))
    FIGURES[experiment].draw(runs, canvas)
    return canvas, runs


def test_a_panels_axis_names_its_first_series_and_a_points_legend_counts_per_point(smoke_records):
    """Fig. 2's regularised-loss panels draw the closed-form minimum after the loss: the y axis stays the loss's.
    Fig. 1's points are means over the runs at each width: the legend counts those (seeds), not all the runs."""
    canvas, _ = drawn_canvas("fig2_synthetic", smoke_records / "fig2_synthetic")
    assert canvas.axes[1, 0].get_ylabel() == "loss/regularized"
    assert [s["metric"] for s in canvas.panels[(1, 0)]["series"]][-1] == "theory/regularized_minimum"
    canvas, runs = drawn_canvas("fig1_variance", smoke_records / "fig1_variance")
    legend = [text.get_text() for text in canvas.axes[0, 0].get_legend().get_texts()]
    chosen = runs[runs["noise.name"] == "gd_noise"]
    seeds = chosen.groupby(chosen["model.widths"].map(str))["run"].nunique()
    assert seeds.nunique() == 1 and chosen["run"].nunique() > seeds.iloc[0]
    assert any(f"(n={seeds.iloc[0]} per point)" in text for text in legend), legend
