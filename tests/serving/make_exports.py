"""Make what tests/serving checks in an environment without Keras or JAX (run by scripts/test in .venv).

    .venv/bin/python tests/serving/make_exports.py FOLDER

Trains the tutorial's network for one epoch on MNIST, exports it (FOLDER/tutorial.onnx), gives the run
a briefly trained line model and exports it again as a reader (FOLDER/reader.onnx, reader.line.onnx);
photographs MNIST *test* digits, lines of them and non-digits (FOLDER/photos/...), and writes what the
Keras models answer for each photo (FOLDER/expected.json): the answers the ONNX models must give.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: Path) -> None:
    from digitlab.config import TrainingConfig
    from digitlab.data import datasets
    from digitlab.data.lines import build_line_set, non_digit_photos, single_digit_photos, write_line_set
    from digitlab.data.unseen import unseen_non_digit_photos
    from digitlab.inference.export import export_run
    from digitlab.inference.loading import load_classifier
    from digitlab.inference.predict import image_files
    from digitlab.inference.read_files import read_files
    from digitlab.training import line_model
    from digitlab.training.train import train

    folder.mkdir(parents=True, exist_ok=True)
    (train_images, train_labels), (test_images, test_labels) = datasets.load("mnist")
    run_dir = train(TrainingConfig(epochs=1), run_dir=folder / "run", verbose=0).run_dir
    export_run(run_dir, output=folder / "tutorial.onnx")
    strips, targets = line_model.synthesize_strips(train_images, train_labels, 2048, seed=0, workers=1)
    reader = line_model.build_line_model(seed=0)
    line_model.fit_line_model(reader, strips, targets, epochs=2, batch_size=32, learning_rate=0.005, seed=0)
    reader.save(run_dir / line_model.LINE_MODEL_FILE)
    export_run(run_dir, output=folder / "reader.onnx")

    photos = folder / "photos"
    write_line_set(photos / "singles", single_digit_photos(test_images, test_labels, 30, seed=11))
    write_line_set(photos / "non-digits", non_digit_photos(10, seed=12))
    write_line_set(photos / "lines", build_line_set(test_images, test_labels, 12, seed=13))
    # For the bundled reader (tests/serving/test_bundled_install.py): more lines, and kinds no training draws.
    write_line_set(photos / "bundled-lines", build_line_set(test_images, test_labels, 40, seed=14))
    write_line_set(photos / "unseen", unseen_non_digit_photos(40, seed=15))
    pictures = image_files([photos / "singles", photos / "non-digits"])
    lines = image_files([photos / "lines"])
    expected = {}
    for name, keras_model in (("tutorial", run_dir / "model.keras"), ("reader", run_dir)):
        classifier = load_classifier(keras_model)
        expected[name] = {
            "predict": {result.path.relative_to(folder).as_posix(): result.to_dict() | {"path": None}
                        for result in classifier.classify_files(pictures)},
            "read": {result.path.relative_to(folder).as_posix(): result.reading.to_dict()
                     for result in read_files(classifier, lines)}}
    (folder / "expected.json").write_text(json.dumps(expected, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(Path(sys.argv[1]))
