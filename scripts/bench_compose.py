"""Seconds per composition of an experiment's config: ours against the loader's own option listing, same process.

    python scripts/bench_compose.py [--experiment orvieto/fig2_synthetic] [--repeats 10]

Every composition (each job of a sweep, each `compose` of a test) resolves the help template's
`${noisereg_options:<group>}` several times: OmegaConf dereferences an interpolated value whenever a config merged
later touches its node. Ours lists a group's options from the loader's config repository (noisereg/config.py,
`_group_options`). Reference: Hydra's public `ConfigLoader.get_group_options` / `list_groups`, which deep-copy that
repository on each call. Prints a Markdown table: seconds per composition and the ratio.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from hydra import compose, initialize_config_dir

import noisereg.config as config


def through_the_loader(loader: Any, group: str) -> list[str]:
    """The reference: the loader's public calls (each builds a caching repository, a deep copy of the whole)."""
    options = [o for o in loader.get_group_options(group) if not o.startswith("_")]
    for sub in loader.list_groups(group):
        options += [f"{sub}/{o}" for o in through_the_loader(loader, f"{group}/{sub}")]
    return options


def seconds_per_composition(experiment: str, repeats: int) -> float:
    compose(config_name="config", overrides=[f"experiment={experiment}"])  # warm: imports, file caches
    start = time.perf_counter()
    for _ in range(repeats):
        compose(config_name="config", overrides=[f"experiment={experiment}"])
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="orvieto/fig2_synthetic")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    config.register_with_hydra()
    ours_listing = config._group_options
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base=None):
        ours = seconds_per_composition(args.experiment, args.repeats)
        config._group_options = through_the_loader
        try:
            reference = seconds_per_composition(args.experiment, args.repeats)
        finally:
            config._group_options = ours_listing
    print(f"| composition of {args.experiment} | s each | ratio |\n|---|---|---|")
    print(f"| the loader's get_group_options (reference) | {reference:.3f} | 1.00 |")
    print(f"| the config repository's (ours) | {ours:.3f} | {reference / ours:.2f}× faster |")


if __name__ == "__main__":
    main()
