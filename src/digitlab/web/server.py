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
import functools
import gc
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from digitlab.errors import ConfigError, DigitlabError
from digitlab.web.connections import ConnectionLimits, GuardedHttpProtocol

log = logging.getLogger("digitlab.web")

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
# A worker of `serve(workers=N)` that dies is replaced, unless workers have died more than this many
# times within RESTART_WINDOW_SECONDS (something is wrong beyond one request: the server stops).
MAX_RESTARTS = 10
RESTART_WINDOW_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """What one client may take of the server: connections (see `connections.ConnectionLimits`) and
    request bodies. The defaults are `digitlab serve`'s."""

    # Deadlines for headers and idle connections, the headers' size, connections per worker.
    connections: ConnectionLimits = ConnectionLimits()
    # Request bodies larger than this get 413; None: web/app.py's MAX_BODY_BYTES (5 MB).
    max_body_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_body_bytes is not None and self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")

    def app_options(self) -> dict:
        """`create_app`'s options for these limits."""
        return {} if self.max_body_bytes is None else {"max_body_bytes": self.max_body_bytes}

    def uvicorn_options(self) -> dict:
        """`uvicorn.Config`'s options for these limits: the guarded protocol and the keep-alive timeout."""
        return {"http": functools.partial(GuardedHttpProtocol, limits=self.connections),
                "timeout_keep_alive": self.connections.idle_timeout_seconds}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ServerLimits:
        return cls(connections=ConnectionLimits(**values["connections"]), max_body_bytes=values["max_body_bytes"])


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
    # Deadlines and size caps.
    limits: ServerLimits = ServerLimits()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerOptions:
        values = json.loads(text)
        return cls(model=values["model"], backend=values["backend"], cors_origins=tuple(values["cors_origins"]),
                   host=values["host"], allowed_hosts=tuple(values["allowed_hosts"]),
                   limits=ServerLimits.from_dict(values["limits"]))


def _tune_server_process() -> None:
    """Settings for a process that only serves, once its model is loaded."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    # Keras, JAX and the model are hundreds of thousands of long-lived objects: keep them out of the
    # garbage collector's full passes, which otherwise held every request for ~0.1 s now and then
    # (a p99 of 120 ms with one worker).
    gc.freeze()


def serve(model: str | Path | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          cors_origins: Sequence[str] = (), allowed_hosts: Sequence[str] = (), backend: str | None = None,
          access_log: bool = False, workers: int = 1, ready: Callable[[str, str], None] | None = None,
          limits: ServerLimits = ServerLimits()) -> None:
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
            process runs Python on one core at a time (the GIL); more use more cores. A worker that
            dies (killed for memory, say) is logged and replaced.
        ready: called with the address ("http://host:port") and the model's path once the socket is
            bound (and, with one worker, the model loaded).
        limits: deadlines and size caps for connections and requests (`ServerLimits`).

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
                             allowed_hosts=AllowedHosts.for_address(host, allowed_hosts), **limits.app_options())
            _tune_server_process()
            if ready is not None:
                ready(address_of(sock), classifier.source)
            uvicorn.Server(uvicorn.Config(app, **logging, **limits.uvicorn_options())).run(sockets=[sock])
            return
        # Each worker is a fresh (spawned) process that loads the model itself: JAX cannot be forked.
        model = _model_path(model)
        options = WorkerOptions(model=str(model.resolve()), backend=backend, cors_origins=tuple(cors_origins),
                                host=host, allowed_hosts=tuple(allowed_hosts), limits=limits)
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
    config = uvicorn.Config("digitlab.web.server:app_from_environment", factory=True, workers=workers, **logging,
                            **options.limits.uvicorn_options())
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
    here, which left the other worker half idle and the busy one's clients waiting.

    A worker that dies once serving (killed for memory, say) is logged and replaced; the others keep
    serving meanwhile. One that fails while starting (a model that cannot be loaded) stops them all,
    as do more than MAX_RESTARTS deaths within RESTART_WINDOW_SECONDS, Ctrl-C and SIGTERM.
    """
    import multiprocessing
    import multiprocessing.connection
    import signal

    context = multiprocessing.get_context("spawn")  # JAX cannot be forked

    def start(number: int):
        started = context.Event()  # set by the worker once its model is loaded
        process = context.Process(target=_balanced_worker, args=(address, logging, options, started),
                                  name=f"digitlab-serve-{number}")
        process.start()
        return process, started

    def stop(_signal_number, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    running: dict[int, tuple] = {}
    deaths: list[float] = []  # when workers died, for the restart limit
    failure = None  # why the server stops, unless stopped by Ctrl-C or SIGTERM
    try:
        for number in range(workers):
            running[number] = start(number)
        while failure is None:
            ended = multiprocessing.connection.wait([process.sentinel for process, _ in running.values()])
            for number, (process, started) in list(running.items()):
                if process.sentinel not in ended:
                    continue
                process.join()
                how = _how_it_ended(process.exitcode)
                if not started.is_set():
                    failure = f"server worker {process.name} {how} while starting, so the others were stopped too"
                    break
                now = time.monotonic()
                deaths[:] = [moment for moment in deaths if now - moment < RESTART_WINDOW_SECONDS] + [now]
                if len(deaths) > MAX_RESTARTS:
                    failure = (f"server workers died {len(deaths)} times within {RESTART_WINDOW_SECONDS:.0f} s "
                               f"(the last, {process.name}, {how}); the server stops")
                    break
                running[number] = start(number)
                log.warning("server worker %s (process %d) %s; started a new one (process %d)", process.name,
                            process.pid, how, running[number][0].pid)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process, _ in running.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process, _ in running.values():
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    if failure is not None:
        raise DigitlabError(failure)


def _how_it_ended(exit_code: int | None) -> str:
    """A worker's exit code in words: 'was killed by SIGKILL (...)', 'exited with code 2 (its error is above)'."""
    import signal

    if exit_code is not None and exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else f"signal {-exit_code}"
        hint = " (the system's out-of-memory killer, or `kill -9`)" if -exit_code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    if exit_code == 2:
        return "exited with code 2 (its error is above)"
    return f"exited with code {exit_code}"


def _balanced_worker(address: tuple[str, int], logging: dict, options: WorkerOptions, started=None) -> None:
    """One worker of `_run_balanced_workers`: load the model, listen on its own socket, serve.
    `started` (an Event) is set once the model is loaded."""
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
    if started is not None:
        started.set()
    try:
        uvicorn.Server(uvicorn.Config(app, **logging, **options.limits.uvicorn_options())).run(sockets=[sock])
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
                     allowed_hosts=AllowedHosts.for_address(options.host, options.allowed_hosts),
                     **options.limits.app_options())
    _tune_server_process()
    return app


@contextlib.contextmanager
def running(classifier, host: str = DEFAULT_HOST, port: int = 0, connection_limits: ConnectionLimits | None = None,
            **app_options) -> Iterator[str]:
    """Serve `classifier` from a background thread for the duration of the block; yields the address.

    `connection_limits`: as `serve`'s (default `ConnectionLimits()`). `app_options` go to `create_app`;
    `allowed_hosts` defaults to the names a server on `host` answers to.
    """
    import uvicorn

    from digitlab.web.app import create_app
    from digitlab.web.guards import AllowedHosts

    app_options.setdefault("allowed_hosts", AllowedHosts.for_address(host))

    sock = _bind(host, port)
    # log_config=None: leave the process's logging alone (uvicorn's own setup would take over the
    # root handlers of a test run or a notebook).
    config = uvicorn.Config(create_app(classifier, **app_options), log_level="warning", access_log=False,
                            log_config=None, **ServerLimits(connection_limits or ConnectionLimits()).uvicorn_options())
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
