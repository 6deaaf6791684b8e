"""What the scanner's findings are: a category for each cookie, storage key and third-party host, with
a suggestion and a ready ``[[sites.ID.cookies]]`` block for the cookies a site has not declared.

Cookies are looked up in the site's own rules first (what the owner said wins), then the catalog
(``settings.catalog``: the shipped one, or an Open Cookie Database import it points at), then any
Open Cookie Database rules handed in. The gateway's own cookie and storage keys are essential
whatever the catalog says: the banner cannot work without them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from gateway.categories import Category
from gateway.consent.middleware import CONSENT_COOKIE, load_catalog
from gateway.cookies.catalog import CookieCatalog, CookieRule
from gateway.scan.trackers import TrackerList, load_trackers
from gateway.settings import Settings, SiteSettings

ClassifiedBy = Literal["site", "catalog", "opencookiedb"]
#: The gateway's own cookie and the snippet's storage keys (snippets/consent.js, snippets/tracker.js).
GATEWAY_COOKIES = frozenset({CONSENT_COOKIE})
GATEWAY_STORAGE_KEYS = frozenset({"cg_state", "cg_ignore"})
#: The header ``consent-gateway import-cookies`` writes: a catalog file starting with it is an OCD import.
_OCD_HEADER = "(Open Cookie Database format)"
#: Categories from the most to the least intrusive, for a host several catalog rules disagree about.
_INTRUSIVE: tuple[Category, ...] = ("advertising", "analytics", "functional", "essential")
_SEPARATORS = frozenset("_-.")


@dataclass(frozen=True, slots=True)
class Suggestion:
    category: Category
    source: ClassifiedBy
    description: str


@dataclass(frozen=True, slots=True)
class CookieVerdict:
    category: Category | None
    classified_by: ClassifiedBy | None
    rule: CookieRule | None
    #: The site's configuration declares it: its own rules classify it, or the catalog's rule belongs to a
    #: service the site lists in [[sites.ID.services]] (listing Google Analytics declares its cookies).
    #: The gateway's own cookies always count as declared.
    declared: bool
    own: bool


class Classifier:
    """One scan's lookups, built once: the catalogs are read from disk and their lookups cached."""

    def __init__(
        self,
        *,
        site: SiteSettings | None,
        settings: Settings,
        opencookiedb: Iterable[CookieRule] = (),
        trackers: TrackerList | None = None,
        catalog: CookieCatalog | None = None,
    ) -> None:
        self.site = site
        self._site_rules = CookieCatalog(site.cookie_rules if site else ())
        self._services = frozenset(service.id for service in site.services) if site else frozenset()
        self._catalog = catalog if catalog is not None else load_catalog(settings)
        self._ocd = CookieCatalog(opencookiedb)
        self._trackers = trackers if trackers is not None else load_trackers()
        # Every visit asks again for the same few hosts and keys; this classifier lives for one report.
        self.third_party = lru_cache(maxsize=4096)(self._third_party)
        self.storage = lru_cache(maxsize=4096)(self._storage)
        self._catalog_is_ocd = _is_ocd_file(settings.catalog)
        # For suggestions: every rule with its domain binding dropped, split by where it comes from.
        ocd = [rule for rule in self._catalog.rules if self._from_ocd(rule)] + list(self._ocd.rules)
        shipped = [rule for rule in self._catalog.rules if not self._from_ocd(rule)]
        self._unbound_ocd = CookieCatalog(dataclasses.replace(rule, domain=None) for rule in ocd)
        self._unbound_catalog = CookieCatalog(dataclasses.replace(rule, domain=None) for rule in shipped)

    def _from_ocd(self, rule: CookieRule) -> bool:
        """Whether a catalog rule came from an Open Cookie Database import (the CSV, or a file import-cookies wrote)."""
        return self._catalog_is_ocd or rule.source.rpartition(":")[0].lower().endswith(".csv")

    def cookie(self, name: str, domain: str) -> CookieVerdict:
        if name in GATEWAY_COOKIES:
            rule = self._catalog.classify(name, domain).rule
            return CookieVerdict("essential", "catalog", rule, True, True)
        for by, catalog in (("site", self._site_rules), ("catalog", self._catalog), ("opencookiedb", self._ocd)):
            rule = catalog.classify(name, domain).rule
            if rule is not None:
                source: ClassifiedBy = "opencookiedb" if by == "catalog" and self._from_ocd(rule) else by  # type: ignore[assignment]
                declared = by == "site" or (rule.service is not None and rule.service in self._services)
                return CookieVerdict(rule.category, source, rule, declared, False)
        return CookieVerdict(None, None, None, False, False)

    def _storage(self, key: str) -> Category | None:
        """The site's ``[sites.ID.storage]`` patterns (as the snippet matches them), then the catalog by name."""
        if key in GATEWAY_STORAGE_KEYS:
            return "essential"
        if self.site is not None:
            for category, patterns in sorted(self.site.storage_keys.items()):
                if any(key.startswith(p[:-1]) if p.endswith("*") else key == p for p in patterns):
                    return category
        for catalog in (self._site_rules, self._catalog, self._ocd):
            rule = catalog.classify(key).rule
            if rule is not None:
                return rule.category
        return None

    def _third_party(self, host: str) -> tuple[Category | None, Literal["trackers", "catalog"] | None]:
        """The known-tracker list by host suffix, then the catalog's rules bound to the host's domain."""
        tracker = self._trackers.classify(host)
        if tracker is not None:
            return tracker.category, "trackers"
        host = host.lower()
        bound = [r for r in self._catalog.rules if r.domain and (host == r.domain or host.endswith("." + r.domain))]
        if not bound:
            return None, None
        nearest = max(len(rule.domain or "") for rule in bound)
        categories = {rule.category for rule in bound if len(rule.domain or "") == nearest}
        return next(c for c in _INTRUSIVE if c in categories), "catalog"

    def suggest(self, name: str, verdict: CookieVerdict) -> Suggestion | None:
        """For a cookie the site has not declared: what it most likely is, and where that comes from."""
        if verdict.own:
            return None
        if verdict.rule is not None and verdict.classified_by is not None:
            return Suggestion(verdict.rule.category, verdict.classified_by, _describe(verdict.rule))
        for source, catalog in (("opencookiedb", self._unbound_ocd), ("catalog", self._unbound_catalog)):
            rule = catalog.classify(name).rule
            if rule is not None:  # the name is known, for another domain than the one it was found on
                where = f" (known for {_original_domain(rule, self._catalog, self._ocd)})"
                return Suggestion(rule.category, source, _describe(rule) + where)  # type: ignore[arg-type]
        for source, catalog in (("opencookiedb", self._unbound_ocd), ("catalog", self._unbound_catalog)):
            best = _closest_prefix(name, catalog.rules)
            if best is not None:
                guess = f"a guess: the name starts like {best.name!r}; {_describe(best)}"
                return Suggestion(best.category, source, guess)  # type: ignore[arg-type]
        return None


def config_block(
    *,
    site_id: str | None,
    name: str,
    domain: str,
    site_hosts: Iterable[str],
    verdict: CookieVerdict,
    suggestion: Suggestion | None,
    expires_days: float | None,
) -> str | None:
    """A ``[[sites.ID.cookies]]`` table declaring the cookie, in the syntax ``gateway.settings`` reads.

    None for a name no rule can hold (``;``, ``,``, ``=``, blanks, or ``*``, which would make it a pattern).
    """
    if not name or any(c in name for c in ";,= \t*") or not name.isprintable():
        return None
    rule = verdict.rule
    lines = [f"[[sites.{site_id or 'ID'}.cookies]]", f"name = {_toml_string(name)}"]
    if rule is None:
        lines.append("# unknown: check what sets it; category is one of essential, functional, analytics, advertising")
    category = rule.category if rule else (suggestion.category if suggestion else "functional")
    lines.append(f"category = {_toml_string(category)}")
    if rule is not None:
        lifetime = str(rule.lifetime)
    else:
        lifetime = "session" if expires_days is None else f"{max(1, math.ceil(expires_days))}d"
    lines.append(f"lifetime = {_toml_string(lifetime)}")
    for key, value in (("vendor", rule.vendor if rule else ""), ("purpose", rule.purpose if rule else "")):
        if value:
            lines.append(f"{key} = {_toml_string(value)}")
    bare = domain.lstrip(".").lower()
    own = {host.lower().removeprefix("www.") for host in site_hosts}
    if bare and not any(bare == h or bare.endswith("." + h) or h.endswith("." + bare) for h in own):
        lines.append(f"domain = {_toml_string(bare)}")  # a third party's cookie: bind the rule to its domain
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escaping, plus DEL, which TOML does not allow raw."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _describe(rule: CookieRule) -> str:
    parts = [f"{rule.vendor}: " if rule.vendor else "", rule.purpose or f"{rule.category} cookie"]
    return "".join(parts)


def _original_domain(rule: CookieRule, *catalogs: CookieCatalog) -> str:
    domains = sorted(
        {r.domain for c in catalogs for r in c.rules if r.name == rule.name and r.domain},
    )
    return ", ".join(domains) or "any domain"


def _closest_prefix(name: str, rules: Iterable[CookieRule]) -> CookieRule | None:
    """The rule whose literal start shares the longest prefix with ``name``, if that prefix looks deliberate:
    at least five characters, or three with a separator (``_hj``, ``_pk_``)."""
    best: tuple[int, str] | None = None
    chosen = None
    for rule in rules:
        start = rule.name.split("*", 1)[0]
        shared = len(_common_prefix(name, start))
        if shared < 5 and not (shared >= 3 and any(c in _SEPARATORS for c in name[:shared])):
            continue
        key = (shared, rule.name)
        if best is None or key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best, chosen = key, rule
    return chosen


def _common_prefix(a: str, b: str) -> str:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return a[:size]


def _is_ocd_file(path: Path) -> bool:
    """Whether a rules file is one import-cookies wrote (its first line says so)."""
    try:
        with path.open(encoding="utf-8") as file:
            return _OCD_HEADER in file.readline()
    except (OSError, UnicodeDecodeError):
        return False
