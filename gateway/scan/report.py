"""The scan report: a crawl's observations classified, judged against consent, and written as JSON.

``build_report`` turns a ``Crawl`` into a ``ScanReport``; ``ScanReport.to_json`` writes the documented
format ``consent-gateway-scan/1`` (README, "Scanning a site") and ``from_json`` reads it back for the
dashboard's stored scans. Every list is sorted, so two scans of an unchanged site give equal JSON apart
from their times. What counts as a violation: ``gateway.scan.violations``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.categories import Category
from gateway.cookies.catalog import CookieCatalog, CookieRule
from gateway.scan.classify import ClassifiedBy, Classifier, Suggestion, config_block
from gateway.scan.observations import STATES, Crawl, PageVisit, SeenCookie, State
from gateway.scan.trackers import TrackerList
from gateway.scan.violations import Violation, ViolationKind, find_violations, lifetime_days, state_index
from gateway.settings import Settings, SiteSettings

__all__ = [
    "FORMAT",
    "CookieFinding",
    "ScanReport",
    "StorageFinding",
    "Suggestion",
    "ThirdParty",
    "Violation",
    "ViolationKind",
    "build_report",
]

FORMAT = "consent-gateway-scan/1"


@dataclass(frozen=True, slots=True)
class CookieFinding:
    name: str
    domain: str
    path: str
    category: Category | None
    classified_by: ClassifiedBy | None
    declared: bool
    set_by: Literal["header", "script"]
    set_by_url: str
    expires_days: float | None  # the longest seen; None: a session cookie everywhere
    http_only: bool
    secure: bool
    same_site: str | None
    states: tuple[State, ...]
    pages: tuple[str, ...]
    suggestion: Suggestion | None
    config: str | None


@dataclass(frozen=True, slots=True)
class StorageFinding:
    key: str
    kind: Literal["localStorage", "sessionStorage"]
    category: Category | None
    states: tuple[State, ...]
    pages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ThirdParty:
    host: str
    category: Category | None
    classified_by: Literal["trackers", "catalog"] | None
    loaded: tuple[str, ...]
    states: tuple[State, ...]
    pages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScanReport:
    url: str
    site: str | None
    started_at: datetime
    finished_at: datetime
    banner: bool
    states_scanned: tuple[State, ...]
    notes: tuple[str, ...]
    pages: tuple[str, ...]
    cookies: tuple[CookieFinding, ...]
    storage: tuple[StorageFinding, ...]
    third_parties: tuple[ThirdParty, ...]
    violations: tuple[Violation, ...]

    @property
    def summary(self) -> dict[str, int]:
        return {
            "pages": len(self.pages),
            "cookies": len(self.cookies),
            "unknown_cookies": sum(1 for cookie in self.cookies if cookie.category is None),
            "third_parties": len(self.third_parties),
            "violations": len(self.violations),
        }

    def to_json(self) -> dict[str, object]:
        """The documented ``consent-gateway-scan/1`` object (plain dicts, lists, strings and numbers)."""
        from gateway.scan.report_json import report_to_json  # it reads these classes: imported here, not above

        return report_to_json(self)

    @classmethod
    def from_json(cls, data: object) -> ScanReport:
        """Read a stored report back; ``ScanFormatError`` (a ValueError) names the first thing wrong."""
        from gateway.scan.report_json import report_from_json

        return report_from_json(data)


def build_report(
    crawl: Crawl,
    *,
    site: SiteSettings | None,
    settings: Settings,
    opencookiedb: Iterable[CookieRule] = (),
    trackers: TrackerList | None = None,
    catalog: CookieCatalog | None = None,
) -> ScanReport:
    """Classify and judge what ``crawl`` saw.

    ``opencookiedb``: imported Open Cookie Database rules, consulted after the site's rules and the catalog;
    ``trackers``: the known-tracker list and ``catalog`` the one ``settings.catalog`` names, each read from
    disk when not given (a caller building many reports passes them once).
    """
    classifier = Classifier(site=site, settings=settings, opencookiedb=opencookiedb, trackers=trackers, catalog=catalog)
    visits = sorted(crawl.visits, key=lambda visit: (visit.url, state_index(visit.state)))
    states = tuple(state for state in STATES if any(visit.state == state for visit in visits)) or ("none",)
    banner = any(visit.banner for visit in visits)
    cookies = _cookies(visits, crawl, classifier)
    return ScanReport(
        url=crawl.start_url,
        site=site.id if site else None,
        started_at=crawl.started_at,
        finished_at=crawl.finished_at,
        banner=banner,
        states_scanned=states if banner else ("none",),
        notes=_notes(crawl, visits, site=site, banner=banner),
        pages=tuple(sorted(set(crawl.pages) | {visit.url for visit in visits})),
        cookies=cookies,
        storage=_storage(visits, classifier),
        third_parties=_third_parties(visits, classifier),
        violations=find_violations(visits, crawl, classifier),
    )


def _ordered_states(states: Iterable[State]) -> tuple[State, ...]:
    seen = set(states)
    return tuple(state for state in STATES if state in seen)


def _representative(cookie: SeenCookie) -> tuple[bool, str, str, bool, bool, str, float]:
    """The sighting a finding's attributes come from: one that names what set it, then a fixed order."""
    expires = cookie.expires.timestamp() if cookie.expires else 0.0
    return (
        cookie.set_by_url == "",
        cookie.set_by,
        cookie.set_by_url,
        cookie.http_only,
        cookie.secure,
        cookie.same_site or "",
        expires,
    )


def _cookies(visits: list[PageVisit], crawl: Crawl, classifier: Classifier) -> tuple[CookieFinding, ...]:
    seen: dict[tuple[str, str, str], list[tuple[PageVisit, SeenCookie]]] = {}
    for visit in visits:
        for cookie in visit.cookies:
            seen.setdefault((cookie.name, cookie.domain, cookie.path), []).append((visit, cookie))
    site = classifier.site
    findings = []
    for (name, domain, path), sightings in sorted(seen.items()):
        verdict = classifier.cookie(name, domain)
        first = min((cookie for _, cookie in sightings), key=_representative)
        lifetimes = [days for _, cookie in sightings if (days := lifetime_days(cookie, crawl)) is not None]
        expires_days = round(max(lifetimes), 1) if lifetimes else None
        suggestion = None if verdict.declared else classifier.suggest(name, verdict)
        block = None
        if not verdict.declared:
            block = config_block(
                site_id=site.id if site else None,
                name=name,
                domain=domain,
                site_hosts=crawl.site_hosts,
                verdict=verdict,
                suggestion=suggestion,
                expires_days=expires_days,
            )
        findings.append(
            CookieFinding(
                name=name,
                domain=domain,
                path=path,
                category=verdict.category,
                classified_by=verdict.classified_by,
                declared=verdict.declared,
                set_by=first.set_by,
                set_by_url=first.set_by_url,
                expires_days=expires_days,
                http_only=first.http_only,
                secure=first.secure,
                same_site=first.same_site,
                states=_ordered_states(visit.state for visit, _ in sightings),
                pages=tuple(sorted({visit.url for visit, _ in sightings})),
                suggestion=suggestion,
                config=block,
            )
        )
    return tuple(findings)


def _storage(visits: list[PageVisit], classifier: Classifier) -> tuple[StorageFinding, ...]:
    seen: dict[tuple[str, str], list[PageVisit]] = {}
    for visit in visits:
        for item in visit.storage:
            seen.setdefault((item.key, item.kind), []).append(visit)
    return tuple(
        StorageFinding(
            key=key,
            kind=kind,  # type: ignore[arg-type]
            category=classifier.storage(key),
            states=_ordered_states(visit.state for visit in where),
            pages=tuple(sorted({visit.url for visit in where})),
        )
        for (key, kind), where in sorted(seen.items())
    )


def _third_parties(visits: list[PageVisit], classifier: Classifier) -> tuple[ThirdParty, ...]:
    seen: dict[str, list[tuple[PageVisit, str]]] = {}
    for visit in visits:
        for request in visit.requests:
            seen.setdefault(request.host.lower(), []).append((visit, request.resource_type))
    parties = []
    for host, sightings in sorted(seen.items()):
        category, by = classifier.third_party(host)
        parties.append(
            ThirdParty(
                host=host,
                category=category,
                classified_by=by,
                loaded=tuple(sorted({kind for _, kind in sightings})),
                states=_ordered_states(visit.state for visit, _ in sightings),
                pages=tuple(sorted({visit.url for visit, _ in sightings})),
            )
        )
    return tuple(parties)


def _notes(crawl: Crawl, visits: list[PageVisit], *, site: SiteSettings | None, banner: bool) -> tuple[str, ...]:
    notes = list(crawl.notes)
    if not banner:
        notes.append("No consent-gateway banner found: pages were visited in the no-decision state only.")
    if site is None:
        notes.append("No site given (--site): undeclared cookies were not checked; caps are the 13-month default.")
    for visit in visits:
        if visit.error:
            notes.append(f"{visit.url} ({visit.state}): {visit.error}")
    return tuple(notes)
