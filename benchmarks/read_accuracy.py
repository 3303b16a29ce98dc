"""How well a model reads whole numbers and says "not a digit", on photos made from MNIST's test digits.

    .venv/bin/python benchmarks/read_accuracy.py [--model RUN_DIR] [--count-lines 600]
        [--count-non-digits 1000] [--count-singles 1000] [--seed 1000003] [--keep DIR]

Three sets of photo-like pictures (data/lines.py: scaled up, uneven paper, blur, noise, JPEG; about
15% light ink on a dark board), written to a temporary folder (or --keep DIR) as PNG files:

- lines of 2-8 MNIST test digits, apart, touching or overlapping in turn: the share read exactly by
  `read_files`, what `digitlab read` runs (all digits, in order, nothing more), overall and per layout;
- non-digits (letters, symbols, scribbles, shapes, faces; data/nondigits.py) drawn with a seed no
  training run uses: the share `classify_files` refuses (digit None), and the share `read_number`
  reads as no number at all;
- single MNIST test digits: the share `classify_files` names right, and the share it refuses.

Speed: the median milliseconds `read_number` takes for an 8-digit line held in memory (after a warm-up),
and lines per second reading the folder of lines as `digitlab read` does (`read_files`, in this
process, after reading it once to compile every shape). Only MNIST's test
digits are used, never its training digits. Without --model, the latest finished run under runs/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Training draws its synthetic non-digits from seeds 0, 1, 2, ...: far from this one.
DEFAULT_SEED = 1_000_003
# 8-digit lines timed in memory, after this many warm-up readings.
SPEED_LINES = 60
WARM_UP = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder or .keras file (default: the latest finished run)")
    parser.add_argument("--count-lines", type=int, default=600, help="lines of 2-8 digits")
    parser.add_argument("--count-non-digits", type=int, default=1000, help="photos of things that are not a digit")
    parser.add_argument("--count-singles", type=int, default=1000, help="photos of single digits")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sets (keep it off training's)")
    parser.add_argument("--keep", type=Path, help="write the sets into this new or empty folder and keep them")
    arguments = parser.parse_args()

    from digitlab.data import datasets
    from digitlab.data.lines import build_line_set, non_digit_photos, single_digit_photos, write_line_set

    model = arguments.model or _existing_run()
    if model is None:
        sys.exit(f"no finished run under {ROOT / 'runs'}: train a reader first, or pass --model RUN_DIR")
    _, (test_images, test_labels) = datasets.load("mnist")
    started = time.perf_counter()
    line_set = build_line_set(test_images, test_labels, arguments.count_lines, arguments.seed)
    non_digits = non_digit_photos(arguments.count_non_digits, arguments.seed + 1)
    singles = single_digit_photos(test_images, test_labels, arguments.count_singles, arguments.seed + 2)
    speed_lines = build_line_set(test_images, test_labels, SPEED_LINES + WARM_UP, arguments.seed + 3, lengths=(8, 8))
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="digitlab-read-accuracy-"))
    written = {name: write_line_set(folder / name, photos)
               for name, photos in (("lines", line_set), ("non-digits", non_digits), ("singles", singles))}
    print(f"{len(line_set)} lines, {len(non_digits)} non-digits, {len(singles)} single digits made in "
          f"{time.perf_counter() - started:.1f} s, in {folder}; model {model}")

    from digitlab.inference.loading import load_classifier
    from digitlab.inference.reading import read_number

    classifier = load_classifier(model)
    print(f"{classifier!r}: classes {', '.join(classifier.class_names)}")
    rows = []
    rows += _lines(classifier, line_set, _paths(written["lines"]))
    rows += _non_digits(classifier, read_number, non_digits, _paths(written["non-digits"]))
    rows += _singles(classifier, singles, _paths(written["singles"]))
    rows += _speed(classifier, read_number, speed_lines)
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if arguments.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


def _lines(classifier, line_set, paths) -> list[tuple[str, str]]:
    """Whole numbers read exactly, overall and per layout; the folder read as `digitlab read` does, timed."""
    from digitlab.inference.read_files import read_files

    for _ in read_files(classifier, paths):  # compile the shapes first
        pass
    started = time.perf_counter()
    results = list(read_files(classifier, paths))
    per_second = len(paths) / max(time.perf_counter() - started, 1e-9)
    readings = [result.reading for result in results]
    if any(reading is None for reading in readings):
        sys.exit(f"{sum(reading is None for reading in readings)} line files failed: {results[0].error}")
    exact = [reading.text == line.text for reading, line in zip(readings, line_set, strict=True)]
    lengths = [len(reading.text) == len(line.text) for reading, line in zip(readings, line_set, strict=True)]
    rows = [("numbers read exactly", _share(exact)),
            ("  with the right number of digits", _share(lengths))]
    for layout in sorted({line.layout for line in line_set}, key=["apart", "touching", "overlapping"].index):
        chosen = [right for right, line in zip(exact, line_set, strict=True) if line.layout == layout]
        rows.append((f"  {layout}", _share(chosen)))
    rows.append(("lines/s reading the folder (read_files, one process)", f"{per_second:.1f}"))
    return rows


def _non_digits(classifier, read_number, photos, paths) -> list[tuple[str, str]]:
    """Non-digits refused by classify_files, by kind, and read as no number by read_number."""
    results = list(classifier.classify_files(paths))
    failed = sum(result.error is not None for result in results)
    refused = [result.digit is None and result.error is None for result in results]
    reasons = Counter(result.reason for result in results if result.digit is None and result.error is None)
    kinds = [photo.kind.split(":")[0] for photo in photos]
    by_kind = ", ".join(f"{kind} {_share([flag for flag, other in zip(refused, kinds, strict=True) if other == kind])}"
                        for kind in sorted(set(kinds)))
    nothing_read = [read_number(classifier, photo.image).text == "" for photo in photos]
    return [("non-digits refused (classify_files)", f"{_share(refused)}  ({failed} files failed)"),
            ("  by kind", by_kind or "-"),
            ("  reasons", ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) or "-"),
            ("non-digits read as no number (read_number)", _share(nothing_read))]


def _singles(classifier, photos, paths) -> list[tuple[str, str]]:
    """Single digits named right, and refused, by classify_files."""
    results = list(classifier.classify_files(paths))
    right = [result.digit is not None and str(classifier.class_names[result.digit]) == photo.text
             for result, photo in zip(results, photos, strict=True)]
    refused = [result.digit is None and result.error is None for result in results]
    failed = sum(result.error is not None for result in results)
    return [("single digits right", _share(right)),
            ("single digits refused", f"{_share(refused)}  ({failed} files failed)")]


def _speed(classifier, read_number, speed_lines) -> list[tuple[str, str]]:
    """Median milliseconds per 8-digit line held in memory, after a warm-up."""
    for line in speed_lines[:WARM_UP]:
        read_number(classifier, line.image)
    times, exact = [], []
    for line in speed_lines[WARM_UP:]:
        started = time.perf_counter()
        reading = read_number(classifier, line.image)
        times.append(time.perf_counter() - started)
        exact.append(reading.text == line.text)
    return [("ms per 8-digit line in memory (median)",
             f"{statistics.median(times) * 1000:.1f}  (read exactly {_share(exact)})")]


def _paths(labels_path: Path) -> list[Path]:
    """The pictures of a written set, in order, as its labels.jsonl lists them."""
    lines = labels_path.read_text(encoding="utf-8").splitlines()
    return [labels_path.parent / json.loads(line)["path"] for line in lines]


def _share(flags: list[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):.1f}% of {len(flags)}" if flags else "-"


def _existing_run() -> Path | None:
    from digitlab import runs
    from digitlab.errors import RunFolderError

    try:
        return runs.latest_finished_run(ROOT / "runs")
    except RunFolderError:
        return None


if __name__ == "__main__":
    main()
