"""How `predict`'s refusals trade off: digits refused against non-digits refused, per threshold pair.

    .venv/bin/python benchmarks/refusal_thresholds.py --model runs/<reader run>

Builds a tuning set that no other benchmark uses: photos (data/lines.py) of 3,000 MNIST test digits
that benchmarks/read_accuracy.py's 1,000 single digits leave out (seed 7,000,001), and of 2,000
non-digits (seed 7,000,003; data/nondigits.py). Each picture is prepared and classified once; then
for each refuse level (how probable the "not a digit" class must be, rejection.REFUSE_LEVEL) and
min-confidence (rejection.DEFAULT_MIN_CONFIDENCE) it prints the share of digits named right, of
digits refused, and of non-digits refused. The defaults were chosen from this table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
# read_accuracy.py draws its single digits with this seed (its DEFAULT_SEED + 2): those are left out.
BENCHMARK_SINGLES_SEED = 1_000_003 + 2
BENCHMARK_SINGLES = 1000
DIGITS_SEED, NON_DIGITS_SEED = 7_000_001, 7_000_003
REFUSE_LEVELS = (0.5, 0.55, 0.6, 0.65, 0.7)
MIN_CONFIDENCES = (0.3, 0.35, 0.4, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a run folder with a 'not a digit' class (reader)")
    parser.add_argument("--digits", type=int, default=3000)
    parser.add_argument("--non-digits", type=int, default=2000)
    arguments = parser.parse_args()

    from digitlab.data import datasets
    from digitlab.data.lines import non_digit_photos, single_digit_photos
    from digitlab.inference import rejection
    from digitlab.inference.images import prepare_image_batch
    from digitlab.inference.loading import load_classifier

    classifier = load_classifier(arguments.model)
    _, (test_images, test_labels) = datasets.load("mnist")
    # The same draw as single_digit_photos makes for the benchmark (no replacement below 10,000).
    used = np.random.default_rng(BENCHMARK_SINGLES_SEED).choice(len(test_images), size=BENCHMARK_SINGLES, replace=False)
    kept = np.setdiff1d(np.arange(len(test_images)), used)
    digits = single_digit_photos(test_images[kept], test_labels[kept], arguments.digits, DIGITS_SEED)
    non_digits = non_digit_photos(arguments.non_digits, NON_DIGITS_SEED)

    def classified(photos):
        prepared = np.stack(prepare_image_batch([photo.image for photo in photos]))
        return classifier.probabilities(prepared), prepared

    digit_outputs, non_digit_outputs = classified(digits), classified(non_digits)
    truth = np.array([int(photo.text) for photo in digits])
    print(f"{len(digits)} digits, {len(non_digits)} non-digits; model {arguments.model}")
    print(f"{'refuse level':>12} {'min-confidence':>14} {'digits right':>12} {'digits refused':>14} "
          f"{'non-digits refused':>18}")
    default_level = rejection.REFUSE_LEVEL
    try:
        for level in REFUSE_LEVELS:
            rejection.REFUSE_LEVEL = level
            for min_confidence in MIN_CONFIDENCES:
                on_digits = classifier.decide(*digit_outputs, min_confidence)
                on_non_digits = classifier.decide(*non_digit_outputs, min_confidence)
                right = np.mean([decision.digit == label for decision, label in zip(on_digits, truth, strict=True)])
                refused = np.mean([decision.digit is None for decision in on_digits])
                refused_non_digits = np.mean([decision.digit is None for decision in on_non_digits])
                default = " <- the defaults" if (level, min_confidence) == (
                    default_level, rejection.DEFAULT_MIN_CONFIDENCE) else ""
                print(f"{level:>12} {min_confidence:>14} {right:>12.2%} {refused:>14.2%} {refused_non_digits:>18.2%}"
                      f"{default}")
    finally:
        rejection.REFUSE_LEVEL = default_level


if __name__ == "__main__":
    main()
