"""keras-io's "Simple MNIST convnet" in stock Keras, as people run it, stopped once it reaches a test accuracy.

Usage: python keras_convnet.py MNIST_CACHE_DIR TARGET_ACCURACY [MAX_EPOCHS]
Set KERAS_BACKEND before running. Run by time_to_accuracy.py. After every epoch it evaluates the
test set, only to find when the target is first reached; the time those evaluations take is left
out of the figure. Prints one JSON line: `reached_at` (the wall clock time.time() at which the target
was reached, minus evaluation time), the epoch, the accuracy, the seconds per epoch.
"""

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from digitlab.data.idx import read_idx  # only to read the files; the rest is stock Keras


class TestAccuracyWatch(keras.callbacks.Callback):
    """Evaluate the test set after each epoch; stop training once it reaches the target."""

    def __init__(self, images, labels, target):
        super().__init__()
        self.images, self.labels, self.target = images, labels, target
        self.evaluation_seconds, self.reached = 0.0, None
        self.epoch_seconds, self.accuracies = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self.epoch_started)
        started = time.perf_counter()
        _, accuracy = self.model.evaluate(self.images, self.labels, verbose=0)
        self.accuracies.append(float(accuracy))
        self.evaluation_seconds += time.perf_counter() - started
        if accuracy >= self.target and self.reached is None:
            self.reached = {"reached_at": time.time() - self.evaluation_seconds, "epoch": epoch + 1,
                            "accuracy": float(accuracy)}
            self.model.stop_training = True


cache, target = Path(sys.argv[1]), float(sys.argv[2])
max_epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 15
# The keras-io example: scale to [0, 1], add the channel axis, one-hot encode.
x_train = np.expand_dims(read_idx(cache / "train-images-idx3-ubyte").astype("float32") / 255, -1)
x_test = np.expand_dims(read_idx(cache / "t10k-images-idx3-ubyte").astype("float32") / 255, -1)
y_train = keras.utils.to_categorical(read_idx(cache / "train-labels-idx1-ubyte"), 10)
y_test = keras.utils.to_categorical(read_idx(cache / "t10k-labels-idx1-ubyte"), 10)

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
    keras.layers.MaxPooling2D(pool_size=(2, 2)),
    keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
    keras.layers.MaxPooling2D(pool_size=(2, 2)),
    keras.layers.Flatten(),
    keras.layers.Dropout(0.5),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
watch = TestAccuracyWatch(x_test, y_test, target)
model.fit(x_train, y_train, batch_size=128, epochs=max_epochs, validation_split=0.1, verbose=0, callbacks=[watch])
print(json.dumps({**(watch.reached or {"reached_at": None, "epoch": None}), "epoch_seconds": watch.epoch_seconds,
                  "accuracies": watch.accuracies, "backend": keras.backend.backend()}))
