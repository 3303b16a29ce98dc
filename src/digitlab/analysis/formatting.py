"""Settings, metrics and probabilities as people read them: the one formatter of values and lists for tables
and pages, and the one rounding of a model's probabilities (`format_probability`) that the command line, the
API and the drawing page share."""

from __future__ import annotations

from typing import Any

# How far outside [0, 1] a probability may stray by rounding (float32 sums of softmax outputs) and still be one.
PROBABILITY_SLACK = 1e-5


def format_value(value: Any, kind: str = "text", missing: str = "-", separator: str = ",") -> str:
    """A setting or metric as a person reads it: 97.88%, 0.0641, 6.1, 49,012, 512,256.

    Args:
        value: a number, text, None, or a list or tuple of them (each item formatted alike).
        kind: "percent" (97.88%), "probability" (97%, >99%: see `format_probability`), "loss" (0.0641),
            "seconds" (6.1), "rate" (49,012), "number" (a float to
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
    if kind == "probability":
        return format_probability(value)
    if kind == "loss":
        return f"{value:.4f}"
    if kind == "seconds":
        return f"{value:.1f}"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "number" and isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def format_probability(probability: float) -> str:
    """A model's probability as a whole percent, never "100%" or "0%" for what is not certain: 97%, >99%, <1%.

    A network's softmax is never sure, and one text for one value everywhere: ">99%" for all that rounds
    to 100% (1.0 included: float32 rounds 0.99999997 to it), "<1%" for all above 0 that rounds to 0%.
    "0%" only for exactly 0.
    """
    value = float(probability)
    # NaN, or outside [0, 1] by more than float32's rounding of a softmax: not a probability.
    if value != value or value < -PROBABILITY_SLACK or value > 1.0 + PROBABILITY_SLACK:
        raise ValueError(f"a probability lies between 0 and 1, got {probability!r}")
    value = min(1.0, max(0.0, value))
    whole = round(value * 100)
    if whole >= 100:
        return ">99%"
    if whole <= 0 and value > 0.0:
        return "<1%"
    return f"{whole}%"
