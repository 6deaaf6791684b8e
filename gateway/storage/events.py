"""SQL for anonymous events and the visits they form (one transaction per batch)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import timedelta

from gateway.ingest.event import AnonymousEvent

VISIT_TIMEOUT = timedelta(minutes=30)

_FIND_OPEN_VISIT = """
SELECT id, visitor_id, started_at FROM visits
WHERE site_id = ? AND visitor_id IN (?, ?) AND last_seen >= ?
ORDER BY last_seen DESC LIMIT 1
"""
_NEW_VISIT = """
INSERT INTO visits (site_id, visitor_id, started_at, last_seen, entry_page, exit_page, pageviews, events)
VALUES (?, ?, ?, ?, ?, ?, ?, 1)
"""
_CONTINUE_VISIT = """
UPDATE visits SET
    last_seen = max(last_seen, ?),
    exit_page = CASE WHEN ? THEN ? ELSE exit_page END,
    pageviews = pageviews + ?,
    events = events + 1
WHERE id = ?
"""
_INSERT_EVENT = """
INSERT INTO events (
    site_id, ts, name, visitor_id, visit_id, hostname, pathname, referrer_host, source, channel,
    utm_source, utm_medium, utm_campaign, utm_content, utm_term, country, region, city,
    browser, browser_version, os, os_version, device, screen, props, consent
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_MARK_DIRTY = "INSERT OR IGNORE INTO rollup_dirty (site_id, day) VALUES (?, ?)"


def insert_events(connection: sqlite3.Connection, events: Sequence[AnonymousEvent]) -> None:
    """Store ``events`` in order, opening or continuing visits (30 minutes of inactivity ends one)."""
    dirty: set[tuple[str, str]] = set()
    for event in events:
        ts = event.ts.isoformat()
        is_pageview = event.name == "pageview"
        row = connection.execute(
            _FIND_OPEN_VISIT,
            (
                event.site_id,
                event.visitor_id,
                event.previous_visitor_id or event.visitor_id,
                (event.ts - VISIT_TIMEOUT).isoformat(),
            ),
        ).fetchone()
        if row is None:
            cursor = connection.execute(
                _NEW_VISIT,
                (event.site_id, event.visitor_id, ts, ts, event.pathname, event.pathname, int(is_pageview)),
            )
            visit_id, visitor = cursor.lastrowid, event.visitor_id
        else:
            visit_id, visitor = row[0], event.visitor_id
            if row[1] != event.visitor_id:  # found under yesterday's salt: re-key it to today's id so the
                # visit can go on after yesterday's salt is deleted (30 minutes after midnight)
                connection.execute("UPDATE visits SET visitor_id = ? WHERE id = ?", (event.visitor_id, visit_id))
            connection.execute(_CONTINUE_VISIT, (ts, is_pageview, event.pathname, int(is_pageview), visit_id))
        connection.execute(
            _INSERT_EVENT,
            (
                event.site_id,
                ts,
                event.name,
                visitor,
                visit_id,
                event.hostname,
                event.pathname,
                event.referrer_host,
                event.source,
                event.channel,
                event.utm_source,
                event.utm_medium,
                event.utm_campaign,
                event.utm_content,
                event.utm_term,
                event.country,
                event.region,
                event.city,
                event.browser,
                event.browser_version,
                event.os,
                event.os_version,
                event.device,
                event.screen,
                json.dumps(dict(event.props), ensure_ascii=False, sort_keys=True),
                ",".join(sorted(event.consent)),
            ),
        )
        dirty.add((event.site_id, ts[:10]))
    connection.executemany(_MARK_DIRTY, sorted(dirty))
