"""Settings and metrics as people read them: the one formatter of values and lists for tables and pages."""

from __future__ import annotations

from typing import Any


def format_value(value: Any, kind: str = "text", missing: str = "-", separator: str = ",") -> str:
    """A setting or metric as a person reads it: 97.88%, 0.0641, 6.1, 49,012, 512,256.

    Args:
        value: a number, text, None, or a list or tuple of them (each item formatted alike).
        kind: "percent" (97.88%), "loss" (0.0641), "seconds" (6.1), "rate" (49,012), "number" (a float to
            4 significant digits, or whole with thousands separators from 1,000 on), else str(value).
        missing: what None reads as.
        separator: between the items of a list or tuple ("512,256": the way --hidden-units takes them).
    """
    if value is None:
        return missing
    if isinstance(value, (list, tuple)):
        return separator.join(format_value(item, kind, missing, separator) for item in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if kind == "percent":
        return f"{value:.2%}"
    if kind == "loss":
        return f"{value:.4f}"
    if kind == "seconds":
        return f"{value:.1f}"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "number" and isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)
