"""Each local day's stored visits as columns, one value per (site, day): what a filtered view reads.

Read as rows (``visit_days``), the first request of a filtered 30-day view at 10M events spent 10-15 s
in SQL finding each matching visit through an index and grouping it once per panel, ~20 us a visit.
A day pack holds the same visits column by column (each dimension's values as small integer codes and
their words once), and the pages and custom events of each visit the same way, in one value of a few
megabytes; a view reads one per day and counts with numpy (``gateway.stats.pack_figures``), whatever
its filters: no index to choose, no lookup per visit, every panel from the same arrays.

A pack is written in the transaction that writes the day's ``visit_days`` rows and generation, so a
day's pack is as current as its generation; a deleted visit (retention, erasure) deletes the packs of
its days, and ``visit_days.stale_days`` then builds them again from what is left (migration 0026).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.storage.sql import Connection
from gateway.storage.store import Store

Array = npt.NDArray[Any]
#: The per-visit numbers of a pack, as ``visit_days`` stores them.
FIGURES = ("visitor", "pageviews", "events", "bounce", "duration", "started", "visit_pageviews", "visit_events")
_FORMAT = 1
_HEADER = struct.Struct("<I")
_ALIGN = 8
_SELECT = "SELECT day, pack FROM visit_day_packs WHERE site_id = ? AND day IN ({days})"  # noqa: S608 (marks only)
# An upsert: two nodes storing the same day at once both end with one pack (a delete and an insert
# would leave the second's insert in conflict with the first's on PostgreSQL).
_STORE = """
INSERT INTO visit_day_packs (site_id, day, pack) VALUES (?, ?, ?)
ON CONFLICT (site_id, day) DO UPDATE SET pack = excluded.pack
"""


class Column:
    """One dimension of a day's visits (or of its visits' pages or events): a code per row, and the
    value each code stands for, decoded the first time it is asked for (a view reads a few of a pack's
    twenty columns: decoding every column's words was a third of reading the pack)."""

    __slots__ = ("_text", "_words", "codes")

    def __init__(self, codes: Array, text: bytes) -> None:
        self.codes = codes
        self._text = text
        self._words: tuple[str, ...] | None = None

    @property
    def words(self) -> tuple[str, ...]:
        if self._words is None:
            self._words = tuple(json.loads(self._text))
        return self._words

    def code_of(self, word: str) -> int | None:
        try:
            return self.words.index(word)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Facts:
    """An event dimension of a day's visits: a row per visit and value (the visit's index in the pack)."""

    visit: Array
    column: Column
    pageviews: Array
    events: Array


@dataclass(frozen=True, slots=True)
class DayPack:
    """A day's visits: ``figures[name][i]`` and ``columns[dimension].codes[i]`` of visit ``i``, and the
    rows of each event dimension. ``size`` is the bytes it was read from (and holds on to)."""

    visits: int
    figures: Mapping[str, Array]
    columns: Mapping[str, Column]
    facts: Mapping[str, Facts]
    size: int


def _narrow(values: Sequence[int]) -> Array:
    """The smallest unsigned (or signed, for negatives) integer array that holds ``values``."""
    array = np.asarray(values, dtype=np.int64)
    if not array.size:
        return array.astype(np.uint8)
    low, high = int(array.min()), int(array.max())
    for kind in (np.uint8, np.uint16, np.uint32) if low >= 0 else (np.int16, np.int32):
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return array.astype(kind)
    return array


def _encode(words: Sequence[str]) -> tuple[Array, str]:
    """Codes for ``words`` (0 for the first seen...) and the words they stand for, as JSON text."""
    index: dict[str, int] = {}
    codes = [index.setdefault(word, len(index)) for word in words]
    return _narrow(codes), json.dumps(list(index), ensure_ascii=False, separators=(",", ":"))


def pack(
    visits: Sequence[Sequence[Any]],
    dimensions: Sequence[str],
    facts: Mapping[str, Sequence[Sequence[Any]]],
) -> bytes:
    """A day pack of ``visits`` (rows of visit id, then ``FIGURES``, then ``dimensions``' values) and
    ``facts`` (per event dimension, rows of visit id, value, pageviews, events).

    Its bytes: the length of a JSON header, the header (``format``, the visits, each array's name, type
    and length, each column's words as JSON text), then the arrays, each at a multiple of 8 bytes."""
    arrays: list[tuple[str, Array]] = []
    words: dict[str, str] = {}
    position = {visit[0]: index for index, visit in enumerate(visits)}
    for offset, name in enumerate(FIGURES, start=1):
        arrays.append((f"f.{name}", _narrow([int(visit[offset]) for visit in visits])))
    for offset, dimension in enumerate(dimensions, start=1 + len(FIGURES)):
        codes, words[f"c.{dimension}"] = _encode([str(visit[offset]) for visit in visits])
        arrays.append((f"c.{dimension}", codes))
    for dimension, rows in facts.items():
        known = [row for row in rows if row[0] in position]
        codes, words[f"e.{dimension}"] = _encode([str(row[1]) for row in known])
        arrays.append((f"e.{dimension}.visit", _narrow([position[row[0]] for row in known])))
        arrays.append((f"e.{dimension}.code", codes))
        arrays.append((f"e.{dimension}.pageviews", _narrow([int(row[2]) for row in known])))
        arrays.append((f"e.{dimension}.events", _narrow([int(row[3]) for row in known])))
    layout = [(name, array.dtype.str, array.size) for name, array in arrays]
    header = {"format": _FORMAT, "visits": len(visits), "layout": layout, "words": words}
    text = json.dumps(header, separators=(",", ":")).encode()
    parts = [_HEADER.pack(len(text)), text]
    size = _HEADER.size + len(text)
    for _, array in arrays:
        padding = -size % _ALIGN
        parts.append(b"\0" * padding)
        parts.append(array.tobytes())
        size += padding + array.nbytes
    return b"".join(parts)


def unpack(data: bytes) -> DayPack:
    """The ``DayPack`` of ``pack``'s bytes; the arrays are views of ``data`` (read-only, no copy)."""
    (length,) = _HEADER.unpack_from(data)
    header = json.loads(data[_HEADER.size : _HEADER.size + length])
    if header.get("format") != _FORMAT:
        raise ValueError(f"a day pack of format {header.get('format')!r}, not {_FORMAT}")
    offset = _HEADER.size + length
    arrays: dict[str, Array] = {}
    for name, dtype, count in header["layout"]:
        offset += -offset % _ALIGN
        kind = np.dtype(dtype)
        arrays[name] = np.frombuffer(data, dtype=kind, count=count, offset=offset)
        offset += kind.itemsize * count
    words: dict[str, str] = header["words"]
    figures = {name: arrays[f"f.{name}"] for name in FIGURES}
    columns = {name[2:]: Column(arrays[name], words[name].encode()) for name in arrays if name.startswith("c.")}
    facts = {
        dimension: Facts(
            arrays[f"e.{dimension}.visit"],
            Column(arrays[f"e.{dimension}.code"], words[f"e.{dimension}"].encode()),
            arrays[f"e.{dimension}.pageviews"],
            arrays[f"e.{dimension}.events"],
        )
        for dimension in {name.split(".")[1] for name in arrays if name.startswith("e.")}
    }
    return DayPack(int(header["visits"]), figures, columns, facts, len(data))


def store(connection: Connection, site_id: str, day: str, data: bytes) -> None:
    """Store ``data`` as the pack of (``site_id``, ``day``), replacing any, in the caller's transaction."""
    connection.execute(_STORE, (site_id, day, data))


async def read(db: Store, site_id: str, days: Sequence[str]) -> dict[str, DayPack]:
    """``day -> DayPack`` of those of ``days`` that have one."""
    if not days:
        return {}
    rows = await db.fetch_large(_SELECT.format(days=", ".join("?" * len(days))), (site_id, *days))
    return {str(row[0]): unpack(bytes(row[1])) for row in rows}
