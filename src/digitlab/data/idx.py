"""Read and write IDX files, the format MNIST and Fashion-MNIST are published in.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the values in C order, big-endian.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from digitlab.errors import IdxFormatError

# IDX type code -> NumPy dtype (big-endian as the format requires).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_CODES = {dtype.newbyteorder(">"): code for code, dtype in IDX_DTYPES.items()}


def parse_idx(data: bytes | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array without copying the values.

    Args:
        data: the whole file's bytes.
        name: the file's name, used in error messages.
    """
    view = memoryview(data)
    if len(view) < 4:
        raise IdxFormatError(f"{name}: {len(view)} bytes is too short for an IDX header (need at least 4)")
    zero1, zero2, type_code, ndim = view[0], view[1], view[2], view[3]
    if zero1 != 0 or zero2 != 0:
        raise IdxFormatError(f"{name}: bad IDX magic number {bytes(view[:4]).hex()}: the first two bytes must be 0")
    if type_code not in IDX_DTYPES:
        raise IdxFormatError(f"{name}: unknown IDX type code 0x{type_code:02x}")
    if ndim == 0:
        raise IdxFormatError(f"{name}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(view) < header_size:
        raise IdxFormatError(f"{name}: truncated IDX header: {ndim} dimensions need {header_size} bytes, "
                             f"file has {len(view)}")
    shape = struct.unpack(f">{ndim}I", view[4:header_size])
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(view) - header_size
    if actual < expected:
        raise IdxFormatError(
            f"{name}: truncated: header declares shape {shape} ({expected} bytes of data), file has {actual}"
        )
    if actual > expected:
        raise IdxFormatError(f"{name}: {actual - expected} unexpected bytes after the {expected} declared by "
                             f"shape {shape}")
    values = np.frombuffer(view, dtype=dtype, offset=header_size).reshape(shape)
    # Native byte order for multi-byte types; uint8 (all of MNIST) stays a zero-copy view.
    return values if dtype.itemsize == 1 else values.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into a NumPy array (read-only for uint8 files)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise IdxFormatError(f"{path}: cannot read: {err.strerror or err}") from err
    return parse_idx(data, name=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes."""
    array = np.asarray(array)
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs an array of 1 to 255 dimensions, got {array.ndim}")
    big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big_endian not in _TYPE_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; "
                         "use one of uint8, int8, int16, int32, float32, float64")
    header = bytes([0, 0, _TYPE_CODES[big_endian], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=big_endian).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as an IDX file (not atomic: callers write to a temporary name and rename)."""
    Path(path).write_bytes(encode_idx(array))
