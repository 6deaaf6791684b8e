"""/metrics sums every worker process: each publishes snapshots to the shared database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.clock import FixedClock
from gateway.metrics import Metrics, MetricsPublisher
from gateway.storage.db import Database

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def _value(text: str, line_start: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(line_start)).rsplit(" ", 1)[1])


def test_a_scrape_of_one_worker_shows_all_live_workers(tmp_path: Path) -> None:
    clock = FixedClock(NOW)

    async def scenario() -> tuple[str, str]:
        db = await Database(tmp_path / "db.sqlite3").open()
        try:
            first, second, gone = Metrics(), Metrics(), Metrics()
            first.inc("consent_gateway_events_accepted_total", 3)
            second.inc("consent_gateway_events_accepted_total", 4)
            second.inc("consent_gateway_events_dropped_total", reason="bot")
            first.set_max("consent_gateway_commit_seconds_max", 0.25)
            second.set_max("consent_gateway_commit_seconds_max", 0.5)
            gone.inc("consent_gateway_events_accepted_total", 100)
            publishers = [MetricsPublisher(db, m, clock) for m in (first, second, gone)]
            clock.current = NOW - timedelta(minutes=5)
            await publishers[2].publish()  # a worker that stopped five minutes ago
            clock.current = NOW
            await publishers[1].publish()
            first.inc("consent_gateway_events_accepted_total", 1)  # not yet published: still counted live
            seen_by_first = await publishers[0].render()
            await publishers[0].publish()
            seen_by_second = await publishers[1].render()
            return seen_by_first, seen_by_second
        finally:
            await db.close()

    by_first, by_second = asyncio.run(scenario())
    for text in (by_first, by_second):
        assert _value(text, "consent_gateway_events_accepted_total ") == 8  # 4 + 4, the gone worker left out
        assert _value(text, 'consent_gateway_events_dropped_total{reason="bot"}') == 1
        assert _value(text, "consent_gateway_commit_seconds_max ") == 0.5  # maxima merge by max
