"""A plain install (no extras) reads digits with the bundled reader: no training run, no Keras, no JAX.

Runs in .venv-serve (what `pip install digitlab` installs, plus pytest and httpx), on photos that
tests/serving/make_exports.py made in .venv from MNIST *test* digits and from kinds of non-digits no
training draws; skipped in any other environment. Each command runs in an empty folder (no runs/).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

EXPORTS = os.environ.get("DIGITLAB_SERVING_EXPORTS")
pytestmark = pytest.mark.skipif(not EXPORTS, reason="runs in .venv-serve, with the photos scripts/test makes")
DIGITLAB = Path(sys.executable).with_name("digitlab")
# Libraries a plain install must never import (nor have installed).
TRAINING_LIBRARIES = ("keras", "jax", "tensorflow", "torch")


def truth(folder: Path) -> dict[str, str]:
    """File name -> the text written in it, from the set's labels.jsonl."""
    records = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()]
    return {record["path"]: record["text"] for record in records}


def run(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`digitlab ARGUMENTS --json` in an empty folder: no runs/ to fall back on but the bundled reader."""
    folder = tmp_path / "empty"
    folder.mkdir(exist_ok=True)
    return subprocess.run([DIGITLAB, *arguments, "--json"], capture_output=True, text=True, timeout=120, cwd=folder)


def test_a_plain_install_has_no_training_library():
    assert all(importlib.util.find_spec(name) is None for name in TRAINING_LIBRARIES)


def test_predict_with_no_run_uses_the_bundled_reader_and_names_digits(tmp_path):
    singles = Path(EXPORTS) / "photos" / "singles"
    answered = run(tmp_path, "predict", str(singles))
    assert answered.returncode == 0, answered.stderr
    assert "using the bundled reader-large" in answered.stderr and answered.stderr.count("\n") == 1
    answers = {Path(found["path"]).name: found["digit"] for found in map(json.loads, answered.stdout.splitlines())}
    expected = truth(singles)
    right = sum(str(answers[name]) == text for name, text in expected.items())
    assert right >= 0.9 * len(expected), (right, len(expected))  # it names 97% of such photos right


def test_read_with_no_run_reads_numbers_with_the_bundled_line_model(tmp_path):
    lines = Path(EXPORTS) / "photos" / "bundled-lines"
    answered = run(tmp_path, "read", str(lines))
    assert answered.returncode == 0, answered.stderr
    texts = {Path(found["path"]).name: found["text"] for found in map(json.loads, answered.stdout.splitlines())}
    expected = truth(lines)
    right = sum(texts[name] == text for name, text in expected.items())
    assert right >= 0.8 * len(expected), (right, len(expected))


def test_kinds_of_non_digits_no_training_draws_are_refused(tmp_path):
    unseen = Path(EXPORTS) / "photos" / "unseen"
    answered = run(tmp_path, "predict", str(unseen))
    assert answered.returncode == 0, answered.stderr
    refused = [found["digit"] is None for found in map(json.loads, answered.stdout.splitlines())]
    assert len(refused) == 40 and sum(refused) >= 0.85 * len(refused), sum(refused)


def test_a_smiley_drawn_with_pillow_is_not_a_digit(tmp_path):
    smiley = Image.new("L", (400, 400), 255)
    draw = ImageDraw.Draw(smiley)
    draw.ellipse((60, 60, 340, 340), outline=0, width=14)
    draw.ellipse((135, 140, 165, 170), fill=0)
    draw.ellipse((235, 140, 265, 170), fill=0)
    draw.arc((120, 160, 280, 290), start=20, end=160, fill=0, width=14)
    smiley.save(tmp_path / "smiley.png")
    answered = run(tmp_path, "predict", str(tmp_path / "smiley.png"))
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["digit"] is None


def test_the_server_serves_the_bundled_reader_without_training_libraries(tmp_path):
    import httpx

    from digitlab.inference.loading import load_classifier
    from digitlab.web.server import running

    classifier = load_classifier(None, runs_root=tmp_path / "no-runs")
    with running(classifier) as address, httpx.Client(base_url=address, timeout=30) as client:
        model = client.get("/api/model").json()
        assert model["model"].startswith("bundled reader-large") and model["backend"] == "onnxruntime"
        assert client.get("/").status_code == 200  # the drawing page
        lines = Path(EXPORTS) / "photos" / "bundled-lines"
        right = 0
        for name, text in list(truth(lines).items())[:5]:
            read = client.post("/api/read", files={"file": ("line.png", (lines / name).read_bytes(), "image/png")})
            assert read.status_code == 200
            right += read.json()["text"] == text
        assert right >= 4
    assert not [name for name in sys.modules if name.split(".")[0] in TRAINING_LIBRARIES]
