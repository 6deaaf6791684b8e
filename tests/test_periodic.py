"""Background upkeep that fails: a store that is down is one log line per try, a bug keeps its traceback."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from gateway.periodic import Periodic

LOG = logging.getLogger("tests.periodic")


def _run_one_failing_step(error: Exception) -> None:
    async def scenario() -> None:
        tried = asyncio.Event()

        async def step() -> None:
            tried.set()
            raise error

        task = Periodic("upkeep", step, 3600, LOG)
        await task.start()
        await tried.wait()
        await task.stop()  # the failure is logged before the task waits for its next round

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("message", "cause"),
    [("database or disk is full", "the disk is full"), ("attempt to write a readonly database", "read-only")],
)
def test_a_store_that_is_down_logs_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture, message: str, cause: str
) -> None:
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        _run_one_failing_step(sqlite3.OperationalError(message))
    [record] = caplog.records
    assert cause in record.getMessage() and "retrying" in record.getMessage()
    assert record.exc_info is None and "\n" not in caplog.text.strip()


def test_a_bug_in_a_step_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        _run_one_failing_step(ValueError("a bug"))
    [record] = caplog.records
    assert record.exc_info is not None and "Traceback" in caplog.text
