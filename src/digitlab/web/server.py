"""Run the web app (`digitlab.web.app`) on uvicorn: `serve()` for the CLI, `running()` for tests and scripts.

    serve("runs/<run>", port=8000)                 # blocks until Ctrl-C
    with running(classifier) as address: ...      # a server in a background thread, on a free port

Settings are passed explicitly everywhere, with one exception: worker processes that uvicorn itself
starts (`serve(workers=N)` where the kernel cannot balance connections, i.e. off Linux) are built from
an import string, so they read their `WorkerOptions` from the one environment variable
`DIGITLAB_SERVE_OPTIONS`, set by `serve()` just before it starts them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from digitlab.errors import ConfigError, DigitlabError

DEFAULT_HOST = "127.0.0.1"  # only this machine, unless asked otherwise
DEFAULT_PORT = 8000
# The only setting read from the environment: how `serve(workers=N)` hands its options to the worker
# processes uvicorn starts (see the module docstring); our own worker processes get them as arguments.
WORKER_OPTIONS_VARIABLE = "DIGITLAB_SERVE_OPTIONS"
# How long one thread may hold the GIL while another waits (Python's default: 5 ms). A server
# process has two busy threads, the event loop and the batcher (web/batching.py); handing over
# sooner lets the loop send finished answers and read new requests while a batch is prepared:
# about 10% more requests/s here at the same p99 (benchmarks/serve_speed.py, --workers 2).
SWITCH_INTERVAL_SECONDS = 0.001


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    """What one worker process of `serve(workers=N)` needs to build its app (JSON-serialisable)."""

    # The run folder or .keras file to load, as an absolute path.
    model: str
    # Keras backend; None: $KERAS_BACKEND, else jax.
    backend: str | None
    # Origins allowed to call the API from other pages.
    cors_origins: tuple[str, ...]
    # The address the server listens on (decides the Host names answered, with `allowed_hosts`).
    host: str
    # Further Host names answered (`--allowed-host`).
    allowed_hosts: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerOptions:
        values = json.loads(text)
        return cls(model=values["model"], backend=values["backend"], cors_origins=tuple(values["cors_origins"]),
                   host=values["host"], allowed_hosts=tuple(values["allowed_hosts"]))


def _tune_server_process() -> None:
    """Settings for a process that only serves, once its model is loaded."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    # Keras, JAX and the model are hundreds of thousands of long-lived objects: keep them out of the
    # garbage collector's full passes, which otherwise held every request for ~0.1 s now and then
    # (a p99 of 120 ms with one worker).
    gc.freeze()


def serve(model: str | Path | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          cors_origins: Sequence[str] = (), allowed_hosts: Sequence[str] = (), backend: str | None = None,
          access_log: bool = False, workers: int = 1, ready: Callable[[str, str], None] | None = None) -> None:
    """Load a model and serve the drawing page and the API until interrupted.

    Args:
        model: a run folder or a .keras file; None: the most recent finished run under runs/.
        host, port: where to listen (port 0: any free port).
        cors_origins: origins allowed to call the API from other pages ("*" for any); none by default.
        allowed_hosts: Host header names answered besides this machine's local names and `host`
            (see `guards.AllowedHosts.for_address`); "*" for any.
        backend: Keras backend; default $KERAS_BACKEND, else jax.
        access_log: log every request (costs some speed).
        workers: server processes sharing the socket, each with its own copy of the model. One
            process runs Python on one core at a time (the GIL); more use more cores.
        ready: called with the address ("http://host:port") and the model's path once the socket is
            bound (and, with one worker, the model loaded).

    Raises:
        RunFolderError, ModelError: no model to serve.
        ConfigError: the address is taken or cannot be bound.
    """
    import uvicorn

    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    logging = {"log_level": "info" if access_log else "warning", "access_log": access_log,
               "timeout_graceful_shutdown": 5}
    balanced = workers > 1 and _kernel_balances_connections()
    # First: a taken port is reported before a model is loaded. With balanced workers this socket
    # only holds the port (it never listens); each worker listens on a socket of its own.
    sock = _bind(host, port, reuse_port=balanced)
    try:
        if workers == 1:
            from digitlab.inference.loading import load_classifier
            from digitlab.web.app import create_app
            from digitlab.web.guards import AllowedHosts

            classifier = load_classifier(model, backend=backend)
            app = create_app(classifier, cors_origins=cors_origins,
                             allowed_hosts=AllowedHosts.for_address(host, allowed_hosts))
            _tune_server_process()
            if ready is not None:
                ready(address_of(sock), classifier.source)
            uvicorn.Server(uvicorn.Config(app, **logging)).run(sockets=[sock])
            return
        # Each worker is a fresh (spawned) process that loads the model itself: JAX cannot be forked.
        model = _model_path(model)
        options = WorkerOptions(model=str(model.resolve()), backend=backend, cors_origins=tuple(cors_origins),
                                host=host, allowed_hosts=tuple(allowed_hosts))
        if ready is not None:
            ready(address_of(sock), str(model))
        if balanced:
            _run_balanced_workers(sock.getsockname()[:2], workers, logging, options)
        else:
            _run_uvicorn_workers(sock, workers, logging, options)
    finally:
        sock.close()


def _run_uvicorn_workers(sock: socket.socket, workers: int, logging: dict, options: WorkerOptions) -> None:
    """Run `workers` server processes started by uvicorn, all accepting on `sock` (where the kernel
    does not balance connections over sockets of one port)."""
    import inspect

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # uvicorn starts these processes from an import string, so the options cannot be passed as
    # arguments: the one environment variable of the module docstring carries them.
    os.environ[WORKER_OPTIONS_VARIABLE] = options.to_json()
    config = uvicorn.Config("digitlab.web.server:app_from_environment", factory=True, workers=workers, **logging)
    # Older uvicorn releases take the server's run method as `target`; newer ones build it.
    if "target" in inspect.signature(Multiprocess).parameters:
        Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock]).run()
    else:
        Multiprocess(config, sockets=[sock]).run()


def _kernel_balances_connections() -> bool:
    """Whether sockets sharing a port with SO_REUSEPORT get new connections spread over them (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _run_balanced_workers(address: tuple[str, int], workers: int, logging: dict, options: WorkerOptions) -> None:
    """Run `workers` server processes, each listening on its own SO_REUSEPORT socket of `address`.

    The kernel spreads new connections evenly over the sockets. With one shared socket (uvicorn's
    own --workers), whichever worker wakes first accepts a whole burst of new connections: 26 of 32
    here, which left the other worker half idle and the busy one's clients waiting. Stops all the
    workers when one ends, on Ctrl-C, or on SIGTERM.
    """
    import multiprocessing
    import multiprocessing.connection
    import signal

    context = multiprocessing.get_context("spawn")  # JAX cannot be forked
    processes = [context.Process(target=_balanced_worker, args=(address, logging, options),
                                 name=f"digitlab-serve-{number}") for number in range(workers)]

    def stop(_signal_number, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    ended = None  # the worker that ended first, unless stopped by Ctrl-C or SIGTERM
    try:
        for process in processes:
            process.start()
        ready = multiprocessing.connection.wait([process.sentinel for process in processes])  # until one ends
        ended = next(process for process in processes if process.sentinel in ready)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    if ended is not None:
        raise DigitlabError(f"server worker {ended.name} stopped (exit code {ended.exitcode}), so the others were "
                            "stopped too; its error is above")


def _balanced_worker(address: tuple[str, int], logging: dict, options: WorkerOptions) -> None:
    """One worker of `_run_balanced_workers`: load the model, listen on its own socket, serve."""
    import signal

    import uvicorn

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    sock = _bind(*address, reuse_port=True)
    try:
        app = worker_app(options)
    except DigitlabError as err:  # say what is wrong in one line, as the CLI does, not with a traceback
        sock.close()
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    try:
        uvicorn.Server(uvicorn.Config(app, **logging)).run(sockets=[sock])
    finally:
        sock.close()


def app_from_environment():
    """The app for one worker process that uvicorn starts (`_run_uvicorn_workers`): its options come
    from `DIGITLAB_SERVE_OPTIONS`, set by the parent."""
    return worker_app(WorkerOptions.from_json(os.environ[WORKER_OPTIONS_VARIABLE]))


def worker_app(options: WorkerOptions):
    """The app for one worker process of `serve(workers=N)`: loads the model, tunes the process."""
    from digitlab.inference.loading import load_classifier
    from digitlab.web.app import create_app
    from digitlab.web.guards import AllowedHosts

    classifier = load_classifier(options.model, backend=options.backend)
    app = create_app(classifier, cors_origins=options.cors_origins,
                     allowed_hosts=AllowedHosts.for_address(options.host, options.allowed_hosts))
    _tune_server_process()
    return app


@contextlib.contextmanager
def running(classifier, host: str = DEFAULT_HOST, port: int = 0, **app_options) -> Iterator[str]:
    """Serve `classifier` from a background thread for the duration of the block; yields the address.

    `app_options` go to `create_app`; `allowed_hosts` defaults to the names a server on `host` answers to.
    """
    import uvicorn

    from digitlab.web.app import create_app
    from digitlab.web.guards import AllowedHosts

    app_options.setdefault("allowed_hosts", AllowedHosts.for_address(host))

    sock = _bind(host, port)
    # log_config=None: leave the process's logging alone (uvicorn's own setup would take over the
    # root handlers of a test run or a notebook).
    config = uvicorn.Config(create_app(classifier, **app_options), log_level="warning", access_log=False,
                            log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="digitlab-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread stopped before it started; see the log above")
            thread.join(0.01)
        yield address_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _model_path(model: str | Path | None) -> Path:
    """The run folder or model file to serve, checked to exist (workers load it themselves)."""
    from digitlab.errors import ModelError
    from digitlab.inference.loading import resolve_model_source

    path = resolve_model_source(model).path
    if not path.exists():
        raise ModelError(f"model {path} does not exist; give a run folder (see `ls runs/`) or a .keras file")
    return path


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A bound socket (uvicorn listens on it): binding here tells the real port when `port` is 0.
    `reuse_port`: other sockets with the option may bind the same port (balanced workers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port "
                          "(0: any free one) or --host") from err
    sock.set_inheritable(True)
    return sock
