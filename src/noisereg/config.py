"""Config schemas and checks: an unknown key, a wrong type or a bad value is an error that names the setting.

The `dataset`, `model` and `noise` groups take their options and schemas from the registries (registry.py): each
registered entry is also a Hydra config (`register_with_hydra`), so `noise=layerwise` needs no YAML file and a
preset such as conf/model/linear_net.yaml extends a registered schema. `trainer`, `curvature`, `logger` and
`scale` have one schema each, and `probes` maps probe names to their registered schemas. `validate` merges every
group into its schema and runs each schema's `check()` (a probe's settings too, whether its `every` is set or not);
`apply_scale` applies the `scale` group's caps (scale=smoke) in one place, for every experiment, and says on stderr,
once, where it overrides a setting the job asked for (`trainer.compile`). `register_with_hydra` also gives
`python run.py --help` (conf/hydra/help/noisereg.yaml) the options of each group, `${noisereg_options:<group>}`.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

# The packages whose modules register the datasets, models, noise modes and probes: imported here, where the
# registries are read, so that registry.py knows none of its users.
import noisereg.data  # noqa: F401
import noisereg.models  # noqa: F401
import noisereg.noise  # noqa: F401
import noisereg.probes  # noqa: F401
from noisereg.errors import SettingError
from noisereg.probes.curvature import CurvatureSettings
from noisereg.registry import DATASETS, MODELS, NOISE_MODES, PROBES, Registry
from noisereg.tracking.wandb_logger import MODES as LOGGER_MODES
from noisereg.train.settings import TrainerSettings


@dataclass
class JobSettings:
    name: str = "default"  # experiment name: the W&B group and the records folder
    seed: int = 0  # model init, batch order and noise draws (each its own stream)

    # Each stream's generator takes seed * 1000 + stream (app.py), a signed 64-bit integer.
    LARGEST_SEED = (2**63 - 1) // 1000 - 1

    def check(self, group: str = "job") -> None:
        if not 0 <= self.seed <= self.LARGEST_SEED:
            raise SettingError(f"seed={self.seed} is out of range; use a seed in [0, {self.LARGEST_SEED}], e.g. seed=0")


@dataclass
class LoggerSettings:
    mode: str = "offline"
    project: str = "noisereg"
    entity: Optional[str] = None
    tags: list[str] = field(default_factory=list)  # beside the noise mode and `scale:<name>`, which every run has
    group: Optional[str] = None  # W&B group; default: the experiment's name (`name`)
    notes: Optional[str] = None

    def check(self, group: str = "logger") -> None:
        if self.mode not in LOGGER_MODES:
            raise SettingError(f"logger.mode={self.mode!r} is unknown; choose one of {list(LOGGER_MODES)}")


@dataclass
class ScaleSettings:
    name: str = "paper"
    width_factor: float = 1.0  # widths are multiplied by this (rounded, at least 1), then capped at max_width
    max_width: Optional[int] = None
    max_train: Optional[int] = None
    max_test: Optional[int] = None
    max_steps: Optional[int] = None
    max_epochs: Optional[int] = None
    compile: Optional[bool] = None  # set trainer.compile (smoke: false, compiling costs more than a few steps)
    max_curvature_samples: Optional[int] = None  # the subset curvature is measured on (exact traces of a ResNet)


REGISTERED_GROUPS: dict[str, Registry] = {"dataset": DATASETS, "model": MODELS, "noise": NOISE_MODES}
FIXED_GROUPS: dict[str, type] = {
    "trainer": TrainerSettings,
    "curvature": CurvatureSettings,
    "logger": LoggerSettings,
    "scale": ScaleSettings,
}
TOP_LEVEL_KEYS = {"name", "seed", "probes", "optimized_metric"} | set(REGISTERED_GROUPS) | set(FIXED_GROUPS)


def register_with_hydra() -> None:
    """Make every registered dataset, model and noise mode a Hydra config group option (`noise=gd_noise`), and
    register the resolver the help text lists the groups' options with."""
    from hydra.core.config_store import ConfigStore

    OmegaConf.register_new_resolver("noisereg_options", help_options, replace=True)
    store = ConfigStore.instance()
    for group, registry in REGISTERED_GROUPS.items():
        for name in registry.names():
            store.store(group=group, name=name, node=registry.entry(name).schema)
    for group, schema in FIXED_GROUPS.items():  # conf/<group>/*.yaml extend these: typed, every key present
        store.store(group=group, name="_schema", node=schema)


def help_options(group: str, *, _root_: Any = None) -> str:
    """`${noisereg_options:dataset}` in the help template: the options a user can pick for `group` (Hydra's, less
    the `_schema` nodes; for `probes` the registered probes), the one in use marked `(now)`, wrapped and indented."""
    if group == "probes":
        options = PROBES.names()
    else:
        from hydra.core.global_hydra import GlobalHydra

        if not GlobalHydra.instance().is_initialized():
            return f"see `python run.py {group}=?`"
        options = _group_options(GlobalHydra.instance().config_loader(), group)
    choices = OmegaConf.select(_root_, "hydra.runtime.choices", default=None) if _root_ is not None else None
    now = choices.get(group) if choices is not None else None
    text = ", ".join(f"{o}\N{NO-BREAK SPACE}(now)" if o == now else o for o in sorted(options))  # kept on one line
    lines = textwrap.wrap(text, width=118, initial_indent=" " * 18, subsequent_indent=" " * 18)
    return "\n".join(lines).lstrip().replace("\N{NO-BREAK SPACE}", " ")


def _group_options(loader: Any, group: str) -> list[str]:
    """A group's options as Hydra finds them, those in its subfolders too (experiment: orvieto/fig6_resnet, ...).

    Read from the loader's config repository: OmegaConf resolves the help template each time a config merged later
    touches it (several times a composition, help asked for or not), and the loader's own `get_group_options`
    deep-copies that repository on every call (~0.03 s): over a second of every `compose` and of every sweep job."""
    from hydra.core.object_type import ObjectType

    lister = getattr(loader, "repository", loader)  # ConfigLoaderImpl.repository; the loader's call the fallback
    options = [o for o in lister.get_group_options(group, ObjectType.CONFIG) if not o.startswith("_")]
    for sub in lister.get_group_options(group, ObjectType.GROUP):
        options += [f"{sub}/{o}" for o in _group_options(loader, f"{group}/{sub}")]
    return options


# The checkout's conf/ (run.py's CONFIG_DIR); callers with another config folder pass theirs.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"


@functools.lru_cache(maxsize=None)
def _renamed(config_dir: str) -> tuple[dict[str, str], dict[str, str]]:
    """The old names of the experiments and of their papers' config groups, from the files themselves.

    Experiments: each conf/experiment/<paper>/<figure>.yaml's `name:` (fig6_resnet, camuto_fig4_fourier: the records
    folder, unchanged) → `<paper>/<figure>`. Groups: a paper's folder conf/<paper>/<group>/ (but base/, reached only
    from defaults lists) was the group `<prefix><group>`, the prefix its experiments' names have before their file
    names (camuto_ for camuto/fig3_model, none for orvieto/fig4_width)."""
    root = Path(config_dir)
    experiments: dict[str, str] = {}
    groups: dict[str, str] = {}
    for path in sorted((root / "experiment").glob("*/*.yaml")):
        name = (yaml.safe_load(path.read_text()) or {}).get("name")
        paper, figure = path.parent.name, path.stem
        if not isinstance(name, str) or not name.endswith(figure):
            continue
        experiments[name] = f"{paper}/{figure}"
        prefix = name[: -len(figure)]
        for folder in sorted((root / paper).iterdir()) if (root / paper).is_dir() else []:
            old = f"{prefix}{folder.name}"  # never a group of today's (noise, dataset: registered, no folder)
            if folder.is_dir() and folder.name != "base" and not (root / old).is_dir() and old not in REGISTERED_GROUPS:
                groups[old] = f"{paper}/{folder.name}"
    return experiments, groups


def translate_overrides(overrides: list[str], config_dir: str | Path = CONFIG_DIR) -> list[str]:
    """The command line in today's names, before Hydra parses it (run.py's cli; tests and scripts that compose).

    conf/config.yaml's defaults list holds `experiment: null`, so an experiment is `experiment=<paper>/<figure>`
    and Hydra refuses `+experiment=...` ("Multiple values for experiment"). The commands written before the
    experiments were grouped by paper still run: `+experiment=X` becomes `experiment=X`, an old name X (an
    experiment's `name:`, e.g. fig6_resnet) becomes its file, `experiment=orvieto/fig6_resnet`, in a sweep too
    (`+experiment=fig1_variance,fig2_synthetic`), and an old group name its paper's group (fig4_width=wide →
    orvieto/fig4_width=wide, camuto_fig3_model=deep_mlp → camuto/fig3_model=deep_mlp). Anything else is kept."""
    experiments, groups = _renamed(str(Path(config_dir).resolve()))
    translated = []
    for override in overrides:
        key, equals, value = override.partition("=")
        if equals and key.lstrip("+") == "experiment":
            if "(" not in value and "[" not in value:  # a plain value or a sweep of them; glob(...) and the like kept
                value = ",".join(experiments.get(choice, choice) for choice in value.split(","))
            override = f"experiment={value}"
        elif equals and key.lstrip("+~") in groups:
            sign = key[: len(key) - len(key.lstrip("+~"))]
            override = f"{sign}{groups[key.lstrip('+~')]}={value}"
        translated.append(override)
    return translated


def _merge(group: str, schema: type, node: Any) -> DictConfig:
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(node.keys() if isinstance(node, (dict, DictConfig)) else ()) - known)
    if unknown:  # `+group.key=...` adds keys past Hydra's own check
        raise SettingError(
            f"{group}.{unknown[0]} is not a setting of {group}"
            f"{'=' + str(node.get('name')) if 'name' in known else ''}; its settings: "
            f"{', '.join(sorted(known - {'name'}))}"
        )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        settings = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        key = f"{group}.{error.full_key}" if getattr(error, "full_key", None) else group
        raise SettingError(f"invalid setting {key}: {message}") from None
    if hasattr(settings, "check"):
        settings.check(group)
    return merged


def _resolved(node: Any) -> Any:
    """A group's settings with interpolations resolved where they stand (`dataset.seed: ${seed}` names the job's
    seed), before they are merged into the group's schema, whose root is the group alone."""
    if isinstance(node, DictConfig):
        try:
            return OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as error:
            key = getattr(error, "full_key", None) or "interpolation"
            raise SettingError(f"invalid setting {key}: {str(error).splitlines()[0]}") from None
    return node


def validate(cfg: DictConfig) -> DictConfig:
    """Return a copy of `cfg` with every group checked against its schema and defaults filled in."""
    cfg = cfg.copy()
    try:  # each group is checked on its own below, so `${seed}` and the like are resolved against the whole first
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        raise SettingError(f"invalid setting: {str(error).splitlines()[0]}") from None
    unknown = set(cfg.keys()) - TOP_LEVEL_KEYS
    if unknown:
        raise SettingError(f"unknown top-level setting(s) {sorted(unknown)}; known: {sorted(TOP_LEVEL_KEYS)}")
    with open_dict(cfg):
        job = _merge("job", JobSettings, {k: cfg[k] for k in ("name", "seed") if k in cfg})
        cfg.name, cfg.seed = job.name, job.seed
        for group, registry in REGISTERED_GROUPS.items():
            node = _resolved(cfg.get(group))
            name = node.get("name") if isinstance(node, dict) else None
            cfg[group] = _merge(group, registry.entry(name).schema, node)
        for group, schema in FIXED_GROUPS.items():
            cfg[group] = _merge(group, schema, _resolved(cfg.get(group, {})))
        probes = cfg.get("probes") or {}
        if not isinstance(probes, (dict, DictConfig)):  # `probes=?`, `probes=predictions`: each probe is set on its own
            raise SettingError(
                f"probes={probes} is not how probes are set: switch each on by itself, e.g. "
                f"+probes.predictions.every=100; probes: {', '.join(PROBES.names())}"
            )
        cfg.probes = {
            name: _merge(f"probes.{name}", PROBES.entry(name).schema, _resolved(node)) for name, node in probes.items()
        }
    metric = cfg.get("optimized_metric")
    if metric is not None and (not isinstance(metric, str) or "/" not in metric):
        raise SettingError(
            f"optimized_metric={metric!r} is not a logged metric's name; name one, e.g. "
            "optimized_metric=test/acc (or train/loss), or leave it null"
        )
    members = int(cfg.trainer.get("members") or 1)
    if cfg.seed + members - 1 > JobSettings.LARGEST_SEED:  # its last member's seed, which the user did not type
        raise SettingError(
            f"seed={cfg.seed} with trainer.members={members}: the members train seeds up to "
            f"{cfg.seed + members - 1}, beyond the largest seed {JobSettings.LARGEST_SEED}; use a "
            "smaller seed, e.g. seed=0"
        )
    return cfg


_NOTED: set[str] = set()  # what `_note` has said in this process


def _note(message: str) -> None:
    """One line on stderr, once per process: the single-run check before Hydra starts and the job itself both
    prepare the same config."""
    if message not in _NOTED:
        _NOTED.add(message)
        print(f"noisereg: {message}", file=sys.stderr)


def _cap(value: Optional[int], limit: Optional[int]) -> Optional[int]:
    if limit is None:
        return value
    return limit if value is None else min(value, limit)


def apply_scale(cfg: DictConfig) -> DictConfig:
    """Shrink widths, data and length to the `scale` caps, keeping the structure (depth, modes, schedule)."""
    scale = cfg.scale
    cfg = cfg.copy()
    with open_dict(cfg):
        if "widths" in cfg.model:
            scaled = [max(1, round(int(w) * scale.width_factor)) for w in cfg.model.widths]
            cfg.model.widths = [_cap(w, scale.max_width) for w in scaled]
        if "n_train" in cfg.dataset:
            cfg.dataset.n_train = _cap(cfg.dataset.n_train, scale.max_train)
        if "n_test" in cfg.dataset:
            cfg.dataset.n_test = _cap(cfg.dataset.n_test, scale.max_test)
        if cfg.trainer.steps is not None:
            cfg.trainer.steps = _cap(cfg.trainer.steps, scale.max_steps)
        if cfg.trainer.epochs is not None:
            cfg.trainer.epochs = _cap(cfg.trainer.epochs, scale.max_epochs)
        cfg.curvature.n_samples = _cap(cfg.curvature.n_samples, scale.max_curvature_samples)
        if scale.compile is not None:
            # Said, not silent: unlike the caps above, this overrides what the job asked for (the run name of a
            # `trainer.compile=true` override still says it). Not refused: every experiment takes scale=smoke,
            # those that compile (conf/blanc/base/sgd.yaml) included.
            if bool(cfg.trainer.compile) and not scale.compile:
                _note(
                    f"scale={scale.name} runs eager: trainer.compile=true is switched off "
                    "(scale=paper, cpu or cpu_quarter keeps it)"
                )
            elif scale.compile and not bool(cfg.trainer.compile):
                _note(f"scale={scale.name} compiles: trainer.compile=false is switched on")
            cfg.trainer.compile = scale.compile
    return cfg
