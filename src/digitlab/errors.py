"""Typed errors. Each message says what went wrong and what to do next.

Each class says whose problem it is through `exit_status`, which the command line exits with:
2 for the user's input (arguments, settings, files or folders they gave: fix it and run again),
1 for a failure the user did not cause (the network, a source that is down, a download whose
checksum does not match, a full disk). Every error digitlab raises is a class of this module.
"""

# The command line's exit statuses.
EXIT_FAILED = 1  # something outside the user's input failed (network, source, disk) or a run diverged
EXIT_BAD_INPUT = 2  # bad arguments, settings or files: fix the input and run again


class DigitlabError(Exception):
    """Base class of every error digitlab raises on purpose."""

    # What `digitlab` exits with when this error ends a command (see the module's docstring).
    exit_status = EXIT_BAD_INPUT


class FailureError(DigitlabError):
    """Something the user did not cause failed: the network, a source, the disk. Exit status 1."""

    exit_status = EXIT_FAILED


class ConfigError(DigitlabError, ValueError):
    """A setting is out of range or of the wrong kind."""


class UnknownDatasetError(ConfigError):
    """The data set name is not one digitlab knows."""


class IdxFormatError(DigitlabError):
    """An IDX file is malformed: bad magic number, dimensions or size."""


class ChecksumError(FailureError):
    """A file's SHA-256 differs from the one in the data set's table."""


class DataUnavailableError(FailureError):
    """No source could provide verified files for a data set."""


class RunFolderError(DigitlabError):
    """A run folder is missing, incomplete, or already holds a run."""


class BackendError(DigitlabError):
    """The requested Keras backend cannot be used in this process."""


class ImageError(DigitlabError, ValueError):
    """An image cannot be classified: not an image, truncated, too large, or blank (no ink)."""


class ModelError(DigitlabError):
    """A model file is not a loadable digitlab/Keras model, or its input or output does not fit."""


class ModelFailureError(ModelError, FailureError):
    """A model failed while it ran: the runtime raised, or it gave outputs of the wrong shape or that are not
    numbers (NaN, infinity). The model file is broken, not the images it was given. Exit status 1."""


class DataFolderError(ConfigError):
    """A data folder the user named ($DIGITLAB_DATA, --from) is a file, lies under one, is missing, or lacks files."""


class StorageError(FailureError):
    """A file or folder could not be written or read: a full disk, a read-only file system, access refused."""


class OutputFolderError(DigitlabError):
    """An output folder the user named cannot be used: a file, not writable, or its files would replace
    inputs or (without --overwrite) existing files. Exit status 2: choose another folder."""


class ExportError(FailureError):
    """Keras could not export a model, or ONNX Runtime does not run the export as Keras does. Exit status 1."""


class BundledModelError(FailureError):
    """The reader shipped in the package is missing, or a file of it differs from its manifest. Exit status 1."""


class ExportTargetError(DigitlabError):
    """An export cannot be written where asked (the file exists, a bad name) or the ONNX tools are missing."""


class SweepFolderBusyError(RunFolderError):
    """Another `digitlab sweep` is running on the same sweep folder (exit status 2)."""


class ClusterError(DigitlabError):
    """The Ray cluster cannot run the sweep: unreachable, a node with other versions, a trial lost (exit 2)."""


# Every error class above (digitlab re-exports them all).
__all__ = sorted(name for name, value in dict(globals()).items()
                 if isinstance(value, type) and issubclass(value, Exception))
