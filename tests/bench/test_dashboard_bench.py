"""bench/dashboard.py runs on both stores: a small generated file measured as the 10M one is.

On PostgreSQL the file goes through the bench's own load (migrate-store's copy into a database the
bench creates, ANALYZE, the rollups rebuilt with PostgreSQL's SQL); the raw-events baseline then
proves the copied rollups answer the overview's top line as raw events do, and each filtered view is
answered. Without this, the bench's PostgreSQL path would only be exercised by a 20-minute 10M run.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bench.dashboard_data import generate
from tests.stores import PostgresServer, postgres_server_or_skip

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # the bench's own imports

import dashboard  # noqa: E402
from stores import BenchStore  # noqa: E402

EVENTS = 3_000


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_bench_measures_both_stores(kind: str, tmp_path: Path, postgres_server: PostgresServer | None) -> None:
    path = tmp_path / "bench.sqlite3"
    generate(path, events=EVENTS, days=3, end=dashboard.END)
    store = BenchStore(kind, tmp_path)
    if kind == "postgresql":
        store.admin_url = postgres_server_or_skip(postgres_server).admin_url
    try:
        database = str(path) if kind == "sqlite" else dashboard.load_postgres(path, store, "t", rebuild_rollups=True)
        result = asyncio.run(dashboard.measure(EVENTS, database, 1))
        on_disk = dashboard.bytes_on_disk(store, database)
        assert store.count_events(database) == EVENTS
    finally:
        store.close()
    assert result["raw_matches"] is True
    assert result["top_line"]  # the overview rendered its figures
    assert set(result["filtered_first_ms"]) == set(dashboard.FILTERED_VIEWS)  # type: ignore[arg-type]
    summary = dashboard.summarise("3k", [result, result], on_disk, EVENTS)
    assert summary["filtered_first_ms_3k"] == max(result["filtered_first_ms"].values())  # type: ignore[attr-defined]
    assert summary["mb_per_million_events_3k"] == round(on_disk / EVENTS, 1)
    assert on_disk > 0
