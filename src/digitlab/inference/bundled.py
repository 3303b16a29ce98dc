"""The reader shipped inside the package: two ONNX files and a manifest, each file checked before use.

`digitlab predict`, `read` and `serve` fall back on it when no model is named and no run is finished,
so a plain `pip install digitlab` reads digits at once. The files lie in the package's `bundled/`
folder (package data, found with `importlib.resources`), written by `scripts/build_bundled_reader.py`,
never downloaded at run time. The manifest records how they were made (recipe, every setting, seed,
digitlab version, training data checksums, training time and machine) and what they score; each file's
SHA-256 is checked against it when the reader is loaded, so a corrupt or altered file is refused.

    bundle = verified_bundle()            # BundledModelError when a file is missing or altered
    bundle.classifier_path, bundle.line_model_path, bundle.manifest["scores"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
from pathlib import Path
from typing import Any

from digitlab.errors import BundledModelError

# The package-data folder of the bundled reader, and its manifest's name there.
BUNDLED_FOLDER = "bundled"
MANIFEST_FILE = "manifest.json"
# The manifest's layout; a reader of another format is refused rather than misread.
MANIFEST_FORMAT = 1
# The kinds of file a bundled reader has, as the manifest names them.
CLASSIFIER_KIND = "classifier"
LINE_MODEL_KIND = "line model"
# A manifest larger than this is refused unread (the real one is about 9 KB).
MAX_MANIFEST_BYTES = 1_000_000
# What to do when a bundled file is missing or altered.
REINSTALL_HINT = "reinstall digitlab (pip install --force-reinstall digitlab), or name a model with --model"


@dataclasses.dataclass(frozen=True)
class BundledReader:
    """The bundled reader's files, each verified against the manifest."""

    # The ONNX digit classifier, with its "not a digit" class.
    classifier_path: Path
    # The ONNX line model that reads whole numbers.
    line_model_path: Path
    # The manifest as written by the build (see the module's docstring).
    manifest: dict[str, Any]

    @property
    def description(self) -> str:
        """One line naming the reader, as `predict` prints it and /api/model answers: 'bundled reader-large ...'."""
        manifest = self.manifest
        return (f"bundled {manifest.get('name', 'reader')} (digitlab {manifest.get('digitlab_version', '?')}, "
                f"seed {manifest.get('seed', '?')})")


def bundled_folder() -> Path:
    """Where the package keeps the bundled reader (it may be missing in a source tree that never built one)."""
    return Path(str(importlib.resources.files("digitlab").joinpath(BUNDLED_FOLDER)))


def is_available() -> bool:
    """Whether this installation has a bundled reader's manifest (its files are checked when loaded)."""
    return (bundled_folder() / MANIFEST_FILE).is_file()


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The bundled reader's manifest, checked for the fields loading needs.

    Raises:
        BundledModelError: no manifest, not JSON, another format, or no classifier and line model listed.
    """
    path = (folder or bundled_folder()) / MANIFEST_FILE
    if path.exists() and (not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES):
        raise BundledModelError(f"the bundled reader's manifest {path} is not a regular file of at most "
                                f"{MAX_MANIFEST_BYTES:,} bytes; {REINSTALL_HINT}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BundledModelError(f"this installation has no bundled reader ({path} is missing); "
                                f"{REINSTALL_HINT}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise BundledModelError(f"the bundled reader's manifest {path} cannot be read ({err}); {REINSTALL_HINT}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise BundledModelError(f"the bundled reader's manifest {path} is not of format {MANIFEST_FORMAT}; "
                                f"{REINSTALL_HINT}")
    entries = manifest.get("files")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise BundledModelError(f"the bundled reader's manifest {path}: its \"files\" must be a list of file records "
                                f"(objects with name, kind, bytes, sha256); {REINSTALL_HINT}")
    kinds = [entry.get("kind") for entry in entries]
    if sorted(map(str, kinds)) != sorted([CLASSIFIER_KIND, LINE_MODEL_KIND]):
        raise BundledModelError(f"the bundled reader's manifest {path} lists files of kinds {str(kinds)[:200]}, not "
                                f"one classifier and one line model; {REINSTALL_HINT}")
    for entry in entries:  # a copied folder's manifest is untrusted: only regular files beside it, of known size
        name, size = entry.get("name"), entry.get("bytes")
        bare = isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
            and "\x00" not in name
        if not bare or isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BundledModelError(f"the bundled reader's manifest {path} lists a file {str(name)[:80]!r} of "
                                    f"{str(size)[:20]} bytes: each must be a bare file name beside the manifest, "
                                    f"with its size in bytes; {REINSTALL_HINT}")
    return manifest


def verified_bundle(folder: Path | None = None) -> BundledReader:
    """The bundled reader, every file's size and SHA-256 checked against the manifest.

    Raises:
        BundledModelError: the manifest or a file is missing, or a file differs from the manifest.
    """
    folder = folder or bundled_folder()
    manifest = read_manifest(folder)
    paths = {}
    for entry in manifest["files"]:
        path = folder / entry["name"]  # a bare name (read_manifest)
        if path.is_symlink() or not path.is_file() or path.stat().st_size != entry["bytes"]:
            # Checked before reading: a FIFO or a device (/dev/zero) would never end, a huge file fill memory.
            found = "missing" if not path.exists() else "not a regular file" if not path.is_file() or \
                path.is_symlink() else f"{path.stat().st_size:,} bytes"
            raise BundledModelError(f"the bundled {entry['kind']} {path} cannot be read as the manifest's file of "
                                    f"{entry['bytes']:,} bytes: it is {found}; {REINSTALL_HINT}")
        try:
            contents = path.read_bytes()
        except OSError as err:
            raise BundledModelError(f"the bundled {entry['kind']} {path} cannot be read ({err.strerror or err}); "
                                    f"{REINSTALL_HINT}") from err
        found = hashlib.sha256(contents).hexdigest()
        if found != entry.get("sha256") or len(contents) != entry.get("bytes"):
            raise BundledModelError(f"the bundled {entry['kind']} {path} is corrupt or altered: SHA-256 {found[:16]}... "
                                    f"({len(contents):,} bytes), the manifest says {str(entry.get('sha256'))[:16]}... "
                                    f"({entry.get('bytes')} bytes); {REINSTALL_HINT}")
        paths[entry["kind"]] = path
    return BundledReader(paths[CLASSIFIER_KIND], paths[LINE_MODEL_KIND], manifest)


def file_entry(path: Path, kind: str) -> dict[str, Any]:
    """A manifest's record of one bundled file: its name, kind, size and SHA-256."""
    contents = Path(path).read_bytes()
    return {"name": Path(path).name, "kind": kind, "bytes": len(contents), "sha256": hashlib.sha256(contents).hexdigest()}
