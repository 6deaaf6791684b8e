"""The limit on filtered queries from shared links and API keys: the bucket itself, then a live server
hit by 40 concurrent filtered requests per reader (the probing attack of issue 10 needs hundreds).

Signed-in viewers and unfiltered requests are not limited; each link and each key has its own bucket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import create_app
from gateway.accounts.api_keys import create_api_key
from gateway.accounts.shared_links import SharedLinks
from gateway.clock import FixedClock
from gateway.settings import SettingsError
from gateway.storage.store import Store
from gateway.web.rate_limit import MAX_BURST, FilteredQueryLimit
from tests.conftest import make_settings, site_config
from tests.web.test_dashboard_auth import on_database

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
CONCURRENT = 40
PERIOD = {"period": "custom", "from": "2026-03-10", "to": "2026-03-10"}


# The bucket.


def test_a_reader_gets_a_burst_then_one_request_per_share_of_the_window() -> None:
    clock = FixedClock(NOW)
    limit = FilteredQueryLimit(limit=60, clock=clock)  # one every 10 seconds, 10 at once
    assert [limit.reserve("link:1") for _ in range(MAX_BURST)] == [0] * MAX_BURST
    assert limit.reserve("link:1") == 10  # seconds until the next token
    assert limit.reserve("key:1") == 0  # another reader has its own bucket
    clock.advance(timedelta(seconds=9))
    assert limit.reserve("link:1") == 1
    clock.advance(timedelta(seconds=1))
    assert limit.reserve("link:1") == 0 and limit.reserve("link:1") == 10
    clock.advance(timedelta(hours=1))  # a full bucket again, never more than the burst
    assert [limit.reserve("link:1") for _ in range(MAX_BURST + 1)][-2:] == [0, 10]


def test_a_small_limit_is_its_own_burst_and_the_readers_kept_are_bounded() -> None:
    clock = FixedClock(NOW)
    limit = FilteredQueryLimit(limit=2, clock=clock, capacity=3)
    assert [limit.reserve("a") for _ in range(3)] == [0, 0, 300]
    for reader in ("b", "c", "d"):
        limit.reserve(reader)
    assert len(limit._buckets) == 3  # "a", the least recently seen, was forgotten
    with pytest.raises(ValueError):
        FilteredQueryLimit(limit=0, clock=clock)


@pytest.mark.parametrize("value", [0, -1, "60", 1.5, True])
def test_the_setting_is_validated(tmp_path: Path, value: object) -> None:
    with pytest.raises(SettingsError, match="filtered_query_limit: expected a whole number from 1 to 100000"):
        make_settings(tmp_path, filtered_query_limit=value)
    assert make_settings(tmp_path).filtered_query_limit == 60


# On a live server.


class Readers:
    def __init__(self, tmp_path: Path, start: Any) -> None:
        self.settings = make_settings(tmp_path, sites={"shop": site_config()}, filtered_query_limit=60)

        async def work(db: Store) -> tuple[str, str, str]:
            _, key = await create_api_key(db, "shop", "script", now=NOW)
            _, other_key = await create_api_key(db, "shop", "other script", now=NOW)
            _, token = await SharedLinks(db, self.settings.secret_keys).create(
                "shop", label="", expires_at=None, password=None, now=NOW
            )
            return key, other_key, token

        self.key, self.other_key, token = on_database(self.settings, work)
        self.share = f"/share/{token}"
        self.server = start(create_app(self.settings, clock=FixedClock(NOW)))

    def burst(self, path: str, params: dict[str, Any], headers: dict[str, str] | None = None) -> list[httpx.Response]:
        """``CONCURRENT`` requests sent at once on as many connections."""

        async def send() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=CONCURRENT)
            async with httpx.AsyncClient(base_url=self.server.url, timeout=60, limits=limits) as client:
                return await asyncio.gather(
                    *(client.get(path, params=params, headers=headers) for _ in range(CONCURRENT))
                )

        return asyncio.run(send())


@pytest.fixture
def readers(tmp_path: Path, live_server: Any) -> Iterator[Readers]:
    yield Readers(tmp_path, live_server)


def _statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for response in responses:
        counted[response.status_code] = counted.get(response.status_code, 0) + 1
    return counted


@pytest.mark.integration
def test_concurrent_filtered_api_requests_let_only_the_burst_through(readers: Readers) -> None:
    bearer = {"authorization": f"Bearer {readers.key}"}
    params = {"site_id": "shop", **PERIOD, "f": "utm_campaign~=secret"}
    responses = readers.burst("/api/v1/stats/aggregate", params, bearer)
    assert _statuses(responses) == {200: MAX_BURST, 429: CONCURRENT - MAX_BURST}
    refused = next(response for response in responses if response.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many filtered queries" in refused.json()["error"]
    assert refused.headers["content-type"].startswith("application/json")
    # Unfiltered requests are not limited; another key has its own budget.
    assert _statuses(readers.burst("/api/v1/stats/aggregate", {"site_id": "shop", **PERIOD}, bearer)) == {
        200: CONCURRENT
    }
    other = {"authorization": f"Bearer {readers.other_key}"}
    assert _statuses(readers.burst("/api/v1/stats/aggregate", params, other))[200] == MAX_BURST


@pytest.mark.integration
def test_concurrent_filtered_shared_link_pages_let_only_the_burst_through(readers: Readers) -> None:
    responses = readers.burst(readers.share, {**PERIOD, "f": "country==CN"})
    assert _statuses(responses) == {200: MAX_BURST, 429: CONCURRENT - MAX_BURST}
    refused = next(response for response in responses if response.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"].startswith("text/html") and "Too many filtered views" in refused.text
    assert _statuses(readers.burst(f"{readers.share}/goals", PERIOD)) == {200: CONCURRENT}
