"""Choose the Keras backend before Keras is imported, and import Keras lazily.

Keras reads `KERAS_BACKEND` once, at import. digitlab defaults to JAX (the fastest backend on CPU
here), honours a `KERAS_BACKEND` the user set, and lets `--backend` override both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from types import ModuleType

from digitlab.errors import BackendError, ConfigError

BACKENDS = ("jax", "tensorflow", "torch")
DEFAULT_BACKEND = "jax"
# The package each backend needs, and the extra that installs it.
_BACKEND_PACKAGES = {"jax": ("jax", "digitlab[train]"), "tensorflow": ("tensorflow", "digitlab[tensorflow]"),
                     "torch": ("torch", "digitlab[torch]")}


def select_backend(requested: str | None = None) -> str:
    """Set the backend Keras will use: `requested`, else $KERAS_BACKEND, else JAX.

    Raises:
        ConfigError: unknown backend name.
        BackendError: its package is not installed, or Keras is already running another backend.
    """
    chosen = requested or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if chosen not in BACKENDS:
        origin = "--backend" if requested else "KERAS_BACKEND"
        raise ConfigError(f"unknown Keras backend {chosen!r} (from {origin}); choose one of: {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        keras_backend = getattr(sys.modules["keras"], "backend", None)
        # While Keras is still being imported (import_keras_in_background), the backend it is
        # loading is the KERAS_BACKEND it started with.
        active = keras_backend.backend() if keras_backend is not None else os.environ.get("KERAS_BACKEND")
        if active != chosen:
            raise BackendError(f"Keras is already running on {active} in this process; "
                               f"start a new process with KERAS_BACKEND={chosen} to use {chosen}")
        return active
    if importlib.util.find_spec("keras") is None:
        raise BackendError("training, evaluating and running model.keras need Keras, which is not installed: "
                           "pip install 'digitlab[train]' (an exported model.onnx runs without it)")
    package, extra = _BACKEND_PACKAGES[chosen]
    if importlib.util.find_spec(package) is None:
        raise BackendError(f"the {chosen} backend needs the package {package!r}, which is not installed; "
                           f"run `pip install '{extra}'` (or choose --backend jax)")
    os.environ["KERAS_BACKEND"] = chosen
    return chosen


def import_keras(requested: str | None = None) -> ModuleType:
    """Select the backend, then import and return `keras`."""
    select_backend(requested)
    import keras

    return keras


def import_keras_in_background(requested: str | None = None) -> threading.Thread:
    """Start importing Keras in a daemon thread (about a second), to overlap other start-up work.

    Join the returned thread before calling `import_keras`. Calls for the same backend share one
    thread, so a command line can start the import before it even loads the training code.
    """
    backend = select_backend(requested)
    with _BACKGROUND_LOCK:
        thread = _BACKGROUND_IMPORTS.get(backend)
        if thread is None:
            thread = threading.Thread(target=_import_quietly, args=(backend,), name="digitlab-import-keras",
                                      daemon=True)
            _BACKGROUND_IMPORTS[backend] = thread
            thread.start()
    return thread


_BACKGROUND_IMPORTS: dict[str, threading.Thread] = {}
_BACKGROUND_LOCK = threading.Lock()


def _import_quietly(backend: str) -> None:
    # A failure here is raised again, in context, when the main thread calls import_keras.
    with contextlib.suppress(Exception):
        import_keras(backend)


def enable_compilation_cache(directory: str | os.PathLike) -> bool:
    """Keep JAX's compiled programs on disk, so a second run of the same recipe skips most compiling.

    JAX keys each entry by the program, the JAX version, the flags and the device, so a stale
    entry is never used. Set DIGITLAB_COMPILATION_CACHE=0 to turn it off. Returns whether it is on.
    """
    if os.environ.get("DIGITLAB_COMPILATION_CACHE", "1") == "0":
        return False
    import jax

    if jax.config.jax_compilation_cache_dir is None:  # respect a cache the user configured
        jax.config.update("jax_compilation_cache_dir", str(directory))
        # Cache even quick compiles: on 2 cores the tutorial's epoch compiles in about 1 s.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return True


def versions(backend: str) -> dict[str, str]:
    """Versions of Python and of the packages that decide a run's numbers on `backend`."""
    from importlib.metadata import PackageNotFoundError, version

    backend_packages = {"jax": ("jax", "jaxlib"), "tensorflow": ("tensorflow",), "torch": ("torch",)}
    found = {"python": sys.version.split()[0]}
    for package in ("digitlab", "keras", "numpy", *backend_packages.get(backend, ())):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def available_cores() -> int:
    """CPU cores this process may run on (its affinity on Linux): how many workers make sense."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
