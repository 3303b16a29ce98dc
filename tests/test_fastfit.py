"""The fast JAX loop must compute what model.fit computes, and step aside where it cannot."""

import numpy as np
import pytest

from digitlab.backend import import_keras
from digitlab.config import TrainingConfig
from digitlab.training import fastfit
from digitlab.training.train import train

keras = import_keras()
pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the fast loop is JAX-only")


def small_problem(count=700):
    rng = np.random.default_rng(0)
    inputs = rng.random((count, 784), dtype=np.float32)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, count)]
    return inputs, targets


def compiled_model(dropout=0.0, regularizer=None, optimizer="adam"):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((784,)), keras.layers.Dense(32, activation="relu", kernel_regularizer=regularizer)]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


@pytest.mark.parametrize("dropout, validation_split, optimizer", [(0.0, 0.0, "adam"), (0.3, 0.2, "rmsprop")])
def test_fast_loop_matches_model_fit(dropout, validation_split, optimizer):
    inputs, targets = small_problem()  # 700 is not a multiple of 64: a partial last batch too
    reference = compiled_model(dropout, optimizer=optimizer)
    expected = reference.fit(inputs, targets, epochs=3, batch_size=64, validation_split=validation_split,
                             shuffle=True, verbose=0).history
    model = compiled_model(dropout, optimizer=optimizer)
    result = fastfit.fit(model, inputs, targets, epochs=3, batch_size=64, validation_split=validation_split, verbose=0)
    assert sorted(result.history) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(result.history[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for fast_weights, reference_weights in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(fast_weights, reference_weights, rtol=1e-5, atol=1e-6)
    assert result.compile_seconds > 0


def test_early_stopping_is_honoured():
    inputs, targets = small_problem()
    model = compiled_model()
    stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=100.0)
    result = fastfit.fit(model, inputs, targets, epochs=5, batch_size=64, callbacks=[stopper], verbose=0)
    assert len(result.history["loss"]) == 2


def test_models_with_regularisation_losses_are_left_to_model_fit():
    usable, reason = fastfit.supports(compiled_model(regularizer="l2"))
    assert not usable and "regularisation" in reason
    assert fastfit.supports(compiled_model()) == (True, "")
    # Strided convolutions are lowered with "valid" padding only (lowering.py).
    for strides, padding, usable in ((1, "same", True), (2, "valid", True), (2, "same", False)):
        convnet = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, strides=strides, padding=padding),
                                    keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
        convnet.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        assert fastfit.supports(convnet)[0] is usable


def test_train_records_the_loop_and_both_loops_agree(tiny_mnist, tmp_path):
    config = TrainingConfig(epochs=2, batch_size=32, hidden_units=(32,), validation_split=0.1)
    fast = train(config, run_dir=tmp_path / "fast", verbose=0)
    plain = train(config, run_dir=tmp_path / "plain", verbose=0, fit_loop="keras")
    assert fast.metrics.fit_loop == "fast" and plain.metrics.fit_loop == "keras"
    assert fast.metrics.compile_seconds > 0 and plain.metrics.compile_seconds is None
    for name in plain.history:
        np.testing.assert_allclose(fast.history[name], plain.history[name], rtol=1e-5, atol=1e-6)
    assert fast.metrics.test_accuracy == pytest.approx(plain.metrics.test_accuracy, abs=1e-6)


def test_verbose_output_looks_like_keras(capsys):
    inputs, targets = small_problem(128)
    fastfit.fit(compiled_model(), inputs, targets, epochs=2, batch_size=64, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "2/2" in out and "accuracy:" in out
