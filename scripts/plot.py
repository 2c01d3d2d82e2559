"""Draw a paper's figure from run records.

    python scripts/plot.py <experiment> <records folder>... [--out DIR]

Finds every run of <experiment> under the folders (sweep folders, single runs, any depth), groups them by their
config minus the seed, and writes DIR/<experiment>.png and DIR/<experiment>.json (every plotted series: per group
its config values, and per x value n, mean, std and SEM over seeds). DIR defaults to <first folder>/figures/, beside
the records: the committed results/ is written only when asked (--out results/<experiment>).
"""

from __future__ import annotations

import noisereg  # noqa: F401  (first: OpenMP's wait policy, see noisereg/__init__.py)

# isort: split

import argparse
import sys
from pathlib import Path

from noisereg.errors import SettingError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="the experiment's name, e.g. fig2_synthetic")
    parser.add_argument("folders", nargs="+", help="folders holding its run records")
    parser.add_argument("--out", default=None, help="output folder (default <first folder>/figures/)")
    arguments = parser.parse_args(argv)
    out = arguments.out or str(Path(arguments.folders[0]) / "figures")
    from noisereg.papers import plot_experiment

    try:
        if Path(out).exists() and not Path(out).is_dir():
            raise SettingError(f"--out {out} is a file; give a folder for the figure and its data")
        png, data = plot_experiment(arguments.experiment, arguments.folders, out)
    except (SettingError, FileNotFoundError) as error:
        print(f"plot: error: {error}", file=sys.stderr)
        return 2
    print(f"{png}\n{data}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
