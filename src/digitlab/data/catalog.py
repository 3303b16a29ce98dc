"""The one table of data sets: names, IDX file names, SHA-256 checksums, mirrors and class names.

Plain data that imports nothing heavy, so that `config` (and `digitlab --help`) can read the names
without NumPy, and `datasets` reads everything else from the same table.
"""

from __future__ import annotations

import dataclasses

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a data set is made of and where it can come from."""

    # Name used on the command line and as the cache folder's name.
    name: str
    # IDX file name -> SHA-256 of its decompressed bytes.
    checksums: dict[str, str]
    # Base URLs of public mirrors holding `<file>.gz`, tried in order.
    mirrors: tuple[str, ...]
    # Human-readable name of each class, index = label.
    class_names: tuple[str, ...]
    # Folder a Debian package installs the gzipped files into, and that package's name.
    debian_folder: str | None = None
    debian_package: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        checksums={
            TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets
        ),
        class_names=tuple(str(digit) for digit in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        checksums={
            TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # torchvision, TFDS
        ),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        debian_folder="/usr/share/datasets/fashion-mnist",
        debian_package="dataset-fashion-mnist",
    ),
}
# The names in the table's order, for settings and the command line.
DATASET_NAMES = tuple(DATASETS)
# The extra class of a model trained to refuse what is not one digit (config `non_digit_images`).
NOT_A_DIGIT = "not a digit"
# Keras's own copy of MNIST: one .npz of the four arrays.
KERAS_MNIST_NPZ = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
