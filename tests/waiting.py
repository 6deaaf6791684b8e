"""Waiting on a condition, never on the clock: tests poll what they are about to assert.

A fixed sleep is a guess about how fast the machine is. It is too short when other work loads
the cores (the test fails on nothing) and too long everywhere else (the suite is slow). These
helpers return as soon as the condition holds and fail, saying what never happened, only after
a deadline generous enough for a busy 2-core machine.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds a condition gets before the test fails: long for a loaded machine; a passing test never waits it out.
DEADLINE_SECONDS = 60.0


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = DEADLINE_SECONDS,
    interval: float = 0.02,
    message: str | Callable[[], str] = "the condition never held",
) -> T:
    """``condition()``'s first truthy value, polled every ``interval`` seconds for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout:g} s: {message() if callable(message) else message}")
        time.sleep(interval)


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = DEADLINE_SECONDS,  # noqa: ASYNC109 - polls a predicate: nothing to wrap in asyncio.timeout
    interval: float = 0.01,
    message: str | Callable[[], str] = "the condition never held",
) -> T:
    """``wait_until`` inside an event loop: yields to the loop between polls, so the awaited work runs.
    ``condition`` may be a coroutine function (a poll that itself reads a store)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # awaited above when it was awaitable
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout:g} s: {message() if callable(message) else message}")
        await asyncio.sleep(interval)
