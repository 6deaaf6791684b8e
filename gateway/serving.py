"""``serve`` under abuse: request-head deadlines and size caps, a connection cap, the open-file limit.

uvicorn arms no timer until a first response has been sent, so a connection that sends nothing,
or a request head one byte at a time (slowloris), holds a file descriptor for ever; httptools
accepts any header size (an 8 MB ``Cookie`` cost 0.36 s of the event loop). The protocols here
are uvicorn's two HTTP/1.1 parsers with one guard each, nginx's behaviour in small:

- a request head must be complete within ``head_timeout`` seconds of the connection opening
  (or of its first byte, on a kept-alive connection); otherwise the connection is closed
  (nginx ``client_header_timeout``). Idle kept-alive connections stay uvicorn's
  ``timeout_keep_alive``;
- a request head over ``max_head_bytes`` is answered ``431 Request Header Fields Too Large``
  before the parser has buffered more than that (nginx ``large_client_header_buffers``);
- a request arriving while more than ``max_connections`` connections are open is answered ``503``
  with ``Retry-After`` and its connection closed: a clear answer rather than a refused
  ``accept()`` once the process runs out of file descriptors.

uvicorn's ``limit_concurrency`` is not used: its 503 carries no ``Retry-After`` and, without a
head deadline, idle connections it counts were never closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("gateway.serving")

#: The blank line that ends a request head (RFC 9112 section 2.2 lets a server accept a bare LF).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
#: The soft limit asked for when the hard limit is "unlimited" (Linux refuses more than nr_open).
_UNLIMITED_FILES = 1 << 20
#: Descriptors ``serve`` needs besides its connections: SQLite files, the writer's pipes, logs.
FILES_RESERVED = 64
_TOO_LARGE = b"request head too large\n"
_BUSY = b"too many connections: retry later\n"


@dataclass(frozen=True, slots=True)
class ServingLimits:
    """What one ``serve`` process allows each connection; defaults for a server without a proxy."""

    head_timeout: float = 5.0
    max_head_bytes: int = 16 * 1024
    max_connections: int = 1000
    #: Seconds a 431-refused client is given to read its answer while what it still sends is discarded.
    linger: float = 1.0
    #: The ``Retry-After`` of the 503 answered past ``max_connections``.
    retry_after: int = 1


class ServingConfig(uvicorn.Config):
    """uvicorn's Config carrying ``limits`` to the guarded protocols (and to ``--workers`` children)."""

    def __init__(self, app: Any, *, limits: ServingLimits, **options: Any) -> None:
        self.limits = limits
        options.setdefault("http", auto_protocol())
        # h11 refuses an unfinished head past this (with a 400); the guard answers 431 first.
        options["h11_max_incomplete_event_size"] = limits.max_head_bytes
        super().__init__(app, **options)


def auto_protocol() -> type[asyncio.Protocol]:
    """httptools when installed (uvicorn's own "auto"), else h11; both guarded."""
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return GuardedH11Protocol
    return GuardedHttpToolsProtocol


def run_server(app: Any, *, limits: ServingLimits, workers: int = 1, **options: Any) -> None:
    """``uvicorn.run`` with the guarded protocols: ``app`` is an app, or an import string for ``workers > 1``."""
    config = ServingConfig(app, limits=limits, workers=workers, **options)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled, once shut down; uvicorn.run swallows it too
        pass


def raise_open_file_limit() -> tuple[int, int, int]:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit: ``(before, now, hard)``.

    The common default soft limit (1,024) lets a thousand idle sockets stop every other
    connection from being accepted; the hard limit is what the administrator allowed.
    """
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if before != resource.RLIM_INFINITY and before < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # a container may forbid it: keep what there is, the log line says so
            pass
    now, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return before, now, hard


class _HeadWatch:
    """One connection's current request head: how long and how large it has grown so far."""

    def __init__(self, limits: ServingLimits, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport) -> None:
        self.limits, self.loop, self.transport = limits, loop, transport
        self.in_head = True
        self.refused = False
        self._seen = 0
        self._tail = b""  # the last bytes of the head so far: a blank line may span two reads
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        """Start the head's deadline unless it runs already."""
        if self.in_head and self._timer is None and not self.refused:
            self._timer = self.loop.call_later(self.limits.head_timeout, self._timed_out)

    def await_head(self) -> None:
        """The next bytes start a request head; its deadline starts with the first of them."""
        if not self.in_head:
            self.in_head, self._seen, self._tail = True, 0, b""

    def head_complete(self) -> None:
        self.in_head, self._seen, self._tail = False, 0, b""
        self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def overflows(self, data: bytes) -> bool:
        """Count ``data`` into the head: True when the head it belongs to exceeds ``max_head_bytes``."""
        scanned = data.lstrip(b"\r\n") if self._seen == 0 else data  # empty lines before a request are skipped
        window = self._tail + scanned
        end = _HEAD_END.search(window)
        head = self._seen + (len(scanned) if end is None else end.end() - len(self._tail))
        self._seen += len(scanned)
        self._tail = window[-3:]
        return head > self.limits.max_head_bytes

    def refuse_too_large(self) -> None:
        """Answer 431, then read and drop what the client still sends for ``linger`` seconds so the
        answer is not lost to a reset, and close (nginx's lingering close)."""
        self.refused = True
        self.stop()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(self.limits.linger, self.transport.close)

    def _timed_out(self) -> None:
        self._timer = None
        if self.in_head and not self.transport.is_closing():
            self.transport.close()


class _Busy:
    """The ASGI app answering a request made while too many connections are open."""

    def __init__(self, retry_after: int) -> None:
        self.headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(_BUSY)).encode()),
            (b"retry-after", str(retry_after).encode()),
            (b"connection", b"close"),
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": self.headers})
        await send({"type": "http.response.body", "body": _BUSY})


def _limits_of(config: uvicorn.Config) -> ServingLimits:
    return config.limits if isinstance(config, ServingConfig) else ServingLimits()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head deadline, the head size cap and the connection cap."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = _limits_of(config)
        self.gateway_app = self.app
        self.busy = _Busy(self.limits.retry_after)
        self.watch: _HeadWatch | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.watch = _HeadWatch(self.limits, self.loop, transport)
        self.watch.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.watch is not None:
            self.watch.stop()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        watch = self.watch
        if watch is not None and watch.refused:
            return
        if watch is not None and watch.in_head:
            if watch.overflows(data):
                watch.refuse_too_large()
                return
            watch.arm()
            self.app = self.busy if len(self.connections) > self.limits.max_connections else self.gateway_app
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.watch is not None:
            self.watch.await_head()
            self.watch.arm()

    def on_headers_complete(self) -> None:
        if self.watch is not None:
            self.watch.head_complete()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.watch is not None:
            self.watch.await_head()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the same guard; h11 waits for a head in its IDLE state."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = _limits_of(config)
        self.gateway_app = self.app
        self.busy = _Busy(self.limits.retry_after)
        self.watch: _HeadWatch | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.watch = _HeadWatch(self.limits, self.loop, transport)
        self.watch.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.watch is not None:
            self.watch.stop()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        watch = self.watch
        if watch is None:
            super().data_received(data)
            return
        if watch.refused:
            return
        if self.conn.their_state is h11.IDLE:
            watch.await_head()
            if watch.overflows(data):
                watch.refuse_too_large()
                return
            watch.arm()
            self.app = self.busy if len(self.connections) > self.limits.max_connections else self.gateway_app
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            watch.head_complete()
