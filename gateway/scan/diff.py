"""What changed between two scan reports (format ``consent-gateway-scan/1``): the Compliance page's
"since the last scan".

Reports are compared by identity, not by figures: a cookie is its (name, domain, path), a third
party its host, a violation its (kind, what, name or host, state) — not its page, so a violation
seen on another page of an unchanged site is neither new nor fixed. Reads plain JSON objects, so
a report stored by any version of the scanner that wrote format 1 compares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CookieKey = tuple[str, str, str]
ViolationKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class ScanDiff:
    """Each list sorted; every entry is the report's own object (of the newer report, or the older for what went)."""

    new_cookies: tuple[Mapping[str, Any], ...]
    gone_cookies: tuple[Mapping[str, Any], ...]
    new_third_parties: tuple[Mapping[str, Any], ...]
    gone_third_parties: tuple[Mapping[str, Any], ...]
    new_violations: tuple[Mapping[str, Any], ...]
    fixed_violations: tuple[Mapping[str, Any], ...]

    @property
    def unchanged(self) -> bool:
        return not any(
            (
                self.new_cookies,
                self.gone_cookies,
                self.new_third_parties,
                self.gone_third_parties,
                self.new_violations,
                self.fixed_violations,
            )
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def cookie_key(cookie: Mapping[str, Any]) -> CookieKey:
    return (_text(cookie.get("name")), _text(cookie.get("domain")), _text(cookie.get("path")))


def host_key(third_party: Mapping[str, Any]) -> str:
    return _text(third_party.get("host"))


def violation_key(violation: Mapping[str, Any]) -> ViolationKey:
    subject = _text(violation.get("name")) or _text(violation.get("host"))
    return (_text(violation.get("kind")), _text(violation.get("what")), subject, _text(violation.get("state")))


def _entries(report: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    entries = report.get(field)
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, Mapping)]


def _changes(
    old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]
) -> tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...]]:
    """(in ``new`` only, in ``old`` only), each first-of-its-key and sorted by key."""
    before: dict[Any, Mapping[str, Any]] = {}
    for entry in old:
        before.setdefault(key(entry), entry)
    after: dict[Any, Mapping[str, Any]] = {}
    for entry in new:
        after.setdefault(key(entry), entry)
    added = tuple(after[k] for k in sorted(after.keys() - before.keys()))
    removed = tuple(before[k] for k in sorted(before.keys() - after.keys()))
    return added, removed


def diff_reports(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> ScanDiff:
    """What ``new`` has that ``old`` had not, and the reverse; with no ``old`` (a first scan) everything is new."""
    previous = old or {}
    new_cookies, gone_cookies = _changes(_entries(previous, "cookies"), _entries(new, "cookies"), cookie_key)
    new_hosts, gone_hosts = _changes(_entries(previous, "third_parties"), _entries(new, "third_parties"), host_key)
    new_violations, fixed = _changes(_entries(previous, "violations"), _entries(new, "violations"), violation_key)
    return ScanDiff(
        new_cookies=new_cookies,
        gone_cookies=gone_cookies,
        new_third_parties=new_hosts,
        gone_third_parties=gone_hosts,
        new_violations=new_violations,
        fixed_violations=fixed,
    )
