"""A model exported by `digitlab export` (inference/export.py), run by ONNX Runtime as a `Network`
(network.py): neither Keras nor JAX is imported.

What a run folder's config.json tells (class names, the run's settings and metrics) comes from the
file's metadata, so one `.onnx` file is all a server needs; `loading.py` turns it into a `Classifier`.
The file is untrusted input (model_checks.py): its metadata is read defensively, a line model it names
must be a bare file name beside it, its batch axis must be free, and every run's outputs are checked.

    network = OnnxNetwork("runs/<run>/model.onnx")
    network.class_names, network.input_shape   # ['0', ..., '9'], (None, 784)
    network.forward(images)                    # (N, 784) float32 -> (N, 10) probabilities
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from digitlab.errors import ModelError
from digitlab.inference.model_checks import (
    check_free_batch,
    checked_outputs,
    class_names_from,
    metadata_json,
    run_failure,
    sibling_file,
)

# What the metadata calls the two kinds of file `digitlab export` writes.
CLASSIFIER_KIND = "classifier"
LINE_MODEL_KIND = "line model"


class OnnxNetwork:
    """An exported digitlab model in an ONNX Runtime session. Safe to use from several threads at once."""

    def __init__(self, path: str | Path) -> None:
        """Raises:
            ModelError: the file is missing, is not an ONNX model, ONNX Runtime is not installed, or the
                model does not have one input and one output, each with a free batch axis.
        """
        path = Path(path)
        try:
            import onnxruntime
        except ImportError as err:
            raise ModelError(f"{path}: running an ONNX model needs ONNX Runtime: pip install 'digitlab[serve]'") from err
        if not path.is_file():
            raise ModelError(f"{path}: no such model file; export one with `digitlab export RUN`")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about the graph on every start
        # One thread that sleeps when idle: the model is small next to reading and preparing images, which
        # need the other cores (scale out with `serve --workers` and `predict`'s worker processes instead).
        # Side by side on 2 cores (benchmarks/deploy_speed.py), 1,425 against 1,313 requests/s with ONNX
        # Runtime's default (a spinning thread per core).
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime raises its own Fail/InvalidGraph/... classes
            raise ModelError(f"{path}: not an ONNX model ONNX Runtime can run ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from err
        self.path = path
        self.name = path.stem
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: the model has {len(inputs)} inputs and {len(outputs)} outputs; "
                             "digitlab models have one of each")
        self._input_name = inputs[0].name
        self.input_shape = _shape(inputs[0].shape)
        self.output_shape = _shape(outputs[0].shape)
        check_free_batch(self.input_shape, path, "input")
        check_free_batch(self.output_shape, path, "output")

    def __repr__(self) -> str:
        return f"OnnxNetwork({str(self.path)!r})"

    @property
    def kind(self) -> str:
        """CLASSIFIER_KIND or LINE_MODEL_KIND (exports older than the metadata's "digitlab.kind": a classifier).

        Raises:
            ModelError: the metadata names another kind.
        """
        kind = self.metadata.get("digitlab.kind", CLASSIFIER_KIND)
        if kind not in (CLASSIFIER_KIND, LINE_MODEL_KIND):
            raise ModelError(f"{self.path}: its metadata 'digitlab.kind' is {kind[:80]!r}, neither "
                             f"{CLASSIFIER_KIND!r} nor {LINE_MODEL_KIND!r}; export the run again (`digitlab export RUN`)")
        return kind

    @property
    def class_names(self) -> list[str] | None:
        key = "digitlab.class_names"
        return class_names_from(metadata_json(self.metadata.get(key), key, list, self.path), key, self.path)

    @property
    def run_config(self) -> dict[str, Any] | None:
        return metadata_json(self.metadata.get("digitlab.run_config"), "digitlab.run_config", dict, self.path)

    @property
    def run_metrics(self) -> dict[str, Any] | None:
        return metadata_json(self.metadata.get("digitlab.run_metrics"), "digitlab.run_metrics", dict, self.path)

    @property
    def line_model_file(self) -> Path | None:
        """The exported line model beside this classifier, for a reader run's export (else None).

        Raises:
            ModelError: the metadata names anything but a bare .onnx file name (no folder, no `..`).
        """
        key = "digitlab.line_model"
        name = self.metadata.get(key)
        return sibling_file(name, self.path, key) if name else None

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """inputs (N, ...) float32 -> outputs (N, ...) float32 NumPy, checked (model_checks.checked_outputs).

        Raises:
            ModelFailureError: ONNX Runtime failed running the model (a shape it cannot take, memory it cannot
                have), or the outputs have another shape than declared or are not finite numbers.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        try:
            outputs = self._session.run(None, {self._input_name: inputs})[0]
        except Exception as err:  # ONNX Runtime's InvalidArgument, RuntimeException, Fail, ...; MemoryError
            raise run_failure(self.path, len(inputs), inputs.shape, err) from err
        return checked_outputs(outputs, len(inputs), self.output_shape, self.path)


def _shape(dimensions) -> tuple[int | None, ...]:
    """ONNX Runtime's shape (numbers, and names or None for free axes) as Keras writes one: None for free axes."""
    return tuple(size if isinstance(size, int) else None for size in dimensions)
