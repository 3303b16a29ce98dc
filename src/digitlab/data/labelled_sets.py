"""A folder of pictures with their truth beside them (labels.jsonl), written whole or not at all.

The measuring sets (`data/lines.py`'s photos of lines, `data/scenes.py`'s photos of sheets on a table)
are written the same way: every picture and labels.jsonl into a scratch folder beside the target, then
one rename, so the folder holds the whole set or nothing, and a folder that holds files is never written
over.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from digitlab.errors import DataFolderError, StorageError

# The truth, one JSON object per picture in order, beside the pictures.
LABELS_FILE = "labels.jsonl"


def check_empty_folder(folder: Path, what: str) -> None:
    """Refuse a `folder` that is a file or holds files: a `what` ("line set") is never written over them."""
    if folder.exists() and not folder.is_dir():
        raise DataFolderError(f"{folder} is a file, not a folder; name a new or empty folder for the {what}")
    if folder.is_dir() and any(folder.iterdir()):
        raise DataFolderError(f"{folder} is not empty; name a new or empty folder for the {what} "
                              f"(a {what} is never written over other files)")


def write_labelled_set(folder: str | os.PathLike, items: Iterable[tuple[str, Callable[[Path], None], dict[str, Any]]],
                       what: str) -> Path:
    """Write each item's picture and its record into `folder`, all or nothing.

    Args:
        folder: a new or empty folder.
        items: (file name, a function writing the picture to the path it is given, the record whose
            "path" is the file name) per picture, in order.
        what: what the set is called in errors ("line set", "scene set").

    Returns:
        The path of labels.jsonl.

    Raises:
        DataFolderError: `folder` is a file or a folder that is not empty (nothing is written over).
        StorageError: the disk refused a write (full, read-only, no permission); nothing was written.
    """
    folder = Path(folder)
    check_empty_folder(folder, what)
    scratch = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch.mkdir()
        records = []
        for name, write_picture, record in items:
            write_picture(scratch / name)
            records.append(json.dumps({"path": name, **record}))
        (scratch / LABELS_FILE).write_text("".join(record + "\n" for record in records), encoding="utf-8")
        os.replace(scratch, folder)  # an empty folder is replaced; a non-empty one makes this fail
    except OSError as err:
        shutil.rmtree(scratch, ignore_errors=True)
        check_empty_folder(folder, what)  # filled by someone else meanwhile: say so rather than "cannot write"
        raise StorageError(f"cannot write the {what} to {folder}: {err.strerror or err}; nothing was written. "
                           "Name a folder on a disk with room that you can write to, then run again.") from err
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folder / LABELS_FILE
