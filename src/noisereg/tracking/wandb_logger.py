"""Weights & Biases: one run per job, resolved config, group = experiment name.

`mode="offline"` (default) needs no account or network: the run lands in `<run dir>/wandb/offline-run-*`
and `wandb sync <that folder>` uploads it later. `mode="disabled"` does not import wandb at all.
A resumed job continues the same W&B run (`run_id`, kept in the run directory's run.json): offline, each segment
is its own `offline-run-*` folder with that id, and `wandb sync` joins them.

`check_wandb` runs before anything is written: online mode needs credentials and a server that answers, and
either failing is a one-line error, not a 90-second hang.
"""

from __future__ import annotations

import netrc
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from noisereg.errors import SettingError

MODES = ("offline", "online", "disabled")
DEFAULT_BASE_URL = "https://api.wandb.ai"
REACH_TIMEOUT_S = 10.0
INIT_TIMEOUT_S = 15.0
OFFLINE_INSTEAD = "use logger.mode=offline and upload later with `wandb sync <run dir>/wandb/offline-run-*`"


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL).rstrip("/")


def _has_credentials(base_url: str) -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urllib.parse.urlparse(base_url).hostname or ""
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _reachable(base_url: str, timeout: float) -> str | None:
    """None when the server answers (any HTTP status), else why not."""
    try:
        urllib.request.urlopen(base_url, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return None


def check_wandb(mode: str) -> None:
    """Everything about the W&B settings that can fail, checked without creating a run."""
    if mode not in MODES:
        raise SettingError(f"logger.mode={mode!r} is unknown; choose one of {list(MODES)}")
    if mode != "online":
        return
    base_url = _base_url()
    if not _has_credentials(base_url):
        raise SettingError(
            f"logger.mode=online needs W&B credentials for {base_url} (`wandb login` or WANDB_API_KEY); "
            f"or {OFFLINE_INSTEAD}"
        )
    problem = _reachable(base_url, REACH_TIMEOUT_S)
    if problem is not None:
        raise SettingError(
            f"logger.mode=online: the W&B server {base_url} cannot be reached ({problem}); {OFFLINE_INSTEAD}"
        )


def chart_keys(config: dict[str, Any]) -> dict[str, Any]:
    """Top-level run-config keys to group and filter runs by in the W&B UI, as the figures do."""
    model, noise = config.get("model", {}), config.get("noise", {})
    widths = model.get("widths")
    return {
        "experiment": config.get("name"),
        "noise_mode": noise.get("name"),
        "sigma": noise.get("sigma"),
        "variance": noise.get("variance"),  # Camuto et al.'s σ² (noise.variance), where an experiment states it
        "width": max(widths) if widths else None,
        "depth": len(widths) if widths else None,
        "model_name": model.get("name"),
        "scale_name": config.get("scale", {}).get("name"),
        "seed": config.get("seed"),
    }


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
        run_id: str | None = None,
        job_type: str | None = None,
        alongside: bool = False,
        notes: str | None = None,
        x_axis: str | None = None,
    ):
        """`alongside`: keep the process's other runs open (the members of a batched job log side by side).
        `x_axis`: a logged metric (`epoch`) W&B plots the others against by default (define_metric)."""
        if mode not in MODES:
            raise SettingError(f"logger.mode={mode!r} is unknown; choose one of {list(MODES)}")
        self.run = None
        self.id = run_id
        if mode == "disabled":
            return
        import wandb

        try:
            self.run = wandb.init(
                mode=mode,
                project=project,
                entity=entity,
                group=group,
                name=name,
                tags=tags,
                notes=notes,
                job_type=job_type,
                config={**config, **chart_keys(config)},
                dir=str(directory),
                id=run_id,
                resume="allow",  # a resumed job continues its run; a new id starts one
                # One run per job, also when sweep jobs share a process; the members of a batched job side by side.
                reinit="create_new" if alongside else "finish_previous",
                settings=wandb.Settings(console="off", silent=True, init_timeout=INIT_TIMEOUT_S),
            )
        except wandb.errors.Error as error:  # e.g. the server stopped answering between the check and now
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SettingError(
                f"logger.mode={mode}: W&B could not start a run ({first_line}); {OFFLINE_INSTEAD}"
            ) from None
        self.id = self.run.id
        if x_axis is not None:
            self.run.define_metric(x_axis)
            self.run.define_metric("*", step_metric=x_axis)

    @staticmethod
    def new_id() -> str:
        import secrets

        return secrets.token_hex(4)  # W&B run ids: 8 lowercase alphanumerics

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def log_again(self, rows: list[dict[str, Any]]) -> None:
        """On resume, the rows of metrics.jsonl up to the checkpoint that this W&B run may lack: a killed process
        loses what W&B had not yet written. Offline, each segment is its own file and readers (and `wandb sync`)
        take a segment's rows after the last step already seen; online, W&B's step counter says what it holds."""
        if self.run is None:
            return
        held = self.run.step
        for row in rows:
            if row["step"] >= held:
                values = {k: float(v) if v in ("nan", "inf", "-inf") else v for k, v in row.items() if k != "step"}
                self.run.log(values, step=row["step"])

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            for key, value in values.items():
                self.run.summary[key] = value

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
