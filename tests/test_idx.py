import numpy as np
import pytest

from digitlab.data.idx import encode_idx, parse_idx, read_idx, write_idx
from digitlab.errors import IdxFormatError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_keeps_values_shape_and_dtype(tmp_path, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array)
    loaded = read_idx(tmp_path / "a")
    assert loaded.shape == (2, 3, 4)
    assert loaded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded, array)


def test_header_matches_the_mnist_layout():
    data = encode_idx(np.zeros((60000, 28, 28), dtype=np.uint8))
    assert data[:4] == bytes([0, 0, 0x08, 3])  # magic 2051 of train-images-idx3-ubyte
    assert int.from_bytes(data[4:8], "big") == 60000
    assert len(data) == 16 + 60000 * 784


def test_uint8_is_read_without_copying():
    data = encode_idx(np.ones((3, 2), dtype=np.uint8))
    array = parse_idx(data)
    assert array.base is not None and not array.flags.owndata


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x05", "magic"),
        (b"\x00\x00\x42\x01" + b"\x00\x00\x00\x01" + b"\x05", "type code"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x01", "truncated IDX header"),
        (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x05" + b"\x01\x02", "truncated"),
        (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x01\x02", "unexpected bytes"),
    ],
)
def test_malformed_files_raise_a_typed_error_naming_the_file(data, message):
    with pytest.raises(IdxFormatError, match=message) as caught:
        parse_idx(data, name="some-file")
    assert "some-file" in str(caught.value)


def test_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(IdxFormatError, match="cannot read"):
        read_idx(tmp_path / "nope")


def test_unsupported_dtype_is_refused():
    with pytest.raises(ValueError, match="cannot store"):
        encode_idx(np.zeros(3, dtype=np.complex64))
