"""digitlab: the classic first Keras network on MNIST, as software you can trust.

Heavy modules (Keras, JAX) are imported only by the functions that need them, so importing
`digitlab` and running `digitlab --help` stay fast.
"""

from digitlab.config import TrainingConfig
from digitlab.errors import (
    BackendError,
    BundledModelError,
    ChecksumError,
    ClusterError,
    ConfigError,
    DataFolderError,
    DataUnavailableError,
    DigitlabError,
    ExportError,
    ExportTargetError,
    FailureError,
    IdxFormatError,
    ImageError,
    ModelError,
    ModelFailureError,
    OutputFolderError,
    RunFolderError,
    StorageError,
    SweepFolderBusyError,
    UnknownDatasetError,
)

__version__ = "0.2.0"

# Every error type (tests/test_layout.py checks that none is missing), the config, and the classifier.
__all__ = [
    "BackendError",
    "BundledModelError",
    "ChecksumError",
    "ClusterError",
    "ConfigError",
    "DataFolderError",
    "DataUnavailableError",
    "DigitlabError",
    "ExportError",
    "ExportTargetError",
    "FailureError",
    "IdxFormatError",
    "ImageError",
    "ModelError",
    "ModelFailureError",
    "OutputFolderError",
    "RunFolderError",
    "StorageError",
    "SweepFolderBusyError",
    "UnknownDatasetError",
    "TrainingConfig",
    "__version__",
    "load_classifier",
]


def __getattr__(name: str):
    # `digitlab.load_classifier` without importing Keras when `digitlab` is imported (PEP 562).
    if name == "load_classifier":
        from digitlab.inference.loading import load_classifier

        return load_classifier
    raise AttributeError(f"module 'digitlab' has no attribute {name!r}")
