"""Score a reader on photographed test sets it never trained on: the figures a bundled reader's manifest records.

Every set is made by code from MNIST's *test* digits (never its training digits), from drawn
non-digits, or from handwriting fonts no training uses, photographed as `data/lines.py` does
(scaled up, uneven paper, blur, noise, JPEG), written as PNG files and read the way `digitlab read`
and `digitlab predict` read files:

- "numbers": lines of 2-8 digits, apart, touching or overlapping in turn: the share read exactly;
- "singles": single digits: the share named right and the share refused;
- "non_digits": the training generator's kinds (letters, symbols, scribbles, shapes, faces), drawn
  with seeds no training uses: the share refused;
- "unseen_non_digits": kinds no training draws (`data/unseen.py`: smileys, grids, spirals, ...):
  the share refused, per kind: the leave-kinds-out figure;
- "handwriting_numbers" and "handwriting_singles": the same measures on digits written in handwriting
  fonts (`data/handwriting.py`), handwriting other than MNIST's writers.

    scores = score_reader(classifier, ScoreSizes(lines=600))
    scores["numbers"]["read_exactly"]        # a share in [0, 1]
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The seeds of the sets: far from the 0, 1, 2, ... that training draws with, and not read_accuracy's.
SEED = 2_000_003
# 8-digit lines timed in memory, after this many warm-up readings.
SPEED_LINES = 40
WARM_UP = 5


@dataclasses.dataclass(frozen=True)
class ScoreSizes:
    """How many pictures each set has; 0 leaves a set out."""

    # Lines of 2-8 MNIST test digits.
    lines: int = 600
    # Single MNIST test digits.
    singles: int = 1000
    # Non-digits of the kinds the training generator draws.
    non_digits: int = 1000
    # Non-digits of kinds no training draws.
    unseen_non_digits: int = 1000
    # Lines and single digits in handwriting fonts.
    handwriting_lines: int = 600
    handwriting_singles: int = 600
    # The seed every set is drawn from (each set offsets it).
    seed: int = SEED

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{field.name} must be a whole number of 0 or more, got {value!r}")


def score_reader(classifier, sizes: ScoreSizes = ScoreSizes(), progress: Callable[[str], None] | None = None,
                 folder: Path | None = None) -> dict[str, Any]:
    """Every measure of the module's docstring for `classifier` (with its line reader), as plain data.

    Args:
        classifier: a loaded Classifier (digitlab.inference) with an 11th class "not a digit".
        sizes: how many pictures each set has.
        progress: called with a line of text as each set is scored.
        folder: where the PNG files go (a new temporary folder, removed afterwards, by default).
    """
    from digitlab.data import datasets

    say = progress or (lambda text: None)
    _, (test_images, test_labels) = datasets.load("mnist")
    work = Path(tempfile.mkdtemp(prefix="digitlab-scores-")) if folder is None else Path(folder)
    scores: dict[str, Any] = {}
    try:
        for name, make, score in _sets(test_images, test_labels, sizes):
            if make is None:
                continue
            started = time.perf_counter()
            photos = make()
            scores[name] = score(classifier, photos, _written(work / name, photos))
            say(f"{name}: {scores[name]} ({time.perf_counter() - started:.0f} s)")
        scores["speed"] = _speed(classifier, test_images, test_labels, sizes.seed + 9)
    finally:
        if folder is None:
            shutil.rmtree(work, ignore_errors=True)
    return scores


def _sets(test_images, test_labels, sizes: ScoreSizes):
    """(name, make the photos or None to skip, score them) for each set, in the docstring's order."""
    from digitlab.data import lines

    def handwriting(count: int, seed: int):
        from digitlab.data.handwriting import handwriting_digits

        return handwriting_digits(max(count * 5, 500), seed)

    def unseen():
        from digitlab.data.unseen import unseen_non_digit_photos

        return unseen_non_digit_photos(sizes.unseen_non_digits, sizes.seed + 3)

    seed = sizes.seed
    plans = [
        ("numbers", sizes.lines, lambda: lines.build_line_set(test_images, test_labels, sizes.lines, seed), _numbers),
        ("singles", sizes.singles,
         lambda: lines.single_digit_photos(test_images, test_labels, sizes.singles, seed + 1), _singles),
        ("non_digits", sizes.non_digits, lambda: lines.non_digit_photos(sizes.non_digits, seed + 2), _refusals),
        ("unseen_non_digits", sizes.unseen_non_digits, unseen, _refusals),
        ("handwriting_numbers", sizes.handwriting_lines,
         lambda: lines.build_line_set(*handwriting(sizes.handwriting_lines, seed + 4), sizes.handwriting_lines,
                                      seed + 5), _numbers),
        ("handwriting_singles", sizes.handwriting_singles,
         lambda: lines.single_digit_photos(*handwriting(sizes.handwriting_singles, seed + 6),
                                           sizes.handwriting_singles, seed + 7), _singles),
    ]
    return [(name, make if count else None, score) for name, count, make, score in plans]


def _written(folder: Path, photos) -> list[Path]:
    """The photos written as PNG files (data.lines.write_line_set), in order."""
    import json

    from digitlab.data.lines import write_line_set

    labels = write_line_set(folder, photos).read_text(encoding="utf-8").splitlines()
    return [folder / json.loads(line)["path"] for line in labels]


def _numbers(classifier, photos, paths: Sequence[Path]) -> dict[str, Any]:
    """Lines read exactly by read_files (what `digitlab read` runs), overall, per layout, and the digit count."""
    from digitlab.inference.read_files import read_files

    results = list(read_files(classifier, paths))
    texts = [result.reading.text if result.reading is not None else None for result in results]
    exact = [text == photo.text for text, photo in zip(texts, photos, strict=True)]
    counts = [text is not None and len(text) == len(photo.text) for text, photo in zip(texts, photos, strict=True)]
    figures = {"count": len(photos), "read_exactly": _share(exact), "right_count": _share(counts),
               "failed": sum(text is None for text in texts)}
    for layout in ("apart", "touching", "overlapping"):
        chosen = [flag for flag, photo in zip(exact, photos, strict=True) if photo.layout == layout]
        if chosen:
            figures[layout] = _share(chosen)
    return figures


def _singles(classifier, photos, paths: Sequence[Path]) -> dict[str, Any]:
    """Single digits named right, and refused, by classify_files (what `digitlab predict` runs)."""
    results = list(classifier.classify_files(paths))
    right = [result.digit is not None and str(classifier.class_names[result.digit]) == photo.text
             for result, photo in zip(results, photos, strict=True)]
    refused = [result.digit is None and result.error is None for result in results]
    return {"count": len(photos), "right": _share(right), "refused": _share(refused),
            "failed": sum(result.error is not None for result in results)}


def _refusals(classifier, photos, paths: Sequence[Path]) -> dict[str, Any]:
    """Non-digits refused by classify_files (no digit named), overall and per kind, and read as no number."""
    from digitlab.inference.read_files import read_files

    results = list(classifier.classify_files(paths))
    refused = [result.digit is None and result.error is None for result in results]
    kinds = [photo.kind.split(":")[0] for photo in photos]
    by_kind = {kind: _share([flag for flag, other in zip(refused, kinds, strict=True) if other == kind])
               for kind in sorted(set(kinds))}
    named = Counter(str(classifier.class_names[result.digit]) for result in results if result.digit is not None)
    no_number = [result.reading is not None and result.reading.text == "" for result in read_files(classifier, paths)]
    return {"count": len(photos), "refused": _share(refused), "read_as_no_number": _share(no_number),
            "by_kind": by_kind, "named_as": dict(named.most_common()),
            "failed": sum(result.error is not None for result in results)}


def _speed(classifier, test_images, test_labels, seed: int) -> dict[str, float]:
    """Median milliseconds `read_number` takes for an 8-digit line held in memory, after a warm-up."""
    from digitlab.data.lines import build_line_set
    from digitlab.inference.reading import read_number

    photos = build_line_set(test_images, test_labels, SPEED_LINES + WARM_UP, seed, lengths=(8, 8))
    for photo in photos[:WARM_UP]:
        read_number(classifier, photo.image)
    times = []
    for photo in photos[WARM_UP:]:
        started = time.perf_counter()
        read_number(classifier, photo.image)
        times.append(time.perf_counter() - started)
    return {"ms_per_8_digit_line": round(statistics.median(times) * 1000, 2)}


def _share(flags: Sequence[bool]) -> float:
    """The share of true flags, rounded to 4 places (0.0 for none)."""
    return round(float(np.mean(flags)), 4) if len(flags) else 0.0
