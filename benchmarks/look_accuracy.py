"""How often the drawing page's one answer (`looking.look`) is right, against the page's earlier rule.

    .venv/bin/python benchmarks/look_accuracy.py [--model RUN_DIR] [--count 600] [--seed 2500003]

Photos made from MNIST's test digits (data/lines.py: scaled up, uneven paper, blur, noise, JPEG), in
memory: single digits, two-digit numbers apart, touching and overlapping, and non-digits of a seed no
training uses. Each is answered two ways:

- `look`: one digit, a number, or neither (`looking.choose`);
- the earlier page: the classifier's digit whenever it names one, else the number read when the
  classifier says "several digits", else no answer.

Printed per set: the share answered exactly right (the digit for a single, the whole number for a
line, a refusal for a non-digit), and for singles the share shown as a number. Without --model, the
bundled reader.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# Training draws its synthetic non-digits from seeds 0, 1, 2, ...; benchmarks/read_accuracy.py uses 1,000,003.
DEFAULT_SEED = 2_500_003


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder or model file (default: the bundled reader)")
    parser.add_argument("--count", type=int, default=600, help="photos per set")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sets (keep it off training's)")
    arguments = parser.parse_args()

    from digitlab.data import datasets
    from digitlab.data.lines import build_line_set, non_digit_photos, single_digit_photos
    from digitlab.inference import looking
    from digitlab.inference.loading import load_bundled_reader, load_classifier

    classifier = load_classifier(arguments.model) if arguments.model else load_bundled_reader()
    _, (test_images, test_labels) = datasets.load("mnist")
    sets = {"single digits": single_digit_photos(test_images, test_labels, arguments.count, arguments.seed)}
    for offset, layout in enumerate(("apart", "touching", "overlapping"), start=1):
        sets[f"2-digit numbers, {layout}"] = build_line_set(test_images, test_labels, arguments.count,
                                                             arguments.seed + offset, lengths=(2, 2), layouts=(layout,))
    sets["non-digits"] = non_digit_photos(arguments.count, arguments.seed + 4)
    print(f"model: {classifier.source}; {arguments.count} photos per set, seed {arguments.seed}")
    print("| set | look: right | earlier page: right | singles shown as a number (look / earlier) |")
    print("| --- | ---: | ---: | ---: |")
    started = time.perf_counter()
    for name, photos in sets.items():
        right = {"look": 0, "earlier": 0}
        as_number = {"look": 0, "earlier": 0}
        for photo in photos:
            answer = looking.look(classifier, photo.image)
            decision = classifier.decide(answer.probabilities[None], answer.prepared[None])[0]
            shown = {"look": (answer.kind, answer.text), "earlier": _earlier(decision, answer, classifier)}
            for rule, (shown_kind, text) in shown.items():
                right[rule] += text == photo.text and (shown_kind != looking.NUMBER or len(photo.text) >= 2)
                as_number[rule] += shown_kind == looking.NUMBER
        count = len(photos)
        numbers = f"{as_number['look'] / count:.1%} / {as_number['earlier'] / count:.1%}" if name == "single digits" else ""
        print(f"| {name} | {right['look'] / count:.1%} | {right['earlier'] / count:.1%} | {numbers} |")
    print(f"({time.perf_counter() - started:.0f} s)")


def _earlier(decision, answer, classifier) -> tuple[str, str]:
    """What the page showed before `look`: the classifier's digit whenever it named one, else the number read
    when it said "several digits" (a lone digit read included), else nothing."""
    from digitlab.inference import looking, rejection

    if decision.digit is not None:
        return looking.DIGIT, classifier.class_names[decision.digit]
    if decision.reason == rejection.SEVERAL_DIGITS and answer.reading.text:
        return looking.NUMBER, answer.reading.text
    return looking.NOT_A_DIGIT, ""


if __name__ == "__main__":
    main()
