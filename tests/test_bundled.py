"""The reader bundled in the package: its manifest matches its files, a tampered file is refused, and it still
scores what the manifest says on a small fixed sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from digitlab.errors import BundledModelError
from digitlab.inference import bundled

# A model file in the package may not pass this (the bundle's two ONNX files together).
MOST_BYTES = 10_000_000
# Scores of the check sample may move by this share between CPUs (a borderline picture read otherwise).
CHECK_TOLERANCE = 0.034


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    """A copy of the package's bundled folder, to alter."""
    folder = tmp_path / "bundled"
    shutil.copytree(bundled.bundled_folder(), folder)
    return folder


def test_the_package_has_a_bundled_reader_whose_files_match_the_manifest():
    bundle = bundled.verified_bundle()
    manifest = bundle.manifest
    assert bundle.classifier_path.is_file() and bundle.line_model_path.is_file()
    for entry in manifest["files"]:
        assert entry == bundled.file_entry(bundled.bundled_folder() / entry["name"], entry["kind"])
    assert sum(entry["bytes"] for entry in manifest["files"]) <= MOST_BYTES
    assert manifest["recipe"] == "reader-large" and manifest["settings"]["training"]["recipe"] == "reader-large"
    assert manifest["seed"] == manifest["settings"]["training"]["seed"]
    assert set(manifest["training_data"]) >= {"mnist"}
    assert manifest["training"]["seconds"] > 0 and manifest["training"]["machine"]["cores"] >= 1
    for name in ("numbers", "singles", "non_digits", "unseen_non_digits", "handwriting_numbers", "speed"):
        assert name in manifest["scores"], name


def test_the_bundled_folder_holds_only_what_the_manifest_lists():
    listed = {entry["name"] for entry in bundled.read_manifest()["files"]} | {bundled.MANIFEST_FILE}
    assert {path.name for path in bundled.bundled_folder().iterdir()} == listed


def test_an_altered_file_is_refused_and_named(bundle_copy):
    manifest = bundled.read_manifest(bundle_copy)
    target = bundle_copy / manifest["files"][1]["name"]
    contents = bytearray(target.read_bytes())
    contents[len(contents) // 2] ^= 0xFF
    target.write_bytes(bytes(contents))
    with pytest.raises(BundledModelError, match=f"{target.name} is corrupt or altered.*reinstall"):
        bundled.verified_bundle(bundle_copy)
    assert BundledModelError.exit_status == 1


def test_a_missing_file_or_manifest_is_refused(bundle_copy):
    (bundle_copy / bundled.read_manifest(bundle_copy)["files"][0]["name"]).unlink()
    with pytest.raises(BundledModelError, match="cannot be read"):
        bundled.verified_bundle(bundle_copy)
    (bundle_copy / bundled.MANIFEST_FILE).unlink()
    with pytest.raises(BundledModelError, match="has no bundled reader"):
        bundled.verified_bundle(bundle_copy)


@pytest.mark.parametrize("change", [lambda manifest: manifest.update(format=99),
                                    lambda manifest: manifest["files"].pop(),
                                    lambda manifest: manifest["files"][0].update(kind="something else")])
def test_a_manifest_of_another_shape_is_refused(bundle_copy, change):
    path = bundle_copy / bundled.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundledModelError, match="manifest"):
        bundled.verified_bundle(bundle_copy)


def test_a_manifest_that_is_not_json_is_refused(bundle_copy):
    (bundle_copy / bundled.MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundledModelError, match="cannot be read"):
        bundled.read_manifest(bundle_copy)


@pytest.mark.slow
def test_the_bundled_reader_still_scores_what_its_manifest_says():
    """The check sample (MNIST test digit lines and singles, non-digits of kinds never trained on), scored again."""
    from digitlab.inference import scoring
    from digitlab.inference.loading import load_bundled_reader

    manifest = bundled.read_manifest()
    check = manifest["check"]
    scores = scoring.score_reader(load_bundled_reader(), scoring.ScoreSizes(**check["sizes"]))
    for set_name, expected in check["scores"].items():
        for measure in ("read_exactly", "right", "refused"):
            if measure in expected:
                assert scores[set_name][measure] == pytest.approx(expected[measure], abs=CHECK_TOLERANCE), \
                    (set_name, measure)


def test_the_line_models_second_opinion_refuses_a_smiley_the_classifier_calls_0():
    """The bundled classifier alone names this smiley a 0 (99.9% sure); its line model sees no digit in it."""
    import numpy as np
    from PIL import Image, ImageDraw

    from digitlab.inference import rejection
    from digitlab.inference.loading import load_bundled_reader

    classifier = load_bundled_reader()
    smiley, one = Image.new("L", (400, 400), 255), Image.new("L", (400, 400), 255)
    draw = ImageDraw.Draw(smiley)
    draw.ellipse((60, 60, 340, 340), outline=0, width=14)
    draw.ellipse((135, 140, 165, 170), fill=0)
    draw.ellipse((235, 140, 265, 170), fill=0)
    draw.arc((120, 160, 280, 290), start=20, end=160, fill=0, width=14)
    ImageDraw.Draw(one).line([(200, 40), (200, 360)], fill=0, width=20)
    prepared = np.stack([classifier.prepare(smiley), classifier.prepare(one)])
    probabilities = classifier.probabilities(prepared)
    alone = rejection.decide(probabilities, prepared, classifier.class_names)
    assert [decision.digit for decision in alone] == [0, 1]
    evidence = classifier.line_reader.digit_evidence(prepared)
    assert evidence[0] < rejection.DIGIT_EVIDENCE_LEVEL < 0.5 < evidence[1]
    decisions = classifier.decide(probabilities, prepared)
    assert [(decision.digit, decision.reason) for decision in decisions] == [(None, rejection.NOT_A_DIGIT), (1, None)]
    blank = np.zeros((1, 28, 28), np.float32)
    assert classifier.line_reader.digit_evidence(blank)[0] < rejection.DIGIT_EVIDENCE_LEVEL
