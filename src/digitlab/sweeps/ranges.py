"""Ranges of settings a search looks within: `--set learning_rate=1e-4..1e-2:log`, `--set dropout=0..0.5`."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from digitlab.analysis.formatting import format_value
from digitlab.errors import ConfigError
from digitlab.sweeps.plan import value_types

# "1e-4..1e-2", "0..0.5", "32..512:log"
RANGE_PATTERN = re.compile(r"^\s*(?P<low>[^.][^:]*?)\s*\.\.\s*(?P<high>[^:]+?)\s*(?::\s*(?P<scale>\w+))?\s*$")


@dataclasses.dataclass(frozen=True)
class Range:
    """A setting searched between two bounds (both included)."""

    low: float
    high: float
    # Sample evenly on a log scale (learning rates), else evenly.
    log: bool = False
    # A whole-number setting (batch size, epochs): sampled as whole numbers.
    integer: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_range(text: str) -> bool:
    """Whether a `--set NAME=TEXT` value is a range (`LOW..HIGH`, optionally `:log`)."""
    return ".." in text


def parse_range(name: str, text: str) -> Range:
    """`--set NAME=LOW..HIGH[:log]` -> a Range of the TrainingConfig field `name`.

    Raises:
        ConfigError: an unknown setting, one that is not a number, bounds out of order, log with a bound <= 0.
    """
    kinds = value_types()
    if name not in kinds:
        raise ConfigError(f"unknown training setting {name!r}; known: {', '.join(kinds)}")
    if kinds[name] not in (int, float):
        raise ConfigError(f"--set {name}={text}: only number settings take a range; give {name} a list of "
                          "choices instead")
    match = RANGE_PATTERN.match(text)
    if not match or match["scale"] not in (None, "log"):
        raise ConfigError(f"--set {name}={text} is not a range; write LOW..HIGH or LOW..HIGH:log, "
                          "e.g. learning_rate=1e-4..1e-2:log")
    try:
        low, high = kinds[name](match["low"]), kinds[name](match["high"])
    except ValueError as err:
        raise ConfigError(f"--set {name}={text}: the bounds must be {kinds[name].__name__} numbers") from err
    if not low < high:
        raise ConfigError(f"--set {name}={text}: the low bound must be below the high bound")
    if match["scale"] == "log" and low <= 0:
        raise ConfigError(f"--set {name}={text}: a log scale needs bounds above 0")
    return Range(float(low), float(high), log=match["scale"] == "log", integer=kinds[name] is int)


def describe(values: Range | list[Any]) -> str:
    """A range or a list of choices in words: '0.0001..0.01 (log scale)', 'in {32, 128}'."""
    if isinstance(values, Range):
        low, high = (int(values.low), int(values.high)) if values.integer else (values.low, values.high)
        return f"{low:g}..{high:g}{' (log scale)' if values.log else ''}"
    return "in {" + ", ".join(format_value(value) for value in values) + "}"
