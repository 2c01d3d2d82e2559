"""Draw a paper's figure from run records.

    python scripts/plot.py <experiment> <records folder>... [--out DIR]

Finds every run of <experiment> under the folders (sweep folders, single runs, any depth), groups them by their
config minus the seed, and writes DIR/<experiment>.png and DIR/<experiment>.json (every plotted series: per group
its config values, and per x value n, mean, std and SEM over seeds). DIR defaults to results/<experiment>/.
"""
from __future__ import annotations

import argparse
import sys

import noisereg  # noqa: F401  (first: OpenMP's wait policy, see noisereg/__init__.py)
from noisereg.errors import SettingError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="the experiment's name, e.g. fig2_synthetic")
    parser.add_argument("folders", nargs="+", help="folders holding its run records")
    parser.add_argument("--out", default=None, help="output folder (default results/<experiment>/)")
    arguments = parser.parse_args(argv)
    from noisereg.figures import plot_experiment

    try:
        png, data = plot_experiment(arguments.experiment, arguments.folders, arguments.out)
    except (SettingError, FileNotFoundError) as error:
        print(f"plot: error: {error}", file=sys.stderr)
        return 2
    print(f"{png}\n{data}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
