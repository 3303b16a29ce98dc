"""Local file plumbing of the data cache: the one SHA-256 of a file, and why a write into the cache failed.

Why an OS call failed, and what to do about it, is worded once in `digitlab.storage`.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from digitlab.errors import StorageError
from digitlab.storage import os_error_reason

CHUNK_BYTES = 1 << 20
# Name prefix of the scratch folders a fetch writes into, inside the data set's cache folder.
SCRATCH_PREFIX = ".partial-"
# Importers of this module use it: why an OS call failed, in a few words.
__all__ = ["CHUNK_BYTES", "SCRATCH_PREFIX", "cache_write_error", "os_error_reason", "sha256_file"]
# What to do when a write into the cache failed, by errno; any other error: choose another cache folder.
_CACHE_ADVICE = {
    errno.ENOSPC: "Free some space, or set DIGITLAB_DATA to a folder on a disk with room, then run the command again.",
    errno.EDQUOT: "Free some space, or set DIGITLAB_DATA to a folder on a disk with room, then run the command again.",
    errno.EROFS: "The cache is on a read-only file system: set DIGITLAB_DATA to a folder on a writable disk "
                 "(e.g. DIGITLAB_DATA=~/digitlab-data), then run the command again.",
    errno.ENOENT: "The cache folder was removed while digitlab ran, or its file system takes no new files: "
                  "run the command again, or set DIGITLAB_DATA to another folder.",
}
_CACHE_OTHER_ADVICE = ("Set DIGITLAB_DATA to a folder you can write to (e.g. DIGITLAB_DATA=~/digitlab-data), "
                       "then run the command again.")


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_write_error(err: OSError, path: str | os.PathLike, action: str = "write") -> StorageError:
    """The one-line error for a failed write into the data cache (raise it `from err`).

    Args:
        err: the OSError the write raised.
        path: the file or folder that could not be written.
        action: what was being done to `path`: "write", "create", "remove", ...
    """
    reason = os_error_reason(err)
    advice = _CACHE_ADVICE.get(err.errno, _CACHE_OTHER_ADVICE)
    path = Path(path)
    # A file in a scratch folder is named by where it was going: the scratch folder is gone already.
    scratch = next((folder for folder in path.parents if folder.name.startswith(SCRATCH_PREFIX)), None)
    where = f"{path.name} into {scratch.parent}" if scratch else str(path)
    return StorageError(f"cannot {action} {where}: {reason}; nothing was added to the data cache. {advice}")
