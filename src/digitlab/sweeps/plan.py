"""What a sweep trains: grids of settings, expanded over seeds into trials with deterministic names.

Trial folders are named from their settings (a short name plus a digest of the whole config), so
re-running a sweep finds the trials it already finished and trains only the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError
from digitlab.training.recipes import recipe_config

DEFAULT_SWEEPS_ROOT = "sweeps"
# A sweep folder's subfolder holding one ordinary run folder per trial, named by `trial_name`.
TRIALS_DIR = "trials"


@dataclasses.dataclass(frozen=True)
class Grid:
    """One cross product of factor values: every combination is trained with every seed."""

    # A name for the grid's section of sweep.md, e.g. "depth" or "batch size".
    name: str
    # Training setting (a TrainingConfig field) -> the values to try, in order.
    factors: dict[str, list[Any]]


@dataclasses.dataclass(frozen=True)
class Trial:
    """One training run of a sweep."""

    config: TrainingConfig
    # Folder name under trials/: deterministic, so a re-run finds it.
    name: str


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep trains: fixed settings, grids over factors, seeds."""

    # Used for the default folder name and the title of sweep.md.
    name: str
    # The grids; a trial shared by two grids (the same config) is trained once.
    grids: list[Grid]
    # Settings that are the same in every trial (on top of TrainingConfig's defaults).
    fixed: dict[str, Any]
    # One trial per seed for each configuration.
    seeds: list[int]
    # The study whose verdicts end sweep.md, if any (see `studies`).
    study: str | None = None

    def configs(self, grid: Grid) -> list[TrainingConfig]:
        return expand_grid(self.fixed, grid.factors, self.seeds)

    def trials(self) -> list[Trial]:
        """Every trial of every grid, each configuration once, in grid order."""
        seen: dict[str, Trial] = {}
        for grid in self.grids:
            for config in self.configs(grid):
                trial = Trial(config, trial_name(config))
                seen.setdefault(trial.name, trial)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "study": self.study, "fixed": _jsonable(self.fixed), "seeds": list(self.seeds),
                "grids": [{"name": grid.name, "factors": _jsonable(grid.factors)} for grid in self.grids]}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def default_dir(self, root: str | Path = DEFAULT_SWEEPS_ROOT) -> Path:
        """sweeps/<name>-<digest of the plan>: running the same command again resumes the same folder."""
        return Path(root) / f"{self.name}-{self.digest()}"


def grid_plan(settings: dict[str, list[Any]], seeds: int = 1, name: str = "sweep") -> SweepPlan:
    """One grid from flag values: settings with one value are fixed, the others are factors."""
    fixed = {key: values[0] for key, values in settings.items() if len(values) == 1}
    factors = {key: list(values) for key, values in settings.items() if len(values) > 1}
    return SweepPlan(name=name, grids=[Grid("grid", factors)], fixed=fixed, seeds=list(range(seeds)))


def training_fields() -> dict[str, dataclasses.Field]:
    """TrainingConfig's fields by name (whatever fields it has: new ones work without changes here)."""
    return {field.name: field for field in dataclasses.fields(TrainingConfig)}


def value_types() -> dict[str, type]:
    """The type of one value of each TrainingConfig field: int, float, bool, str or tuple (of whole numbers)."""
    hints = typing.get_type_hints(TrainingConfig)
    return {name: _value_type(hints[name]) for name in training_fields()}


def _value_type(annotation: Any) -> type:
    if typing.get_origin(annotation) is tuple:
        return tuple
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # e.g. float | None: a float, or none
        kinds = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        return _value_type(kinds[0]) if len(kinds) == 1 else str
    return annotation if annotation in (bool, int, float) else str


def parse_values(name: str, texts: Sequence[str]) -> list[Any]:
    """Command-line texts -> values of the TrainingConfig field `name`.

    Each text may hold several values separated by commas ("64,256,1024"), except for tuple fields
    such as hidden_units, where a comma separates layers: "512,512" is one value (two layers) and
    each repetition of the flag is another value.
    """
    kinds = value_types()
    if name not in kinds:
        raise ConfigError(f"unknown training setting {name!r}; known: {', '.join(kinds)}")
    kind = kinds[name]
    values: list[Any] = []
    for text in texts:
        parts = [text] if kind is tuple else [part for part in text.split(",") if part.strip()]
        values += [_parse_one(name, kind, part.strip()) for part in parts]
    return values


def _parse_one(name: str, kind: type, text: str) -> Any:
    flag = "--" + name.replace("_", "-")
    try:
        if kind is tuple:
            return tuple(int(part) for part in text.split(","))
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return kind(text)
    except ValueError as err:
        raise ConfigError(f"{flag} got {text!r}, which is not a valid {name} value") from err
    if text.lower() in ("none", "null"):
        return None
    return text


def expand_grid(fixed: dict[str, Any], factors: dict[str, Sequence[Any]], seeds: Sequence[int]) -> list[TrainingConfig]:
    """Every combination of the factors' values, with every seed (innermost), on top of `fixed`.

    Raises:
        ConfigError: an unknown setting, a factor without values, "seed" as a factor (use seeds),
            or a combination TrainingConfig rejects.
    """
    fields = training_fields()
    for name in [*fixed, *factors]:
        if name not in fields:
            raise ConfigError(f"unknown training setting {name!r}; known: {', '.join(fields)}")
    if "seed" in factors or "seed" in fixed:
        raise ConfigError("seeds are set with --seeds N (seeds 0..N-1), not as a factor")
    if not seeds:
        raise ConfigError("a sweep needs at least one seed; pass --seeds 1 or more")
    for name, values in factors.items():
        if not values:
            raise ConfigError(f"factor {name!r} has no values")
    names = list(factors)
    configs = []
    for combination in itertools.product(*(factors[name] for name in names)):
        for seed in seeds:
            configs.append(make_config({**fixed, **dict(zip(names, combination, strict=True)), "seed": int(seed)}))
    return configs


def make_config(settings: dict[str, Any]) -> TrainingConfig:
    """A config as `digitlab train` builds it from flags: the recipe's settings (if one is named), then `settings`."""
    settings = dict(settings)
    return recipe_config(settings.pop("recipe", "tutorial"), **settings)


def trial_name(config: TrainingConfig) -> str:
    """e.g. 'mnist-512x512-e5-b64-s0-1a2b3c4d': readable, and unique to the whole config.

    The digest covers the settings that differ from TrainingConfig's defaults, so a setting added
    to digitlab later (with a default) does not rename, and retrain, the trials of an earlier sweep.
    """
    defaults = TrainingConfig().to_dict()
    changed = {name: value for name, value in config.to_dict().items() if defaults.get(name, object()) != value}
    digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{config.short_name()}-{digest}"


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, tuple):
            return list(value)
        if isinstance(value, list):
            return [convert(item) for item in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    return {key: convert(value) for key, value in values.items()}
