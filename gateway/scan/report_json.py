"""The scan report's JSON format, ``consent-gateway-scan/1`` (README, "Scanning a site"), both ways.

Reading is strict: a stored scan is data from disk or a database, so a wrong type or value is an error
naming its place (``cookies[3].states[0]``), never a half-read report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from gateway.categories import CATEGORIES, Category
from gateway.scan.classify import Suggestion
from gateway.scan.observations import STATES, State
from gateway.scan.report import FORMAT, CookieFinding, ScanReport, StorageFinding, ThirdParty, Violation

_T = TypeVar("_T")


class ScanFormatError(ValueError):
    """A stored scan report that is not ``consent-gateway-scan/1``; the message names the key."""


def report_to_json(report: ScanReport) -> dict[str, object]:
    return {
        "format": FORMAT,
        "url": report.url,
        "site": report.site,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat(),
        "banner": report.banner,
        "states_scanned": list(report.states_scanned),
        "notes": list(report.notes),
        "pages": list(report.pages),
        "cookies": [_cookie_json(cookie) for cookie in report.cookies],
        "storage": [
            {"key": s.key, "kind": s.kind, "category": s.category, "states": list(s.states), "pages": list(s.pages)}
            for s in report.storage
        ],
        "third_parties": [
            {
                "host": t.host,
                "category": t.category,
                "classified_by": t.classified_by,
                "loaded": list(t.loaded),
                "states": list(t.states),
                "pages": list(t.pages),
            }
            for t in report.third_parties
        ],
        "violations": [
            {
                "kind": v.kind,
                "what": v.what,
                "name": v.name,
                "host": v.host,
                "state": v.state,
                "page": v.page,
                "detail": v.detail,
            }
            for v in report.violations
        ],
        "summary": report.summary,
    }


def _cookie_json(cookie: CookieFinding) -> dict[str, object]:
    suggestion = cookie.suggestion
    return {
        "name": cookie.name,
        "domain": cookie.domain,
        "path": cookie.path,
        "category": cookie.category,
        "classified_by": cookie.classified_by,
        "declared": cookie.declared,
        "set_by": cookie.set_by,
        "set_by_url": cookie.set_by_url,
        "expires_days": cookie.expires_days,
        "http_only": cookie.http_only,
        "secure": cookie.secure,
        "same_site": cookie.same_site,
        "states": list(cookie.states),
        "pages": list(cookie.pages),
        "suggestion": None
        if suggestion is None
        else {"category": suggestion.category, "source": suggestion.source, "description": suggestion.description},
        "config": cookie.config,
    }


class _Object:
    """Typed reads from one JSON object, naming the place of a mistake."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, Mapping):
            raise ScanFormatError(f"{where or 'the report'}: expected an object, found {_short(value)}")
        self.data: Mapping[str, Any] = value
        self.where = where

    def _place(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, check: Callable[[object], bool], expected: str) -> Any:
        if key not in self.data:
            raise ScanFormatError(f"{self._place(key)}: missing (expected {expected})")
        value = self.data[key]
        if not check(value):
            raise ScanFormatError(f"{self._place(key)}: expected {expected}, found {_short(value)}")
        return value

    def text(self, key: str) -> str:
        return str(self.get(key, lambda v: isinstance(v, str), "a string"))

    def optional_text(self, key: str) -> str | None:
        value = self.get(key, lambda v: v is None or isinstance(v, str), "a string or null")
        return None if value is None else str(value)

    def flag(self, key: str) -> bool:
        return bool(self.get(key, lambda v: isinstance(v, bool), "true or false"))

    def choice(self, key: str, allowed: tuple[str | None, ...]) -> Any:
        return self.get(
            key, lambda v: v in allowed, "one of " + ", ".join(str(a).replace("None", "null") for a in allowed)
        )

    def time(self, key: str) -> datetime:
        text = self.text(key)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ScanFormatError(f"{self._place(key)}: expected an ISO 8601 time with its offset, found {text!r}")
        return moment

    def texts(self, key: str) -> tuple[str, ...]:
        return tuple(self.get(key, lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "strings"))

    def states(self, key: str) -> tuple[State, ...]:
        return tuple(self.get(key, lambda v: isinstance(v, list) and all(i in STATES for i in v), "a list of states"))

    def items(self, key: str, read: Callable[[_Object], _T]) -> tuple[_T, ...]:
        values = self.get(key, lambda v: isinstance(v, list), "a list")
        return tuple(read(_Object(value, f"{self._place(key)}[{index}]")) for index, value in enumerate(values))


_CATEGORIES: tuple[Category | None, ...] = (*CATEGORIES, None)


def report_from_json(data: object) -> ScanReport:
    top = _Object(data, "")
    if top.data.get("format") != FORMAT:
        raise ScanFormatError(f"format: expected {FORMAT!r}, found {_short(top.data.get('format'))}")
    return ScanReport(
        url=top.text("url"),
        site=top.optional_text("site"),
        started_at=top.time("started_at"),
        finished_at=top.time("finished_at"),
        banner=top.flag("banner"),
        states_scanned=top.states("states_scanned"),
        notes=top.texts("notes"),
        pages=top.texts("pages"),
        cookies=top.items("cookies", _cookie),
        storage=top.items(
            "storage",
            lambda item: StorageFinding(
                key=item.text("key"),
                kind=item.choice("kind", ("localStorage", "sessionStorage")),
                category=item.choice("category", _CATEGORIES),
                states=item.states("states"),
                pages=item.texts("pages"),
            ),
        ),
        third_parties=top.items(
            "third_parties",
            lambda item: ThirdParty(
                host=item.text("host"),
                category=item.choice("category", _CATEGORIES),
                classified_by=item.choice("classified_by", ("trackers", "catalog", None)),
                loaded=item.texts("loaded"),
                states=item.states("states"),
                pages=item.texts("pages"),
            ),
        ),
        violations=top.items(
            "violations",
            lambda item: Violation(
                kind=item.choice("kind", ("before_decision", "after_reject", "expiry_over_cap", "undeclared")),
                what=item.choice("what", ("cookie", "storage", "request")),
                name=item.optional_text("name"),
                host=item.optional_text("host"),
                state=item.choice("state", STATES),
                page=item.text("page"),
                detail=item.text("detail"),
            ),
        ),
    )


def _cookie(item: _Object) -> CookieFinding:
    suggestion = None
    if item.data.get("suggestion") is not None:
        found = _Object(item.data["suggestion"], item._place("suggestion"))
        suggestion = Suggestion(
            category=found.choice("category", CATEGORIES),
            source=found.choice("source", ("site", "catalog", "opencookiedb")),
            description=found.text("description"),
        )
    expires = item.get(
        "expires_days",
        lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e7),
        "a number of days or null",
    )
    return CookieFinding(
        name=item.text("name"),
        domain=item.text("domain"),
        path=item.text("path"),
        category=item.choice("category", _CATEGORIES),
        classified_by=item.choice("classified_by", ("site", "catalog", "opencookiedb", None)),
        declared=item.flag("declared"),
        set_by=item.choice("set_by", ("header", "script")),
        set_by_url=item.text("set_by_url"),
        expires_days=None if expires is None else float(expires),
        http_only=item.flag("http_only"),
        secure=item.flag("secure"),
        same_site=item.optional_text("same_site"),
        states=item.states("states"),
        pages=item.texts("pages"),
        suggestion=suggestion,
        config=item.optional_text("config"),
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
