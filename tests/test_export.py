"""`digitlab export` (inference/export.py) and models run from ONNX files (inference/onnx_network.py, loading.py):
tiny runs on fake MNIST, exported, checked, loaded back and compared with the Keras models they came from."""

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

import onnx  # noqa: E402

from digitlab.errors import ExportError, ExportTargetError, ModelError  # noqa: E402
from digitlab.inference import export  # noqa: E402
from digitlab.inference.loading import load_classifier  # noqa: E402


@pytest.fixture
def cnn_run(tiny_mnist, tmp_path):
    """A convnet (two convolutions, two max-poolings) trained one epoch on tiny fake MNIST."""
    from digitlab.config import TrainingConfig
    from digitlab.training.train import train

    config = TrainingConfig(architecture="cnn", conv_filters=(4, 8), hidden_units=(), epochs=1, batch_size=32)
    return train(config, run_dir=tmp_path / "cnn", verbose=0).run_dir


def test_a_convnet_exports_to_one_file_that_onnx_runtime_runs_as_keras_does(cnn_run):
    result = export.export_run(cnn_run)
    path = cnn_run / export.ONNX_FILE
    assert result.paths == (path,) and result.checked_images == 128 and result.largest_difference <= 1e-4
    assert sorted(child.name for child in cnn_run.iterdir() if "onnx" in child.name) == ["model.onnx"]  # no .data
    proto = onnx.load(str(path))
    pools = [node for node in proto.graph.node if node.op_type == "MaxPool"]
    assert len(pools) == 2 and all(len(onnx.helper.get_attribute_value(attribute)) == 2
                                   for node in pools for attribute in node.attribute if attribute.name == "kernel_shape")
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert json.loads(metadata["digitlab.class_names"]) == [str(digit) for digit in range(10)]
    assert json.loads(metadata["digitlab.input_shape"]) == [28, 28, 1] and "digitlab.line_model" not in metadata
    assert json.loads(metadata["digitlab.run_config"])["training"]["architecture"] == "cnn"

    from_keras, from_onnx = load_classifier(cnn_run), load_classifier(path)
    images = np.random.default_rng(0).random((20, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(from_onnx.probabilities(images), from_keras.probabilities(images), atol=1e-5)
    assert from_onnx.class_names == from_keras.class_names and from_onnx.input_shape == (28, 28, 1)
    assert from_onnx.describe()["backend"] == "onnxruntime" and from_onnx.describe()["name"] == "cnn"


def test_the_pool_rewrite_is_what_makes_onnx_runtime_run_keras_max_pooling(cnn_run):
    """Without `two_dimensional_pools`, jax2onnx's 4-axis MaxPool fails in ONNX Runtime: the finding behind the fix."""
    import keras
    import onnxruntime

    model = keras.models.load_model(cnn_run / "model.keras")
    original = export.two_dimensional_pools
    try:
        export.two_dimensional_pools = lambda onnx_module, graph: 0
        unfixed = export._to_onnx(onnx, model, np.zeros((1, 28, 28, 1), np.float32), {"digitlab.preparation": ""})
    finally:
        export.two_dimensional_pools = original
    session = onnxruntime.InferenceSession(unfixed, providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="Unsupported pooling size"):
        session.run(None, {session.get_inputs()[0].name: np.zeros((1, 28, 28, 1), np.float32)})
    graph = onnx.load_from_string(unfixed).graph
    assert export.two_dimensional_pools(onnx, graph) == 2


def test_an_export_that_disagrees_with_keras_is_not_written(cnn_run, monkeypatch):
    monkeypatch.setattr(export, "CHECK_TOLERANCE", -1.0)  # no difference can pass: the refusal path, for real
    with pytest.raises(ExportError, match="not written: ONNX Runtime and Keras disagree"):
        export.export_run(cnn_run)
    assert not any("onnx" in child.name for child in cnn_run.iterdir())


def test_an_existing_file_is_kept_unless_overwrite_is_given(cnn_run, tmp_path):
    target = tmp_path / "mine.onnx"
    target.write_bytes(b"someone's file")
    with pytest.raises(ExportTargetError, match="already exists; pass --overwrite"):
        export.export_run(cnn_run, output=target)
    assert target.read_bytes() == b"someone's file"
    export.export_run(cnn_run, output=target, overwrite=True)
    assert load_classifier(target).class_names == [str(digit) for digit in range(10)]
    with pytest.raises(ExportTargetError, match="ends in .onnx"):
        export.export_run(cnn_run, output=tmp_path / "model.bin")


def test_a_reader_run_exports_its_line_model_beside_the_classifier_and_reads_the_same(cnn_run, tmp_path):
    from digitlab.inference.loading import load_line_reader, load_onnx_reader
    from digitlab.inference.reading import read_number
    from digitlab.training.line_model import LINE_MODEL_FILE, build_line_model
    from test_line_model import paper_line

    build_line_model(seed=0).save(cnn_run / LINE_MODEL_FILE)
    result = export.export_run(cnn_run, output=tmp_path / "deploy" / "reader.onnx")
    assert [path.name for path in result.paths] == ["reader.onnx", "reader.line.onnx"] and result.checked_lines > 150
    from_onnx, from_keras = load_classifier(result.paths[0]), load_classifier(cnn_run)
    assert from_onnx.line_reader is not None and load_line_reader(cnn_run) is not None
    assert from_keras.line_reader is not None
    # `predict` loads the classifier alone: the line model is not loaded (half the loading time of a reader run).
    assert load_classifier(cnn_run, line_model=False).line_reader is None
    assert load_classifier(result.paths[0], line_model=False).line_reader is None
    for marks in (2, 4):
        picture = paper_line(marks=marks)
        expected, found = read_number(from_keras, picture, 0.0), read_number(from_onnx, picture, 0.0)
        assert found.text == expected.text and [digit.box for digit in found.digits] == \
            [digit.box for digit in expected.digits]
    # Two exported files and a description (what the bundled reader is): the same reader, under that name.
    named = load_onnx_reader(result.paths[0], result.paths[1], description="the reader under test")
    assert named.describe()["source"] == "the reader under test" and named.describe()["backend"] == "onnxruntime"
    picture = paper_line(marks=3)
    assert read_number(named, picture, 0.0).to_dict() == read_number(from_onnx, picture, 0.0).to_dict()
    with pytest.raises(ModelError, match="is a line model, not a classifier"):
        load_onnx_reader(result.paths[1], result.paths[0])
    with pytest.raises(ModelError, match="is a classifier, not a line model"):
        load_onnx_reader(result.paths[0], result.paths[0])
    result.paths[1].unlink()
    with pytest.raises(ModelError, match="reader.line.onnx, which is not beside it"):
        load_classifier(result.paths[0])
    with pytest.raises(ModelError, match="not an ONNX model"):
        (tmp_path / "broken.onnx").write_bytes(b"not a model")
        load_classifier(tmp_path / "broken.onnx")


def test_the_export_command_writes_and_reports_and_refuses_an_unknown_format(cnn_run, run_cli):
    status, out, _ = run_cli("export", str(cnn_run))
    assert status == 0 and "checked on 128 test images" in out and "model.onnx" in out
    status, out, err = run_cli("export", str(cnn_run))
    assert status == 2 and "already exists" in err
    status, _, err = run_cli("export", str(cnn_run), "--format", "tflite", "--overwrite")
    assert status == 2 and "unknown export format 'tflite'" in err


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["tutorial", "mlp-dropout", "cnn", "speedrun", "best", "reader"])
def test_every_recipes_network_runs_in_onnx_runtime_as_in_keras(recipe):
    """Each recipe's network as it is built (augmentation, dropout and batch norm included), through the
    export's conversion: ONNX Runtime's probabilities within the check's tolerance of Keras's."""
    import onnxruntime

    from digitlab.training.models import build_model
    from digitlab.training.recipes import recipe_config

    config = recipe_config(recipe)
    model = build_model(config, num_classes=11 if config.non_digit_images else 10)  # the reader: "not a digit" too
    images = np.random.default_rng(1).random((16, *model.input_shape[1:]), dtype=np.float32)
    converted = export._to_onnx(onnx, model, images[:1], {"digitlab.preparation": ""})
    session = onnxruntime.InferenceSession(converted, providers=["CPUExecutionProvider"])
    found = session.run(None, {session.get_inputs()[0].name: images})[0]
    np.testing.assert_allclose(found, np.asarray(model(images, training=False)), atol=export.CHECK_TOLERANCE)


def test_an_onnx_export_is_loaded_and_read_without_importing_keras_or_jax(cnn_run, tmp_path):
    import subprocess
    import sys

    from test_line_model import paper_line

    export.export_run(cnn_run)
    model, picture = str(cnn_run / export.ONNX_FILE), str(tmp_path / "line.png")
    paper_line(marks=2).save(picture)
    script = ("import sys\nfrom digitlab.inference.loading import load_classifier\n"
              "from digitlab.inference.reading import read_number\n"
              f"classifier = load_classifier({model!r})\n"
              f"classifier.predict({picture!r}), read_number(classifier, {picture!r})\n"
              "print('keras' in sys.modules, 'jax' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["False", "False"]
