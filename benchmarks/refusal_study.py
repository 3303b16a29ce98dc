"""Leave kinds out: how many non-digits of kinds no training draws the reader's classifier refuses, per way
of making its "not a digit" class.

    .venv/bin/python benchmarks/refusal_study.py [--epochs 3] [--count 1600]
        [--methods "synthetic,synthetic+fashion,synthetic x1.5+fashion"] [--keep DIR]

For each method it trains the classifier of the `reader` recipe (no line model; `--epochs` instead of
the recipe's 6, to be quick) with that method's non-digits, loads the run as `digitlab predict` does
and classifies three sets of photos (data/lines.py: scaled up, uneven paper, blur, noise, JPEG), each
`--count` pictures, written as PNG files and classified from the files (`classify_files`, with
predict's refusals: inference/rejection.py):

- unseen: non-digits of kinds no training draws (data/unseen.py: smileys, grids, spirals, hearts,
  arrows, ticks, stars, stick figures, houses, trees, clouds, shading, waves, flowers, and letters and
  words in handwriting fonts no training uses), in equal shares: the share refused, overall and per kind;
- trained kinds: nondigits.render_non_digits (the kinds the reader trains on) drawn with a seed no
  training uses, as benchmarks/read_accuracy.py draws them: the share refused;
- digits: single MNIST **test** digits: the share named right and the share refused.

Methods (each a set of TrainingConfig fields on top of the recipe):
- synthetic: the reader's own negatives, 40,000 synthetic non-digits (drawn things, pieces, wrong cuts);
- synthetic+fashion: the same and 20,000 Fashion-MNIST pictures;
- synthetic x1.5+fashion: 60,000 synthetic non-digits and 20,000 Fashion-MNIST pictures (the reader-large
  recipe's classifier negatives).

Each method trains with the same seed (0). The runs and the sets are written under a temporary folder
(or --keep DIR, kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
METHODS = {
    "synthetic": {"non_digit_images": 40_000},
    "synthetic+fashion": {"non_digit_images": 40_000, "non_digit_pictures": 20_000},
    "synthetic x1.5+fashion": {"non_digit_images": 60_000, "non_digit_pictures": 20_000},
}
# Seeds no training run (0, 1, 2, ...) and no other benchmark (1,000,003+, 7,000,001-7,000,007) uses.
UNSEEN_SEED, TRAINED_KINDS_SEED, DIGITS_SEED = 7_100_001, 7_100_003, 7_100_005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the classifier (the recipe trains 6)")
    parser.add_argument("--count", type=int, default=1600, help="photos in each of the three sets")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of: {', '.join(METHODS)}")
    parser.add_argument("--keep", type=Path, help="a new or empty folder to keep the sets and the trained runs in")
    arguments = parser.parse_args()
    methods = [name.strip() for name in arguments.methods.split(",") if name.strip()]
    unknown = [name for name in methods if name not in METHODS]
    if unknown or not methods:
        sys.exit(f"unknown methods {unknown}; choose from: {', '.join(METHODS)}")
    if arguments.epochs < 1 or arguments.count < 1:
        sys.exit("--epochs and --count must be at least 1")
    if arguments.keep is not None and arguments.keep.exists() and any(arguments.keep.iterdir()):
        sys.exit(f"{arguments.keep} is not empty; name a new or empty folder")
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="digitlab-refusal-study-"))
    folder.mkdir(parents=True, exist_ok=True)
    sets = _write_sets(folder / "sets", arguments.count)
    rows = []
    for method in methods:
        rows.append(_study(method, arguments.epochs, folder / "runs" / method.replace(" ", "_"), sets))
        print(json.dumps(rows[-1]), flush=True)
    _print_tables(rows, sets, arguments)
    if arguments.keep is None:
        shutil.rmtree(folder, ignore_errors=True)


def _write_sets(folder: Path, count: int) -> dict:
    """The three sets as PNG files: {name: (paths, photos)}."""
    from digitlab.data import datasets
    from digitlab.data.lines import non_digit_photos, single_digit_photos, write_line_set
    from digitlab.data.unseen import unseen_non_digit_photos

    started = time.perf_counter()
    _, (test_images, test_labels) = datasets.load("mnist")
    photos = {"unseen": unseen_non_digit_photos(count, UNSEEN_SEED),
              "trained kinds": non_digit_photos(count, TRAINED_KINDS_SEED),
              "digits": single_digit_photos(test_images, test_labels, count, DIGITS_SEED)}
    sets = {}
    for name, chosen in photos.items():
        labels = write_line_set(folder / name.replace(" ", "_"), chosen)
        paths = [labels.parent / json.loads(line)["path"] for line in labels.read_text(encoding="utf-8").splitlines()]
        sets[name] = (paths, chosen)
    print(f"3 sets of {count} photos made in {time.perf_counter() - started:.0f} s, in {folder}", flush=True)
    return sets


def _study(method: str, epochs: int, run_dir: Path, sets: dict) -> dict:
    """Train the reader's classifier with the method's non-digits; score the three sets from the run folder."""
    from digitlab.data.unseen import UNSEEN_KINDS
    from digitlab.inference.loading import load_classifier
    from digitlab.training.recipes import recipe_config
    from digitlab.training.train import train

    config = recipe_config("reader", line_model_lines=0, epochs=epochs, **METHODS[method])
    started = time.perf_counter()
    train(config, run_dir=run_dir, verbose=2)
    seconds = time.perf_counter() - started
    classifier = load_classifier(run_dir)
    results = {name: list(classifier.classify_files(paths)) for name, (paths, _) in sets.items()}
    failed = sum(result.error is not None for outcome in results.values() for result in outcome)
    refused = {name: [result.digit is None and result.error is None for result in outcome]
               for name, outcome in results.items()}
    kinds = [photo.kind.split(":")[0] for photo in sets["unseen"][1]]
    by_kind = {kind: _share([flag for flag, other in zip(refused["unseen"], kinds, strict=True) if other == kind])
               for kind in UNSEEN_KINDS if kind in kinds}
    right = [result.digit is not None and str(classifier.class_names[result.digit]) == photo.text
             for result, photo in zip(results["digits"], sets["digits"][1], strict=True)]
    return {"method": method, "epochs": epochs, "train_seconds": round(seconds), "failed_files": failed,
            "unseen_refused": _share(refused["unseen"]), "unseen_by_kind": by_kind,
            "trained_kinds_refused": _share(refused["trained kinds"]),
            "digits_right": _share(right), "digits_refused": _share(refused["digits"])}


def _print_tables(rows: list[dict], sets: dict, arguments: argparse.Namespace) -> None:
    count = len(sets["unseen"][0])
    print(f"\nReproduce: .venv/bin/python benchmarks/refusal_study.py {shlex.join(sys.argv[1:])}".rstrip())
    print(f"({count} photos per set; the reader recipe's classifier, {arguments.epochs} epochs, seed 0)\n")
    print("| method | unseen kinds refused | trained kinds refused | MNIST test digits right | digits refused "
          "| training |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['unseen_refused']:.1%} | {row['trained_kinds_refused']:.1%} "
              f"| {row['digits_right']:.1%} | {row['digits_refused']:.1%} | {row['train_seconds']} s |")
    kinds = list(rows[0]["unseen_by_kind"])
    per_kind = count // len(kinds)
    print(f"\nUnseen kinds refused, per kind (about {per_kind} photos each):\n")
    print("| kind | " + " | ".join(row["method"] for row in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for kind in kinds:
        print(f"| {kind} | " + " | ".join(f"{row['unseen_by_kind'][kind]:.1%}" for row in rows) + " |")
    if any(row["failed_files"] for row in rows):
        print("\nfiles that failed to read: " + ", ".join(f"{row['method']} {row['failed_files']}" for row in rows))


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


if __name__ == "__main__":
    main()
