"""Classify images with a trained network: paths, PIL images or arrays -> digits and probabilities.

Every image goes through `prepare_image` (what the CLI, the Python API and the web app share), then
through the classifier's `Network` (network.py: a Keras model or an ONNX file, the same to this module).
`loading.load_classifier` makes a `Classifier` from a run folder or a model file.

    classifier = load_classifier("runs/<run>")       # loading.py; or a model file, or None: latest run
    result = classifier.predict(["seven.jpg", "two.png"])
    result.digits, result.probabilities              # (2,), (2, 10)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab.errors import DigitlabError, ImageError, ModelError
from digitlab.inference import rejection
from digitlab.inference.images import IMAGE_SUFFIXES, MNIST_SIZE, prepare_image, prepare_image_batch
from digitlab.inference.network import Network
from digitlab.inference.preparer import ImagePreparer, prepare_files_lazily
from digitlab.record import RunConfig, RunMetrics
from digitlab.storage import OutputFolder

if TYPE_CHECKING:
    from digitlab.inference.line_reading import LineReader

# Images sent to the network in one call at most (on JAX, each power-of-two batch size up to it is compiled once).
LARGEST_BATCH = 1024
# Images sent to the model (and printed) at a time when classifying files.
FILE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Prediction:
    """What `Classifier.predict` returns for N images."""

    # Most probable class of each image, (N,) int64.
    digits: np.ndarray
    # Class probabilities, (N, classes) float32; each row sums to 1.
    probabilities: np.ndarray
    # What the network saw: (N, 28, 28) float32 in [0, 1].
    images: np.ndarray


@dataclasses.dataclass(frozen=True)
class FileResult:
    """The outcome for one file: a digit and its probabilities, or an error message."""

    path: Path
    # The digit named, or None when the file failed or the answer was refused (see `reason`).
    digit: int | None = None
    # (classes,) float32, or None when the file failed.
    probabilities: np.ndarray | None = None
    # The 28x28 image the network saw, or None when the file failed.
    image: np.ndarray | None = None
    # Where the 28x28 image was written (with `save_preprocessed`), else None.
    preprocessed_path: Path | None = None
    error: str | None = None
    # Why no digit is named although the file was read ("not a digit", "several digits", "unsure").
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, count: int) -> list[tuple[int, float]]:
        """The `count` most probable (class, probability) pairs, most probable first."""
        if self.probabilities is None:
            return []
        order = np.argsort(-self.probabilities, kind="stable")[:count]
        return [(int(label), float(self.probabilities[label])) for label in order]

    def to_dict(self) -> dict[str, Any]:
        """{"path", "digit", "probabilities"} (with "reason" when digit is null) or {"path", "error"}, for JSON."""
        if self.error is not None:
            return {"path": str(self.path), "error": self.error}
        values: dict[str, Any] = {"path": str(self.path), "digit": self.digit,
                                  "probabilities": [float(f"{value:.6g}") for value in self.probabilities]}
        if self.reason is not None:
            values["reason"] = self.reason
        if self.preprocessed_path is not None:
            values["preprocessed"] = str(self.preprocessed_path)
        return values


class Classifier:
    """A trained network ready to classify images. Safe to use from several threads at once."""

    def __init__(self, network: Network, class_names: Sequence[str] | None = None, source: str | Path | None = None,
                 run_config: RunConfig | None = None, run_metrics: RunMetrics | None = None,
                 line_reader: LineReader | None = None) -> None:
        """Wrap a loaded network; see `loading.load_classifier` to load one from a run folder or file.

        Args:
            source: what `describe` and messages call it: a path, or a description; default: the network's name.
            line_reader: the run's line model, which `reading.read_number` prefers when there is one.

        Raises:
            ModelError: the network's input is not one 28x28 image (784 values) or its output is not
                one probability per class.
        """
        self.network = network
        self.source = str(source) if source is not None else network.name
        self.run_config = run_config  # the run's config.json, when it was found
        self.run_metrics = run_metrics  # the run's metrics.json, when it was found
        self.line_reader = line_reader
        self.input_shape = _image_input_shape(network, self.source)  # e.g. (784,) or (28, 28, 1)
        classes = _class_count(network, self.source)
        names = list(class_names) if class_names else [str(label) for label in range(classes)]
        if len(names) != classes:
            raise ModelError(f"{self.source}: the model has {classes} outputs but its config names "
                             f"{len(names)} classes; is config.json from another run?")
        self.class_names = names
        # Digits (MNIST), not named classes (Fashion-MNIST): an image wider than tall is "several digits".
        self.digits_only = all(name in (str(index), rejection.NOT_A_DIGIT) for index, name in enumerate(names))

    def __repr__(self) -> str:
        return f"Classifier({self.source!r}, input {self.input_shape}, {len(self.class_names)} classes)"

    def describe(self) -> dict[str, Any]:
        """What is loaded, ready for JSON: name, source, training settings, metrics, input shape, classes."""
        source = Path(self.source)
        name = source.stem if source.suffix in (".keras", ".onnx") and source.stem != "model" else (
            source.parent.name if source.suffix in (".keras", ".onnx") else source.name)
        return {"name": name or self.source, "source": self.source,
                "model": self.source,  # what is serving: a run's path, an exported file, or "bundled reader-large ..."
                "backend": self.run_config.backend if self.run_config else None,
                "training": self.run_config.training.to_dict() if self.run_config else {},
                "metrics": self.run_metrics.to_dict() if self.run_metrics else {},
                "input_shape": list(self.input_shape), "class_names": list(self.class_names)}

    def prepare(self, image) -> np.ndarray:
        """One image (path, PIL image or array) -> the (28, 28) float32 image the network sees."""
        return prepare_image(image)

    def probabilities(self, prepared: np.ndarray) -> np.ndarray:
        """(N, 28, 28) prepared images -> (N, classes) float32 probabilities."""
        prepared = np.asarray(prepared, dtype=np.float32)
        if prepared.ndim == 2:
            prepared = prepared[None]
        if prepared.shape[1:] != (MNIST_SIZE, MNIST_SIZE):
            raise ImageError(f"prepared images must be (N, 28, 28), got {prepared.shape}; use prepare() first")
        inputs = prepared.reshape((len(prepared), *self.input_shape))  # flattened for an MLP, 28x28x1 for a CNN
        outputs = [self.network.forward(inputs[start:start + LARGEST_BATCH])
                   for start in range(0, len(inputs), LARGEST_BATCH)]
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.class_names)), np.float32)

    def decide(self, probabilities: np.ndarray, prepared: np.ndarray,
               min_confidence: float = rejection.DEFAULT_MIN_CONFIDENCE) -> list[rejection.Decision]:
        """A digit, or None and why, for each of (N, classes) probabilities of (N, 28, 28) prepared images;
        with a line reader, a digit its line model finds no evidence of is "not a digit" too."""
        probabilities, prepared = np.asarray(probabilities), np.asarray(prepared)
        if probabilities.ndim == 1:
            probabilities, prepared = probabilities[None], prepared[None]
        # A reader's line model gives a second opinion on each digit named (rejection.DIGIT_EVIDENCE_LEVEL).
        evidence = self.line_reader.digit_evidence(prepared) if self.line_reader is not None and len(prepared) else None
        return rejection.decide(probabilities, prepared, self.class_names, min_confidence, self.digits_only, evidence)

    def predict(self, images) -> Prediction:
        """Classify one image or a batch: paths, PIL images, arrays (rows, columns[, channels]), or a
        stacked array (N, rows, columns).

        Raises:
            ImageError: an image cannot be read or holds no digit (use `classify_files` to keep going
                past bad files).
        """
        batch = _as_batch(images)
        outcomes = prepare_image_batch(batch)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        prepared = np.stack(outcomes) if batch else np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.float32)
        probabilities = self.probabilities(prepared)
        return Prediction(probabilities.argmax(axis=1), probabilities, prepared)

    def classify_files(self, paths: Iterable[str | Path], preparer: ImagePreparer | None = None,
                       save_preprocessed: str | Path | OutputFolder | None = None,
                       min_confidence: float = rejection.DEFAULT_MIN_CONFIDENCE,
                       overwrite: bool = False) -> Iterator[FileResult]:
        """Classify image files in order, one result per file; a bad file gets an error, not an exception.

        Args:
            paths: image files (see `image_files` to expand folders).
            preparer: worker processes to read and prepare the files in parallel; default: this process.
            save_preprocessed: a folder to write each 28x28 image the network saw into, as PNG (or an
                `OutputFolder` made for these paths); checked before any file is read.
            min_confidence: the least probability of the best digit to name it (see `rejection`).
            overwrite: replace files already in `save_preprocessed` (an input image never).

        Raises:
            OutputFolderError: `save_preprocessed` cannot be written, or would replace files (see `OutputFolder`).
        """
        rejection.check_min_confidence(min_confidence)
        paths = [Path(path) for path in paths]
        if save_preprocessed is not None and not isinstance(save_preprocessed, OutputFolder):
            save_preprocessed = OutputFolder(save_preprocessed, paths, overwrite, option="save_preprocessed")
        # (image or None, error or None) per file, in order; workers prepare the next files while this one classifies.
        prepared = preparer.map(paths, ahead=2 * FILE_BATCH) if preparer is not None else prepare_files_lazily(paths)
        for start in range(0, len(paths), FILE_BATCH):
            batch = paths[start:start + FILE_BATCH]
            outcomes = list(itertools.islice(prepared, len(batch)))
            good = [index for index, (image, _) in enumerate(outcomes) if image is not None]
            prepared_images = np.stack([outcomes[index][0] for index in good]) if good else None
            probabilities = self.probabilities(prepared_images) if good else None
            decisions = self.decide(probabilities, prepared_images, min_confidence) if good else []
            row_of = {index: row for row, index in enumerate(good)}
            for index, (path, (image, error)) in enumerate(zip(batch, outcomes, strict=True)):
                if image is None:
                    yield FileResult(path, error=error)
                    continue
                row, decision = probabilities[row_of[index]], decisions[row_of[index]]
                written = None
                if save_preprocessed is not None:
                    try:  # a write that fails is this file's error; the next files are still classified
                        written = save_preprocessed.write(start + index, functools.partial(save_prepared_image, image))
                    except DigitlabError as err:
                        yield FileResult(path, decision.digit, row, image, error=f"{path}: the 28x28 image was not "
                                         f"written: {err}", reason=decision.reason)
                        continue
                yield FileResult(path, decision.digit, row, image, written, reason=decision.reason)


def image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders replaced by the image files directly inside them (sorted by name)."""
    found: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found.extend(sorted(child for child in item.iterdir()
                                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(item)  # a missing or unreadable file is reported as that file's error
    return found


def save_prepared_image(image: np.ndarray, path: Path) -> Path:
    """Write a (28, 28) image in [0, 1] as an 8-bit grayscale PNG; return the path.

    Written as given: `OutputFolder.write` (or `storage.atomic_path`) gives the temporary path that is renamed.
    """
    from PIL import Image

    Image.fromarray((np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8), mode="L").save(path, format="PNG")
    return path


# --- helpers ------------------------------------------------------------------------------------


def _image_input_shape(network: Network, source: str) -> tuple[int, ...]:
    """The network's input shape without the batch axis, checked to hold one 28x28 image."""
    shape = network.input_shape
    if isinstance(shape, list) or not isinstance(shape, tuple) or (shape and isinstance(shape[0], tuple)):
        raise ModelError(f"{source}: the model takes several inputs {shape}; digitlab models take one image")
    features = tuple(shape[1:])
    expected = MNIST_SIZE * MNIST_SIZE
    if any(size is None for size in features) or math.prod(features) != expected:
        raise ModelError(f"{source}: the model's input shape {shape} does not fit a 28x28 image "
                         f"({expected} values, e.g. (None, 784) or (None, 28, 28, 1))")
    return features


def _class_count(network: Network, source: str) -> int:
    shape = network.output_shape
    if not isinstance(shape, tuple) or len(shape) != 2 or not shape[1]:
        raise ModelError(f"{source}: the model's output shape {shape} is not one probability per class (None, classes)")
    return int(shape[1])


def _as_batch(images) -> list:
    """One image or many -> a list of images."""
    if isinstance(images, np.ndarray):
        single = images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4))
        return [images] if single else list(images)
    if isinstance(images, (str, bytes, os.PathLike)) or hasattr(images, "getexif") or hasattr(images, "read"):
        return [images]  # a path, a PIL image, a file object
    return list(images)
