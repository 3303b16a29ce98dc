import json

import numpy as np
import pytest

from digitlab.backend import import_keras
from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError
from digitlab.training import fastfit
from digitlab.training.models import build_model
from digitlab.training.recipes import RECIPES, recipe_config
from digitlab.training.train import train


def test_tutorial_recipe_is_the_default_config():
    assert recipe_config("tutorial") == TrainingConfig()


def test_mlp_dropout_is_kerass_classic_mnist_mlp():
    config = recipe_config("mlp-dropout")
    assert (config.hidden_units, config.dropout, config.optimizer, config.batch_size, config.epochs) == (
        (512, 512), 0.2, "rmsprop", 128, 20)
    layers = [layer.__class__.__name__ for layer in build_model(config).layers]
    assert layers == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]


def test_cnn_is_the_keras_io_simple_convnet():
    config = recipe_config("cnn")
    assert config.input_shape == (28, 28, 1) and config.validation_split == 0.1
    model = build_model(config)
    assert [layer.__class__.__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"]
    assert model.count_params() == 34_826  # the figure keras-io's example prints


def test_flags_override_a_recipe_and_the_recipe_is_recorded():
    config = recipe_config("cnn", epochs=2, seed=4)
    assert (config.epochs, config.seed, config.recipe, config.batch_size) == (2, 4, "cnn", 128)


def test_unknown_recipe_or_setting_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown recipe 'resnet'; choose one of: tutorial, mlp-dropout, cnn"):
        recipe_config("resnet")
    with pytest.raises(ConfigError, match="unknown training settings: colour"):
        recipe_config("tutorial", colour="red")


@pytest.mark.parametrize("changes", [{"architecture": "mlp", "conv_filters": (32,)},
                                     {"architecture": "cnn", "conv_filters": ()},
                                     {"architecture": "cnn", "conv_filters": (8, 8, 8, 8)},
                                     {"architecture": "cnn", "conv_filters": (8, 8, 8), "kernel_size": 5},
                                     {"architecture": "cnn", "conv_filters": (8,), "conv_padding": "full"},
                                     {"architecture": "cnn", "conv_filters": (8,), "kernel_size": 0},
                                     {"learning_rate_schedule": "sometimes"},
                                     {"warmup_fraction": 1.0},
                                     {"augment_rotation": -5.0},
                                     {"augment_shift": 0.9},
                                     {"batch_norm": "yes"},
                                     {"architecture": "rnn"}])
def test_inconsistent_architectures_are_refused(changes):
    with pytest.raises(ConfigError):
        TrainingConfig(**changes)


def test_a_cnn_run_records_its_input_shape_and_evaluates(tiny_mnist, tmp_path):
    from digitlab.analysis.evaluate import evaluate_run

    config = recipe_config("cnn", epochs=1, conv_filters=(4, 8), validation_split=0.0)
    result = train(config, run_dir=tmp_path / "run", verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["input_shape"] == [28, 28, 1] and saved["training"]["architecture"] == "cnn"
    assert result.metrics.fit_loop == "fast" and result.metrics.fit_loop_fallback is None
    assert evaluate_run(tmp_path / "run")["accuracy"] == pytest.approx(result.metrics.test_accuracy, abs=1e-6)


def test_fast_loop_matches_model_fit_on_a_convnet():
    keras = import_keras()
    if keras.backend.backend() != "jax":
        pytest.skip("the fast loop is JAX-only")
    rng = np.random.default_rng(0)
    inputs = rng.random((300, 28, 28, 1), dtype=np.float32)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 300)]
    config = recipe_config("cnn", conv_filters=(4, 8))

    def compiled():
        keras.utils.set_random_seed(0)
        model = build_model(config)
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    expected = compiled().fit(inputs, targets, epochs=2, batch_size=128, validation_split=0.1, verbose=0).history
    result = fastfit.fit(compiled(), inputs, targets, epochs=2, batch_size=128, validation_split=0.1, verbose=0)
    for name in expected:
        np.testing.assert_allclose(result.history[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_every_recipe_has_a_published_figure():
    readers = {"reader", "reader-large"}  # their own task: nothing published to compare with
    published = [recipe for recipe in RECIPES.values() if recipe.name not in readers]
    assert all(0.97 < recipe.published_test_accuracy < 1 for recipe in published)
    assert all(RECIPES[name].published_test_accuracy is None for name in readers)


def test_a_reader_run_learns_an_eleventh_class_not_a_digit(tiny_mnist, tmp_path):
    from digitlab.inference.loading import load_classifier

    config = recipe_config("reader", epochs=1, conv_filters=(4, 8), hidden_units=(16,), non_digit_images=64,
                           line_model_lines=0)
    result = train(config, run_dir=tmp_path / "run", verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["class_names"] == [*map(str, range(10)), "not a digit"]
    assert saved["training"]["non_digit_images"] == 64 and result.metrics.fit_loop == "fast"
    classifier = load_classifier(tmp_path / "run")
    assert classifier.network.output_shape == (None, 11) and classifier.digits_only
    # 64 refused images (32 drawn, 16 pieces of digits, 16 wrong cuts) and 16 right cuts among the digits.
    from digitlab.training.train import _with_non_digits

    images, labels = np.zeros((40, 28, 28), np.uint8), np.arange(40) % 10
    images[:, 8:20, 10:18] = 255
    mixed_images, mixed_labels = _with_non_digits(images, labels, config)
    assert mixed_images.shape == (40 + 80, 28, 28) and np.count_nonzero(mixed_labels == 10) == 64
    with pytest.raises(ConfigError, match="needs --dataset mnist"):
        recipe_config("reader", dataset="fashion-mnist")


def test_a_reader_run_also_trains_the_line_model_that_read_then_uses(tiny_mnist, tmp_path):
    from PIL import Image, ImageDraw

    from digitlab.inference.loading import load_classifier
    from digitlab.inference.reading import read_number
    from digitlab.training.line_model import LINE_MODEL_FILE

    assert RECIPES["reader"].settings["line_model_lines"] >= 10_000
    config = recipe_config("reader", epochs=1, conv_filters=(4, 8), hidden_units=(16,), non_digit_images=64,
                           line_model_lines=600)
    result = train(config, run_dir=tmp_path / "run", verbose=0)
    assert (tmp_path / "run" / LINE_MODEL_FILE).is_file() and result.metrics.line_model_seconds > 0
    classifier = load_classifier(tmp_path / "run")
    assert classifier.line_reader is not None
    picture = Image.new("L", (240, 80), 235)
    ImageDraw.Draw(picture).line((40, 15, 44, 65), fill=20, width=6)
    ImageDraw.Draw(picture).ellipse((120, 15, 160, 65), outline=20, width=6)
    reading = read_number(classifier, picture, min_confidence=0.0)  # what a barely trained model reads: any digits
    assert set(reading.text) <= set("0123456789") and len(reading.digits) == len(reading.text)
    for digit in reading.digits:
        x0, y0, x1, y1 = digit.box
        assert 0 <= x0 < x1 <= 240 and 0 <= y0 < y1 <= 80 and digit.probabilities.shape == (10,)
    assert load_classifier(tmp_path / "run" / "model.keras").line_reader is None  # a model file alone: no line model
    with pytest.raises(ConfigError, match="at least 500"):
        recipe_config("reader", line_model_lines=100)


def test_ctrl_c_while_the_line_model_trains_keeps_the_classifier_and_marks_the_run_interrupted(tiny_mnist, tmp_path,
                                                                                             monkeypatch):
    from digitlab.training import line_model

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(line_model, "train_and_save", interrupted)
    config = recipe_config("reader", epochs=1, conv_filters=(4, 8), hidden_units=(16,), non_digit_images=64,
                           line_model_lines=600)
    result = train(config, run_dir=tmp_path / "run", verbose=0)
    assert result.interrupted and (tmp_path / "run" / "model.keras").is_file()
    assert not (tmp_path / "run" / line_model.LINE_MODEL_FILE).exists() and result.metrics.line_model_seconds is None
