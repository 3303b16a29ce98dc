"""The HTTP connection below the app: deadlines, size caps and a cap on open connections per worker.

uvicorn reads a request's headers for as long as the client takes, of any size, and keeps a
connection that never sends anything open for ever. `GuardedHttpProtocol` (uvicorn's httptools
protocol with these guards; `ConnectionLimits` holds their values):

- a request's line and headers must arrive whole within `header_timeout_seconds` of their first
  byte (or of the connection's opening): else 408, or a silent close when nothing came at all;
- a connection idle between requests is closed after `idle_timeout_seconds` (uvicorn's keep-alive
  timeout), and the unread rest of a body already answered (a 413, say) may take as long again;
- a request line and headers over `max_header_bytes` get 431 as soon as the limit is passed;
- at `max_connections` open connections, a new one closes the longest idle one (no request in
  flight, headers not yet whole), so that a flood of idle or slow sockets cannot lock real clients
  out; if every connection is busy, the new one is closed instead;
- a connection closed while the client still sends its request's body (a 413 answered from the
  Content-Length alone, to a client that asked to close) first reads and drops the rest, up to
  DRAIN_BYTES and for at most DRAIN_SECONDS: clients that send the whole body before they read the
  answer (Python's urllib) otherwise see the connection reset rather than the 413. After an error
  answered from here (408, 431) what still arrives is dropped the same way, for a shorter while.

What the app refuses (a body too large or too slow, a bad Host) is in `guards.py`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import resource
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("digitlab.web")

# The rest of a request body answered early (413) that is read and dropped at most before closing.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
# ... and nothing arriving for this long ends the draining too (a slow client answered 408, say).
DRAIN_IDLE_SECONDS = 1.0
# What lingering after an error answered from here (408, 431) reads and drops at most, before closing.
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 2.0
# Files a worker keeps open besides its connections (model files, the event loop, logs, pipes): the
# open-file limit minus these is the most connections it can hold. A served worker holds about 30.
RESERVED_FILES = 64
# A worker never holds more connections than this, whatever the open-file limit.
DEFAULT_MAX_CONNECTIONS = 1000
# Warnings about closing connections at the cap: at most one per this many seconds per worker.
WARNING_INTERVAL_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """How long and how large a connection's requests may be, and how many connections a worker holds."""

    # A request's line and headers must arrive whole within this many seconds (from their first byte,
    # or from the connection's opening for its first request).
    header_timeout_seconds: float = 10.0
    # A keep-alive connection with no request is closed after this many seconds idle.
    idle_timeout_seconds: float = 5.0
    # Request line and headers larger than this get 431 Request Header Fields Too Large.
    max_header_bytes: int = 64 * 1024
    # Open connections per worker process; None: from the open-file limit (`default_max_connections`).
    max_connections: int | None = None

    def __post_init__(self) -> None:
        for name in ("header_timeout_seconds", "idle_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0 seconds, got {getattr(self, name)}")
        if self.max_header_bytes < 1024:
            raise ValueError(f"max_header_bytes must be at least 1024 (a browser's headers), got {self.max_header_bytes}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")

    def connections(self) -> int:
        """The connection cap in effect: `max_connections`, or what the open-file limit allows."""
        return self.max_connections if self.max_connections is not None else default_max_connections()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_max_connections() -> int:
    """DEFAULT_MAX_CONNECTIONS, or fewer where the process's open-file limit would be reached first."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(8, min(DEFAULT_MAX_CONNECTIONS, soft - RESERVED_FILES))


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the guards of the module docstring.

    uvicorn builds one per connection with `config`, `server_state` and `app_state`; pass it to
    `uvicorn.Config(http=...)` as `functools.partial(GuardedHttpProtocol, limits=...)`.
    """

    def __init__(self, *args, limits: ConnectionLimits, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.max_connections = limits.connections()
        self._header_bytes = 0  # bytes of the current request line and headers so far
        self._in_body = False  # between a request's headers and the end of its body
        self._header_timer = None  # the deadline for the current headers, while armed
        self._body_timer = None  # the deadline for the rest of a body answered early
        self._drain_idle_timer = None  # closes a draining connection on which nothing arrives
        self._draining = False  # closing: what arrives is dropped, up to `_drop_limit` bytes
        self._dropped = 0
        self._drop_limit = 0
        self._body_left: int | None = None  # bytes of the current body still to come (None: unknown)
        self._idle_since = time.monotonic()  # when the last request ended (or the connection opened)

    # --- the connection -------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        super().connection_made(_DrainingTransport(transport, self))
        self._arm_header_timer()
        self._make_room()

    def connection_lost(self, exc) -> None:
        for timer in (self._header_timer, self._body_timer, self._drain_idle_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._drain_idle_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while data:
            if self._draining:
                self._drop(data)
                return
            if self._in_body:
                super().data_received(data)
                return
            # The request line and headers: fed to the parser only up to the size limit.
            if self._header_timer is None:  # the first byte of a request: its headers' deadline starts
                self._arm_header_timer()
            room = self.limits.max_header_bytes - self._header_bytes
            if room <= 0:
                self._answer_error(431, "the request's headers are larger than "
                                        f"{self.limits.max_header_bytes // 1024} KB; send smaller ones",
                                   "headers_too_large")
                self._drop(data)
                return
            head, data = data[:room], data[room:]
            self._header_bytes += len(head)
            super().data_received(head)
            if self.transport.is_closing():
                return

    # --- parser callbacks (see uvicorn's HttpToolsProtocol) ---------------------------------------

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._header_bytes = 0
        self._in_body = True
        declared = next((value for name, value in self.headers if name == b"content-length"), None)
        self._body_left = int(declared) if declared is not None and declared.strip().isdigit() else None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._body_left is not None:
            self._body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        super().on_response_complete()
        if self._in_body and not self.transport.is_closing() and self._body_timer is None:
            # Answered before the body ended (413, say): the rest is read and dropped, for a while.
            self._body_timer = self.loop.call_later(self.limits.idle_timeout_seconds + self.limits.header_timeout_seconds,
                                                    self._close)

    # --- the guards -------------------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._header_bytes == 0:  # nothing sent: close without a word, as for an idle keep-alive
            self._close()
            return
        self._answer_error(408, "the request's headers did not arrive within "
                                f"{self.limits.header_timeout_seconds:g} s", "too_slow")

    def _busy(self) -> bool:
        """A request is being answered on this connection (its headers have arrived)."""
        return self._in_body or bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _make_room(self) -> None:
        """At the connection cap: close the longest idle connection, or this one if none is idle."""
        # Connections already closing still count in `connections` until the loop has let them go.
        open_connections = sum(1 for connection in self.connections if not connection.transport.is_closing())
        if open_connections <= self.max_connections:
            return
        idle = [connection for connection in self.connections
                if connection is not self and isinstance(connection, GuardedHttpProtocol) and not connection._busy()
                and not connection.transport.is_closing()]
        if idle:
            min(idle, key=lambda connection: connection._idle_since)._close()
        else:
            self._close()
        _warn_at_cap(open_connections, self.max_connections, closed_new=not idle)

    def _answer_error(self, status: int, message: str, code: str) -> None:
        """Answer a JSON error from here (no app involved), close for writing and linger."""
        body = json.dumps({"error": message, "code": code}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}.get(status, b"Error")
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                % (status, reason, len(body)))
        self.transport.write(head + body)
        self.transport.closed_here()  # uvicorn writes nothing more on this connection
        log.warning("%s: %s (%d)", _client_name(self.client), message, status)
        real = self.transport.real
        if real.can_write_eof():
            real.write_eof()  # the client reads the answer, then the end
        self._body_left = None
        self._start_draining(LINGER_BYTES, LINGER_SECONDS)

    def close_requested(self) -> None:
        """uvicorn closes the connection: at once, unless the client is still sending a body."""
        if self.transport.real.is_closing():
            return
        if self._in_body and not self._draining:
            self._start_draining(DRAIN_BYTES, DRAIN_SECONDS)
        elif not self._draining:
            self._close()

    def _start_draining(self, max_bytes: int, seconds: float) -> None:
        self._draining, self._dropped, self._drop_limit = True, 0, max_bytes
        if self._body_left is not None and self._body_left <= 0:
            self._close()
            return
        self.transport.real.resume_reading()  # uvicorn may have paused reading while the app took its time
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(seconds, self._close)
        self._drain_idle_timer = self.loop.call_later(DRAIN_IDLE_SECONDS, self._close)

    def _drop(self, data: bytes) -> None:
        self._drain_idle_timer.cancel()
        self._drain_idle_timer = self.loop.call_later(DRAIN_IDLE_SECONDS, self._close)
        self._dropped += len(data)
        if self._body_left is not None:
            self._body_left -= len(data)
            if self._body_left <= 0:  # the whole body read: the client now reads the answer
                self._close()
                return
        if self._dropped > self._drop_limit:
            self._close()

    def _close(self) -> None:
        real = self.transport.real
        if not real.is_closing():
            real.close()


class _DrainingTransport:
    """The transport as uvicorn's protocol sees it: `close()` asks the protocol (`close_requested`),
    which may read and drop the rest of a body first; everything else is the real transport's."""

    def __init__(self, transport, protocol: GuardedHttpProtocol) -> None:
        self.real, self._protocol, self._closed = transport, protocol, False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._protocol.close_requested()

    def is_closing(self) -> bool:
        return self._closed or self.real.is_closing()

    def closed_here(self) -> None:
        """The protocol closes the connection itself (see `GuardedHttpProtocol._answer_error`)."""
        self._closed = True

    def __getattr__(self, name: str):
        return getattr(self.real, name)


_last_warning = 0.0


def _warn_at_cap(open_connections: int, cap: int, closed_new: bool) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning < WARNING_INTERVAL_SECONDS:
        return
    _last_warning = now
    closed = "the new one (all are busy)" if closed_new else "the longest idle one"
    log.warning("%d connections open, at the cap of %d per worker: closed %s (see `digitlab serve --max-connections`)",
                open_connections, cap, closed)


def _client_name(client) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"
