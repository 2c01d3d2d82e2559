"""One registry per axis of an experiment: datasets, models, noise modes, probes.

Each entry is registered once, beside its class, with the dataclass that is its config schema:

    @dataclass
    class LayerwiseSettings(NoiseSettings):
        name: str = "layerwise"
        sigma: float = 0.05

    @NOISE_MODES.register("layerwise", LayerwiseSettings)
    class LayerwiseNoise(ParameterNoise): ...

Config validation (`noisereg.config`), the options Hydra offers (`noise=layerwise`, through its ConfigStore),
"choose one of …" messages and construction all read these registries, so a new model, dataset or noise mode
touches one file. An entry exists once its module is imported: each package (`noisereg.data`, `.models`, `.noise`,
`.probes`) imports its modules, and `noisereg.config`, which reads the registries, imports the packages; this
module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from noisereg.errors import SettingError


@dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[..., Any]  # a class or a function: build(**settings, **context)
    schema: type  # dataclass: the settings, their types and defaults


class Registry:
    def __init__(self, axis: str):
        self.axis = axis  # the config group: dataset, model, noise, probes
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, schema: type) -> Callable[[Any], Any]:
        def decorate(build: Any) -> Any:
            if name in self._entries and self._entries[name].build is not build:
                raise ValueError(f"{self.axis} {name!r} is registered twice")
            self._entries[name] = Entry(name, build, schema)
            return build

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise SettingError(f"{self.axis}={name} is unknown; choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def build(self, settings: Mapping[str, Any], **context: Any) -> Any:
        """Construct the entry `settings["name"]` from its other settings and the context (data shapes, seed)."""
        options = dict(settings)
        return self.entry(options.pop("name")).build(**options, **context)


DATASETS = Registry("dataset")
MODELS = Registry("model")
NOISE_MODES = Registry("noise")
PROBES = Registry("probes")
