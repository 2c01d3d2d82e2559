"""Weights & Biases: one run per job, resolved config, group = experiment name.

`mode="offline"` (default) needs no account or network: the run lands in `<run dir>/wandb/offline-run-*`
and `wandb sync <that folder>` uploads it later. `mode="disabled"` does not import wandb at all.
"""
from __future__ import annotations

import os
from typing import Any
from noisereg.errors import SettingError

MODES = ("offline", "online", "disabled")


class WandbLogger:
    def __init__(
        self,
        mode: str,
        project: str,
        group: str | None,
        name: str | None,
        config: dict[str, Any],
        directory: str | os.PathLike,
        entity: str | None = None,
        tags: list[str] | None = None,
    ):
        if mode not in MODES:
            raise SettingError(f"logger.mode={mode!r} is unknown; choose one of {list(MODES)}")
        self.run = None
        if mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            mode=mode,
            project=project,
            entity=entity,
            group=group,
            name=name,
            tags=tags,
            config=config,
            dir=str(directory),
            reinit="finish_previous",  # one run per job, also when sweep jobs share a process
            settings=wandb.Settings(console="off", silent=True),
        )

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            for key, value in values.items():
                self.run.summary[key] = value

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
