"""Each figure of the runs under some folders in W&B: a figure run and a saved workspace per experiment and scale.

    python scripts/wandb_figures.py <records folder>... [--mode offline|online] [--entity E] [--project noisereg]

Draws the figures and checks the claims as scripts/report.py does (into <first folder>/figures/), then per
experiment and scale (noisereg/tracking/wandb_figures.py): a `job_type=figure` run in the experiment's group with
the figure, its data and its claims as tables, under <first folder>/wandb/ (offline by default; `make sync
DIR=<first folder>` uploads it with the jobs' runs); and the figure's workspace: offline its spec,
<first folder>/figures/<experiment>-<scale>.workspace.json; online (after `wandb login`, with --entity) saved to
W&B, its URL printed.
"""

from __future__ import annotations

import noisereg  # noqa: F401  (first: OpenMP's wait policy, see noisereg/__init__.py)

# isort: split

import argparse
import json
import os
import sys
from pathlib import Path

from noisereg.errors import SettingError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="folders holding run records (a sweep's, results/runs, ...)")
    parser.add_argument("--mode", choices=["offline", "online"], default="offline")
    parser.add_argument("--project", default="noisereg")
    parser.add_argument("--entity", default=None, help="W&B entity (online: the workspace's owner)")
    arguments = parser.parse_args(argv)
    # A W&B service inherited from a parent process would own these runs and write them relative to its own working
    # directory (run.py drops it for the same reason): this process starts its own.
    os.environ.pop("WANDB_SERVICE", None)
    from noisereg.figures.grouping import group_keys
    from noisereg.figures.report import experiment_runs
    from noisereg.papers import evaluate_claims
    from noisereg.records import load_runs
    from noisereg.tracking.wandb_figures import log_figure_run, workspace, workspace_spec
    from noisereg.tracking.wandb_logger import check_wandb

    first = Path(arguments.folders[0]).resolve()
    if arguments.mode == "online" and not arguments.entity:
        print(
            "wandb-figures: error: --mode online saves workspaces under an entity: give --entity <your W&B entity>",
            file=sys.stderr,
        )
        return 2
    try:
        check_wandb(arguments.mode)
        runs = load_runs(arguments.folders)
        if runs.empty:
            raise SettingError(f"no run records under {', '.join(arguments.folders)}")
        rows = evaluate_claims(arguments.folders, first / "figures", runs=runs)
    except SettingError as error:
        print(f"wandb-figures: error: {error}", file=sys.stderr)
        return 2
    made = 0
    for experiment, scale in sorted({(r.claim.experiment, r.scale) for r in rows if r.figure_link}):
        claims = [r for r in rows if (r.claim.experiment, r.scale) == (experiment, scale)]
        png = first / "figures" / claims[0].figure_link
        figure = json.loads(png.with_suffix(".json").read_text())
        scaled = experiment_runs(runs, experiment)
        conditions = group_keys(scaled[scaled["scale"] == scale])
        run_id = log_figure_run(
            experiment, scale, png, figure, claims, first, arguments.mode, arguments.project, arguments.entity
        )
        view = workspace(
            experiment,
            scale,
            figure,
            conditions,
            arguments.entity or "<entity>",
            arguments.project,
            claims[0].claim.figure,
        )
        if arguments.mode == "online":
            view.save()
            where = view.url
        else:
            where = png.with_name(f"{experiment}-{scale}.workspace.json")
            where.write_text(json.dumps(workspace_spec(view), indent=1))
        print(f"wandb-figures: {experiment} ({scale}): figure run {run_id}, {len(claims)} claims; workspace {where}")
        made += 1
    print(
        f"wandb-figures: {made} figure runs under {first / 'wandb'}"
        + (f" (offline: `make sync DIR={first}` uploads them)" if arguments.mode == "offline" else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
