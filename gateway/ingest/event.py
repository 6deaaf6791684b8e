"""The shapes an event takes on its way in: what the client sent, and what is stored.

``IncomingEvent`` holds the raw client address and user agent — in memory only, for the
length of one request. ``AnonymousEvent`` is all that is ever written or forwarded; its shape is
defined once, in gateway/storage/records.py (storage imports nothing from ingest), and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.categories import Category
from gateway.storage.records import AnonymousEvent, per_event_value

__all__ = ["AnonymousEvent", "DropReason", "Dropped", "IncomingEvent"]


class DropReason(StrEnum):
    """Why an accepted (202) event was not counted; counted per reason in /metrics, never stored."""

    NO_CONSENT = "no_consent"
    GPC = "gpc"
    BOT = "bot"
    HEADLESS = "headless"
    PREFETCH = "prefetch"
    EMPTY_USER_AGENT = "empty_user_agent"
    IGNORED_NETWORK = "ignored_network"
    REFERRER_SPAM = "referrer_spam"


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: DropReason


@per_event_value
class IncomingEvent:
    site_id: str
    name: str
    hostname: str
    pathname: str
    page_url: str
    referrer: str | None
    screen_width: int | None
    props: Mapping[str, str]
    #: The categories the visitor allowed, as the snippet (or the middleware) knows them; None: unknown.
    consent: frozenset[Category] | None
    received_at: datetime
    client_ip: str | None = field(repr=False)
    user_agent: str = field(repr=False)
    gpc: bool = False
    dnt: bool = False
    prefetch_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
