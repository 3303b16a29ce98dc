"""What the server refuses before the app reads a request: a Host header it was not started for (DNS
rebinding), a body over the size limit, and a body too slow to arrive. ASGI middleware; every refusal
is a JSON error, `{"error", "code"}`, like the app's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import Any

from digitlab.web.answers import BAD_HOST, BodyTooLarge, BodyTooSlow

# Names that always mean this machine.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Bind addresses that listen on every interface.
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
ANY_HOST = "*"


@dataclasses.dataclass(frozen=True)
class AllowedHosts:
    """The names a server answers to in the Host header; any other gets 400 `bad_host`.

    A DNS rebinding attack makes a browser send the attacker's own domain name as the Host, so
    refusing unknown names stops it; an IP address in the Host can never be one.
    """

    # Host names and addresses accepted, lower case, without port or brackets.
    names: frozenset[str]
    # Accept any IP address as the Host (a server listening on every interface: reached by its addresses).
    any_address: bool = False
    # Accept any Host at all (`--allowed-host '*'`: behind a proxy that checks it, say).
    any_host: bool = False

    @classmethod
    def for_address(cls, host: str, extra: Iterable[str] = ()) -> AllowedHosts:
        """The hosts a server bound to `host` answers to: this machine's local names, `host` itself and
        `extra`. Bound to every interface (0.0.0.0, ::) it also answers to any IP address and to the
        machine's host name; other names (a DNS name of the machine, say) must be in `extra`."""
        extra = [name.strip() for name in extra]
        names = {*LOCAL_HOSTS, host, *(name for name in extra if name != ANY_HOST)}
        any_address = host in WILDCARD_ADDRESSES
        if any_address:
            names.add(socket.gethostname())
        return cls(frozenset(_normalise(name) for name in names if name not in WILDCARD_ADDRESSES),
                   any_address=any_address, any_host=ANY_HOST in extra)

    def allows(self, host_header: str) -> bool:
        """Whether a request with this Host header (with or without a port) is answered."""
        if self.any_host:
            return True
        name = _host_name(host_header)
        if not name:
            return False
        return name in self.names or (self.any_address and _is_address(name))


def _host_name(host_header: str) -> str:
    """`Example.com:8000` -> `example.com`, `[::1]:8000` -> `::1`; empty if it is not a host."""
    header = host_header.strip()
    if header.startswith("["):
        name, bracket, _port = header[1:].partition("]")
        return _normalise(name) if bracket else ""
    return _normalise(header.rpartition(":")[0] if ":" in header else header)


def _normalise(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostGuard:
    """ASGI middleware: answer 400 `bad_host` to a request whose Host header is not allowed.

    Starlette's TrustedHostMiddleware answers in plain text; this one keeps the JSON error convention.
    """

    def __init__(self, app, allowed: AllowedHosts) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            header = next((value for name, value in scope["headers"] if name == b"host"), b"").decode("latin-1")
            if not self.allowed.allows(header):
                await send_json(send, 400, {"error": f"{BAD_HOST}; got {header[:100]!r}", "code": "bad_host"})
                return
        await self.app(scope, receive, send)


class BodyGuard:
    """ASGI middleware: refuse bodies over `max_bytes` without reading them, and bodies that have not
    arrived `timeout_seconds` after the request's headers.

    A declared Content-Length over the limit is answered 413 at once, from the header alone (the server
    then reads and drops what the client still sends, for a while: `connections.GuardedHttpProtocol`,
    so that clients that send the whole body before reading, as Python's urllib does, see the 413 rather
    than a reset connection); a chunked body is counted as it streams in, and
    reading stops (413) as soon as it passes the limit. A body still incomplete at the deadline, sent
    slowly or not at all, is answered 408, so that a slow client cannot hold a request for long.
    """

    def __init__(self, app, max_bytes: int, timeout_seconds: float) -> None:
        self.app, self.max_bytes, self.timeout_seconds = app, max_bytes, timeout_seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await send_json(send, 400, {"error": f"invalid Content-Length header {declared.decode('latin-1')!r}",
                                            "code": "bad_request"})
                return
            if length > self.max_bytes:
                error = BodyTooLarge(self.max_bytes)
                await send_json(send, error.status, {"error": error.message, "code": error.code})
                return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        received, complete = 0, False

        async def guarded_receive():
            nonlocal received, complete
            if complete:  # after the body: waiting for a disconnect, which has no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(self.timeout_seconds) from None  # answered by the app's RequestError handler
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, guarded_receive, send)


async def send_json(send, status: int, values: dict[str, Any]) -> None:
    """Answer a whole HTTP request with a JSON body, straight over ASGI."""
    body = json.dumps(values).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
