"""Export a run's models to ONNX: one self-contained file each, checked against Keras before it is written.

Keras writes the ONNX graph itself (`model.export(format="onnx")`, through jax2onnx on JAX); digitlab
only gathers it into one file (Keras puts the weights in a second `.onnx.data` file), fixes one
known lowering problem (below), writes what a runtime needs into the model's metadata, and refuses
to write a file that ONNX Runtime does not run exactly as Keras does:

- the digit classifier (`model.keras`) is compared on 2,000 test images of the run's data set:
  the same class on every one and probabilities within CHECK_TOLERANCE;
- a reader run's line model (`line_model.keras`) is compared on CHECK_LINES photographed lines of
  test digits: the same digits read and per-step probabilities within CHECK_TOLERANCE.

The metadata (`onnx.ModelProto.metadata_props`, read back by `inference/onnx_network.py`):
"digitlab.kind" (classifier or line model), "digitlab.class_names" and "digitlab.input_shape"
(JSON), "digitlab.preparation" (what the images must go through first), "digitlab.run_config"
and "digitlab.run_metrics" (the run's JSON files), and "digitlab.line_model" (the file name of
the exported line model beside the classifier, for a reader run).

Max pooling (found here with jax2onnx 0.17.1 and ONNX Runtime 1.32): JAX traces Keras's
MaxPooling2D on (batch, rows, columns, channels) as `lax.reduce_window_max` with window
(1, 2, 2, 1). jax2onnx lowers that as two Unsqueezes to (1, 1, batch, rows, columns, channels), a
MaxPool whose kernel (1, 2, 2, 1) spans all four axes as spatial ones, and a Squeeze: valid ONNX,
but ONNX Runtime's MaxPool runs 1 to 3 spatial axes only and fails with "Unsupported pooling size".
`two_dimensional_pools` rewrites each such MaxPool as the same 2-D pooling in ONNX's own layout
(Squeeze, Transpose to channels first, MaxPool with kernel (2, 2), Transpose back, Unsqueeze): the
same network, which the check then confirms number for number.

    result = export_run("runs/<run>")          # runs/<run>/model.onnx (and line_model.onnx)
    result.paths, result.largest_difference
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from digitlab import runs, storage
from digitlab.errors import ExportError, ExportTargetError
from digitlab.training.line_model import LINE_MODEL_FILE, STRIP_HEIGHT, synthesize_strips, used_widths

# Keras and ONNX Runtime must agree this closely on every probability.
CHECK_TOLERANCE = 1e-4
# Test images the classifier is checked on, and photographed lines the line model is checked on.
CHECK_IMAGES = 2000
CHECK_LINES = 200
# The exported files' names in a run folder; a line model exported beside FILE.onnx is FILE.line.onnx.
ONNX_FILE = "model.onnx"
LINE_ONNX_FILE = "line_model.onnx"
# What every exported classifier's input must go through first (digitlab.inference.images.prepare_image).
PREPARATION = ("digitlab.prepare_image: grayscale; ink found and made light on dark; cropped, scaled so that "
               "its longer side is 20 pixels and centred by mass in 28x28 like MNIST; float32 in [0, 1]; "
               "then reshaped to the input shape (784 values, or 28x28x1)")
LINE_PREPARATION = ("digitlab.data.line_strip.line_strip: the line's ink, light on dark, scaled to 24 rows "
                    "(2 rows of margin) with columns stretched 1.5x; float32 in [0, 1], shape (1, 24, width, 1); "
                    "output: CTC logits per 4 columns, class 0 blank, class d + 1 digit d")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_run` wrote and how closely ONNX Runtime agreed with Keras."""

    # The files written: the classifier's, then the line model's (reader runs).
    paths: tuple[Path, ...]
    # The largest difference between a Keras and an ONNX Runtime probability, over every check.
    largest_difference: float
    # Images and lines the check compared.
    checked_images: int
    checked_lines: int


def export_run(run_dir: str | Path, output: str | Path | None = None, overwrite: bool = False) -> ExportResult:
    """Export a run's classifier (and line model, if it has one) to single-file ONNX models.

    Args:
        run_dir: a finished run folder (model.keras and config.json).
        output: the classifier's file (default RUN/model.onnx); a line model goes beside it as
            `<stem>.line.onnx` (RUN/line_model.onnx by default).
        overwrite: replace files that exist; otherwise an existing file is an error and is kept.

    Raises:
        ExportTargetError: the onnx extra is not installed, a file exists (without `overwrite`), or the
            output's name does not end in .onnx.
        ExportError: Keras cannot export the model, or ONNX Runtime disagrees with Keras (nothing is written).
        RunFolderError, ModelError: the run folder or its model cannot be read.
    """
    onnx, onnxruntime = _onnx_modules()
    run_dir = Path(run_dir)
    run = runs.read_run(run_dir)
    output = Path(output) if output is not None else run_dir / ONNX_FILE
    if output.suffix != ".onnx":
        raise ExportTargetError(f"{output}: an ONNX model's file name ends in .onnx; give --output a name like model.onnx")
    line_keras = run_dir / LINE_MODEL_FILE
    line_output = (run_dir / LINE_ONNX_FILE if output == run_dir / ONNX_FILE
                   else output.with_name(f"{output.stem}.line.onnx")) if line_keras.is_file() else None
    for path in (output, line_output):
        if path is not None and path.exists() and not overwrite:
            raise ExportTargetError(f"{path} already exists; pass --overwrite to replace it, or choose another --output")

    model = runs.load_model(run_dir / runs.MODEL_FILE)
    metadata = {"digitlab.kind": "classifier", "digitlab.class_names": json.dumps(list(run.config.class_names)),
                "digitlab.input_shape": json.dumps(list(model.input_shape[1:])), "digitlab.preparation": PREPARATION,
                "digitlab.run_config": json.dumps(run.config.to_dict()),
                "digitlab.run_metrics": json.dumps(run.metrics.to_dict() if run.metrics else {})}
    if line_output is not None:
        metadata["digitlab.line_model"] = line_output.name
    classifier_bytes = _to_onnx(onnx, model, np.zeros((1, *model.input_shape[1:]), np.float32), metadata)
    images = _check_images(run.config, model.input_shape[1:])
    difference = _compare(onnxruntime, classifier_bytes, model, images, output, _same_classes)
    files = [(output, classifier_bytes)]
    if line_output is not None:
        line_model = runs.load_model(line_keras)
        line_bytes = _to_onnx(onnx, line_model, np.zeros((1, STRIP_HEIGHT, 64, 1), np.float32),
                              {"digitlab.kind": "line model", "digitlab.preparation": LINE_PREPARATION})
        for strips in _check_strips():
            difference = max(difference, _compare(onnxruntime, line_bytes, line_model, strips, line_output,
                                                  _same_readings))
        files.append((line_output, line_bytes))
    for path, contents in files:  # through a temporary file: a half-written model never has the real name
        path.parent.mkdir(parents=True, exist_ok=True)
        storage.write_bytes_atomic(path, contents)
    return ExportResult(tuple(path for path, _ in files), difference, len(images), CHECK_LINES if line_output else 0)


# ----------------------------------------------------------------------------- convert


def _to_onnx(onnx, model, example: np.ndarray, metadata: dict[str, str]) -> bytes:
    """Keras's own ONNX export, gathered into one serialised model with the fix and the metadata applied."""
    model(example)  # Keras exports only a model that has been called ("The model provided has never called")
    with tempfile.TemporaryDirectory(prefix="digitlab-export-") as folder:
        path = Path(folder) / "model.onnx"
        try:
            model.export(str(path), format="onnx", verbose=False)
        except Exception as err:  # Keras and jax2onnx raise many kinds; say which model and why
            raise ExportError(f"Keras could not export {model.name} to ONNX ({type(err).__name__}: {err})") from err
        proto = onnx.load(str(path), load_external_data=True)  # the weights from model.onnx.data too
    two_dimensional_pools(onnx, proto.graph)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"digitlab {model.name}: {metadata['digitlab.preparation']}"
    return proto.SerializeToString()


def two_dimensional_pools(onnx, graph) -> int:
    """Rewrite jax2onnx's 4-axis MaxPool over (1, 1, batch, rows, columns, channels) as a 2-D channels-first
    MaxPool (see the module's docstring); returns how many were rewritten. Other MaxPools are left alone."""
    from onnx import helper, numpy_helper

    rewritten, nodes = 0, []
    for node in graph.node:
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        kernel = list(attributes.get("kernel_shape", []))
        strides = list(attributes.get("strides", [1] * len(kernel)))
        pads = list(attributes.get("pads", [0] * 2 * len(kernel)))
        dilations = list(attributes.get("dilations", [1] * len(kernel)))
        unpooled_axes = (0, 3, 4, 7)  # batch and channels, at the start and at the end of the pads
        if node.op_type != "MaxPool" or len(kernel) != 4 or kernel[0] != 1 or kernel[3] != 1 \
                or strides[0] != 1 or strides[3] != 1 or any(pads[axis] for axis in unpooled_axes) \
                or dilations[0] != 1 or dilations[3] != 1 or len(node.output) != 1:
            nodes.append(node)
            continue
        name = node.name or node.output[0]
        axes = f"{name}_fix_axes"
        graph.initializer.append(numpy_helper.from_array(np.array([0, 1], np.int64), axes))
        two_d = {"kernel_shape": kernel[1:3], "strides": strides[1:3], "pads": pads[1:3] + pads[5:7],
                 "dilations": dilations[1:3]}
        nodes += [helper.make_node("Squeeze", [node.input[0], axes], [f"{name}_fix_nhwc"]),
                  helper.make_node("Transpose", [f"{name}_fix_nhwc"], [f"{name}_fix_nchw"], perm=[0, 3, 1, 2]),
                  helper.make_node("MaxPool", [f"{name}_fix_nchw"], [f"{name}_fix_pooled"], name=name, **two_d),
                  helper.make_node("Transpose", [f"{name}_fix_pooled"], [f"{name}_fix_back"], perm=[0, 2, 3, 1]),
                  helper.make_node("Unsqueeze", [f"{name}_fix_back", axes], [node.output[0]])]
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


# ----------------------------------------------------------------------------- check


def _check_images(config, input_shape) -> np.ndarray:
    """The run's first CHECK_IMAGES test images, scaled and shaped as the model takes them."""
    from digitlab.data import datasets

    _, (test_images, _) = datasets.load(config.training.dataset)
    images = test_images[:CHECK_IMAGES].astype(np.float32) / 255.0
    return images.reshape((len(images), *input_shape))


def _check_strips() -> list[np.ndarray]:
    """CHECK_LINES photographed lines of MNIST test digits as strips, grouped by width (one array per width)."""
    from digitlab.data import datasets

    _, (test_images, test_labels) = datasets.load("mnist")
    strips, _ = synthesize_strips(test_images, test_labels, CHECK_LINES, seed=7, workers=1)
    widths = used_widths(strips)
    return [strips[widths == width][..., :width, None].astype(np.float32) / 255.0 for width in np.unique(widths)]


def _compare(onnxruntime, model_bytes: bytes, model, inputs: np.ndarray, path: Path, same) -> float:
    """ONNX Runtime against Keras on `inputs`: raise ExportError unless `same` holds and every probability
    is within CHECK_TOLERANCE; returns the largest difference."""
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    expected = np.concatenate([np.asarray(model(inputs[start:start + 500], training=False))
                               for start in range(0, len(inputs), 500)])
    found = np.concatenate([session.run(None, {name: inputs[start:start + 500]})[0]
                            for start in range(0, len(inputs), 500)])
    if expected.shape != found.shape:
        raise ExportError(f"{path} not written: ONNX Runtime's output has shape {found.shape}, Keras's {expected.shape}")
    disagreements = same(expected, found)
    expected, found = _probabilities(expected), _probabilities(found)
    difference = float(np.abs(expected - found).max()) if expected.size else 0.0
    if disagreements or difference > CHECK_TOLERANCE:
        raise ExportError(f"{path} not written: ONNX Runtime and Keras disagree on {disagreements} of {len(inputs)} "
                          f"inputs, largest probability difference {difference:.2g} (allowed {CHECK_TOLERANCE:g}); "
                          "please report it with the run's config.json")
    return difference


def _probabilities(outputs: np.ndarray) -> np.ndarray:
    """The classifier's outputs as they are; the line model's CTC logits as probabilities per step."""
    if outputs.ndim == 2:
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _same_classes(expected: np.ndarray, found: np.ndarray) -> int:
    """How many images the two models' probabilities name different classes for."""
    return int((expected.argmax(axis=1) != found.argmax(axis=1)).sum())


def _same_readings(expected: np.ndarray, found: np.ndarray) -> int:
    """How many strips the two models' CTC logits read as different digits."""
    from digitlab.inference.line_reading import decode_runs

    return sum([run.digit for run in decode_runs(one)] != [run.digit for run in decode_runs(other)]
               for one, other in zip(expected, found, strict=True))


def _onnx_modules():
    try:
        import jax2onnx  # noqa: F401  (Keras's ONNX export on JAX uses it)
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ExportTargetError(f"exporting to ONNX needs the onnx extra ({err.name} is missing): "
                          "pip install 'digitlab[onnx]'") from err
    return onnx, onnxruntime
