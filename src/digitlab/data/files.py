"""Local file plumbing of the data cache: the one SHA-256 of a file, and why a write to disk failed."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from digitlab.errors import StorageError

CHUNK_BYTES = 1 << 20
# Name prefix of the scratch folders a fetch writes into, inside the data set's cache folder.
SCRATCH_PREFIX = ".partial-"

# What to say about the OS errors a write meets on a machine that is not the user's fault to fix
# by changing arguments: the disk, the file system, the permissions.
_WRITE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def os_error_reason(err: OSError) -> str:
    """A few words for why an OS call failed: 'the disk is full', 'permission denied', ..."""
    return _WRITE_REASONS.get(err.errno, err.strerror or str(err))


def cache_write_error(err: OSError, path: str | os.PathLike, action: str = "write") -> StorageError:
    """The one-line error for a failed write into the data cache (raise it `from err`).

    Args:
        err: the OSError the write raised.
        path: the file or folder that could not be written.
        action: what was being done to `path`: "write", "create", "remove", ...
    """
    reason = os_error_reason(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "Free some space, or set DIGITLAB_DATA to a folder on a disk with room, then run the command again."
    else:
        advice = ("Set DIGITLAB_DATA to a folder you can write to (e.g. DIGITLAB_DATA=~/digitlab-data), "
                  "then run the command again.")
    path = Path(path)
    # A file in a scratch folder is named by where it was going: the scratch folder is gone already.
    scratch = next((folder for folder in path.parents if folder.name.startswith(SCRATCH_PREFIX)), None)
    where = f"{path.name} into {scratch.parent}" if scratch else str(path)
    return StorageError(f"cannot {action} {where}: {reason}; nothing was added to the data cache. {advice}")
