"""Train the line model alone under one setting and score it: how its design choices were compared.

    .venv/bin/python benchmarks/line_model_study.py NAME [--lines 30000] [--epochs 10]
        [--set LINE_FILTERS=128] [--set DROPOUT=0.0] [--cache DIR] [--seed 0] [--save MODEL.keras]
    .venv/bin/python benchmarks/line_model_study.py NAME --score MODEL.keras   # score a saved one again

The line model (training/line_model.py) is trained as the `reader` recipe trains it, on lines of
MNIST training digits 0-54,999 only, and scored on sets of 600 photographed lines of 2-8 digits,
apart, touching and overlapping in turn (data/lines.py), read by the line model alone (no classifier):

- h: lines of the held-out training digits 55,000-59,999 (seed 424,242);
- u1, u2: lines of MNIST's test digits drawn with seeds no benchmark uses (7,000,005 and 7,000,007);
- t: lines of MNIST's test digits, the very lines of benchmarks/read_accuracy.py (seed 1,000,003),
  for reference only: choosing on them would tune the design to the test set.

Choices are made on "mean": the share read exactly over h, u1 and u2 together (1,800 lines; one set of
600 alone differs from another by up to six points for the same model). Prints one JSON line (also
appended to CACHE/results.jsonl): the share read exactly, per layout, with the right number of digits,
and with too few. The training strips and the scored strips are cached in --cache (default
/tmp/digitlab-line-study), so that settings are compared on the same lines. One training run differs
from the next by two to four points on one set: mistrust smaller differences.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
HELD_OUT_FROM = 55_000
HELD_OUT_SEED, TEST_SEED = 424_242, 1_000_003
# Lines of test digits drawn with seeds no benchmark uses, for choosing (as the held-out training digits).
UNUSED_TEST_SEEDS = {"u1": 7_000_005, "u2": 7_000_007}
LINES_SCORED = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a name for this setting, in the output")
    parser.add_argument("--lines", type=int, default=30_000, help="training lines to synthesise")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a constant of training/line_model.py, e.g. DROPOUT=0.0 (repeatable)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/digitlab-line-study"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="also save the trained line model to this .keras file")
    parser.add_argument("--score", type=Path, metavar="MODEL", help="train nothing: score this saved line model")
    arguments = parser.parse_args()

    from digitlab.data import datasets
    from digitlab.training import line_model

    for setting in arguments.set:
        name, _, value = setting.partition("=")
        if not hasattr(line_model, name):
            parser.error(f"training/line_model.py has no constant {name}")
        setattr(line_model, name, ast.literal_eval(value))
    arguments.cache.mkdir(parents=True, exist_ok=True)
    (train_images, train_labels), (test_images, test_labels) = datasets.load("mnist")

    if arguments.score:
        from digitlab import runs

        model = runs.load_model(arguments.score)
        result = {"name": arguments.name, "scored": str(arguments.score)}
    else:  # first: its lines are made by forked workers, before the scored lines load JAX
        model, result = _trained(arguments, train_images, train_labels, line_model)
    scored = {"h": _scored_lines(arguments.cache, "h", train_images[HELD_OUT_FROM:], train_labels[HELD_OUT_FROM:],
                                 HELD_OUT_SEED),
              **{key: _scored_lines(arguments.cache, "t", test_images, test_labels, seed)
                 for key, seed in UNUSED_TEST_SEEDS.items()},
              "t": _scored_lines(arguments.cache, "t", test_images, test_labels, TEST_SEED)}
    for key, lines in scored.items():
        result.update(_scores(model, key, *lines))
    result["mean"] = round(float(np.mean([result[key] for key in ("h", *UNUSED_TEST_SEEDS)])), 1)
    print(json.dumps(result), flush=True)
    if arguments.save:
        model.save(arguments.save)
    with open(arguments.cache / "results.jsonl", "a", encoding="utf-8") as results:
        results.write(json.dumps(result) + "\n")


def _trained(arguments, train_images, train_labels, line_model):
    """(model, result so far): a line model trained on lines of digits 0-54,999 under the given setting."""
    started = time.perf_counter()
    strips_file = arguments.cache / f"strips-{arguments.lines}-seed{arguments.seed}.npz"
    if strips_file.exists():
        with np.load(strips_file) as stored:
            strips, targets = stored["strips"], stored["targets"]
    else:
        strips, targets = line_model.synthesize_strips(train_images[:HELD_OUT_FROM], train_labels[:HELD_OUT_FROM],
                                                       arguments.lines, seed=arguments.seed)
        np.savez(strips_file, strips=strips, targets=targets)
    print(f"{len(strips)} training strips in {time.perf_counter() - started:.1f} s", flush=True)
    model = line_model.build_line_model(arguments.seed)
    started = time.perf_counter()
    losses = line_model.fit_line_model(model, strips, targets, arguments.epochs, line_model.BATCH_SIZE,
                                       line_model.LEARNING_RATE, arguments.seed, verbose=1)
    return model, {"name": arguments.name, "lines": arguments.lines, "epochs": arguments.epochs,
                   "set": arguments.set, "fit_seconds": round(time.perf_counter() - started, 1),
                   "last_loss": round(losses[-1], 4)}


def _scored_lines(cache: Path, key: str, images, labels, seed: int):
    """(strips or None, texts, layouts) of LINES_SCORED photographed lines, through reading's front end."""
    from digitlab.data.lines import build_line_set
    from digitlab.inference.line_reading import view_line

    path = cache / f"scored-{key}-{seed}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    lines = build_line_set(images, labels, LINES_SCORED, seed)
    views = [view_line(line.image) for line in lines]
    scored = ([view.strip.pixels if view.strip is not None else None for view in views],
              [line.text for line in lines], [line.layout for line in lines])
    path.write_bytes(pickle.dumps(scored))
    return scored


def _scores(model, key: str, strips, texts, layouts) -> dict:
    from digitlab.inference.keras_network import KerasNetwork
    from digitlab.inference.line_reading import LineReader

    reader = LineReader(KerasNetwork(model), "the model trained here")
    reads = ["".join(str(run.digit) for run in reader.read_strips([strip])[0]) if strip is not None else ""
             for strip in strips]
    exact = np.array([read == text for read, text in zip(reads, texts, strict=True)])
    layouts = np.array(layouts)
    scores = {key: round(100 * exact.mean(), 1)}
    for layout in ("apart", "touching", "overlapping"):
        scores[f"{key} {layout}"] = round(100 * exact[layouts == layout].mean(), 1)
    scores[f"{key} right count"] = round(100 * np.mean([len(r) == len(t) for r, t in zip(reads, texts, strict=True)]), 1)
    scores[f"{key} too few"] = round(100 * np.mean([len(r) < len(t) for r, t in zip(reads, texts, strict=True)]), 1)
    return scores


if __name__ == "__main__":
    main()
