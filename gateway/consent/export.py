"""A site's proof-of-consent log for a range of days, as CSV or JSON: evidence for a regulator.

Streamed end to end: the records are read in keyset pages (``site_records``) and each page
becomes one chunk of text, so a year of records never sits in memory; the CLI writes the chunks
to a file and the HTTP endpoints send them as they come. The days are the site's own (its time
zone), both included. CSV cells that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return) get a leading ``'`` (OWASP's advice on CSV
injection). Records made before banners were stored have no ``revision``: their ``banner_hash``
still identifies the banner, but its texts were not kept.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from gateway.categories import CONSENT_CATEGORIES
from gateway.consent.records import ConsentRecord, PolicyRevision
from gateway.settings import SiteSettings
from gateway.storage.consent_log import EXPORT_PAGE, site_records
from gateway.storage.policy_revisions import revisions_by_hash
from gateway.storage.store import Store

ExportFormat = Literal["csv", "json"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "json")
#: The longest range one export covers: a year and a little, so "last year" fits in one file.
MAX_DAYS = 400
MEDIA_TYPES: dict[ExportFormat, str] = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
CSV_COLUMNS = (
    "consent_id",
    "recorded_at",
    "method",
    "policy_revision",
    "banner_hash",
    "revision",
    *CONSENT_CATEGORIES,
    "services",
    "gpc",
    "language",
    "page_path",
    "ip_network",
    "ua_family",
    "expires_at",
    "erased",
    "country",
    "device",
)
NO_REVISION_NOTE = (
    'A record\'s "revision" names the stored banner it answered. It is null for records made before banners '
    'were stored: their "banner_hash" still identifies the banner, but its texts were not kept.'
)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII only: date.fromisoformat also takes 20260101
_FORMULA_START = frozenset("=+-@\t\r")


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """Which records (a site's days, both included) and how (format, with the revisions or not)."""

    site: SiteSettings
    first: date
    last: date
    format: ExportFormat = "csv"
    revisions: bool = False

    @property
    def start(self) -> datetime:
        """The first instant of ``first`` in the site's time zone."""
        return datetime.combine(self.first, time(), tzinfo=self.site.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after ``last`` in the site's time zone (excluded)."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=self.site.zone).astimezone(UTC)

    @property
    def filename(self) -> str:
        return f"consent-log-{self.site.id}-{self.first.isoformat()}-{self.last.isoformat()}.{self.format}"


def parse_day(text: str | None, name: str) -> date:
    if not text:
        raise ExportError(f"'{name}' is required: a day as YYYY-MM-DD")
    if not _DAY.fullmatch(text):
        raise ExportError(f"'{name}' is not a day as YYYY-MM-DD: {text[:40]!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ExportError(f"'{name}' is not a day of the calendar: {text[:40]!r}") from None


def parse_export(
    site: SiteSettings, first: str | None, last: str | None, fmt: str | None = None, *, revisions: bool = False
) -> ExportRequest:
    """The export asked for, or an ``ExportError`` saying what is wrong (bad or reversed days, too long a
    range, an unknown format, revisions in CSV)."""
    start, end = parse_day(first, "from"), parse_day(last, "to")
    if end < start:
        raise ExportError(f"'to' ({end.isoformat()}) is before 'from' ({start.isoformat()})")
    if (end - start).days + 1 > MAX_DAYS:
        raise ExportError(f"the range is {(end - start).days + 1} days: at most {MAX_DAYS} days per export")
    if start == date.min or end == date.max:
        raise ExportError("'from' and 'to' are too close to the ends of the calendar")
    chosen = next((name for name in FORMATS if name == (fmt or "csv")), None)
    if chosen is None:
        raise ExportError(f"the format is csv or json, found {(fmt or '')[:40]!r}")
    if revisions and chosen != "json":
        raise ExportError("the revisions are part of the JSON export only: ask for format json")
    return ExportRequest(site, start, end, chosen, revisions)


async def export_consent_log(db: Store, request: ExportRequest, *, page_size: int = EXPORT_PAGE) -> AsyncIterator[str]:
    """The export as chunks of text: a header, then one chunk per page of records, then the end."""
    pages = site_records(db, request.site.id, request.start, request.end, page_size=page_size)
    if request.format == "csv":
        yield _csv_rows([CSV_COLUMNS])
        async for page in pages:
            yield _csv_rows(_csv_row(record) for record in page)
        return
    head = {"site": request.site.id, "from": request.first.isoformat(), "to": request.last.isoformat()}
    head |= {"timezone": request.site.timezone, "note": NO_REVISION_NOTE}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "records": ['
    referenced: set[str] = set()
    separator = "\n"
    async for page in pages:
        referenced.update(record.revision_hash for record in page if record.revision_hash)
        yield separator + ",\n".join(json.dumps(record.to_json(), ensure_ascii=False) for record in page)
        separator = ",\n"
    if not request.revisions:
        yield "\n]}\n"
        return
    stored = await revisions_by_hash(db, request.site.id, referenced)
    revisions = {content_hash: _revision_json(stored[content_hash]) for content_hash in sorted(stored)}
    yield '\n], "revisions": ' + json.dumps(revisions, ensure_ascii=False) + "}\n"


def _revision_json(revision: PolicyRevision) -> dict[str, Any]:
    """``content`` is the exact text hashed: sha256(content) is the records' ``banner_hash``."""
    return {
        "revision": revision.revision,
        "language": revision.language,
        "shown": revision.shown(),
        "content": revision.content,
    }


def _csv_row(record: ConsentRecord) -> list[object]:
    return [
        record.consent_id,
        record.recorded_at.isoformat(),
        record.method,
        record.policy_revision,
        record.banner_hash,
        record.revision_hash or "",
        *(_yes_no(record.categories.get(category)) for category in CONSENT_CATEGORIES),
        json.dumps(dict(record.services), sort_keys=True, ensure_ascii=False),
        _yes_no(record.gpc),
        record.language or "",
        record.page_path or "",
        record.ip_network or "",
        record.ua_family or "",
        record.expires_at.isoformat() if record.expires_at else "",
        _yes_no(record.erased),
        record.country or "",
        record.device or "",
    ]


def _yes_no(value: bool | None) -> str:
    return "" if value is None else "true" if value else "false"


def _csv_rows(rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()


def safe_cell(value: object) -> object:
    """``value``, with a leading ``'`` when a spreadsheet would read it as a formula."""
    if isinstance(value, str) and value[:1] in _FORMULA_START:
        return "'" + value
    return value
