"""What a scan's observations break: the violations a report lists.

A violation is one of:

* ``before_decision`` / ``after_reject``: a cookie or storage key that is not essential (unknown counts),
  or a request to a known tracker host, seen with no decision yet or after "Reject all" (ePrivacy
  Directive art. 5(3): nothing but what is strictly necessary before consent);
* ``expiry_over_cap``: a cookie living longer than the middleware would let it (its declared lifetime,
  capped by the site's category cap, or the 13-month default without a site);
* ``undeclared``: with a site, a cookie its configuration does not declare (no ``[[sites.ID.cookies]]``
  rule, and the catalog rule's service is not one of its ``[[sites.ID.services]]``).

The last two describe the cookie, not the page: they are reported once, where the cookie was first seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gateway.cookies.lifetimes import Lifetime, shorter
from gateway.scan.classify import Classifier, CookieVerdict
from gateway.scan.observations import STATES, Crawl, PageVisit, SeenCookie, State
from gateway.settings import DEFAULT_CAPS, SiteSettings

ViolationKind = Literal["before_decision", "after_reject", "expiry_over_cap", "undeclared"]
_JUDGED: dict[State, ViolationKind] = {"none": "before_decision", "rejected": "after_reject"}
_WHEN = {"before_decision": "before any decision", "after_reject": 'after "Reject all"'}


@dataclass(frozen=True, slots=True)
class Violation:
    kind: ViolationKind
    what: Literal["cookie", "storage", "request"]
    name: str | None
    host: str | None
    state: State
    page: str
    detail: str

    @property
    def sort_key(self) -> tuple[str, str, int, str, str]:
        return (
            self.kind,
            self.name if self.name is not None else self.host or "",
            state_index(self.state),
            self.page,
            self.what,
        )


def find_violations(visits: Iterable[PageVisit], crawl: Crawl, classifier: Classifier) -> tuple[Violation, ...]:
    """Every violation once per (kind, what, name or host, state, page), sorted; the same whatever the order
    the crawl recorded its visits in."""
    visits = list(visits)
    found: dict[tuple[str, str, int, str, str], Violation] = {}
    for violation in (*_consent_violations(visits, classifier), *_cookie_violations(visits, crawl, classifier)):
        kept = found.get(violation.sort_key)
        if kept is None or violation.detail < kept.detail:
            found[violation.sort_key] = violation
    return tuple(found[key] for key in sorted(found))


def state_index(state: str) -> int:
    return STATES.index(state) if state in STATES else len(STATES)


def lifetime_days(cookie: SeenCookie, crawl: Crawl) -> float | None:
    """Days from the end of the crawl to the cookie's expiry: a lower bound of the lifetime it was set with
    (a visit's own time is not recorded), so a cookie within its cap is never reported over it."""
    if cookie.expires is None:
        return None
    return max(0.0, (cookie.expires - crawl.finished_at).total_seconds() / 86400)


def _consent_violations(visits: list[PageVisit], classifier: Classifier) -> Iterable[Violation]:
    """What a page stored or loaded before a decision or after "Reject all" that it needed consent for."""
    for visit in visits:
        kind = _JUDGED.get(visit.state)
        if kind is None:
            continue
        when = _WHEN[kind]
        for cookie in visit.cookies:
            category = classifier.cookie(cookie.name, cookie.domain).category
            if category != "essential":
                by = f"by {cookie.set_by}" + (f" {cookie.set_by_url}" if cookie.set_by_url else "")
                detail = f"{category or 'unknown'} cookie set {when} ({by})"
                yield Violation(kind, "cookie", cookie.name, None, visit.state, visit.url, detail)
        for item in visit.storage:
            category = classifier.storage(item.key)
            if category != "essential":
                detail = f"{category or 'unknown'} {item.kind} key written {when} (origin {item.origin})"
                yield Violation(kind, "storage", item.key, None, visit.state, visit.url, detail)
        for request in visit.requests:
            category, _ = classifier.third_party(request.host)
            if category is not None and category != "essential":
                detail = f"{category} host loaded {when} ({request.resource_type} {request.url})"
                yield Violation(kind, "request", None, request.host.lower(), visit.state, visit.url, detail)


def _cookie_violations(visits: list[PageVisit], crawl: Crawl, classifier: Classifier) -> Iterable[Violation]:
    """Over-long lifetimes and, with a site, undeclared cookies: once per cookie, where it was first seen
    (the earliest state, then page; the order the crawl recorded its visits in does not matter)."""
    site = classifier.site
    first: dict[tuple[str, str, str, str], Violation] = {}
    for visit in visits:
        for cookie in visit.cookies:
            verdict = classifier.cookie(cookie.name, cookie.domain)
            limit = _allowed_lifetime(verdict, site)
            days = lifetime_days(cookie, crawl)
            found = []
            if limit is not None and days is not None and (limit.seconds is None or days * 86400 > limit.seconds):
                declared = verdict.rule is not None and limit == verdict.rule.lifetime
                why = "its declared lifetime" if declared else f"the {verdict.category} cap"
                detail = f"expires in {days:.1f} days; it may live {limit.describe()} ({why})"
                found.append(Violation("expiry_over_cap", "cookie", cookie.name, None, visit.state, visit.url, detail))
            if site is not None and not verdict.declared:
                detail = f"{verdict.category or 'unknown'} cookie on {cookie.domain} not in [[sites.{site.id}.cookies]]"
                found.append(Violation("undeclared", "cookie", cookie.name, None, visit.state, visit.url, detail))
            for violation in found:
                key = (violation.kind, cookie.name, cookie.domain, cookie.path)
                if key not in first or _earlier(violation, first[key]):
                    first[key] = violation
    return first.values()


def _earlier(a: Violation, b: Violation) -> bool:
    return (state_index(a.state), a.page, a.detail) < (state_index(b.state), b.page, b.detail)


def _allowed_lifetime(verdict: CookieVerdict, site: SiteSettings | None) -> Lifetime | None:
    """min(declared lifetime, category cap), as ConsentMiddleware caps; None for an unknown cookie (no rule)."""
    rule = verdict.rule
    if rule is None or verdict.category is None:
        return None
    cap = site.cap_for(verdict.category) if site is not None else DEFAULT_CAPS.get(verdict.category)
    return rule.lifetime if cap is None else shorter(rule.lifetime, cap)
