"""The stored event: its shape, defined once, and the columns and rows derived from it.

``AnonymousEvent`` is everything that is ever written or forwarded about an event (ingest builds it,
gateway/ingest/pipeline.py ``anonymise``); storage keeps it here so that ``storage/`` imports nothing
from ``ingest/``. The ``events`` columns, the row tuples that cross to the writer process and the
rows ``insert_events`` writes are all read off the dataclass's fields, so adding a field is one edit
here plus a migration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import TypeVar, dataclass_transform

from gateway.categories import Category

_Value = TypeVar("_Value")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def per_event_value(cls: type[_Value]) -> type[_Value]:
    """``@dataclass(frozen=True, slots=True)`` to the type checker, a plain slots dataclass at run time.

    Two of these are built for every event. A frozen dataclass sets each field through
    ``object.__setattr__``, which for the 26 fields of ``AnonymousEvent`` costs 4 µs against 0.3 µs
    for plain slots: measurable at thousands of events a second on one core. mypy (strict, over all
    of ``gateway/``) still refuses any assignment to a field, and equality and hashing stay those of
    a frozen dataclass.
    """
    decorate: Callable[[type[_Value]], type[_Value]] = dataclass(slots=True, unsafe_hash=True)
    return decorate(cls)


@per_event_value
class AnonymousEvent:
    site_id: str
    ts: datetime
    name: str
    visitor_id: str
    #: The same visitor under yesterday's salt, only in the minutes after midnight when a
    #: visit may still continue; never stored.
    previous_visitor_id: str | None
    hostname: str
    pathname: str
    referrer_host: str | None
    source: str
    channel: str
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_content: str | None
    utm_term: str | None
    country: str | None
    region: str | None
    city: str | None
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str
    screen: str | None
    props: Mapping[str, str]
    consent: frozenset[Category]


#: The record's fields in order: the only shape that crosses to the writer process (``event_row``).
EVENT_FIELDS: tuple[str, ...] = tuple(item.name for item in fields(AnonymousEvent))
#: One C call an event (``attrgetter`` with several names returns a tuple).
event_row: Callable[[AnonymousEvent], tuple[object, ...]] = attrgetter(*EVENT_FIELDS)

#: Fields stored as they are; ``ts``, ``props`` and ``consent`` are converted to text, and
#: ``previous_visitor_id`` is used to continue a visit but never stored.
_CONVERTED = ("ts", "props", "consent")
_NOT_STORED = ("previous_visitor_id",)
_PLAIN_COLUMNS = tuple(name for name in EVENT_FIELDS if name not in _CONVERTED + _NOT_STORED)
#: The ``events`` columns ``stored_row`` fills, in its order; ``visit_id`` comes from the visit the event joins.
EVENT_COLUMNS: tuple[str, ...] = (*_PLAIN_COLUMNS, *_CONVERTED, "visit_id")
_plain_values: Callable[[AnonymousEvent], tuple[object, ...]] = attrgetter(*_PLAIN_COLUMNS)
#: ``json.dumps(props, ensure_ascii=False, sort_keys=True)`` without building an encoder per call.
_props_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def stored_row(event: AnonymousEvent, ts: str, visit_id: int) -> tuple[object, ...]:
    """The ``events`` row of ``event`` in ``EVENT_COLUMNS`` order; ``ts`` is its ISO-8601 text."""
    return (
        *_plain_values(event),
        ts,
        _props_json(dict(event.props)) if event.props else "{}",
        ",".join(sorted(event.consent)) if event.consent else "",
        visit_id,
    )


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """One forwarder's batch of events, as stored in the outbox in the transaction of its events."""

    forwarder: str
    #: A JSON array of event objects.
    payload: str
    event_count: int
