"""Forwarders: the anonymous events, sent onward to a webhook as signed JSON batches, durably.

A committed event is always queued: the writer stores the ``outbox_batches`` of its events in
the transaction that stores the events (gateway/storage/outbox.py). An ``OutboxSender`` then
POSTs due rows, merged up to the forwarder's ``batch_size``, as
``{"forwarder": NAME, "events": [...]}`` with an HMAC-SHA256 signature of the exact body
(``verify_signature`` checks it). A 2xx answer deletes the rows; anything else keeps them
and retries after 5 s, 10 s, 20 s ... up to an hour. Delivery is at least once: a receiver
may see a batch twice (a crash between its 2xx and our delete).

Only ``AnonymousEvent`` fields leave the gateway (never an IP address, a user agent or
yesterday's visitor id): the DESIGN invariant "a raw IP address is never written to ... a
forwarder". And by default less than that: no visitor id, the time to the minute, the country
without region or city. Each widening is a per-forwarder setting (``visitor_id``, ``time``,
``geo``); a visitor id, when asked for, is re-keyed per forwarder (``ForwarderSettings.visitor_id_for``
in gateway/forward_settings.py) so no receiver gets the id we store and two receivers cannot join their ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx

from gateway.clock import Clock
from gateway.forward_settings import ForwarderSettings, parse_forwarders
from gateway.storage.outbox import OutboxEntry, claim_due, forget_delivered, schedule_retries
from gateway.storage.records import EVENT_COLUMNS, AnonymousEvent, OutboxBatch
from gateway.storage.store import Store

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ForwarderSettings",
    "OutboxSender",
    "event_payload",
    "outbox_batches",
    "parse_forwarders",
    "retry_delay",
    "sign_body",
    "verify_signature",
]

log = logging.getLogger("gateway.forward")

SIGNATURE_HEADER = "x-consent-gateway-signature"
TIMESTAMP_HEADER = "x-consent-gateway-timestamp"
#: The outbox rows a POST carries (``NAME:id,id``): the same on every retry of them, whichever node
#: sends it, so a receiver drops a batch it already has (a node killed mid-send is retried by another).
DELIVERY_HEADER = "x-consent-gateway-delivery"
#: What a forwarded event holds as stored: every stored field but the visitor id, region and city (each
#: a per-forwarder widening) and the three converted below (time, props, consent).
_PASSED_AS_STORED = tuple(
    name for name in EVENT_COLUMNS if name not in ("visit_id", "visitor_id", "region", "city", "ts", "props", "consent")
)


def event_payload(event: AnonymousEvent, forwarder: ForwarderSettings | None = None) -> dict[str, object]:
    """The forwarded form of an event: stored fields only, as precise as ``forwarder`` allows.

    Without a forwarder, the defaults: no visitor id, the time to the minute, the country alone.
    """
    seconds = forwarder is not None and forwarder.time == "second"
    geo = forwarder.geo if forwarder is not None else "country"
    payload: dict[str, object] = {name: getattr(event, name) for name in _PASSED_AS_STORED}
    payload["ts"] = event.ts.replace(second=event.ts.second if seconds else 0, microsecond=0).isoformat()
    payload["props"] = dict(event.props)
    payload["consent"] = sorted(event.consent)
    if forwarder is not None and forwarder.visitor_id:
        payload["visitor_id"] = forwarder.visitor_id_for(event.visitor_id)
    if geo in ("region", "city"):
        payload["region"] = event.region
    if geo == "city":
        payload["city"] = event.city
    return payload


def outbox_batches(forwarders: Sequence[ForwarderSettings], events: Sequence[AnonymousEvent]) -> list[OutboxBatch]:
    """The outbox rows ``events`` make: for each forwarder that accepts some, its form of them in
    batches of its ``batch_size``. The writer stores them in the transaction of the events
    (gateway/storage/events.py ``store_events``), so a committed event is always queued onward too."""
    batches: list[OutboxBatch] = []
    for forwarder in forwarders:
        chosen = [event_payload(event, forwarder) for event in events if forwarder.accepts(event)]
        for start in range(0, len(chosen), forwarder.batch_size):
            batch = chosen[start : start + forwarder.batch_size]
            text = json.dumps(batch, ensure_ascii=False, separators=(",", ":"))
            batches.append(OutboxBatch(forwarder.name, text, len(batch)))
    return batches


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """For receivers: does ``header`` (x-consent-gateway-signature) sign ``body`` with ``secret``?

    Pass the raw request body, before any JSON parsing; the comparison takes constant time.
    """
    expected = sign_body(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def retry_delay(attempts: int, *, base: float = 5.0, most: float = 3600.0) -> timedelta:
    """The wait after the ``attempts``-th failed send: base, 2 x base, 4 x base ..., never above ``most``."""
    return timedelta(seconds=min(most, base * 2.0 ** min(max(attempts, 1) - 1, 60)))


class OutboxSender:
    """Delivers the outbox: ``send_due`` once (tests, with a FixedClock), or ``start`` a loop.

    Each forwarder is drained on its own, so a slow receiver does not hold back the others.
    After a failure a forwarder is left alone for the backoff of its consecutive failures,
    so a receiver that is down gets one request per backoff, not one per queued batch.
    """

    def __init__(
        self,
        database: Store,
        forwarders: Sequence[ForwarderSettings],
        clock: Clock,
        *,
        client: httpx.AsyncClient | None = None,
        poll_interval: float = 5.0,
        base_backoff: float = 5.0,
        max_backoff: float = 3600.0,
        lease_margin: float = 60.0,
    ) -> None:
        self._database = database
        self._forwarders = tuple(forwarders)
        self._clock = clock
        self._client = client
        self._owns_client = client is None
        self._poll_interval = poll_interval
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._lease_margin = lease_margin
        self._failures: dict[str, int] = {}
        self._paused_until: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def send_due(self) -> int:
        """Send every due batch now; returns the number of events delivered."""
        return sum(await asyncio.gather(*(self._drain(forwarder) for forwarder in self._forwarders)))

    def notify(self) -> None:
        """Wake the loop (e.g. from WriteBuffer's on_commit) instead of waiting for the next poll."""
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-sender")

    async def stop(self) -> None:
        """Stop the loop and close the HTTP client it made. Rows being sent are retried after their lease."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.send_due()
            except Exception:  # the loop outlives a failed round (a locked database, a bug): retried next poll
                log.exception("forwarding round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _drain(self, forwarder: ForwarderSettings) -> int:
        delivered = 0
        while True:
            now = self._clock.now()
            paused = self._paused_until.get(forwarder.name)
            if paused is not None and now < paused:
                return delivered
            lease_until = now + timedelta(seconds=forwarder.timeout_seconds + self._lease_margin)
            entries = await claim_due(
                self._database, forwarder.name, now=now, lease_until=lease_until, max_events=forwarder.batch_size
            )
            if not entries:
                return delivered
            error = await self._post(forwarder, entries, now)
            if error is None:
                await forget_delivered(self._database, [entry.id for entry in entries])
                self._failures.pop(forwarder.name, None)
                self._paused_until.pop(forwarder.name, None)
                delivered += sum(entry.event_count for entry in entries)
                continue
            retries = [(entry.id, now + self._delay(entry.attempts + 1)) for entry in entries]
            await schedule_retries(self._database, retries, error=error)
            failures = self._failures[forwarder.name] = self._failures.get(forwarder.name, 0) + 1
            self._paused_until[forwarder.name] = now + self._delay(failures)
            log.warning(
                "forwarder %s: %d events not delivered (%s), failure %d in a row",
                forwarder.name,
                sum(entry.event_count for entry in entries),
                error,
                failures,
            )
            return delivered

    def _delay(self, attempts: int) -> timedelta:
        return retry_delay(attempts, base=self._base_backoff, most=self._max_backoff)

    async def _post(self, forwarder: ForwarderSettings, entries: Sequence[OutboxEntry], now: datetime) -> str | None:
        """POST one batch; None when the receiver took it, else a short reason (never the payload or URL)."""
        events = [event for entry in entries for event in json.loads(entry.payload)]
        body = json.dumps({"forwarder": forwarder.name, "events": events}, ensure_ascii=False, separators=(",", ":"))
        data = body.encode("utf-8")
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign_body(forwarder.secret.value, data),
            TIMESTAMP_HEADER: str(int(now.timestamp())),
            DELIVERY_HEADER: f"{forwarder.name}:{','.join(str(entry.id) for entry in entries)}",
        }
        if self._client is None:
            self._client = httpx.AsyncClient(headers={"user-agent": "consent-gateway"}, follow_redirects=False)
        try:
            async with asyncio.timeout(forwarder.timeout_seconds):  # httpx's timeout is per phase, this is total
                response = await self._client.post(
                    forwarder.url, content=data, headers=headers, timeout=forwarder.timeout_seconds
                )
        except TimeoutError:
            return "timeout"
        except (httpx.HTTPError, OSError) as error:
            reason = f"{type(error).__name__}: {error}".replace(forwarder.url, "<url>")
            return reason[:200]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
