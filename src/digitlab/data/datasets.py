"""The data sets: their files and checksums, the cache, fetching, verifying and loading.

Like torchvision's `datasets/mnist.py`: a table of files and SHA-256 checksums (catalog.py); check
the cache, then fetch, then verify. Checksums are of the decompressed IDX bytes, because gzip
wrappers differ between mirrors while the content does not. The cache holds raw IDX files, one
folder per data set. A folder the user named that cannot serve raises `DataFolderError` (their input);
a disk that cannot be written raises `StorageError` (the machine's failure).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from digitlab import storage
from digitlab.data.catalog import (
    DATASETS,
    FILE_NAMES,
    KERAS_MNIST_NPZ,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    DatasetSpec,
)
from digitlab.data.files import SCRATCH_PREFIX, cache_write_error, os_error_reason, sha256_file
from digitlab.data.idx import read_idx
from digitlab.data.sources import (
    FolderSource,
    HttpMirrorSource,
    KerasNpzSource,
    PackageIndexSource,
    ProgressCallback,
    Source,
    SourceFailed,
)
from digitlab.errors import DataFolderError, DataUnavailableError, IdxFormatError, StorageError, UnknownDatasetError

# The table of data sets (names, files, checksums, mirrors) lives in catalog.py; DATASETS, DatasetSpec
# and the file names are imported from there and used through this module by callers and tests.

# Called with one line a person should read: a corrupt cached file was removed and is fetched again.
NoticeCallback = Callable[[str], None]


class CacheRepairedWarning(UserWarning):
    """A cached file failed its checksum and was removed to be fetched again (issued when no `notice` is given)."""


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
    """The cache folder of one data set (not created).

    Raises:
        DataFolderError: the cache root, a folder above it or the data set's folder is a file
            (say $DIGITLAB_DATA names a file): bad input, fixed by pointing it at a folder.
    """
    directory = Path(root or data_root()) / get_spec(name).name
    _check_can_be_folder(directory, _describe_root(root))
    return directory


def verify(name: str, root: str | Path | None = None) -> list[FileStatus]:
    """Check every cached file of a data set against its checksum; changes nothing."""
    return _verify_directory(get_spec(name), dataset_dir(name, root))


def default_sources(name: str, from_dir: str | Path | None = None) -> list[Source]:
    """Sources tried after the cache, in order: a user's folder, mirrors, then local packages.

    Raises:
        DataFolderError: `from_dir` (or $DIGITLAB_DATA_FROM) does not exist or is not a folder.
    """
    spec = get_spec(name)
    sources: list[Source] = []
    if from_dir or os.environ.get("DIGITLAB_DATA_FROM"):
        sources.append(FolderSource(_user_source_folder(from_dir), given_by_user=True))
    sources.extend(HttpMirrorSource(url) for url in spec.mirrors)
    if spec.name == "mnist":
        sources.append(KerasNpzSource(KERAS_MNIST_NPZ))
        sources.append(PackageIndexSource())
    if spec.debian_folder:
        sources.append(FolderSource(spec.debian_folder, f"Debian package {spec.debian_package} ({spec.debian_folder})"))
    return sources


def fetch(name: str, root: str | Path | None = None, from_dir: str | Path | None = None,
          sources: Sequence[Source] | None = None, progress: ProgressCallback | None = None,
          notice: NoticeCallback | None = None) -> FetchResult:
    """Make sure the four verified IDX files of a data set are in the cache.

    Checks the cache first (a corrupt file is removed and fetched again), then tries each source
    in turn. Files are written to a scratch folder beside the cache, verified, then renamed into
    place, so an interrupted fetch leaves the cache valid or empty, never half-written.

    Args:
        sources: the sources to try, in order; default `default_sources(name, from_dir)`, built
            only when a file is missing.
        progress: called while files are copied, downloaded or converted.
        notice: called with one line for each corrupt cached file that was removed to be fetched
            again; without it a `CacheRepairedWarning` is issued instead.

    Raises:
        DataFolderError: the cache root or the `from_dir` folder is not a folder, or files are still
            missing after the `from_dir` folder was tried (the user's input; the message lists why).
        StorageError: the cache cannot be written: a read-only file system, a full disk, no permission.
        DataUnavailableError: no source gave verified files; the message lists every attempt.
    """
    spec = get_spec(name)
    directory = dataset_dir(name, root)
    origins: dict[str, str] = {}
    repaired: list[str] = []
    if directory.is_dir():
        _remove_stale_scratch(directory)
        origins, repaired = _check_cache(spec, directory, notice)
    missing = [file_name for file_name in spec.checksums if file_name not in origins]
    if not missing:
        return FetchResult(directory, origins, tuple(repaired), ())

    sources = default_sources(name, from_dir) if sources is None else sources  # checks the user's folder
    created = _make_folders(directory)
    failures: list[tuple[str, str]] = []
    try:
        for source in sources:
            origins.update(_fetch_from(source, spec, directory, missing, progress, failures))
            missing = [file_name for file_name in spec.checksums if file_name not in origins]
            if not missing:
                break
        if missing:
            message = _unavailable_message(spec, directory, missing, failures)
            if any(getattr(source, "given_by_user", False) for source in sources):
                raise DataFolderError(message)  # the user's folder lacks or spoils these files: theirs to fix
            raise DataUnavailableError(message)
    except BaseException:
        _remove_empty_folders(created)  # a failed first fetch leaves no empty cache folders behind
        raise
    return FetchResult(directory, origins, tuple(repaired), tuple(failures))


def load(name: str = "mnist", root: str | Path | None = None, from_dir: str | Path | None = None,
         progress: ProgressCallback | None = None, notice: NoticeCallback | None = None,
         ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load a data set like `keras.datasets.mnist.load_data()`, fetching and verifying it first.

    `progress` and `notice` are passed to `fetch` (a repaired cached file is told through `notice`).

    Returns:
        ((train_images, train_labels), (test_images, test_labels)): uint8 arrays of shapes
        (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).
    """
    directory = fetch(name, root=root, from_dir=from_dir, progress=progress, notice=notice).directory
    return load_directory(directory)


def load_directory(directory: str | Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read the four IDX files of a folder (no checksums) and check that they fit together."""
    directory = Path(directory)
    arrays = {file_name: read_idx(directory / file_name) for file_name in FILE_NAMES}
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images, labels = arrays[images_name], arrays[labels_name]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IdxFormatError(f"{directory / images_name}: expected uint8 images (N, rows, columns), "
                                 f"got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise IdxFormatError(f"{directory / labels_name}: expected uint8 labels (N,), "
                                 f"got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise IdxFormatError(f"{directory}: {len(images)} images in {images_name} but {len(labels)} labels "
                                 f"in {labels_name}")
    return ((arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]), (arrays[TEST_IMAGES], arrays[TEST_LABELS]))


def describe(name: str, root: str | Path | None = None) -> dict:
    """Shapes, dtypes, value ranges and class counts of a cached data set (as the tutorial prints)."""
    spec = get_spec(name)
    directory = dataset_dir(name, root)
    if any(status.state != "ok" for status in _verify_directory(spec, directory)):
        raise DataUnavailableError(f"{name} is not fully cached and verified in {directory}; "
                                   f"run `digitlab data fetch {name}`")
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
    for stale in directory.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _make_folders(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; return the folders created, deepest first."""
    created = []
    for folder in (directory, *directory.parents):
        if folder.exists():
            break
        created.append(folder)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty_folders(created)
        raise cache_write_error(err, directory, "create the data cache folder") from err
    return created


def _remove_empty_folders(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only when empty: files already verified into the cache stay
        except OSError:
            return


def _verify_directory(spec: DatasetSpec, directory: Path) -> list[FileStatus]:
    statuses = []
    for file_name, expected in spec.checksums.items():
        path = directory / file_name
        try:
            actual = sha256_file(path) if path.is_file() else None
        except OSError as err:
            raise StorageError(f"cannot read the cached file {path}: {os_error_reason(err)}; check its permissions, "
                               "or set DIGITLAB_DATA to another folder, then run the command again") from err
        state = "missing" if actual is None else ("ok" if actual == expected else "corrupt")
        statuses.append(FileStatus(file_name, state, expected, actual))
    return statuses


def _check_cache(spec: DatasetSpec, directory: Path,
                 notice: NoticeCallback | None) -> tuple[dict[str, str], list[str]]:
    """Verified cached files (name -> "cache"), and the corrupt ones removed to be fetched again."""
    origins: dict[str, str] = {}
    repaired = []
    for status in _verify_directory(spec, directory):
        if status.state == "ok":
            origins[status.name] = "cache"
        elif status.state == "corrupt":
            path = directory / status.name
            try:
                path.unlink()
            except OSError as err:
                raise cache_write_error(err, path, "remove the corrupt cached file") from err
            repaired.append(status.name)
            message = (f"cached {status.name} failed its checksum (SHA-256 {status.actual_sha256}, expected "
                       f"{status.expected_sha256}); it was removed and is fetched again")
            if notice is None:
                warnings.warn(message, CacheRepairedWarning, stacklevel=3)
            else:
                notice(message)
    return origins, repaired


def _fetch_from(source: Source, spec: DatasetSpec, directory: Path, missing: list[str],
                progress: ProgressCallback | None, failures: list[tuple[str, str]]) -> dict[str, str]:
    """Move the verified files `source` gives into the cache; note in `failures` what went wrong.

    Returns:
        file name -> the source's description, for each file now in the cache.
    """
    try:
        scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=directory))
    except OSError as err:
        raise cache_write_error(err, directory, "create a scratch folder in") from err
    try:
        try:
            provided = source.provide(missing, scratch, progress)
        except SourceFailed as err:
            failures.append((source.description, str(err)))
            return {}
        except OSError as err:  # a source's own failure it did not name; a full disk is the machine's
            if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise cache_write_error(err, err.filename or scratch) from err
            failures.append((source.description, f"{os_error_reason(err)} ({err})"))
            return {}
        origins = {}
        for file_name, path in provided.items():
            actual = sha256_file(path)
            if actual != spec.checksums[file_name]:
                failures.append((source.description, _mismatch_reason(path, actual, spec.checksums[file_name])))
                continue
            try:
                storage.replace_atomic(path, directory / file_name)  # synced, then renamed
            except OSError as err:
                raise cache_write_error(err, directory / file_name) from err
            origins[file_name] = source.description
        return origins
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _describe_root(root: str | Path | None) -> str:
    """Where the cache root came from, for messages: the argument, a variable, or the default."""
    if root:
        return f"the data folder {root}"
    for variable in ("DIGITLAB_DATA", "XDG_CACHE_HOME"):
        if os.environ.get(variable):
            return f"${variable} ({os.environ[variable]})"
    return f"the default data cache {data_root()}"


def _check_can_be_folder(directory: Path, described: str) -> None:
    # The nearest part of the path that exists must be a folder, or the cache can never be made there.
    for folder in (directory, *directory.parents):
        try:
            if folder.is_dir():
                return
            blocked = folder.exists() or folder.is_symlink()
            kind = "a file, not a folder" if folder.is_file() else "not a folder"
        except OSError:
            return  # cannot even look (permissions): creating the folder will say why
        if blocked:
            raise DataFolderError(f"{described} cannot hold the data cache: {folder} is {kind}; set DIGITLAB_DATA "
                                  "to a folder (it is created if missing), then run the command again")


def _user_source_folder(from_dir: str | Path | None) -> Path:
    """The folder the user named to fetch from (`from_dir`, else $DIGITLAB_DATA_FROM), checked."""
    given = "the --from folder" if from_dir else "$DIGITLAB_DATA_FROM"
    folder = Path(from_dir or os.environ["DIGITLAB_DATA_FROM"]).expanduser()
    if not folder.is_dir():
        kind = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataFolderError(f"{given} {folder} {kind}; give the folder that holds the four IDX files "
                              "(raw or .gz), then run the command again")
    return folder


def _unavailable_message(spec: DatasetSpec, directory: Path, missing: list[str],
                         failures: list[tuple[str, str]]) -> str:
    lines = [f"could not get verified {spec.name} files ({', '.join(missing)}). Sources tried:"]
    lines += [f"  - {source}: {reason}" for source, reason in failures] or ["  - (none)"]
    lines.append("To place the files by hand: copy the four IDX files (raw or .gz) into a folder and run "
                 f"`digitlab data fetch {spec.name} --from FOLDER`, or put them raw into {directory}.")
    if spec.debian_package:
        lines.append(f"On Debian or Ubuntu: `apt-get install {spec.debian_package}`, then fetch again.")
    return "\n".join(lines)
