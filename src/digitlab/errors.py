"""Typed errors. Each message says what went wrong and what to do next."""


class DigitlabError(Exception):
    """Base class of every error digitlab raises on purpose."""


class ConfigError(DigitlabError, ValueError):
    """A setting is out of range or of the wrong kind."""


class UnknownDatasetError(ConfigError):
    """The data set name is not one digitlab knows."""


class IdxFormatError(DigitlabError):
    """An IDX file is malformed: bad magic number, dimensions or size."""


class ChecksumError(DigitlabError):
    """A file's SHA-256 differs from the one in the data set's table."""


class DataUnavailableError(DigitlabError):
    """No source could provide verified files for a data set."""


class RunFolderError(DigitlabError):
    """A run folder is missing, incomplete, or already holds a run."""


class BackendError(DigitlabError):
    """The requested Keras backend cannot be used in this process."""


class ImageError(DigitlabError, ValueError):
    """An image cannot be classified: not an image, truncated, too large, or blank (no ink)."""


class ModelError(DigitlabError):
    """A model file is not a loadable digitlab/Keras model, or its input or output does not fit."""
