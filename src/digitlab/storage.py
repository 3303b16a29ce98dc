"""Every file digitlab writes, written safely: the one atomic writer, output folders checked before any
work, and the one wording of why a write failed.

A file is written under a temporary name beside its own (same folder, so the rename cannot cross
file systems), flushed and synced to disk, then renamed over its name: a reader, a full disk or a
crash never leaves half a file under the real name, and the file it replaces survives any failure.
The temporary file is removed when the write fails.

    with atomic_path(run_dir / "model.keras") as partial:  # any library that writes to a path
        model.save(partial)
    write_text_atomic(run_dir / "report.html", page)

`OutputFolder` is the folder `predict --save-preprocessed` and `read --save-annotated` write one
image per input into: it is checked (created, writable, no input and, without `overwrite`, no
existing file among its targets) before any work starts, and never replaces an input image.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from digitlab.errors import OutputFolderError, StorageError

# Mode of a new file (mkstemp makes them private; digitlab's outputs are ordinary files). A file
# that is replaced keeps its own mode.
NEW_FILE_MODE = 0o644
# What a FIFO, device or socket named as an input file is told.
NOT_REGULAR = "not a regular file (a FIFO, device or socket)"
# How many file names an error about existing files names before it says how many more there are.
NAMED_IN_ERRORS = 5

# The few words for an OS error, and what to do about it, per errno ({folder}: the folder written into).
_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "the folder does not exist (removed while digitlab ran?)",
}
_ADVICE = {
    errno.ENOSPC: "free some space or choose a folder on another disk, then run the command again",
    errno.EDQUOT: "free some space or choose a folder on another disk, then run the command again",
    errno.EROFS: "{folder} cannot be written on this file system: choose another folder",
    errno.EACCES: "you may not write into {folder}: change its permissions or choose another folder",
    errno.EPERM: "you may not write into {folder}: change its permissions or choose another folder",
    errno.ENOENT: "{folder} was removed, or takes no new files (such as /proc): create it again or choose "
                  "another folder",
}
_OTHER_ADVICE = "choose another folder, then run the command again"


def os_error_reason(err: OSError) -> str:
    """A few words for why an OS call failed: 'the disk is full', 'permission denied', ... (else the OS's words)."""
    return _REASONS.get(err.errno, err.strerror or str(err))


def write_advice(err: OSError, folder: str | os.PathLike) -> str:
    """What to do about a failed write into `folder`, by errno: free space, another folder, permissions."""
    return _ADVICE.get(err.errno, _OTHER_ADVICE).format(folder=folder)


def write_error(err: OSError, path: str | os.PathLike, action: str = "write") -> StorageError:
    """The one-line error for a failed write of `path` (raise it `from err`): the OS's words and advice.

    Args:
        err: the OSError the write raised.
        path: the file that could not be written.
        action: what was being done to `path`: "write", "create", "replace", ...
    """
    path = Path(path)
    return StorageError(f"cannot {action} {path}: {err.strerror or os_error_reason(err)}; "
                        f"{write_advice(err, path.parent)}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Give a temporary path beside `path` to write the whole file to; then sync it and rename it to `path`.

    The temporary name keeps `path`'s suffix (Keras wants ".keras", Pillow and matplotlib guess formats
    from it). When the block raises, or syncing or renaming fails, the temporary file is removed and
    the file at `path` (if any) is left as it was.

    Args:
        path: the file to write.
        overwrite: replace a file already at `path`; if False, an existing file is never replaced
            (checked by the rename itself, not before it: `FileExistsError`).

    Raises:
        StorageError: the disk or the folder refused a write (full, read-only, no permission, removed).
        FileExistsError: `overwrite` is False and `path` exists.
    """
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent)
        os.close(handle)
    except OSError as err:
        raise write_error(err, path) from err
    temporary = Path(name)
    try:
        yield temporary
        _sync_file(temporary)
        _publish(temporary, path, overwrite)
    except BaseException as err:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(err, OSError) and not isinstance(err, FileExistsError):
            raise write_error(err, path) from err
        raise
    with contextlib.suppress(OSError):  # the rename itself on disk: a failure here loses nothing written
        _sync_folder(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    """Write `data` to `path` atomically (see `atomic_path`); nothing is left behind when it fails.

    Raises:
        StorageError: the disk is full, or the folder cannot be written.
    """
    with atomic_path(path, overwrite) as temporary, os.fdopen(os.open(temporary, os.O_WRONLY), "wb") as stream:
        stream.write(data)


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Write UTF-8 text to `path` atomically (see `write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"), overwrite)


def replace_atomic(written: str | os.PathLike, path: str | os.PathLike) -> None:
    """Sync a file written elsewhere in `path`'s folder (a verified download), then rename it to `path`.

    Raises:
        OSError: syncing or renaming failed (the caller words it for its own folder).
    """
    _sync_file(Path(written))
    os.replace(written, path)
    with contextlib.suppress(OSError):
        _sync_folder(Path(path).parent)


def open_regular_file(path: str | os.PathLike):
    """Open a file for reading (binary) only if it is a regular file, without waiting on a FIFO.

    The file is opened without blocking, then looked at through its descriptor (no check-then-open race):
    a FIFO would wait forever for a writer, a device may never end.

    Raises:
        OSError: it cannot be opened (missing, no permission, a folder), or is not a regular file
            (errno EINVAL, "not a regular file (a FIFO, device or socket)").
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _sync_file(path: Path) -> None:
    """Flush the file's data to the disk (a full disk may only say so here)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to the disk."""
    descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _publish(temporary: Path, path: Path, overwrite: bool) -> None:
    """Rename the synced temporary file to `path` (never over an existing file unless `overwrite`)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) if overwrite else NEW_FILE_MODE
    except OSError:
        mode = NEW_FILE_MODE
    os.chmod(temporary, mode)
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails with FileExistsError if anything is at `path`: no check-then-write race
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # A file system without hard links (FAT, some network shares): check, then rename.
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from err
        os.replace(temporary, path)
        return
    os.unlink(temporary)


def check_writable_folder(folder: str | os.PathLike, description: str = "the output folder") -> None:
    """Create `folder` if needed and try writing a file in it, before any work whose results go there.

    Args:
        description: what messages call the folder ("--save-annotated", "the run folder").

    Raises:
        OutputFolderError: it is a file, or cannot be created or written (with what to do, by errno).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{description} {folder} is a file, not a folder; name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".digitlab-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise OutputFolderError(f"{description} {folder} cannot be written: {err.strerror or err}; "
                                f"{write_advice(err, folder)}") from err


def unique_name(path: Path, taken: set[str], suffix: str = ".png") -> str:
    """'<stem>.png', or '<stem>-2.png' and so on when two inputs share a name."""
    name, counter = f"{path.stem}{suffix}", 1
    while name in taken:
        counter += 1
        name = f"{path.stem}-{counter}{suffix}"
    taken.add(name)
    return name


class OutputFolder:
    """A folder a command writes one file per input into, checked before any work starts.

    The target of input number `position` is `<its stem>.png` (`-2`, `-3`, ... for repeated stems).
    On creation the folder is created if needed and tried with a temporary file; every target is
    checked not to be an input image, and, without `overwrite`, not to exist. Each `write` is atomic
    and never replaces an input, nor (without `overwrite`) a file that appeared meanwhile.

    Raises:
        OutputFolderError: the folder is a file, cannot be created or written, or a target is an input
            or (without `overwrite`) exists. Exit status 2: choose another folder.
    """

    def __init__(self, folder: str | os.PathLike, inputs: Sequence[str | os.PathLike], overwrite: bool = False,
                 option: str = "the output folder", suffix: str = ".png") -> None:
        self.folder = Path(folder)
        self.overwrite = overwrite
        # How the command line names the folder in messages ("--save-annotated").
        self.option = option
        taken: set[str] = set()
        self.targets = [self.folder / unique_name(Path(item), taken, suffix) for item in inputs]
        self._inputs = {_identity(Path(item)) for item in inputs} - {None}
        check_writable_folder(self.folder, self.option)
        self._check_targets()

    def write(self, position: int, write: Callable[[Path], object]) -> Path:
        """Write input number `position`'s file with `write(temporary_path)`, atomically; return its path.

        Raises:
            StorageError: the disk or the folder refused the write (this file's error; try the next).
            OutputFolderError: the target is an input, or exists (without `overwrite`).
        """
        target = self.targets[position]
        if _identity(target) in self._inputs:
            raise OutputFolderError(f"{target} is one of the input images; it is not replaced")
        try:
            with atomic_path(target, overwrite=self.overwrite) as temporary:
                write(temporary)
        except FileExistsError as err:
            raise OutputFolderError(f"{target} appeared while digitlab ran; it is not replaced "
                                    "(pass --overwrite to replace files)") from err
        return target

    def _check_targets(self) -> None:
        replaced_inputs = [str(target) for target in self.targets if _identity(target) in self._inputs]
        if replaced_inputs:
            raise OutputFolderError(f"{self.option} {self.folder} would replace input images "
                                    f"({_listed(replaced_inputs)}); "
                                    "an input is never replaced: choose another folder")
        existing = [target for target in self.targets if os.path.lexists(target)]
        folders = [target for target in existing if target.is_dir()]
        if folders:
            raise OutputFolderError(f"{self.option} {self.folder} holds folders where images would go "
                                    f"({_listed([str(item) for item in folders])}); choose another folder")
        if existing and not self.overwrite:
            raise OutputFolderError(f"{self.option} {self.folder} already holds {len(existing)} of the files it "
                                    f"would write ({_listed([target.name for target in existing])}); choose "
                                    "another folder, or pass --overwrite to replace them")


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of an existing file, following links; None if there is none."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED_IN_ERRORS])
    return shown if len(names) <= NAMED_IN_ERRORS else f"{shown} and {len(names) - NAMED_IN_ERRORS:,} more"
