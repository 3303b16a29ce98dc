"""predict.py, loading.py and `digitlab predict`: load a model, classify images, report bad files; real accuracy (slow)."""

import json
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import threadpoolctl
from PIL import Image

import digitlab
from digitlab.data import datasets
from digitlab.data.synthetic import digit_picture, find_fonts, write_handwritten, write_printed
from digitlab.errors import ImageError, ModelError, RunFolderError
from digitlab.inference import loading, predict
from digitlab.inference.preparer import ImagePreparer


@pytest.fixture(scope="module")
def classifier(tiny_run):
    return loading.load_classifier(tiny_run)


@pytest.fixture
def image_folder(tmp_path):
    """Three good images (PNG, JPEG, RGB) and one that is not an image."""
    folder = tmp_path / "images"
    folder.mkdir()
    digit_picture(1).save(folder / "a.png")
    digit_picture(2).save(folder / "b.jpg", quality=90)
    digit_picture(3).convert("RGB").save(folder / "c.png")
    (folder / "d.png").write_text("not an image")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


# --- the Python API ---------------------------------------------------------------------------


def test_predict_takes_paths_pil_images_and_arrays(classifier, tmp_path):
    picture = digit_picture(5)
    picture.save(tmp_path / "five.png")
    result = classifier.predict([tmp_path / "five.png", str(tmp_path / "five.png"), picture, np.asarray(picture)])
    assert result.digits.shape == (4,) and result.probabilities.shape == (4, 10) and result.images.shape == (4, 28, 28)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(result.digits, result.probabilities.argmax(axis=1))
    # The same picture; the array goes through float pixels rather than 8-bit ones, hence the tolerance.
    np.testing.assert_allclose(result.probabilities, result.probabilities[[0, 0, 0, 0]], atol=1e-3)
    single = classifier.predict(picture)
    assert single.digits.shape == (1,) and single.digits[0] == result.digits[0]


def test_probabilities_match_keras_predict(classifier):
    """The compiled forward pass gives what model.predict() gives, for any batch size."""
    prepared = np.random.default_rng(0).random((37, 28, 28), dtype=np.float32)
    expected = classifier.network.model.predict(prepared.reshape(37, 784), verbose=0)
    np.testing.assert_allclose(classifier.probabilities(prepared), expected, atol=1e-5)
    np.testing.assert_allclose(classifier.probabilities(prepared[:1]), expected[:1], atol=1e-5)


def test_a_keras_model_compiles_only_the_batch_sizes_it_is_called_with(tiny_run):
    """Loading compiles no forward pass; one image compiles the smallest batch, 20 images the next bucket."""
    network = loading.load_classifier(tiny_run).network  # a fresh one: the module's classifier is called by others
    classifier = predict.Classifier(network)
    assert network.compiled_shapes == frozenset()
    classifier.predict(digit_picture(1))
    assert network.compiled_shapes == {(8, 784)}
    classifier.predict([digit_picture(seed) for seed in range(20)])
    classifier.predict([digit_picture(seed) for seed in range(3)])
    assert network.compiled_shapes == {(8, 784), (32, 784)}


def test_a_keras_model_keeps_its_compiled_programs_for_the_next_process(tiny_run, tmp_path):
    """On JAX, loading a Keras model turns on JAX's compilation cache where training keeps its programs."""
    script = ("import sys, jax\nfrom digitlab.inference import loading\n"
              "loading.load_classifier(sys.argv[1]).predict(sys.argv[2])\n"
              "print(jax.config.jax_compilation_cache_dir)")
    digit_picture(1).save(tmp_path / "one.png")
    for setting, expected in (("1", str(tmp_path / "data" / "compiled")), ("0", "None")):
        environment = {**os.environ, "DIGITLAB_DATA": str(tmp_path / "data"), "DIGITLAB_COMPILATION_CACHE": setting}
        completed = subprocess.run([sys.executable, "-c", script, str(tiny_run), str(tmp_path / "one.png")],
                                   env=environment, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-2000:]
        assert completed.stdout.strip().splitlines()[-1] == expected


def test_the_classifier_can_be_used_from_several_threads(classifier):
    pictures = [digit_picture(seed) for seed in range(8)]
    expected = classifier.predict(pictures).probabilities
    results, errors = {}, []

    def work(index):
        try:
            results[index] = classifier.predict(pictures[index % 8 : index % 8 + 1]).probabilities[0]
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for index, probabilities in results.items():
        np.testing.assert_allclose(probabilities, expected[index % 8], atol=1e-5)


def test_a_convolutional_input_shape_is_read_from_the_model(tmp_path, classifier):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "cnn.keras")
    cnn = loading.load_classifier(tmp_path / "cnn.keras")
    assert cnn.input_shape == (28, 28, 1) and cnn.class_names == [str(label) for label in range(10)]
    assert cnn.predict(digit_picture(1)).probabilities.shape == (1, 10)


def test_a_model_file_is_accepted_with_the_config_beside_it(tiny_run):
    loaded = loading.load_classifier(tiny_run / "model.keras")
    assert loaded.class_names == json.loads((tiny_run / "config.json").read_text())["class_names"]
    assert digitlab.load_classifier is loading.load_classifier  # the lazy public re-export


def test_bad_models_give_one_clear_error(tmp_path):
    import keras

    with pytest.raises(ModelError, match="does not exist"):
        loading.load_classifier(tmp_path / "nowhere")
    (tmp_path / "fake.keras").write_text("not a model")
    with pytest.raises(ModelError, match="not a Keras model file"):
        loading.load_classifier(tmp_path / "fake.keras")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(ModelError, match="holds no model.keras"):
        loading.load_classifier(tmp_path / "empty-run")
    wrong_input = keras.Sequential([keras.Input((32,)), keras.layers.Dense(10, activation="softmax")])
    wrong_input.save(tmp_path / "wrong.keras")
    with pytest.raises(ModelError, match="does not fit a 28x28 image"):
        loading.load_classifier(tmp_path / "wrong.keras")
    # Safe mode: a model carrying Python code (a Lambda layer) is refused, not executed.
    lambda_model = keras.Sequential([keras.Input((784,)), keras.layers.Lambda(lambda x: x * 2),
                                     keras.layers.Dense(10, activation="softmax")])
    lambda_model.save(tmp_path / "code.keras")
    with pytest.raises(ModelError, match="not a loadable Keras model"):
        loading.load_classifier(tmp_path / "code.keras")


def test_no_finished_run_loads_the_bundled_reader_and_says_so(tmp_path):
    said = []
    classifier = loading.load_classifier(runs_root=tmp_path / "runs", notice=said.append)
    assert classifier.source.startswith("bundled reader-large") and classifier.line_reader is not None
    assert classifier.describe()["model"] == classifier.source and classifier.describe()["backend"] == "onnxruntime"
    assert len(said) == 1 and said[0].startswith("using the bundled reader-large") and "--model" in said[0]


def test_no_finished_run_and_no_bundled_reader_says_how_to_train_one(tmp_path, monkeypatch):
    from digitlab.inference import bundled

    monkeypatch.setattr(bundled, "is_available", lambda: False)
    with pytest.raises(RunFolderError, match="digitlab train"):
        loading.load_classifier(runs_root=tmp_path / "runs")


def test_a_copy_of_the_bundled_folder_loads_with_model_and_a_tampered_one_exits_1(run_cli, tmp_path, image_folder):
    import shutil

    from digitlab.inference import bundled

    copy = tmp_path / "bundled"
    shutil.copytree(bundled.bundled_folder(), copy)
    assert loading.resolve_model_source(copy).kind == loading.BUNDLED
    code, out, _ = run_cli("predict", str(image_folder / "a.png"), "--model", str(copy))
    assert code == 0 and out.startswith(str(image_folder / "a.png"))
    target = copy / "reader.onnx"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    code, out, err = run_cli("predict", str(image_folder / "a.png"), "--model", str(copy))
    assert code == 1 and out == "" and err.count("error:") == 1 and "corrupt or altered" in err


def test_predict_raises_for_a_bad_image(classifier, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"")
    with pytest.raises(ImageError, match="bad.png"):
        classifier.predict([digit_picture(1), tmp_path / "bad.png"])


def test_classify_files_keeps_going_past_bad_files(classifier, image_folder, tmp_path):
    paths = predict.image_files([image_folder, tmp_path / "missing.png"])
    assert [path.name for path in paths] == ["a.png", "b.jpg", "c.png", "d.png", "missing.png"]
    results = list(classifier.classify_files(paths, save_preprocessed=tmp_path / "seen"))
    assert [result.ok for result in results] == [True, True, True, False, False]
    assert "not an image" in results[3].error and "no such file" in results[4].error
    expected = classifier.predict(paths[:3])
    np.testing.assert_allclose(np.stack([result.probabilities for result in results[:3]]), expected.probabilities,
                               atol=1e-6)
    saved = sorted(path.name for path in (tmp_path / "seen").iterdir())
    assert saved == ["a.png", "b.png", "c.png"]
    seen = np.asarray(Image.open(tmp_path / "seen" / "b.png"), dtype=np.float32) / 255
    assert seen.shape == (28, 28) and np.abs(seen - expected.images[1]).max() <= 0.5 / 255 + 1e-6
    # In worker processes: the same results, in the same order.
    with ImagePreparer(2) as workers:
        parallel = list(classifier.classify_files(paths, preparer=workers))
        # Each worker keeps NumPy's BLAS to one thread: its spinning threads would fight the other worker.
        blas = [library for library in workers._executor.submit(threadpoolctl.threadpool_info).result()
                if library["user_api"] == "blas"]
    assert blas and all(library["num_threads"] == 1 for library in blas)
    assert [result.ok for result in parallel] == [True, True, True, False, False]
    np.testing.assert_allclose(np.stack([result.probabilities for result in parallel[:3]]), expected.probabilities,
                               atol=1e-6)


# --- the CLI ----------------------------------------------------------------------------------


# Probabilities as analysis.formatting.format_probability words them: 97%, >99%, <1%.
LINE = re.compile(r"^(?P<path>.+): (?P<digit>\d) \((?P<percent>[<>]?\d+)%\)  (?P<ranked>.+)$")


def test_cli_prints_one_line_per_image_and_exits_1_when_one_failed(run_cli, tiny_run, image_folder):
    # The tiny model is unsure of everything: name its best digit whatever its probability.
    code, out, err = run_cli("predict", str(image_folder), "--model", str(tiny_run), "--min-confidence", "0")
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 3
    for line, name in zip(lines, ["a.png", "b.jpg", "c.png"], strict=True):
        match = LINE.match(line)
        assert match and match["path"].endswith(name), line
        ranked = match["ranked"].split(" | ")
        assert len(ranked) == 3 and ranked[0] == f"{match['digit']} {match['percent']}%"
    assert "d.png" in err and "not an image" in err and "1 of 4 images failed" in err


def test_cli_refuses_below_min_confidence_with_a_reason_and_exit_0(run_cli, tiny_run, image_folder):
    code, out, _ = run_cli("predict", str(image_folder / "a.png"), "--model", str(tiny_run), "--min-confidence", "1")
    assert code == 0 and re.match(r"^.+a\.png: no digit: unsure  \d .+%", out.strip()), out
    code, out, _ = run_cli("predict", str(image_folder / "a.png"), "--model", str(tiny_run), "--min-confidence", "1",
                           "--json")
    answer = json.loads(out)
    assert code == 0 and answer["digit"] is None and answer["reason"] == "unsure" and len(answer["probabilities"]) == 10
    code, _, err = run_cli("predict", str(image_folder / "a.png"), "--model", str(tiny_run), "--min-confidence", "2")
    assert code == 2 and "min-confidence" in err


def test_cli_json_and_top(run_cli, tiny_run, image_folder):
    code, out, _ = run_cli("predict", str(image_folder / "a.png"), str(image_folder / "d.png"),
                           "--model", str(tiny_run), "--json", "--min-confidence", "0")
    first, second = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 1 and first["path"].endswith("a.png") and len(first["probabilities"]) == 10
    assert first["digit"] == int(np.argmax(first["probabilities"]))
    assert sum(first["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert second["path"].endswith("d.png") and "not an image" in second["error"] and "digit" not in second

    code, out, _ = run_cli("predict", str(image_folder / "a.png"), "--model", str(tiny_run),
                           "--top", "5", "--min-confidence", "0")
    assert code == 0 and len(LINE.match(out.strip())["ranked"].split(" | ")) == 5
    code, _, _ = run_cli("predict", str(image_folder / "a.png"), "--top", "0")
    assert code == 2


def test_cli_save_preprocessed(run_cli, tiny_run, image_folder, tmp_path):
    target = tmp_path / "seen"
    code, _, _ = run_cli("predict", str(image_folder / "a.png"), str(image_folder / "b.jpg"),
                         "--model", str(tiny_run), "--save-preprocessed", str(target))
    assert code == 0 and sorted(path.name for path in target.iterdir()) == ["a.png", "b.png"]
    assert Image.open(target / "a.png").size == (28, 28)


def test_cli_bad_model_is_one_clear_error_with_exit_2(run_cli, image_folder, tmp_path):
    (tmp_path / "model.keras").write_text("junk")
    code, out, err = run_cli("predict", str(image_folder / "a.png"), "--model",
                             str(tmp_path / "model.keras"))
    assert code == 2 and out == "" and err.count("error:") == 1 and "not a Keras model file" in err


def test_cli_without_runs_uses_the_bundled_reader_and_says_so_on_stderr(run_cli, monkeypatch, image_folder, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("predict", str(image_folder / "a.png"))
    assert code == 0 and out.startswith(str(image_folder / "a.png"))
    assert err.startswith("using the bundled reader-large") and err.count("\n") == 1


def test_cli_without_runs_or_bundled_reader_says_how_to_train(run_cli, monkeypatch, image_folder, tmp_path):
    from digitlab.inference import bundled

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bundled, "is_available", lambda: False)
    code, _, err = run_cli("predict", str(image_folder / "a.png"))
    assert code == 2 and "no finished run under runs/" in err and "digitlab train" in err


def test_cli_uses_the_latest_finished_run(run_cli, monkeypatch, tiny_run, image_folder, tmp_path):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_run, tmp_path / "runs" / "20260101-000000-tiny")
    code, out, _ = run_cli("predict", str(image_folder / "a.png"), "--min-confidence", "0")
    assert code == 0 and LINE.match(out.strip())


def test_cli_folder_without_images_is_a_bad_argument(run_cli, tmp_path):
    code, _, err = run_cli("predict", str(tmp_path))
    assert code == 2 and "no image files" in err


# --- real accuracy (slow): the tutorial's recipe on photo-like and printed digits -------------


def accuracy(probabilities: np.ndarray, labels: list[int]) -> float:
    return float((probabilities.argmax(axis=1) == np.array(labels)).mean())


def plain_resize(path) -> np.ndarray:
    """What people try first: grayscale, resize to 28x28, scale to [0, 1]."""
    return np.asarray(Image.open(path).convert("L").resize((28, 28)), dtype=np.float32) / 255


@pytest.mark.slow
def test_photo_like_handwritten_digits_are_read_after_mnist_style_preparation(tutorial_classifier, tmp_path):
    _, (test_images, test_labels) = datasets.load("mnist")
    written = write_handwritten(tmp_path, test_images, test_labels, count=400, seed=2024)
    paths, labels = [path for path, _ in written], [label for _, label in written]
    results = list(tutorial_classifier.classify_files(paths))
    assert all(result.ok for result in results), [result.error for result in results if not result.ok]
    prepared = accuracy(np.stack([result.probabilities for result in results]), labels)
    plain = accuracy(tutorial_classifier.probabilities(np.stack([plain_resize(path) for path in paths])), labels)
    print(f"photo-like handwritten digits: {prepared:.1%} prepared like MNIST, {plain:.1%} plainly resized")
    assert prepared >= 0.95
    assert plain <= 0.3 and prepared - plain >= 0.6  # why preparation matters


@pytest.mark.slow
def test_printed_digits_are_read(tutorial_classifier, tmp_path):
    fonts = find_fonts()
    if len(fonts) < 4:
        pytest.fail("the printed-digit test needs TrueType fonts: apt-get install fonts-dejavu-core "
                    "fonts-dejavu-extra fonts-liberation (scripts/test does)")
    written = write_printed(tmp_path, fonts, count=max(200, 10 * len(fonts)), seed=2025)
    prediction = tutorial_classifier.predict([path for path, _ in written])
    score = accuracy(prediction.probabilities, [label for _, label in written])
    print(f"printed digits ({len(fonts)} fonts): {score:.1%}")
    assert score >= 0.85
