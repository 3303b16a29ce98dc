"""How well a reader keeps the separators people write between digits, and how rarely it invents one.

    .venv/bin/python benchmarks/separator_accuracy.py [--model RUN_DIR | --model bundled] [--count 550]
        [--count-plain 600] [--seed 2000003] [--json]

Two sets of photo-like lines (data/lines.py: scaled up, uneven paper, blur, noise, JPEG; about 15%
light ink on a dark board), made here from MNIST's *test* digits only, with a seed no training uses:

- numbers with separators (`lines.build_separator_set`): prices "12.50" and "3,75", decimals, dates
  "2024-12-06", "12/06", "06/12/24", "06.12.2024", times "10:45", phone numbers "555 0199" and
  "555-0199", thousands "1,250"; the marks drawn by `lines.draw_mark` (points and commas of many
  sizes, short and long dashes, slashes leaning either way, colons), digits apart, touching or
  overlapping in turn;
- lines of 2-8 digits without any separator (`lines.build_line_set`, as benchmarks/read_accuracy.py).

Each line is read with `read_number` (what `digitlab read` runs, at its default min_confidence) and
scored:

- whole strings exact: the text, digits and separators, equals the truth;
- separators read right: of all separators (spaces included) in the truth, the share read as the same
  mark after the same digit (counted by digit position: a digit lost or added moves the rest);
- digits exact: the digits alone (`Reading.digits_only`) equal the truth's digits;
- false separators: of the lines without any, the share whose reading holds a separator or a space;
- numbers without separators read exactly, as `digitlab read` prints them (separators included: a false
  one makes the number wrong) and with `--digits-only`.

Without --model: the latest finished run under runs/; `--model bundled` scores the bundled reader.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import read_accuracy  # noqa: E402  (the latest finished run, found as it finds it)

ROOT = Path(__file__).resolve().parents[1]
# Far from the seeds training draws its lines and non-digits from (0, 1, 2, ...) and from read_accuracy's.
DEFAULT_SEED = 2_000_003
SEPARATOR_CHARACTERS = ".,-/: "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run folder, .keras or .onnx file, or `bundled` (default: the latest "
                                        "finished run)")
    parser.add_argument("--count", type=int, default=550, help="numbers with separators (50 per format)")
    parser.add_argument("--count-plain", type=int, default=600, help="lines of 2-8 digits without separators")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sets (keep it off training's)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    arguments = parser.parse_args()

    from digitlab.data import datasets
    from digitlab.data.lines import build_line_set, build_separator_set
    from digitlab.inference.loading import load_bundled_reader, load_classifier

    if arguments.model == "bundled":
        classifier, model = load_bundled_reader(), "the bundled reader"
    else:
        model = arguments.model or read_accuracy._existing_run()
        if model is None:
            sys.exit(f"no finished run under {ROOT / 'runs'}: train a reader (digitlab train --recipe reader), "
                     "or pass --model RUN_DIR or --model bundled")
        classifier = load_classifier(model)
    _, (test_images, test_labels) = datasets.load("mnist")
    started = time.perf_counter()
    marked = build_separator_set(test_images, test_labels, arguments.count, arguments.seed)
    plain = build_line_set(test_images, test_labels, arguments.count_plain, arguments.seed + 1)
    made = time.perf_counter() - started
    started = time.perf_counter()
    figures = score(classifier, marked, plain)
    figures.update(model=str(model), seed=arguments.seed, made_seconds=round(made, 1),
                   read_seconds=round(time.perf_counter() - started, 1))
    if arguments.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"model {model}; {len(marked)} numbers with separators and {len(plain)} without, from MNIST's test "
          f"digits (seed {arguments.seed}), made in {made:.0f} s, read in {figures['read_seconds']:.0f} s")
    rows = [("with separators: whole strings exact", _percent(figures["whole_strings_exact"])),
            ("with separators: separators read right", _percent(figures["separators_read_right"])),
            ("with separators: digits exact (digits only)", _percent(figures["digits_exact"])),
            ("without separators: false separators", _percent(figures["false_separators"])),
            ("without separators: read exactly", _percent(figures["plain_read_exactly"])),
            ("without separators: read exactly, --digits-only", _percent(figures["plain_digits_only_exactly"]))]
    rows += [(f"  {name}: whole strings exact", _percent(value)) for name, value in figures["by_format"].items()]
    rows += [(f"  separator {character!r}: read right", _percent(value))
             for character, value in figures["by_separator"].items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if figures["false_examples"]:
        print("false separators, e.g.: " + ", ".join(f"{truth} -> {read!r}" for truth, read in figures["false_examples"]))


def score(classifier, marked, plain) -> dict:
    """The figures of the module docstring for readings of `marked` (numbers with separators) and `plain`."""
    from digitlab.data.lines import SEPARATOR_FORMATS
    from digitlab.inference.reading import read_number

    readings = [read_number(classifier, line.image) for line in marked]
    exact = [reading.text == line.text for reading, line in zip(readings, marked, strict=True)]
    digits_exact = [reading.digits_only().text == _digits(line.text) for reading, line in zip(readings, marked,
                                                                                             strict=True)]
    found, total = Counter(), Counter()
    for reading, line in zip(readings, marked, strict=True):
        read = _separator_positions(reading.text)
        for position in _separator_positions(line.text):
            total[position[1]] += 1
            found[position[1]] += position in read
    by_format = Counter(), Counter()
    for index, right in enumerate(exact):
        name = SEPARATOR_FORMATS[index % len(SEPARATOR_FORMATS)][0]
        by_format[0][name] += right
        by_format[1][name] += 1
    plain_readings = [read_number(classifier, line.image) for line in plain]
    invented = [any(character in SEPARATOR_CHARACTERS for character in reading.text) for reading in plain_readings]
    return {
        "count": len(marked), "count_plain": len(plain),
        "whole_strings_exact": _share(sum(exact), len(exact)),
        "separators_read_right": _share(sum(found.values()), sum(total.values())),
        "separators": sum(total.values()),
        "digits_exact": _share(sum(digits_exact), len(digits_exact)),
        "false_separators": _share(sum(invented), len(plain)),
        "plain_read_exactly": _share(sum(reading.text == line.text for reading, line in
                                         zip(plain_readings, plain, strict=True)), len(plain)),
        "plain_digits_only_exactly": _share(sum(reading.digits_only().text == line.text for reading, line in
                                                zip(plain_readings, plain, strict=True)), len(plain)),
        "by_format": {name: _share(by_format[0][name], by_format[1][name]) for name in by_format[1]},
        "by_separator": {character: _share(found[character], total[character]) for character in sorted(total)},
        "false_examples": [(line.text, reading.text) for reading, line, wrong in
                           zip(plain_readings, plain, invented, strict=True) if wrong][:8],
    }


def _separator_positions(text: str) -> set[tuple[int, str]]:
    """{(digits before it, the separator)} of a text: "12.50" -> {(2, ".")}."""
    positions, digits = set(), 0
    for character in text:
        if character.isdigit():
            digits += 1
        else:
            positions.add((digits, character))
    return positions


def _digits(text: str) -> str:
    return "".join(character for character in text if character.isdigit())


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


if __name__ == "__main__":
    main()
