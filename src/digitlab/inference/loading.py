"""Load what a user names as a `Classifier` with its line reader: a run folder, a `.keras` file, an `.onnx`
file from `digitlab export`, or nothing (the latest finished run, else the reader bundled in the package).

`resolve_model_source` decides what a name means; the loaders below build the networks (network.py)
and what the run's files tell about them: class names, settings, metrics, the line model. Keras is
imported only for a Keras model; an ONNX file runs without Keras and JAX. An ONNX file is untrusted
input (model_checks.py): its metadata is checked, and it runs once on a test batch before it is
returned, so that a model that cannot run is refused at load rather than on the first image.

    classifier = load_classifier("runs/<run>")    # or "runs/<run>/model.onnx", or None: the latest run or the bundled reader
    classifier = load_bundled_reader()           # the package's own reader (inference/bundled.py), files verified
    classifier = load_onnx_reader("model.onnx", "line_model.onnx", description="the reader of <run>")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digitlab import runs
from digitlab.data.line_strip import STRIP_HEIGHT, STRIP_STEP
from digitlab.errors import ModelError, RunFolderError
from digitlab.inference import bundled
from digitlab.inference.images import MNIST_SIZE
from digitlab.inference.keras_network import KerasNetwork
from digitlab.inference.line_reading import LineReader
from digitlab.inference.model_checks import MODEL_ADVICE, TEST_BATCH
from digitlab.inference.onnx_network import CLASSIFIER_KIND, LINE_MODEL_KIND, OnnxNetwork
from digitlab.inference.predict import Classifier
from digitlab.record import RunConfig, RunMetrics
from digitlab.training.line_model import LINE_MODEL_FILE

# The kinds of thing a model argument can name (`ModelSource.kind`).
RUN_FOLDER = "run folder"  # a run folder: model.keras, its config.json and metrics.json, its line model if any
KERAS_FILE = "keras file"  # a .keras file (a run's config.json beside it is read, if there)
ONNX_FILE = "onnx file"  # an export from `digitlab export`, with the run's files in its metadata
BUNDLED = "bundled reader"  # the reader shipped in the package (or a copy of its folder): two ONNX files, a manifest


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """What a model argument names, once resolved: which kind of thing to load, and where."""

    kind: str  # RUN_FOLDER, KERAS_FILE, ONNX_FILE or BUNDLED
    path: Path


def resolve_model_source(path: str | Path | None, runs_root: str | Path = runs.DEFAULT_RUNS_ROOT) -> ModelSource:
    """What `path` names: a `.onnx` file, a bundled reader's folder (its manifest.json), a run folder, or
    else a `.keras` file; None: the most recent finished run under `runs_root`, else the reader bundled in
    the package. Nothing is read but the runs' metrics.json (for None).

    Raises:
        RunFolderError: `path` is None, no run under `runs_root` has finished and this installation has no
            bundled reader (the only case it is raised).
    """
    if path is None:
        try:
            return ModelSource(RUN_FOLDER, runs.latest_finished_run(runs_root))
        except RunFolderError:
            if not bundled.is_available():
                raise
            return ModelSource(BUNDLED, bundled.bundled_folder())
    path = Path(path)
    if path.suffix == ".onnx":
        return ModelSource(ONNX_FILE, path)
    if path.is_dir() and (path / bundled.MANIFEST_FILE).is_file() and not (path / runs.MODEL_FILE).exists():
        return ModelSource(BUNDLED, path)
    if path.is_dir():
        return ModelSource(RUN_FOLDER, path)
    return ModelSource(KERAS_FILE, path)  # a missing path too: `runs.load_model` says what to give instead


def load_classifier(path: str | Path | None = None, backend: str | None = None,
                    runs_root: str | Path = runs.DEFAULT_RUNS_ROOT, line_model: bool = True,
                    notice: Callable[[str], None] | None = None) -> Classifier:
    """Load a trained model as a Classifier: a Keras model in Keras's safe mode (no arbitrary code), an
    ONNX file in ONNX Runtime (neither Keras nor JAX is imported).

    Args:
        path: a run folder (holding model.keras and config.json), a `.keras` file (config.json
            beside it is read if present), or an `.onnx` file from `digitlab export`.
            None: the most recent finished run under `runs_root`, else the bundled reader (see
            `resolve_model_source`).
        backend: Keras backend ("jax", "tensorflow", "torch"); default $KERAS_BACKEND, else jax.
        line_model: also load the line model a run folder or an export has, if any (`read` uses it;
            `predict` need not wait for it). A `.keras` file alone has none.
        notice: called with one line when the bundled reader is used because no model was named.

    Raises:
        RunFolderError: no path given, no finished run under `runs_root` and no bundled reader, or the run's
            files are broken.
        ModelError: the path does not exist or is not a model that takes 28x28 images.
        BundledModelError: the bundled reader's files differ from its manifest.
    """
    source = resolve_model_source(path, runs_root)
    if source.kind == BUNDLED:
        classifier = load_bundled_reader(source.path, line_model)
        if notice is not None and path is None:
            notice(f"using the {classifier.source}: no model named and no finished run under {runs_root}/ "
                   "(name one with --model)")
        return classifier
    if source.kind == ONNX_FILE:
        return load_onnx_classifier(source.path, line_model)
    return load_keras_classifier(source.path, backend, line_model)


def load_keras_classifier(path: str | Path, backend: str | None = None, line_model: bool = True) -> Classifier:
    """A run folder or a `.keras` file as a Classifier, with the run's config.json and metrics.json when
    they are there (beside a `.keras` file too), and a run folder's line model when it has one and
    `line_model` is True (a `.keras` file is loaded alone).

    Raises:
        RunFolderError: the run's files are broken.
        ModelError: the path does not exist or is not a Keras model that takes 28x28 images.
    """
    path = Path(path)
    _cache_what_loading_compiles(backend)
    network = KerasNetwork(runs.load_model(path, backend=backend, compile=False), source=str(path))
    run_dir = path if path.is_dir() else path.parent  # a .keras file: its run's files, if beside it
    run = runs.read_run(run_dir) if (run_dir / runs.CONFIG_FILE).is_file() else None
    run_config, run_metrics = (run.config, run.metrics) if run else (None, None)
    class_names = run_config.class_names if run_config else None
    line_reader = load_line_reader(path, backend) if line_model and path.is_dir() else None
    return Classifier(network, class_names, source=path, run_config=run_config, run_metrics=run_metrics,
                      line_reader=line_reader)


def load_line_reader(run_dir: str | Path | None, backend: str | None = None) -> LineReader | None:
    """The line model of a run folder, or None when it has none (runs before it, other recipes)."""
    if run_dir is None:
        return None
    path = Path(run_dir) / LINE_MODEL_FILE
    if not path.is_file():
        return None
    _cache_what_loading_compiles(backend)
    return LineReader(KerasNetwork(runs.load_model(path, backend=backend, compile=False), source=str(path)), path)


def _cache_what_loading_compiles(backend: str | None) -> None:
    """On JAX, keep what loading compiles (Keras runs every weight's initialiser, one program per shape,
    before the file's weights replace them) in the compilation cache training uses, so that the next
    process loads those programs instead: `predict --model RUN` on a reader run, 14 of its programs from
    the cache (benchmarks/start_up.py --model RUN). The models are not compiled for training (compile=False)."""
    from digitlab.backend import enable_compilation_cache, select_backend
    from digitlab.data.datasets import data_root

    if select_backend(backend) == "jax":
        enable_compilation_cache(data_root() / "compiled")


def load_onnx_classifier(path: str | Path, line_model: bool = True) -> Classifier:
    """An exported classifier as a Classifier, with the line model exported beside it when the export has
    one (a reader run's) and `line_model` is True.

    Raises:
        ModelError: not a digitlab classifier export, its metadata is malformed, or its line model is not a
            file beside it.
        ModelFailureError: the model fails on a test batch, or gives outputs that are not numbers.
    """
    path = Path(path)
    network = OnnxNetwork(path)
    line_file = network.line_model_file if line_model else None
    if line_file is not None and not line_file.is_file():
        raise ModelError(f"{path} reads lines of digits with {line_file.name}, which is not beside it; "
                         "keep the files `digitlab export` wrote together")
    return _onnx_classifier(network, line_file, source=path)


def load_onnx_reader(classifier_file: str | Path, line_model_file: str | Path | None = None,
                     description: str | None = None) -> Classifier:
    """A Classifier on an exported classifier that reads lines with the exported line model given (wherever it
    is: the classifier's metadata may name another file), class names, settings and metrics from the metadata.

    Args:
        description: what `Classifier.describe` and messages call it (default: the classifier file's path).

    Raises:
        ModelError: a file is missing, or is not the kind of export it is given as.
    """
    return _onnx_classifier(OnnxNetwork(classifier_file), Path(line_model_file) if line_model_file else None,
                            source=description or classifier_file)


def load_bundled_reader(folder: str | Path | None = None, line_model: bool = True) -> Classifier:
    """The reader bundled in the package (or a copy of its folder), each file checked against its manifest
    first; `Classifier.source` names it ("bundled reader-large (digitlab 0.2.0, seed 0)").

    Raises:
        BundledModelError: the manifest or a file is missing, or a file differs from the manifest.
    """
    reader = bundled.verified_bundle(Path(folder) if folder is not None else None)
    return load_onnx_reader(reader.classifier_path, reader.line_model_path if line_model else None,
                            description=reader.description)


def _onnx_classifier(network: OnnxNetwork, line_model_file: Path | None, source: str | Path) -> Classifier:
    if network.kind != CLASSIFIER_KIND:
        raise ModelError(f"{network.path} is a {network.kind}, not a classifier; give the classifier exported "
                         "beside it (model.onnx)")
    config, metrics = _run_record(network)
    line_reader = None
    if line_model_file is not None:
        line_network = OnnxNetwork(line_model_file)
        if line_network.kind != LINE_MODEL_KIND:
            raise ModelError(f"{line_model_file} is a {line_network.kind}, not a line model; give the line model "
                             "`digitlab export` wrote beside the classifier (line_model.onnx)")
        line_reader = LineReader(line_network, line_model_file)
    classifier = Classifier(network, network.class_names, source=source, run_config=config, run_metrics=metrics,
                            line_reader=line_reader)
    check_on_test_batch(classifier)
    return classifier


def check_on_test_batch(classifier: Classifier) -> None:
    """Run the classifier, and its line model if it has one, once on TEST_BATCH blank inputs.

    What a model file declares is not proof that it runs: a graph whose batch size is fixed inside, or
    that asks for more memory than there is, fails only when it runs. Run here, it fails at load with the
    file's name instead of on the first request.

    Raises:
        ModelFailureError: a network fails on the batch or gives outputs that are not numbers.
    """
    classifier.probabilities(np.zeros((TEST_BATCH, MNIST_SIZE, MNIST_SIZE), np.float32))  # (2, classes), checked
    if classifier.line_reader is not None:
        classifier.line_reader.read_strips([np.zeros((STRIP_HEIGHT, STRIP_STEP), np.float32)] * TEST_BATCH)


def _run_record(network: OnnxNetwork) -> tuple[RunConfig | None, RunMetrics | None]:
    """The run's config and metrics from an export's metadata, checked (None for what it lacks).

    Raises:
        ModelError: a value of the wrong kind anywhere in them.
    """
    config_values, metrics_values = network.run_config, network.run_metrics
    source = f"{network.path} (metadata)"
    try:
        config = RunConfig.from_dict(config_values, source=source) if config_values else None
        metrics = RunMetrics.from_dict(metrics_values, source=source) if metrics_values else None
    except (RunFolderError, TypeError, ValueError, AttributeError, KeyError) as err:
        raise ModelError(f"{network.path}: its metadata does not hold a digitlab run's settings and metrics "
                         f"({str(err)[:300]}); {MODEL_ADVICE}") from err
    if metrics is not None:
        for field in dataclasses.fields(metrics):
            value = getattr(metrics, field.name)
            number = str(field.type) in ("float", "int", "float | None", "int | None")
            if number and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ModelError(f"{network.path}: its metadata's run metrics hold {field.name} = {str(value)[:40]!r}, "
                                 f"not a number; {MODEL_ADVICE}")
    if config is not None:  # what runs the model now (`describe`, /api/model): not the backend it trained on
        config = dataclasses.replace(config, backend="onnxruntime")
    return config, metrics
