"""Entry point: `python run.py [overrides]`, `python run.py -m +experiment=fig3_fmnist_sigma` for a sweep."""
from __future__ import annotations

import sys
from pathlib import Path

import noisereg  # noqa: F401  (first: sets OpenMP's wait policy before torch loads, see noisereg/__init__.py)
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, open_dict


CONFIG_DIR = Path(__file__).resolve().parent / "conf"


def unknown_group_choice(arguments: list[str]) -> str | None:
    """A one-line error for `group=option` overrides naming an option that has no file in conf/<group>/.

    Hydra would say the same in several lines with its search path; we check first so the user sees one line.
    """
    for argument in arguments:
        key, _, value = argument.partition("=")
        key = key.lstrip("+~")
        folder = CONFIG_DIR / key
        if not value or "." in key or key.startswith("hydra") or not folder.is_dir() or "(" in value:
            continue
        options = sorted(path.stem for path in folder.glob("*.yaml"))
        for choice in value.split(","):
            if choice not in options:
                return f"{key}={choice} is unknown; choose one of: {', '.join(options)}"
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
        sys.exit(2)
    final = summary.get("final_metrics", {})
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in final.items() if "/" in k)
    print(f"[{summary['status']}] {run_name} after {summary.get('steps', 0)} steps: {shown}")
    print(f"records: {hydra_cfg.runtime.output_dir}")


if __name__ == "__main__":
    problem = unknown_group_choice(sys.argv[1:])
    if problem:
        print(f"noisereg: error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
