"""Forwarders: the anonymous events, sent onward to a webhook as signed JSON batches, durably.

A committed event is always queued: ``enqueue_events`` runs inside the transaction that
stores the events, writing outbox rows (gateway/storage/outbox.py). An ``OutboxSender`` then
POSTs due rows, merged up to the forwarder's ``batch_size``, as
``{"forwarder": NAME, "events": [...]}`` with an HMAC-SHA256 signature of the exact body
(``verify_signature`` checks it). A 2xx answer deletes the rows; anything else keeps them
and retries after 5 s, 10 s, 20 s ... up to an hour. Delivery is at least once: a receiver
may see a batch twice (a crash between its 2xx and our delete).

Only ``AnonymousEvent`` fields leave the gateway (never an IP address, a user agent or
yesterday's visitor id): the DESIGN invariant "a raw IP address is never written to ... a
forwarder". And by default less than that: no visitor id, the time to the minute, the country
without region or city. Each widening is a per-forwarder setting (``visitor_id``, ``time``,
``geo``); a visitor id, when asked for, is re-keyed per forwarder (:meth:`ForwarderSettings.visitor_id_for`)
so no receiver gets the id we store and two receivers cannot join their ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Literal, NoReturn, TypeVar, get_args
from urllib.parse import urlsplit

import httpx

from gateway.categories import CATEGORIES, Category, parse_category
from gateway.clock import Clock
from gateway.ingest.event import AnonymousEvent
from gateway.storage.db import Database
from gateway.storage.outbox import OutboxEntry, claim_outbox, delete_outbox, insert_outbox, record_outbox_failure

if TYPE_CHECKING:
    # gateway.settings imports this module to read [[forward]]: its names are imported
    # where they are used, so either module can be imported first.
    from gateway.settings import Secret

log = logging.getLogger("gateway.forward")

SIGNATURE_HEADER = "x-consent-gateway-signature"
TIMESTAMP_HEADER = "x-consent-gateway-timestamp"
MIN_SECRET_LENGTH = 16
_KEYS = (
    "batch_size",
    "geo",
    "name",
    "require_category",
    "secret",
    "sites",
    "time",
    "timeout_seconds",
    "url",
    "visitor_id",
)
#: How precisely a forwarded event says when it happened: a second narrows a visitor down more than a minute.
ForwardTime = Literal["minute", "second"]
#: How precisely it says where: region and city narrow a visitor down, the country hardly does.
ForwardGeo = Literal["country", "region", "city"]
_Choice = TypeVar("_Choice", bound=str)
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class ForwarderSettings:
    """One ``[[forward]]`` table."""

    name: str
    url: str
    secret: Secret
    #: The sites whose events are forwarded; empty: every site.
    sites: tuple[str, ...] = ()
    #: Forward only events whose consent snapshot holds this category.
    require_category: Category | None = None
    batch_size: int = 100
    timeout_seconds: float = 10
    #: Send a visitor id (re-keyed for this forwarder); off: none at all.
    visitor_id: bool = False
    time: ForwardTime = "minute"
    geo: ForwardGeo = "country"

    def accepts(self, event: AnonymousEvent) -> bool:
        if self.sites and event.site_id not in self.sites:
            return False
        return self.require_category is None or self.require_category in event.consent

    def visitor_id_for(self, daily_id: str) -> str:
        """Our daily visitor id as this forwarder sees it: HMAC-SHA256 under a key derived from its
        secret and name, so it counts visitors and visits like ours but cannot be matched with our
        stored ids nor with another forwarder's (each has its own key)."""
        return hmac.new(self._visitor_key(), daily_id.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:32]

    def _visitor_key(self) -> bytes:
        label = f"consent-gateway forwarded visitor id/{self.name}".encode()
        return hmac.new(self.secret.value.encode("utf-8"), label, hashlib.sha256).digest()


class _Found:
    """What an error message shows in place of a value that must not be printed."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_MISSING = _Found("nothing (the key is missing)")


def _kind(value: object) -> _Found:
    if isinstance(value, Mapping):
        return _Found("a table")
    if isinstance(value, list):
        return _Found("an array")
    if isinstance(value, str):
        return _Found("a string")
    return _Found(f"a {type(value).__name__}")


def _fail(source: str, where: str, expected: str, found: object) -> NoReturn:
    from gateway.settings import SettingsError

    if not where.isprintable():  # a quoted TOML key may hold a newline: keep the message one line
        where = repr(where)
    raise SettingsError(f"config error in {source}: {where}: expected {expected}, found {found!r}")


def parse_forwarders(
    entries: object, *, source: str, known_sites: Collection[str] | None = None
) -> tuple[ForwarderSettings, ...]:
    """Validate the ``[[forward]]`` array of tables; ``known_sites`` (when given) catches misspelt site ids.

    Error messages never show a secret, nor a URL (webhook URLs often embed a token).
    """
    from gateway.settings import Secret

    if not isinstance(entries, list):
        _fail(source, "forward", "an array of tables ([[forward]])", _kind(entries))
    forwarders: list[ForwarderSettings] = []
    for index, entry in enumerate(entries):
        at = f"forward[{index}]"
        if not isinstance(entry, Mapping):
            _fail(source, at, "a table with name, url and secret", _kind(entry))
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            _fail(source, f"{at}.{unknown[0]}", f"one of the known keys ({', '.join(_KEYS)})", _Found("an unknown key"))
        name = entry.get("name", _MISSING)
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            _fail(source, f"{at}.name", "a name of lowercase letters, digits, '-' or '_'", name)
        if any(other.name == name for other in forwarders):
            _fail(source, f"{at}.name", "a name no other forwarder uses", name)
        url = entry.get("url", _MISSING)
        if not isinstance(url, str):
            _fail(source, f"{at}.url", "an http:// or https:// URL", url if url is _MISSING else _kind(url))
        _check_url(source, f"{at}.url", url)
        secret = entry.get("secret", _MISSING)
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            found = secret if secret is _MISSING else _Found("a value that is not shown (it is a secret)")
            _fail(source, f"{at}.secret", f"a string of at least {MIN_SECRET_LENGTH} characters", found)
        forwarders.append(
            ForwarderSettings(
                name=name,
                url=url,
                secret=Secret(secret),
                sites=_sites(source, f"{at}.sites", entry.get("sites", []), known_sites),
                require_category=_category(source, f"{at}.require_category", entry.get("require_category")),
                batch_size=_batch_size(source, f"{at}.batch_size", entry.get("batch_size", 100)),
                timeout_seconds=_timeout(source, f"{at}.timeout_seconds", entry.get("timeout_seconds", 10)),
                visitor_id=_flag(source, f"{at}.visitor_id", entry.get("visitor_id", False)),
                time=_choice(source, f"{at}.time", entry.get("time", "minute"), get_args(ForwardTime)),
                geo=_choice(source, f"{at}.geo", entry.get("geo", "country"), get_args(ForwardGeo)),
            )
        )
    return tuple(forwarders)


def _check_url(source: str, where: str, url: str) -> None:
    expected = "an http:// or https:// URL with a host"
    if not url.isprintable() or any(c.isspace() for c in url):
        _fail(source, where, expected, _Found("a URL with spaces or control characters"))
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        _fail(source, where, expected, _Found("a URL that cannot be parsed"))
    if parts.scheme not in ("http", "https"):
        _fail(source, where, expected, _Found(f"a URL with scheme {parts.scheme!r}"))
    if not host:
        _fail(source, where, expected, _Found("a URL without a host"))


def _sites(source: str, where: str, value: object, known: Collection[str] | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        _fail(source, where, "a list of site ids (empty: every site)", value)
    for site in value:
        if known is not None and site not in known:
            _fail(source, where, f"site ids configured under [sites] ({', '.join(sorted(known))})", site)
    return tuple(value)


def _category(source: str, where: str, value: object) -> Category | None:
    if value is None:
        return None
    try:
        return parse_category(value)
    except ValueError:
        _fail(source, where, f"one of {', '.join(CATEGORIES)}", value)


def _batch_size(source: str, where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        _fail(source, where, "a whole number from 1 to 10000", value)
    return value


def _timeout(source: str, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 300:
        _fail(source, where, "a number of seconds above 0, at most 300", value)
    return float(value)


def _flag(source: str, where: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(source, where, "true or false", value)
    return value


def _choice(source: str, where: str, value: object, choices: tuple[_Choice, ...]) -> _Choice:
    for choice in choices:
        if value == choice:
            return choice
    _fail(source, where, " or ".join(repr(choice) for choice in choices), value)


def event_payload(event: AnonymousEvent, forwarder: ForwarderSettings | None = None) -> dict[str, object]:
    """The forwarded form of an event: stored fields only, as precise as ``forwarder`` allows.

    Without a forwarder, the defaults: no visitor id, the time to the minute, the country alone.
    """
    seconds = forwarder is not None and forwarder.time == "second"
    geo = forwarder.geo if forwarder is not None else "country"
    payload: dict[str, object] = {
        "site_id": event.site_id,
        "ts": event.ts.replace(second=event.ts.second if seconds else 0, microsecond=0).isoformat(),
        "name": event.name,
        "hostname": event.hostname,
        "pathname": event.pathname,
        "referrer_host": event.referrer_host,
        "source": event.source,
        "channel": event.channel,
        "utm_source": event.utm_source,
        "utm_medium": event.utm_medium,
        "utm_campaign": event.utm_campaign,
        "utm_content": event.utm_content,
        "utm_term": event.utm_term,
        "country": event.country,
        "browser": event.browser,
        "browser_version": event.browser_version,
        "os": event.os,
        "os_version": event.os_version,
        "device": event.device,
        "screen": event.screen,
        "props": dict(event.props),
        "consent": sorted(event.consent),
    }
    if forwarder is not None and forwarder.visitor_id:
        payload["visitor_id"] = forwarder.visitor_id_for(event.visitor_id)
    if geo in ("region", "city"):
        payload["region"] = event.region
    if geo == "city":
        payload["city"] = event.city
    return payload


def enqueue_events(
    connection: sqlite3.Connection,
    forwarders: Sequence[ForwarderSettings],
    events: Sequence[AnonymousEvent],
    *,
    now: datetime,
) -> int:
    """Queue ``events`` for each forwarder that accepts them; returns the outbox rows written.

    Call it inside the transaction that stores the events, so both commit or neither does.
    """
    rows = 0
    for forwarder in forwarders:
        chosen = [event_payload(event, forwarder) for event in events if forwarder.accepts(event)]
        for start in range(0, len(chosen), forwarder.batch_size):
            batch = chosen[start : start + forwarder.batch_size]
            text = json.dumps(batch, ensure_ascii=False, separators=(",", ":"))
            insert_outbox(connection, forwarder.name, text, len(batch), now=now)
            rows += 1
    return rows


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
        database: Database,
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
            claim = partial(
                claim_outbox,
                forwarder=forwarder.name,
                now=now,
                lease_until=lease_until,
                max_events=forwarder.batch_size,
            )
            entries = await self._database.write(claim)
            if not entries:
                return delivered
            error = await self._post(forwarder, entries, now)
            if error is None:
                await self._database.write(partial(delete_outbox, ids=[entry.id for entry in entries]))
                self._failures.pop(forwarder.name, None)
                self._paused_until.pop(forwarder.name, None)
                delivered += sum(entry.event_count for entry in entries)
                continue
            retries = [(entry.id, now + self._delay(entry.attempts + 1)) for entry in entries]
            await self._database.write(partial(record_outbox_failure, retries=retries, error=error))
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
