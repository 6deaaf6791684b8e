"""Storage failures answer a JSON 503 with ``Retry-After``, on every route, never a 500.

A full disk, a read-only file or filesystem, an I/O error, a missing table or a damaged page all
reach the web layer as database errors (``failure_cause`` in gateway/storage/store.py names them), wherever the
request touched the database: the proof log behind ``POST /consent``, the salt store behind
``/api/event``, a dashboard session, a stats query. None of them is the client's fault and none
is a bug to show as a plain-text 500: the store is unavailable, so the answer is 503 with
``Retry-After`` (RFC 9110 section 15.6.4) and a JSON ``{"error": ...}`` that says which kind of
failure without leaking SQL. Nothing was acknowledged: a 503 is only ever sent instead of the
answer that would have said the write happened.

``StorageErrors`` is the one place that does this: a pure ASGI layer wrapped around Starlette's
routes (``create_app``) and around the ``/api/event`` endpoint, which bypasses the router
(``GatewayApp``). An endpoint that wants its own headers on the 503 (CORS, so a cross-origin
script can read it) raises :class:`StorageUnavailable` through :func:`storage_guard`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics import Metrics
from gateway.storage.store import StorageFailure, failure_cause

log = logging.getLogger("gateway.storage")

#: Seconds a client is asked to wait: a full disk or a read-only mount is an operator's job, not a
#: blip, so clients should not hammer; the event queue's own 503 (a burst) asks for 2 s.
STORAGE_RETRY_AFTER_SECONDS = 10


class StorageUnavailable(StorageFailure):
    """A storage failure with the headers its 503 should carry (CORS of the request's site)."""

    def __init__(self, cause: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(cause)
        self.headers = headers or {}


def storage_failure(error: BaseException) -> str | None:
    """What failed, in a user's words, when ``error`` (or what it was raised from) is a storage
    failure; None for anything else, which stays a bug and keeps its traceback."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = failure_cause(current)
        if cause is not None:
            return cause
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def storage_guard(*, headers: dict[str, str]) -> Iterator[None]:
    """Turn a storage failure inside the block into :class:`StorageUnavailable` carrying ``headers``."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as error:
        cause = storage_failure(error)
        if cause is None:
            raise
        raise StorageUnavailable(cause, headers=headers) from error


class StorageErrors:
    """Answer 503 + ``Retry-After`` + JSON for a storage failure raised before the response started.

    Once a response has started (a streamed CSV export), its status is gone: the error is logged
    and re-raised so the server closes the connection, as it would for any broken stream.

    ``answers_last``: the app sends its whole answer after its last storage call (the event
    endpoint), so a failure always comes before its response started and its messages need no
    watching: one closure and two awaits less on the hottest path.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, answers_last: bool = False) -> None:
        self.app, self.metrics, self.answers_last = app, metrics, answers_last

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.answers_last:
            try:
                await self.app(scope, receive, send)
            except Exception as error:
                await self._failed(scope, send, error, started=False)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            await self._failed(scope, send, error, started=started)

    async def _failed(self, scope: Scope, send: Send, error: Exception, *, started: bool) -> None:
        """Answer 503 for a storage failure; anything else (or a response already started) goes on up."""
        cause = storage_failure(error)
        if cause is None:
            raise error
        self.metrics.inc("consent_gateway_storage_errors_total")
        # One line, no traceback: the cause is the operator's to fix, not a bug to debug.
        log.error("storage failure on %s %s: %s (%s)", scope["method"], scope["path"], cause, _detail(error))
        if started:
            raise error
        headers = error.headers if isinstance(error, StorageUnavailable) else {}
        await _answer_unavailable(send, cause, headers)


def _detail(error: BaseException) -> str:
    """The underlying driver's message, its first line only: sqlite3 messages carry no SQL or values,
    and PostgreSQL's values sit in the DETAIL lines that follow (``Key (name)=(...)``)."""
    inner = error.__cause__ if isinstance(error, StorageUnavailable) and error.__cause__ else error
    text = str(inner).strip()
    return f"{type(inner).__name__}: {text.splitlines()[0] if text else ''}"


async def _answer_unavailable(send: Send, cause: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": f"storage unavailable: {cause}; retry later"}).encode()
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(STORAGE_RETRY_AFTER_SECONDS).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": raw})
    await send({"type": "http.response.body", "body": body})
