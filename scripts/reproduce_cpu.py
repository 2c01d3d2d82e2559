"""Regenerate results/ on a CPU: run every experiment that fits, draw its figure, check the claims.

    python scripts/reproduce_cpu.py [--fresh] [--paper orvieto ...] [--only fig2_synthetic ...]
    (make reproduce-cpu runs it with --fresh)

Each experiment's sweep runs at the scale listed below (paper where a 2-core machine can afford it, else
scale=cpu) with the entry's overrides, into results/runs/<experiment>/: the records, committed in the thinned form
of noisereg/tracking/evidence.py, which each sweep is brought to as it finishes (so `git status results/` after a
fresh reproduction lists every record that came out differently). An override
`+cpu_budget=<name>` (conf/cpu_budget/<name>.yaml) says how that experiment shrinks at scale=cpu (fewer seeds, draws
or steps); its sweep then goes into results/runs/<experiment>/<name>/, so one experiment can run under several
budgets (Camuto's Fig. 3: the MLP and the CNN); likewise an entry that fixes `orvieto/fig4_width` (Fig. 4: a
folder per net, so that each can run at its own scale). Launched again without --fresh it skips the jobs that
finished and resumes the others; with --fresh it first deletes what it will write again (all of results/ for the whole plan, only
the chosen experiments' records and figures for --paper/--only; a name the plan does not hold is refused before
anything is touched). Then `scripts/report.py` draws every figure into
results/<experiment>/ (results/<experiment>-<scale>/, one a scale, where its runs are at several) and writes
results/REPORT.md. Experiments whose data cannot be had here (CIFAR-10 offline)
are skipped with a line saying so; the report lists their claims as `not run`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from noisereg.errors import SettingError
from noisereg.tracking.evidence import thin_records

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
# (paper, experiment, scale, *overrides): each entry is the command behind one folder of results/runs/, and
# tests/test_recipes.py checks that it composes to exactly the committed runs. Where the experiment's own file is the
# recipe (the paper's sizes, its length and its seed count, fixed before running: Orvieto Figs 1, 2, 7 and 9, the
# last ~20 min a run; Levi's toy model and its Fig. 2 (bottom) and Fig. 3 MLPs; Blanc's experiments) the entry adds
# nothing. Orvieto's Fig. 4 has a folder per net: the narrow one at the paper's size (Fig. 9's net and cost, 9 runs
# of ~20 min), the wide one at scale=cpu. Fig. 8 runs at scale=cpu (conf/scale/cpu.yaml), Fig. 4's wide net, Figs 3
# and 10 also with 2 seeds and 1000 steps (docs/reproducing.md): the 5000-wide nets need a GPU for the paper's
# widths, and stay `not in regime`.
# Camuto's experiments at scale=cpu with their budgets (conf/cpu_budget/; docs/camuto.md), Figs 4-5 at the paper's
# scale with 3 seeds. Levi's Fig. 1 at a quarter of the width with fewer strengths (docs/levi.md).
PLAN = [
    ("orvieto", "fig1_variance", "paper"),
    ("orvieto", "fig2_synthetic", "paper"),
    ("orvieto", "fig7_mlp1", "paper"),
    ("orvieto", "fig9_mlp3", "paper"),
    ("orvieto", "fig8_mlp2", "cpu"),
    ("orvieto", "fig4_deep_mlp", "paper", "orvieto/fig4_width=narrow"),
    ("orvieto", "fig4_deep_mlp", "cpu", "trainer.steps=1000", "seed=0,1", "orvieto/fig4_width=wide"),
    ("orvieto", "fig3_fmnist_sigma", "cpu", "trainer.steps=1000", "seed=0,1", "noise.sigma=0,0.02,0.05,0.1,0.2"),
    ("orvieto", "fig10_mlp4", "cpu", "trainer.steps=1000", "seed=0,1"),
    ("camuto", "camuto_fig2_remainder", "cpu", "+cpu_budget=camuto_fig2_remainder"),
    ("camuto", "camuto_fig3_explicit_vs_gni", "cpu", "+cpu_budget=camuto_fig3_mlp"),
    ("camuto", "camuto_fig3_explicit_vs_gni", "cpu", "+cpu_budget=camuto_fig3_cnn"),
    ("camuto", "camuto_fig3_explicit_vs_gni", "cpu", "+cpu_budget=camuto_fig3_deep_mlp"),
    # Figs 4-5 at the paper's size, length and lr (60,000 Adam steps), 3 of its 10 seeds: 7-11 min a run on one core.
    # The same runs carry Fig. 5's layer statistics (conf/experiment/camuto/fig4_fourier.yaml), which Fig. 5 reads.
    # All three arms: the explicit-R arm (Fig. 4's third panel) costs ~30 min a run on one core beside other work.
    ("camuto", "camuto_fig4_fourier", "paper", "seed=0,1,2", "noise=gd,gni,gni_explicit"),
    ("levi", "levi_fig2_linear_toy", "paper"),
    ("levi", "levi_fig3_mlp_ce", "paper"),
    ("levi", "levi_fig2_mlp_mse", "paper"),
    # Fig. 1 at a quarter of the width (256: a reduced width, the label scale=cpu_quarter carries), on the paper's
    # data, length (100 epochs) and 3 seeds; 7 of the paper's 11 strengths, one or more per phase of the cpu pilots.
    ("levi", "levi_fig1_decay_times", "cpu_quarter", "noise.strength=0,1e-4,1e-2,0.1,1,3,10"),
    # Blanc et al.: tiny models, millions of steps in compiled blocks (one core each); the sizes of their experiment
    # files (docs/blanc.md: Fig. 1 at d = 20). Measured on 2 shared cores (load average 4-6): about 38 min in all;
    # a 1e7-step ReLU run ~95 s (~1e5 steps/s), Fig. 2 17 min, Fig. 1 at 2.5e6
    # steps 2.7 min, Thm 3 at 4e6 steps (3 seeds as members of one batched run) ~20 min.
    # (Fig. 3 reads Fig. 2's runs: the same experiment file, the same two runs in the paper.)
    ("blanc", "blanc_fig1_matrix_sensing", "paper"),
    ("blanc", "blanc_thm3_single_point", "paper"),
    ("blanc", "blanc_fig1_lr_sweep", "paper"),
    ("blanc", "blanc_fig2_relu_interpolation", "paper"),
]
NEEDS_DATA = {"fig5_cnn", "fig6_resnet", "fig11_toy_cnn", "fig12_wide_cnn"}  # CIFAR-10: no offline copy here


# Config groups an entry may fix to run one part of an experiment on its own: its sweep goes in a folder named after
# the choice (Camuto Fig. 3's budgets; Orvieto Fig. 4's nets, so that each can run at its own scale).
PART_GROUPS = ("cpu_budget", "orvieto/fig4_width")


def entry_folder(experiment: str, overrides: list[str]) -> Path:
    """Where an entry's sweep goes: results/runs/<experiment>/, an entry fixing one of PART_GROUPS in <choice>/ below."""
    parts = [value for key, _, value in (o.partition("=") for o in overrides) if key.lstrip("+") in PART_GROUPS]
    if len(parts) > 1 or any("," in part for part in parts):  # a plan entry is one part: its folder must be one
        raise ValueError(f"{experiment} {' '.join(overrides)}: an entry fixes at most one of {PART_GROUPS}, once")
    return RESULTS / "runs" / experiment / parts[0] if parts else RESULTS / "runs" / experiment


def selected(papers: list[str] | None, only: list[str] | None) -> list[tuple]:
    """The PLAN entries chosen by --paper / --only (all without either); a `SettingError` naming the option for a name
    the plan does not hold or an option given without names (which once started the whole 3-hour plan)."""
    for option, names, known in (("--paper", papers, {e[0] for e in PLAN}), ("--only", only, {e[1] for e in PLAN})):
        if names is not None and not names:
            raise SettingError(f"{option} needs at least one name (one of: {', '.join(sorted(known))})")
        unknown = sorted(set(names or ()) - known)
        if unknown:
            raise SettingError(f"{option} {' '.join(unknown)}: not in the plan; choose from {', '.join(sorted(known))}")
    return [entry for entry in PLAN if (only is None or entry[1] in only) and (papers is None or entry[0] in papers)]


def clear(entries: list[tuple], everything: bool) -> None:
    """--fresh: the whole of results/ for the whole plan; for a part of it, only the folders it will write again (its
    records and its figures), never another experiment's."""
    if everything:
        paths = list(RESULTS.glob("*"))
    else:
        from noisereg.figures.report import scale_figure_folders  # pandas and the figures: imported only here

        paths = [entry_folder(e[1], list(e[3:])) for e in entries] + [RESULTS / e[1] for e in entries]
        paths += [folder for e in entries for folder in scale_figure_folders(RESULTS, e[1])]  # at each scale
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete what it will write again first: all of results/ "
        "for the whole plan, else only the chosen experiments' records and figures",
    )
    parser.add_argument("--paper", nargs="*", help="run only these papers' experiments (orvieto, blanc, levi, camuto)")
    parser.add_argument("--only", nargs="*", help="run only these experiments (the report still reads all records)")
    arguments = parser.parse_args(argv)
    try:
        entries = selected(arguments.paper, arguments.only)
    except SettingError as refusal:  # before anything is touched
        print(f"reproduce: {refusal}", file=sys.stderr)
        return 2
    if arguments.fresh:
        clear(entries, everything=arguments.paper is None and arguments.only is None)
    started = time.monotonic()
    for paper, experiment, scale, *overrides in entries:
        tic = time.monotonic()
        folder = entry_folder(experiment, overrides)
        command = [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            f"+experiment={experiment}",
            f"scale={scale}",
            "logger.mode=disabled",
            "trainer.progress_bar=false",
            f"hydra.sweep.dir={folder}",
            *overrides,
        ]
        print(f"reproduce: {experiment} at scale={scale} {' '.join(overrides)}...", flush=True)
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        # the committed form (noisereg/tracking/evidence.py): rows gzipped, the artifact snapshots no figure reads dropped
        removed = thin_records(folder) if folder.exists() else 0
        outcome = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("noisereg: sweep")]
        print(
            f"reproduce: {experiment} done in {time.monotonic() - tic:.0f} s (rows gzipped, {removed} artifact "
            f"snapshots no figure reads dropped): {outcome[-1] if outcome else result.stderr[-500:]}",
            flush=True,
        )
    for experiment in sorted(NEEDS_DATA):
        print(f"reproduce: {experiment} skipped: CIFAR-10 is not available offline (its claims are listed as not run)")
    # Relative paths, as a reader in any clone types them: the figures' JSON names runs by them.
    report = subprocess.run(
        [sys.executable, "scripts/report.py", "results/runs", "--out", "results/REPORT.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print(report.stdout + report.stderr, end="")
    print(f"reproduce: all done in {(time.monotonic() - started) / 60:.1f} min")
    return report.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
