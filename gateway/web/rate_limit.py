"""A per-reader limit on filtered queries from shared links and API keys (answered 429 with ``Retry-After``).

A filter narrows a figure to a group the reader chooses; enough of them, each answering "withheld"
or a figure, can still be combined (probing every country code, every "contains" prefix of a
campaign). The privacy floor makes each answer safe on its own; this limit makes the thousands of
questions such a search needs take days instead of seconds. Signed-in dashboard users are not
limited: they are accountable people with a role on the site.

A token bucket per reader (a shared link's id, an API key's id): ``burst`` requests at once, then
one more every ``window / limit``. ``reserve`` is synchronous and checks and records in one step,
so concurrent requests on one event loop can never both take the last token.

Each worker process holds its own buckets, so with ``workers = N`` a reader gets at most N times
the limit; a restart forgets them (a reader starts with a full burst, nothing more).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import Clock

#: The window ``filtered_query_limit`` counts over.
WINDOW = timedelta(minutes=10)
#: Requests let through at once: this many, or a sixth of a larger limit (never more than the limit).
MAX_BURST = 10
#: Readers remembered per process. Readers are links and keys an owner made, so this is only
#: reached on a very large install; the least recently seen reader is forgotten first, and a
#: forgotten reader starts again with a full burst (what a restart does too).
READER_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class _Bucket:
    tokens: float
    updated: datetime


class FilteredQueryLimit:
    """How many filtered queries each reader may still make; one instance per app, made in ``create_app``."""

    def __init__(
        self, *, limit: int, clock: Clock, window: timedelta = WINDOW, capacity: int = READER_CAPACITY
    ) -> None:
        if limit < 1 or capacity < 1 or window <= timedelta(0):
            raise ValueError("limit and capacity must be positive, and the window longer than zero")
        self.limit = limit
        self.burst = min(limit, max(MAX_BURST, limit // 6))
        self._per_second = limit / window.total_seconds()
        self._clock = clock
        self._capacity = capacity
        #: reader -> bucket, least recently seen first (bounded: see READER_CAPACITY).
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def reserve(self, reader: str) -> int:
        """Take one request for ``reader``: 0 if it may go ahead, else the whole seconds to wait.

        No await between the check and the record: the reservation is atomic on the event loop.
        """
        now = self._clock.now()
        bucket = self._buckets.get(reader)
        tokens = float(self.burst)
        if bucket is not None:
            elapsed = max((now - bucket.updated).total_seconds(), 0.0)
            tokens = min(float(self.burst), bucket.tokens + elapsed * self._per_second)
            self._buckets.move_to_end(reader)
        if tokens >= 1.0:
            self._buckets[reader] = _Bucket(tokens - 1.0, now)
            wait = 0
        else:
            self._buckets[reader] = _Bucket(tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / self._per_second))
        while len(self._buckets) > self._capacity:
            self._buckets.popitem(last=False)
        return wait
