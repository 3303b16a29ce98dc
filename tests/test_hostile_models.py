"""Hostile and broken ONNX model files: each is refused with one clear ModelError, never a traceback.

The files are built here with the `onnx` package, each a variation of one honest classifier
(784 -> 10 softmax) as an attacker or a broken exporter would make it:

- a batch size fixed at 1, declared in the input's shape, or hidden inside the graph (a Reshape);
- a run-time allocation bomb (ConstantOfShape to a shape computed from the input: petabytes);
- outputs that are NaN always, or only for images with ink (so that loading passes and a request fails);
- metadata of the wrong JSON kind, too long, or nested 100,000 deep;
- a `digitlab.line_model` naming ../../../../etc/passwd, an absolute path or a sub-folder.

Loading refuses each (`load_classifier`), `predict` and `read` exit with one line (2 for a file that
is wrong as it is, 1 for a model that fails when it runs), `serve` stops at start-up the same way,
and a model that fails on a request answers 500 `model_failed`, never a 4xx blaming the image.
"""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.errors import ModelError, ModelFailureError
from digitlab.inference import rejection
from digitlab.inference.loading import load_classifier
from digitlab.inference.model_checks import MAX_METADATA_DEPTH, metadata_json, nesting_depth
from digitlab.inference.onnx_network import OnnxNetwork

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

CLASS_NAMES = json.dumps([str(digit) for digit in range(10)])
HONEST_METADATA = {"digitlab.kind": "classifier", "digitlab.class_names": CLASS_NAMES}
# A shape factor that makes ConstantOfShape ask for petabytes (2^40 times the input's size).
BOMB_FACTOR = 2 ** 20


def classifier_file(path: Path, metadata: dict[str, str] | None = None, batch: int | str = "batch",
                    extra=None) -> Path:
    """An honest 784 -> 10 softmax classifier, or a hostile one: `batch` fixed, `extra(nodes, initializers)`
    adding nodes between the softmax ("probabilities_raw") and the output ("probabilities")."""
    weights = np.random.default_rng(0).normal(0, 0.05, (784, 10)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["images", "weights"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities_raw"], axis=-1)]
    initializers = [numpy_helper.from_array(weights, "weights")]
    if extra is None:
        nodes.append(helper.make_node("Identity", ["probabilities_raw"], ["probabilities"]))
    else:
        extra(nodes, initializers)
    graph = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 784])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, 10])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in (HONEST_METADATA if metadata is None else metadata).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def fixed_inside(nodes, initializers):
    """Reshape to (1, 10), a shape computed at run time (shape(logits) / shape(logits) * (1, 10)): the model
    declares a free batch, and only running it shows that it takes one image at a time."""
    initializers.append(numpy_helper.from_array(np.array([1, 10], np.int64), "one_row"))
    nodes += [helper.make_node("Shape", ["logits"], ["logits_shape"]),
              helper.make_node("Div", ["logits_shape", "logits_shape"], ["ones"]),
              helper.make_node("Mul", ["ones", "one_row"], ["row_shape"]),
              helper.make_node("Reshape", ["probabilities_raw", "row_shape"], ["probabilities"])]


def allocation_bomb(nodes, initializers):
    """ConstantOfShape to (N * 2^20, 784 * 2^20) floats, summed into the output times 0: petabytes, asked
    for at run time (the shape comes from the input, so nothing is folded at load)."""
    initializers += [numpy_helper.from_array(np.array([BOMB_FACTOR, BOMB_FACTOR], np.int64), "factor"),
                     numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    nodes += [helper.make_node("Shape", ["images"], ["input_shape"]),
              helper.make_node("Mul", ["input_shape", "factor"], ["huge_shape"]),
              helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"],
                               value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
              helper.make_node("ReduceSum", ["huge"], ["total"], keepdims=0),
              helper.make_node("Mul", ["total", "zero"], ["nothing"]),
              helper.make_node("Add", ["probabilities_raw", "nothing"], ["probabilities"])]


def always_nan(nodes, initializers):
    initializers.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan"))
    nodes.append(helper.make_node("Add", ["probabilities_raw", "nan"], ["probabilities"]))


def nan_on_ink(nodes, initializers):
    """probabilities + 0 * sqrt(-sum(image)): exact for a blank image (the load-time test batch), NaN for ink."""
    initializers.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    nodes += [helper.make_node("ReduceSum", ["images"], ["ink"], keepdims=1),
              helper.make_node("Neg", ["ink"], ["negative_ink"]),
              helper.make_node("Sqrt", ["negative_ink"], ["root"]),
              helper.make_node("Mul", ["root", "zero"], ["nothing"]),
              helper.make_node("Add", ["probabilities_raw", "nothing"], ["probabilities"])]


def digit_image(path: Path) -> Path:
    picture = Image.new("L", (28, 28), 0)
    picture.paste(255, (12, 4, 16, 24))  # a "1"
    picture.save(path)
    return path


def line_image(path: Path) -> Path:
    picture = Image.new("L", (120, 40), 255)
    for left in (10, 45, 80):
        picture.paste(0, (left, 6, left + 6, 34))  # three strokes
    picture.save(path)
    return path


# --- the honest file loads (so that the refusals below are about what was changed) ------------------


def test_the_honest_classifier_loads_and_runs(tmp_path):
    classifier = load_classifier(classifier_file(tmp_path / "honest.onnx"))
    probabilities = classifier.probabilities(np.ones((3, 28, 28), np.float32))
    assert probabilities.shape == (3, 10) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


# --- shapes and run-time failures ----------------------------------------------------------------


def test_a_batch_fixed_at_one_in_the_input_is_refused_at_load(tmp_path):
    path = classifier_file(tmp_path / "fixed.onnx", batch=1)
    with pytest.raises(ModelError, match=r"fixed batch size of 1 .*batches of any size") as caught:
        load_classifier(path)
    assert str(path) in str(caught.value) and not isinstance(caught.value, ModelFailureError)


def test_a_batch_fixed_inside_the_graph_fails_the_test_batch_at_load(tmp_path):
    path = classifier_file(tmp_path / "inside.onnx", extra=fixed_inside)
    with pytest.raises(ModelFailureError, match=r"the model failed on 2 inputs of shape \[784\]") as caught:
        load_classifier(path)
    assert str(path) in str(caught.value) and "export the run again" in str(caught.value)


def test_an_allocation_bomb_is_a_model_failure_not_a_crash(tmp_path):
    path = classifier_file(tmp_path / "bomb.onnx", extra=allocation_bomb)
    with pytest.raises(ModelFailureError, match="the model failed on 2 inputs"):
        load_classifier(path)


def test_outputs_that_are_always_nan_are_refused_at_load(tmp_path):
    with pytest.raises(ModelFailureError, match=r"20 of 20 outputs that are not numbers \(NaN or infinite\)"):
        load_classifier(classifier_file(tmp_path / "nan.onnx", extra=always_nan))


def test_nan_for_a_real_image_is_a_model_failure_never_digit_zero(tmp_path):
    classifier = load_classifier(classifier_file(tmp_path / "nan-on-ink.onnx", extra=nan_on_ink))  # blank: fine
    with pytest.raises(ModelFailureError, match="not numbers"):
        classifier.predict(digit_image(tmp_path / "one.png"))


def test_rejection_refuses_nan_probabilities_instead_of_naming_class_zero():
    probabilities = np.full((1, 10), np.nan, np.float32)
    with pytest.raises(ModelFailureError, match="not numbers"):
        rejection.decide(probabilities, np.zeros((1, 28, 28), np.float32), [str(digit) for digit in range(10)])


def test_a_keras_model_with_nan_weights_fails_clearly(tmp_path):
    from digitlab.backend import import_keras
    from digitlab.inference.keras_network import KerasNetwork
    from digitlab.inference.predict import Classifier

    keras = import_keras()
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    model.set_weights([np.full(weights.shape, np.nan, np.float32) for weights in model.get_weights()])
    classifier = Classifier(KerasNetwork(model, source="nan.keras"))
    with pytest.raises(ModelFailureError, match=r"nan.keras: the model gave 10 of 10 outputs that are not numbers"):
        classifier.probabilities(np.ones((1, 28, 28), np.float32))


# --- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "message"), [
    ("digitlab.class_names", '{"0": 1}', "is a JSON object, not a JSON array"),
    ("digitlab.class_names", "5", "is a JSON number, not a JSON array"),
    ("digitlab.class_names", json.dumps(list(range(10))), "each class's name as a string"),
    ("digitlab.run_config", "[1, 2]", "is a JSON array, not a JSON object"),
    ("digitlab.run_config", '{"training": 5}', "does not hold a digitlab run's settings"),
    ("digitlab.run_config", '{"training": {"epochs": "many"}}', "does not hold a digitlab run's settings"),
    ("digitlab.run_metrics", '"finished"', "is a JSON string, not a JSON object"),
    ("digitlab.run_metrics", '{"status": "finished", "test_accuracy": "high"}', "test_accuracy = 'high', not a number"),
    ("digitlab.run_metrics", '{"status": "finished", "warnings": 3}', "does not hold a digitlab run's settings"),
    ("digitlab.run_config", "[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
    ("digitlab.run_metrics", '{"a": ' * 40 + "1" + "}" * 40, "nested 40 levels deep"),
    ("digitlab.run_config", '"' + "x" * 1_000_001 + '"', "1,000,003 characters long"),
    ("digitlab.kind", "virus", "neither 'classifier' nor 'line model'"),
])
def test_metadata_of_the_wrong_kind_is_a_model_error(tmp_path, key, value, message):
    path = classifier_file(tmp_path / "metadata.onnx", {**HONEST_METADATA, key: value})
    with pytest.raises(ModelError, match=message) as caught:
        load_classifier(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "sub/line_model.onnx",
                                  "..\\line_model.onnx", "..", "line_model.txt"])
def test_a_line_model_outside_the_models_folder_is_refused_unopened(tmp_path, monkeypatch, name):
    (tmp_path / "export").mkdir()
    path = classifier_file(tmp_path / "export" / "model.onnx", {**HONEST_METADATA, "digitlab.line_model": name})
    opened = []
    real_init = OnnxNetwork.__init__

    def spy(self, model_path, *args, **kwargs):
        opened.append(Path(model_path))
        real_init(self, model_path, *args, **kwargs)

    monkeypatch.setattr(OnnxNetwork, "__init__", spy)
    with pytest.raises(ModelError, match="not a bare .onnx file name beside it") as caught:
        load_classifier(path)
    assert opened == [path], f"opened {opened}"
    assert str(tmp_path / "export") in str(caught.value)


def test_nesting_depth_has_no_recursion_limit():
    value: list = []
    for _ in range(100_000):
        value = [value]
    assert nesting_depth(value) == 100_001
    assert nesting_depth({"a": [1, {"b": 2}]}) == 3 and nesting_depth(5) == 0
    assert metadata_json('{"a": [1]}', "k", dict, "m.onnx") == {"a": [1]}
    with pytest.raises(ModelError, match=f"at most {MAX_METADATA_DEPTH}"):
        metadata_json("[" * (MAX_METADATA_DEPTH + 1) + "]" * (MAX_METADATA_DEPTH + 1), "k", list, "m.onnx")


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(("maker", "status", "message"), [
    (lambda path: classifier_file(path, batch=1), 2, "fixed batch size of 1"),
    (lambda path: classifier_file(path, extra=allocation_bomb), 1, "the model failed on 2 inputs"),
    (lambda path: classifier_file(path, extra=always_nan), 1, "not numbers"),
    (lambda path: classifier_file(path, {**HONEST_METADATA, "digitlab.run_config": "[" * 100_000}), 2, "nested too deeply"),
    (lambda path: classifier_file(path, {**HONEST_METADATA, "digitlab.line_model": "/etc/passwd"}), 2, "bare .onnx"),
])
@pytest.mark.parametrize("command", ["predict", "read"])
def test_predict_and_read_end_in_one_line_for_a_hostile_model(run_cli, tmp_path, maker, status, message, command):
    model = maker(tmp_path / "hostile.onnx")
    code, out, err = run_cli(command, "--model", str(model), str(digit_image(tmp_path / "one.png")))
    assert (code, out) == (status, "") and message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error:")


@pytest.mark.parametrize("command", ["predict", "read"])
def test_nan_for_a_real_image_ends_predict_and_read_with_exit_1(run_cli, tmp_path, command):
    model = classifier_file(tmp_path / "nan-on-ink.onnx", extra=nan_on_ink)
    image = digit_image(tmp_path / "one.png") if command == "predict" else line_image(tmp_path / "line.png")
    code, out, err = run_cli(command, "--model", str(model), str(image))
    assert code == 1 and "not numbers (NaN or infinite)" in err and "Traceback" not in err
    assert ": 0 (" not in out  # never "digit 0"


@pytest.mark.parametrize(("maker", "status"), [
    (lambda path: classifier_file(path, batch=1), 2),
    (lambda path: classifier_file(path, extra=fixed_inside), 1),
    (lambda path: classifier_file(path, extra=allocation_bomb), 1),
    (lambda path: classifier_file(path, extra=always_nan), 1),
    (lambda path: classifier_file(path, {**HONEST_METADATA, "digitlab.class_names": "{}"}), 2),
    (lambda path: classifier_file(path, {**HONEST_METADATA, "digitlab.line_model": "../../../../etc/passwd"}), 2),
])
def test_serve_stops_at_start_up_with_one_line(tmp_path, maker, status):
    model = maker(tmp_path / "hostile.onnx")
    finished = subprocess.run([sys.executable, "-m", "digitlab", "serve", "--model", str(model), "--port", "0"],
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == status, finished.stderr[-2000:]
    assert "Traceback" not in finished.stderr and finished.stderr.strip().splitlines()[-1].startswith("error:")
    assert str(model) in finished.stderr.replace("\n", "")


# --- the web API ---------------------------------------------------------------------------------


def post(address: str, path: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(address + path, data=body, headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_api_answers_500_model_failed_never_blaming_the_image(tmp_path):
    from digitlab.web.server import running

    classifier = load_classifier(classifier_file(tmp_path / "nan-on-ink.onnx", extra=nan_on_ink))
    image = digit_image(tmp_path / "one.png").read_bytes()
    with running(classifier) as address:
        for path in ("/api/predict", "/api/read"):
            status, answer = post(address, path, image)
            assert status == 500 and answer["code"] == "model_failed", (path, status, answer)
            assert "not the image" in answer["error"] and "not numbers" in answer["error"]
        with urllib.request.urlopen(address + "/api/health", timeout=10) as health:
            assert health.status == 200  # the server keeps running


# --- a copy of the bundled reader's folder, with its manifest edited ------------------------------------


def bundle_copy(tmp_path: Path, edit) -> Path:
    """The bundled reader's folder copied, its manifest changed by `edit(manifest)`."""
    import shutil

    from digitlab.inference import bundled

    if not bundled.is_available():
        pytest.skip("this installation has no bundled reader")
    folder = tmp_path / "bundle"
    shutil.copytree(bundled.bundled_folder(), folder)
    manifest_path = folder / bundled.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    edited = edit(manifest)
    manifest_path.write_text(edited if isinstance(edited, str) else json.dumps(manifest))
    return folder


def rename_classifier(name: str):
    def edit(manifest):
        manifest["files"][0]["name"] = name
    return edit


@pytest.mark.parametrize(("edit", "message"), [
    (rename_classifier("../../../../etc/passwd"), "must be a bare file name beside the manifest"),
    (rename_classifier("/etc/passwd"), "must be a bare file name beside the manifest"),
    (rename_classifier("/dev/zero"), "must be a bare file name beside the manifest"),
    (lambda manifest: manifest["files"].append("reader.onnx"), "must be a list of file records"),
    (lambda manifest: manifest["files"].pop(), "not one classifier and one line model"),
    (lambda manifest: "[" * 100_000 + "]" * 100_000, "cannot be read"),
])
def test_a_bundled_readers_manifest_names_only_files_beside_it(tmp_path, edit, message):
    from digitlab.errors import BundledModelError

    folder = bundle_copy(tmp_path, edit)
    with pytest.raises(BundledModelError, match=message):
        load_classifier(folder)


def test_a_fifo_in_a_bundled_readers_folder_is_refused_not_read_forever(tmp_path):
    import os

    folder = bundle_copy(tmp_path, lambda manifest: None)
    (folder / "reader.onnx").unlink()
    os.mkfifo(folder / "reader.onnx")  # opening it to read would wait for a writer forever
    finished = subprocess.run([sys.executable, "-m", "digitlab", "predict", "--model", str(folder),
                               str(digit_image(tmp_path / "one.png"))], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1 and "not a regular file" in finished.stderr and "Traceback" not in finished.stderr
