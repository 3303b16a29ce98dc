"""Malicious `.keras` files are refused, and their payload never runs.

A `.keras` file is a zip whose config.json says which Python objects to build. Two hand-made
attacks: a Lambda layer carrying marshalled bytecode, and a Dense layer whose activation names
`os.system`. Both payloads would create a marker file; `runs.load_model` (safe mode) and
`digitlab predict` must refuse the file (ModelError, exit 2) with the marker still absent.
"""

import base64
import json
import marshal
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from digitlab import runs
from digitlab.backend import import_keras
from digitlab.errors import ModelError


@pytest.fixture(scope="module")
def honest_model(tmp_path_factory) -> Path:
    """A real, tiny Keras model file (784 -> 10), the starting point of each attack."""
    keras = import_keras()
    path = tmp_path_factory.mktemp("models") / "honest.keras"
    keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")]).save(path)
    return path


def with_config(honest: Path, target: Path, edit) -> Path:
    """Copy the model file with its config.json changed by `edit(config)`, as an attacker would by hand."""
    with zipfile.ZipFile(honest) as source, zipfile.ZipFile(target, "w") as copy:
        for member in source.namelist():
            data = source.read(member)
            if member == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            copy.writestr(member, data)
    return target


def lambda_payload(honest: Path, target: Path, marker: Path) -> Path:
    """A Lambda layer whose marshalled code creates `marker` when the model is built."""
    function = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # the attacker's code
    layer = {
        "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
        "config": {"name": "payload", "trainable": True, "arguments": {},
                   "function": {"class_name": "__lambda__", "config": {
                       "code": base64.b64encode(marshal.dumps(function.__code__)).decode("ascii"),
                       "defaults": None, "closure": None}}},
        "build_config": {"input_shape": [None, 784]},
    }
    return with_config(honest, target, lambda config: config["config"]["layers"].insert(1, layer))


def os_system_payload(honest: Path, target: Path) -> Path:
    """A Dense layer whose activation is `os.system`, by module and name."""
    def edit(config):
        dense = config["config"]["layers"][1]
        dense["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system",
                                         "registered_name": "function"}

    return with_config(honest, target, edit)


@pytest.fixture
def image(tmp_path) -> Path:
    picture = Image.new("L", (28, 28), 0)
    picture.paste(255, (12, 4, 16, 24))  # a "1"
    path = tmp_path / "one.png"
    picture.save(path)
    return path


def test_the_lambda_payload_is_real_it_runs_outside_safe_mode(honest_model, tmp_path):
    # The control: without safe mode Keras runs the attacker's code, so the tests below mean something.
    marker = tmp_path / "ran"
    path = lambda_payload(honest_model, tmp_path / "lambda.keras", marker)
    import_keras().saving.load_model(path, safe_mode=False)
    assert marker.exists()


def test_a_lambda_layer_is_refused_and_its_code_never_runs(honest_model, tmp_path):
    marker = tmp_path / "ran"
    path = lambda_payload(honest_model, tmp_path / "lambda.keras", marker)
    with pytest.raises(ModelError, match="is not a loadable Keras model"):
        runs.load_model(path)
    assert not marker.exists()


def test_an_os_system_activation_is_refused_and_never_called(honest_model, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setattr(os, "system", lambda command: marker.touch())  # what the payload would reach
    path = os_system_payload(honest_model, tmp_path / "system.keras")
    with pytest.raises(ModelError, match="is not a loadable Keras model"):
        runs.load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["lambda", "os.system"])
def test_predict_refuses_a_malicious_model_with_exit_2(run_cli, honest_model, tmp_path, monkeypatch, image, attack):
    marker = tmp_path / "ran"
    monkeypatch.setattr(os, "system", lambda command: marker.touch())
    path = (lambda_payload(honest_model, tmp_path / "evil.keras", marker) if attack == "lambda"
            else os_system_payload(honest_model, tmp_path / "evil.keras"))
    code, out, err = run_cli("predict", "--model", str(path), str(image))
    assert code == 2 and out == "" and "is not a loadable Keras model" in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error:") and "Traceback" not in err
    assert not marker.exists()
