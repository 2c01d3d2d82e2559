"""Check the papers' claims against run records and write the claims report.

    python scripts/report.py <records folder>... [--out DIR/REPORT.md]

For every claim the figure modules register (src/noisereg/figures/): the quoted sentence, the numbers (mean ±
SEM over seeds, n), the scale the runs used, a verdict (holds, fails, inconclusive) with the rule it used, and a
link to the figure, which is drawn beside the report. Claims whose experiment has no records are listed as
`not run`. By default the report goes beside the records, into <first folder>/report/; the committed results/ is
written only when asked (`--out results/REPORT.md`, as scripts/reproduce_cpu.py does).
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
    parser.add_argument("folders", nargs="+", help="folders holding run records")
    parser.add_argument(
        "--out", default=None, help="the report's path, figures beside it (default: <first folder>/report/REPORT.md)"
    )
    parser.add_argument(
        "--no-images",
        action="store_true",
        help="the report and the figures' JSON, without "
        "drawing their PNGs (most of the time): what tests/test_results.py compares",
    )
    arguments = parser.parse_args(argv)
    out = arguments.out or str(Path(arguments.folders[0]) / "report" / "REPORT.md")
    from noisereg.papers import write_report
    from noisereg.records import find_runs
    from noisereg.tracking.records import IDENTITY, METRICS, METRICS_GZ, SUMMARY

    RECORD_FILES = {SUMMARY, IDENTITY, METRICS, METRICS_GZ}

    def is_run_directory(folder: Path) -> bool:
        return any((folder / name).is_file() for name in RECORD_FILES)

    try:
        if Path(out).is_dir():
            raise SettingError(f"--out {out} is a folder; give the report's file, e.g. --out {Path(out) / 'REPORT.md'}")
        inside = next((parent for parent in Path(out).resolve().parents if is_run_directory(parent)), None)
        if inside is not None or Path(out).name in RECORD_FILES:
            raise SettingError(
                f"--out {out} is {'inside the run directory ' + str(inside) if inside else 'a record file'}"
                "; a report there would overwrite or mix with records: write it elsewhere, e.g. --out "
                "report/REPORT.md"
            )
        if not find_runs(arguments.folders):
            raise SettingError(
                f"no run records (summary.json or run.json) under {' '.join(arguments.folders)}; "
                "give the folders a sweep wrote, e.g. multirun/<date>/<time>"
            )
        path = write_report(arguments.folders, out, images=not arguments.no_images)
    except (SettingError, FileNotFoundError) as error:
        print(f"report: error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
