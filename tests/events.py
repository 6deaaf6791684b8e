"""Anonymous events for tests: every field filled with a plain default, any of them overridable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.ingest.event import AnonymousEvent


def anonymous_event(ts: datetime, visitor: str, path: str = "/", **fields: Any) -> AnonymousEvent:
    """A pageview on shop.example.com by ``visitor`` at ``ts``, direct, Chrome on Linux, no geo."""
    values: dict[str, Any] = {
        "site_id": "shop",
        "ts": ts,
        "name": "pageview",
        "visitor_id": visitor,
        "previous_visitor_id": None,
        "hostname": "shop.example.com",
        "pathname": path,
        "referrer_host": None,
        "source": "Direct / None",
        "channel": "direct",
        "utm_source": None,
        "utm_medium": None,
        "utm_campaign": None,
        "utm_content": None,
        "utm_term": None,
        "country": None,
        "region": None,
        "city": None,
        "browser": "Chrome",
        "browser_version": "124.0",
        "os": "Linux",
        "os_version": "",
        "device": "desktop",
        "screen": "laptop",
        "props": {},
        "consent": frozenset(),
    }
    values.update(fields)
    return AnonymousEvent(**values)
