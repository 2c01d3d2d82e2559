"""Entry point: `python run.py [overrides]`, `python run.py -m +experiment=fig3_fmnist_sigma` for a sweep."""
from __future__ import annotations

import sys
from pathlib import Path

import noisereg  # noqa: F401  (first: sets OpenMP's wait policy before torch loads, see noisereg/__init__.py)
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, open_dict

CONFIG_DIR = Path(__file__).resolve().parent / "conf"


def override_problem(arguments: list[str]) -> str | None:
    """One line saying what is wrong with the command-line overrides, or None.

    Hydra reports the same problems in several lines (search path, hints); we compose first so the user sees one
    line naming the setting. Sweeps are checked with the first value of each swept setting.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in arguments if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    for argument in overrides:  # unknown option of a config group: list the options
        key, _, value = argument.partition("=")
        folder = CONFIG_DIR / key.lstrip("+~")
        if value and folder.is_dir() and "(" not in value:
            options = sorted(path.stem for path in folder.glob("*.yaml"))
            unknown = [choice for choice in value.split(",") if choice not in options]
            if unknown:
                return f"{key.lstrip('+~')}={unknown[0]} is unknown; choose one of: {', '.join(options)}"
            if key == "experiment":
                return f"experiment={value}: add experiments with a plus, +experiment={value}"
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        first = [
            f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
            for o in parsed
        ]
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            compose(config_name="config", overrides=first)
    except Exception as error:  # Hydra's composition and parser errors: keep their first sentences, on one line
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return " ".join(lines[:2])
    return None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from noisereg.app import run
    from noisereg.errors import SettingError

    hydra_cfg = HydraConfig.get()
    if "root" in cfg.get("dataset", {}):
        with open_dict(cfg):
            cfg.dataset.root = to_absolute_path(cfg.dataset.root)
    run_name = f"{cfg.get('name', 'run')}/{hydra_cfg.job.override_dirname or 'default'}"
    try:
        summary = run(cfg, hydra_cfg.runtime.output_dir, run_name=run_name)
    except SettingError as error:
        print(f"noisereg: error: {error}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.MULTIRUN:  # one bad job is recorded as failed; the sweep goes on
            return
        sys.exit(2)
    final = summary.get("final_metrics", {})
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in final.items() if "/" in k)
    print(f"[{summary['status']}] {run_name} after {summary.get('steps', 0)} steps: {shown}")
    print(f"records: {hydra_cfg.runtime.output_dir}")


if __name__ == "__main__":
    problem = override_problem(sys.argv[1:])
    if problem:
        print(f"noisereg: error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
