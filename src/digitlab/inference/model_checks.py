"""Model files are untrusted input: what digitlab checks of a model it is given, before and while it runs it.

An exported `.onnx` file can come from anywhere, and what it holds is the author's choice: its metadata
(class names, the run's settings, the file name of a line model), its shapes, and what its graph computes.
This module owns the checks every loader (`loading.py`) and network (`onnx_network.py`,
`keras_network.py`) applies, so that a hostile or broken file ends in one clear `ModelError` naming the
file, what is wrong and what to do, never in a traceback, a hang or a file opened outside the model's folder:

- metadata: a JSON value of the kind expected, at most MAX_METADATA_CHARACTERS long and nested at most
  MAX_METADATA_DEPTH deep (`metadata_json`); a file name in it is a bare name in the model's own folder
  (`sibling_file`);
- shapes: a batch axis left free (`check_free_batch`), and a real test batch of TEST_BATCH inputs run at
  load (`loading.py`), so that a model that cannot take several images at once fails there, not on the
  first request;
- outputs, on every call: the shape declared, and finite numbers (`checked_outputs`); a model whose
  outputs are NaN would otherwise name the first class with "confidence" NaN.

Static problems of the file are `ModelError` (exit status 2: give another file); a model that fails or
gives non-numbers when it runs is `ModelFailureError` (exit status 1; `serve` answers 500 for a request).

    names = metadata_json(text, "digitlab.class_names", list, source="model.onnx")
    line_file = sibling_file("line_model.onnx", Path("export/model.onnx"), "digitlab.line_model")
    outputs = checked_outputs(raw_outputs, len(inputs), (None, 10), source="model.onnx")
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from digitlab.errors import ModelError, ModelFailureError

# A metadata value longer than this is refused unread: a run's config.json is about 2,000 characters.
MAX_METADATA_CHARACTERS = 1_000_000
# JSON nested deeper than this is refused: a run's files nest 3 levels deep. (Deeper values break
# whatever walks them later, such as the JSON encoders answering /api/model.)
MAX_METADATA_DEPTH = 32
# Inputs in the test batch a model runs at load: more than one, so that a fixed batch of 1 is caught.
TEST_BATCH = 2
# What to do about a model file that fails a check.
MODEL_ADVICE = "export the run again (`digitlab export RUN`) or use another model"


def metadata_json(text: str | None, key: str, expected: type, source: str | Path) -> Any:
    """The JSON value of metadata `key` (None when absent or empty), checked to be an `expected` (dict, list, ...).

    Raises:
        ModelError: the value is too long, not JSON, nested too deeply, or of another kind.
    """
    if not text:
        return None
    if not isinstance(text, str):
        raise ModelError(f"{source}: its metadata {key!r} is not text; {MODEL_ADVICE}")
    if len(text) > MAX_METADATA_CHARACTERS:
        raise ModelError(f"{source}: its metadata {key!r} is {len(text):,} characters long (at most "
                         f"{MAX_METADATA_CHARACTERS:,} are read); {MODEL_ADVICE}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelError(f"{source}: its metadata {key!r} is not JSON ({err}); {MODEL_ADVICE}") from err
    except RecursionError as err:  # thousands of nested brackets: Python's parser gives up
        raise ModelError(f"{source}: its metadata {key!r} is nested too deeply to read (at most "
                         f"{MAX_METADATA_DEPTH} levels); {MODEL_ADVICE}") from err
    depth = nesting_depth(value)
    if depth > MAX_METADATA_DEPTH:
        raise ModelError(f"{source}: its metadata {key!r} is nested {depth} levels deep (at most "
                         f"{MAX_METADATA_DEPTH}); {MODEL_ADVICE}")
    if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
        raise ModelError(f"{source}: its metadata {key!r} is a JSON {_json_kind(value)}, not a JSON "
                         f"{_json_kind(expected())}; {MODEL_ADVICE}")
    return value


def nesting_depth(value: Any) -> int:
    """How deeply JSON lists and objects nest in `value` (0 for a number or a string); no recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def class_names_from(value: Any, key: str, source: str | Path) -> list[str] | None:
    """Metadata class names checked: a list of short strings (None stays None)."""
    if value is None:
        return None
    if not value or not all(isinstance(name, str) and 0 < len(name) <= 200 for name in value):
        raise ModelError(f"{source}: its metadata {key!r} must list each class's name as a string of 1 to 200 "
                         f"characters; {MODEL_ADVICE}")
    return list(value)


def sibling_file(name: Any, model_path: Path, key: str) -> Path:
    """The file metadata `key` names, which must be a bare `.onnx` file name in the model's own folder.

    Raises:
        ModelError: the name is not a string, has a folder in it (`../`, `/etc/...`, `C:\\...`), or is not
            an `.onnx` file's name.
    """
    text = name if isinstance(name, str) else None
    bare = text is not None and 0 < len(text) <= 255 and "\x00" not in text and text not in (".", "..") \
        and PurePosixPath(text).name == text and PureWindowsPath(text).name == text
    if not bare or not text.endswith(".onnx"):
        shown = repr(text[:80]) if text is not None else f"a JSON {_json_kind(name)}"
        raise ModelError(f"{model_path}: its metadata {key!r} names {shown}, which is not a bare .onnx file name "
                         f"beside it; a model may only name files in its own folder ({model_path.parent}). "
                         f"{MODEL_ADVICE[0].upper()}{MODEL_ADVICE[1:]}")
    return model_path.parent / text


def check_free_batch(shape: tuple, source: str | Path, role: str) -> None:
    """Refuse an input or output whose batch axis (the first) is fixed: digitlab sends any number of images."""
    if not shape:
        raise ModelError(f"{source}: the model's {role} has no axes (a single number); a digitlab model's {role} "
                         f"has a batch axis first; {MODEL_ADVICE}")
    if shape[0] is not None:
        raise ModelError(f"{source}: the model's {role} has a fixed batch size of {shape[0]} (shape {list(shape)}), "
                         "but digitlab sends batches of any size; export it with a free batch axis "
                         "(`digitlab export RUN` does) or use another model")


def checked_outputs(outputs: Any, count: int, output_shape: tuple, source: str | Path) -> np.ndarray:
    """A network's outputs for `count` inputs as float32, checked: the declared shape, finite numbers.

    Raises:
        ModelFailureError: another shape than declared, or values that are NaN or infinite.
    """
    array = np.asarray(outputs)
    if not np.issubdtype(array.dtype, np.number):
        raise ModelFailureError(f"{source}: the model gave {array.dtype} values, not numbers; {MODEL_ADVICE}")
    array = array.astype(np.float32, copy=False)
    fits = array.ndim == len(output_shape) and array.shape[0] == count and all(
        expected is None or found == expected for found, expected in zip(array.shape[1:], output_shape[1:], strict=True))
    if not fits:
        raise ModelFailureError(f"{source}: the model gave outputs of shape {array.shape} for {_inputs(count)}, but "
                                f"declares {_shape_text(output_shape)}; {MODEL_ADVICE}")
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        raise ModelFailureError(f"{source}: the model gave {bad:,} of {array.size:,} outputs that are not numbers "
                                f"(NaN or infinite) for {_inputs(count)}; its weights or its graph are broken: "
                                f"{MODEL_ADVICE}")
    return array


def run_failure(source: str | Path, count: int, shape: tuple, err: BaseException) -> ModelFailureError:
    """The error for a model that failed while it ran (the runtime's exception, in one line)."""
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    return ModelFailureError(f"{source}: the model failed on {_inputs(count)} of shape {list(shape[1:])} "
                             f"({type(err).__name__}: {reason}); {MODEL_ADVICE}")


def _inputs(count: int) -> str:
    return f"{count} input" if count == 1 else f"{count} inputs"


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("any" if size is None else str(size) for size in shape) + ")"


def _json_kind(value: Any) -> str:
    """What JSON calls the kind of `value`."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__
