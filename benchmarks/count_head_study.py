"""Would a head that counts the digits of a line help the line model read them? (Tried; it does not.)

    .venv/bin/python benchmarks/count_head_study.py RUN/line_model.keras [--lines 12000] [--epochs 60]

Most of the line model's misreadings drop a digit, and told the true number of digits (an oracle
choosing among the 16 readings of CTC beam search) it reads 5-6 points more lines. This trains a
small head on the frozen line model's last features (a convolution over the steps, then a per-step
density in [0, 1] summed into a count, mean squared error against the true count) on new lines of
MNIST *training* digits, as the recipe would, and scores the decoders on lines of test digits (the
sets u1, u2 and t of benchmarks/line_model_study.py): greedy, beam search, the oracle, the beam's
best reading of the head's count, and the beam's readings scored with a penalty of WEIGHT x (length -
count)^2. Prints one line per set: each decoder's share of lines read exactly, and how often the
greedy decoding and the head count the digits right.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from line_model_study import TEST_SEED, UNUSED_TEST_SEEDS, _scored_lines  # noqa: E402

HEAD_SEED = 9191  # the head's training lines: a seed the recipe does not use
BEAM_WIDTH = 16
WEIGHTS = (0.5, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained line model (RUN/line_model.keras)")
    parser.add_argument("--lines", type=int, default=12_000, help="training lines for the head")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/digitlab-line-study"))
    arguments = parser.parse_args()
    arguments.cache.mkdir(parents=True, exist_ok=True)

    from digitlab.data import datasets
    from digitlab.training import line_model

    (train_images, train_labels), (test_images, test_labels) = datasets.load("mnist")
    strips, targets = line_model.synthesize_strips(train_images, train_labels, arguments.lines, seed=HEAD_SEED)
    import keras

    from digitlab import runs

    model = runs.load_model(arguments.model)
    both = keras.Model(model.inputs, [model.layers[-3].output, model.outputs[0]])  # last features, logits
    features = _features_function(both)
    train_features = np.concatenate([features(strips[start:start + 256].astype(np.float32) / 255)[0]
                                     for start in range(0, len(strips), 256)])
    flat = train_features.reshape(-1, train_features.shape[-1])
    mean, deviation = flat.mean(0), flat.std(0) + 1e-3
    head = _count_head(train_features.shape[-1])
    head.fit((train_features - mean) / deviation, (targets > 0).sum(1).astype(np.float32), batch_size=128,
             epochs=arguments.epochs, verbose=0, validation_split=0.1)

    sets = {key: _scored_lines(arguments.cache, "t", test_images, test_labels, seed)
            for key, seed in UNUSED_TEST_SEEDS.items()}
    sets["t"] = _scored_lines(arguments.cache, "t", test_images, test_labels, TEST_SEED)
    for key, (set_strips, texts, _) in sets.items():
        width = 64 * int(np.ceil(max(strip.shape[1] for strip in set_strips if strip is not None) / 64))
        padded = np.stack([np.pad(strip, ((0, 0), (0, width - strip.shape[1]))) if strip is not None
                           else np.zeros((line_model.STRIP_HEIGHT, width), np.float32) for strip in set_strips])
        hidden, logits = (np.concatenate(parts) for parts in zip(
            *(features(padded[start:start + 100].astype(np.float32)) for start in range(0, len(padded), 100)),
            strict=True))
        counts = np.asarray(head.predict((hidden - mean) / deviation, verbose=0)).reshape(-1)
        lengths = np.full(len(padded), logits.shape[1])
        paths, scores = (np.asarray(value) for value in keras.ops.ctc_decode(
            logits, lengths, strategy="beam_search", beam_width=BEAM_WIDTH, top_paths=BEAM_WIDTH, mask_index=0))
        greedy = np.asarray(keras.ops.ctc_decode(logits, lengths, strategy="greedy", mask_index=0)[0])[0]
        print(key, _decoder_scores(texts, counts, _text(greedy), [_text(paths[:, index]) for index in range(len(texts))],
                                   scores), flush=True)


def _features_function(both):
    def features(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, rows, width) strips -> (n, steps, channels + 11) features and probabilities, (n, steps, 11) logits."""
        hidden, logits = (np.asarray(value) for value in both.predict_on_batch(batch[..., None]))
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return np.concatenate([hidden[:, 0], shifted / shifted.sum(-1, keepdims=True)], -1), logits

    return features


def _count_head(channels: int):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, channels))
    hidden = keras.layers.Conv1D(32, 5, padding="same", activation="relu")(inputs)
    density = keras.layers.Conv1D(1, 1, activation="sigmoid")(hidden)
    count = keras.layers.Lambda(lambda values: keras.ops.sum(values, axis=(1, 2)))(density)
    head = keras.Model(inputs, count)
    head.compile(keras.optimizers.Adam(0.003), "mse")
    return head


def _text(paths: np.ndarray) -> list[str]:
    return ["".join(str(label - 1) for label in path if label > 0) for path in paths]


def _decoder_scores(texts, counts, greedy, beams, scores) -> dict:
    right = {name: [] for name in ("greedy", "beam", "oracle", "head count", *(f"penalty {w}" for w in WEIGHTS))}
    counted = {"greedy counts right": [], "head counts right": []}
    for index, text in enumerate(texts):
        readings, count = beams[index], float(counts[index])
        right["greedy"].append(greedy[index] == text)
        right["beam"].append(readings[0] == text)
        right["oracle"].append(next((r for r in readings if len(r) == len(text)), readings[0]) == text)
        right["head count"].append(next((r for r in readings if len(r) == round(count)), greedy[index]) == text)
        for weight in WEIGHTS:
            total = [score - weight * (len(reading) - count) ** 2
                     for reading, score in zip(readings, scores[index], strict=True)]
            right[f"penalty {weight}"].append(readings[int(np.argmax(total))] == text)
        counted["greedy counts right"].append(len(greedy[index]) == len(text))
        counted["head counts right"].append(round(count) == len(text))
    return {name: round(100 * float(np.mean(values)), 1) for name, values in {**right, **counted}.items()}


if __name__ == "__main__":
    main()
