"""`predict`, `read` and `serve` on exported models in an environment with neither Keras nor JAX installed.

scripts/test builds that environment (.venv-serve: `pip install "digitlab[serve]"` and pytest), runs
tests/serving/make_exports.py in .venv to export two models and record what Keras answers on photos of
MNIST test digits, then runs these tests there with DIGITLAB_SERVING_EXPORTS naming the folder. In any
other environment they are skipped.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXPORTS = os.environ.get("DIGITLAB_SERVING_EXPORTS")
pytestmark = pytest.mark.skipif(not EXPORTS, reason="runs in .venv-serve, with the exports scripts/test makes")
MODELS = ("tutorial", "reader")


@pytest.fixture(scope="module")
def exports() -> Path:
    return Path(EXPORTS)


@pytest.fixture(scope="module")
def expected(exports) -> dict:
    return json.loads((exports / "expected.json").read_text())


def test_this_environment_has_neither_keras_nor_jax():
    assert importlib.util.find_spec("keras") is None and importlib.util.find_spec("jax") is None
    assert importlib.util.find_spec("onnxruntime") is not None


@pytest.mark.parametrize("name", MODELS)
def test_predict_gives_kerass_answers(exports, expected, name):
    from digitlab.inference.loading import load_classifier

    classifier = load_classifier(exports / f"{name}.onnx")
    answers = expected[name]["predict"]
    results = list(classifier.classify_files(exports / path for path in answers))
    assert len(results) == len(answers) == 40
    for result, (path, answer) in zip(results, answers.items(), strict=True):
        found = result.to_dict()
        assert (found["digit"], found.get("reason")) == (answer["digit"], answer.get("reason")), path
        np.testing.assert_allclose(found["probabilities"], answer["probabilities"], atol=1e-4)
    assert "keras" not in sys.modules and "jax" not in sys.modules


@pytest.mark.parametrize("name", MODELS)
def test_read_gives_kerass_numbers(exports, expected, name):
    from digitlab.inference.loading import load_classifier
    from digitlab.inference.read_files import read_files

    classifier = load_classifier(exports / f"{name}.onnx")
    assert (classifier.line_reader is not None) == (name == "reader")
    answers = expected[name]["read"]
    results = list(read_files(classifier, [exports / path for path in answers]))
    for result, (path, answer) in zip(results, answers.items(), strict=True):
        found = result.reading.to_dict()
        assert found["text"] == answer["text"], path
        assert [digit["box"] for digit in found["digits"]] == [digit["box"] for digit in answer["digits"]], path
    if name == "tutorial":  # the classifier alone reads by cutting the line: most of these numbers, right
        assert sum(bool(answer["text"]) for answer in answers.values()) >= len(answers) // 2
    assert "keras" not in sys.modules and "jax" not in sys.modules


def test_the_command_line_predicts_and_reads_from_an_onnx_file(exports, expected):
    digitlab = Path(sys.executable).with_name("digitlab")
    model = str(exports / "tutorial.onnx")
    predicted = subprocess.run([digitlab, "predict", str(exports / "photos" / "singles"), "--model", model, "--json"],
                               capture_output=True, text=True, timeout=120)
    assert predicted.returncode == 0, predicted.stderr
    answers = expected["tutorial"]["predict"]
    for line in predicted.stdout.splitlines():
        found = json.loads(line)
        answer = answers[Path(found["path"]).relative_to(exports).as_posix()]
        assert found["digit"] == answer["digit"]
    read = subprocess.run([digitlab, "read", str(exports / "photos" / "lines"), "--model", model, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    texts = {Path(json.loads(line)["path"]).relative_to(exports).as_posix(): json.loads(line)["text"]
             for line in read.stdout.splitlines()}
    assert texts == {path: answer["text"] for path, answer in expected["tutorial"]["read"].items()}


def test_the_server_answers_from_an_onnx_file(exports, expected):
    import httpx

    from digitlab.inference.loading import load_classifier
    from digitlab.web.server import running

    with running(load_classifier(exports / "reader.onnx")) as address, \
            httpx.Client(base_url=address, timeout=30) as client:
        model = client.get("/api/model").json()
        assert model["backend"] == "onnxruntime" and model["class_names"] == [str(digit) for digit in range(10)]
        path, answer = next(iter(expected["reader"]["predict"].items()))
        with open(exports / path, "rb") as image:
            predicted = client.post("/api/predict", files={"file": ("photo.png", image, "image/png")})
        assert predicted.status_code == 200 and predicted.json()["digit"] == answer["digit"]
        path, answer = next(iter(expected["reader"]["read"].items()))
        with open(exports / path, "rb") as image:
            read = client.post("/api/read", files={"file": ("line.png", image, "image/png")})
        assert read.status_code == 200 and read.json()["text"] == answer["text"]
    assert "keras" not in sys.modules and "jax" not in sys.modules
