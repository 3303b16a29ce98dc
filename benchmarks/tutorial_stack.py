"""The tutorial's own code, as people run it: plain Keras, default `fit`. Run by train_speed.py.

Usage: python tutorial_stack.py MNIST_CACHE_DIR OUTPUT_DIR
Set KERAS_BACKEND before running (tensorflow for the tutorial's stack, jax for stock Keras 3 on JAX).
Prints one JSON line with its timings and accuracy.
"""

import json
import sys
import time
from pathlib import Path

started = time.perf_counter()
import keras  # noqa: E402
import numpy as np  # noqa: E402

import_seconds = time.perf_counter() - started


def read_idx(path):
    data = Path(path).read_bytes()
    dimensions = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dimensions))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


cache, output = Path(sys.argv[1]), Path(sys.argv[2])
train_images = read_idx(cache / "train-images-idx3-ubyte")
train_labels = read_idx(cache / "train-labels-idx1-ubyte")
test_images = read_idx(cache / "t10k-images-idx3-ubyte")
test_labels = read_idx(cache / "t10k-labels-idx1-ubyte")

# The tutorial: scale to [0, 1], flatten to 784, one-hot encode.
train_images = train_images.reshape((60000, 28 * 28)).astype("float32") / 255
test_images = test_images.reshape((10000, 28 * 28)).astype("float32") / 255
train_labels = keras.utils.to_categorical(train_labels)
test_labels = keras.utils.to_categorical(test_labels)

keras.utils.set_random_seed(0)
network = keras.Sequential([keras.Input(shape=(28 * 28,)),
                            keras.layers.Dense(512, activation="relu"),
                            keras.layers.Dense(10, activation="softmax")])
network.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
timer = EpochTimer()
fit_started = time.perf_counter()
history = network.fit(train_images, train_labels, epochs=5, batch_size=64, verbose=0, callbacks=[timer])
fit_seconds = time.perf_counter() - fit_started
test_loss, test_accuracy = network.evaluate(test_images, test_labels, verbose=0)
output.mkdir(parents=True, exist_ok=True)
network.save(output / "model.keras")
results = {"fit_seconds": fit_seconds, "epoch_seconds": timer.seconds, "import_seconds": import_seconds,
           "test_accuracy": float(test_accuracy), "train_accuracy": history.history["accuracy"][-1],
           "backend": keras.backend.backend()}
(output / "metrics.json").write_text(json.dumps(results))
# Model and metrics saved: where train_speed.py stops the end-to-end clock (as for digitlab's metrics.json).
results["saved_at"] = time.time()
print(json.dumps(results))
