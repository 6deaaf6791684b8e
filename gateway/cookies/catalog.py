"""The cookie catalog: which category a cookie belongs to, who sets it and how long it may live.

Rules come from ``config/cookies.toml`` plus each site's own rules. Precedence, so that the
matched rule is always predictable and explainable:

1. a rule bound to the cookie's domain beats an unbound one (a third party's rule never
   classifies a site's own first-party cookie: Instagram's ``sessionid`` is not Django's);
2. an exact name beats a pattern;
3. a longer pattern (more literal characters) beats a shorter one;
4. a site's rule beats the built-in one, and a later rule an earlier one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.categories import Category, parse_category
from gateway.cookies.lifetimes import Lifetime, parse_lifetime
from gateway.resources import read_table_array


class CatalogError(ValueError):
    """A rule file that cannot be read; the message names the file, the rule and the key."""


@dataclass(frozen=True, slots=True)
class CookieRule:
    name: str
    category: Category
    lifetime: Lifetime
    vendor: str = ""
    purpose: str = ""
    service: str | None = None
    domain: str | None = None
    path: str = "/"
    source: str = ""
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name

    @property
    def literal_length(self) -> int:
        return len(self.name.replace("*", ""))

    def matches(self, name: str, domain: str | None) -> bool:
        if self.domain is not None and not _domain_matches(domain, self.domain):
            return False
        if self._regex is None:
            return name == self.name
        return self._regex.fullmatch(name) is not None


def make_rule(
    name: str,
    category: Category,
    lifetime: Lifetime,
    *,
    vendor: str = "",
    purpose: str = "",
    service: str | None = None,
    domain: str | None = None,
    path: str = "/",
    source: str = "",
) -> CookieRule:
    """Build a rule, compiling ``*`` in the name into a pattern once."""
    regex = re.compile(".*".join(re.escape(part) for part in name.split("*"))) if "*" in name else None
    bound = domain.strip().lstrip(".").lower() or None if domain else None
    return CookieRule(name, category, lifetime, vendor, purpose, service, bound, path, source, regex)


@dataclass(frozen=True, slots=True)
class Classification:
    """What the catalog knows of one cookie; ``rule is None`` means unknown."""

    name: str
    rule: CookieRule | None

    @property
    def category(self) -> Category | None:
        return self.rule.category if self.rule else None

    @property
    def is_known(self) -> bool:
        return self.rule is not None

    def explain(self) -> str:
        if self.rule is None:
            return f"{self.name!r} matches no rule"
        kind = "pattern" if self.rule.is_pattern else "exact name"
        where = f" for domain {self.rule.domain}" if self.rule.domain else ""
        return f"{kind} {self.rule.name!r}{where} from {self.rule.source or 'the catalog'}"


def _domain_matches(cookie_domain: str | None, rule_domain: str) -> bool:
    if not cookie_domain:
        return False
    cookie_domain = cookie_domain.lstrip(".").lower()
    return cookie_domain == rule_domain or cookie_domain.endswith("." + rule_domain)


def _precedence(rule: CookieRule, order: int) -> tuple[int, int, int, int]:
    return (rule.domain is not None, not rule.is_pattern, rule.literal_length, order)


class CookieCatalog:
    """An immutable set of rules with a cached lookup (the middleware classifies on every response)."""

    def __init__(self, rules: Iterable[CookieRule]) -> None:
        merged: dict[tuple[str, str | None], CookieRule] = {}
        for rule in rules:  # a later rule for the same name and domain replaces the earlier one
            merged.pop((rule.name, rule.domain), None)
            merged[(rule.name, rule.domain)] = rule
        self.rules: tuple[CookieRule, ...] = tuple(merged.values())
        self._exact: dict[str, list[tuple[int, CookieRule]]] = {}
        self._patterns: list[tuple[int, CookieRule]] = []
        for order, rule in enumerate(self.rules):
            if rule.is_pattern:
                self._patterns.append((order, rule))
            else:
                self._exact.setdefault(rule.name, []).append((order, rule))
        self._cached = lru_cache(maxsize=8192)(self._lookup)

    def __len__(self) -> int:
        return len(self.rules)

    def with_rules(self, rules: Iterable[CookieRule]) -> CookieCatalog:
        """A new catalog with ``rules`` added on top (a site's own rules)."""
        return CookieCatalog([*self.rules, *rules])

    def classify(self, name: str, domain: str | None = None) -> Classification:
        """Classify a cookie by name and, where known, the domain it belongs to."""
        return self._cached(name, domain.lstrip(".").lower() if domain else None)

    def _lookup(self, name: str, domain: str | None) -> Classification:
        candidates = [(o, r) for o, r in self._exact.get(name, ()) if r.matches(name, domain)]
        candidates += [(o, r) for o, r in self._patterns if r.matches(name, domain)]
        if not candidates:
            return Classification(name, None)
        _, best = max(candidates, key=lambda item: _precedence(item[1], item[0]))
        return Classification(name, best)

    def rules_for(self, category: Category) -> tuple[CookieRule, ...]:
        return tuple(rule for rule in self.rules if rule.category == category)


def rules_from_entries(entries: Iterable[Mapping[str, Any]], *, source: str, key: str = "cookie") -> list[CookieRule]:
    """Turn parsed TOML tables into rules, naming the entry and key of any mistake."""
    rules = []
    for index, entry in enumerate(entries):
        where = f"{source}: {key}[{index}]"
        if not isinstance(entry, Mapping):
            raise CatalogError(f"{where}: expected a table with name, category and lifetime, found {entry!r}")
        name = entry.get("name")
        if not isinstance(name, str) or not name or any(c in name for c in ";,= \t"):
            raise CatalogError(f"{where}.name: expected a cookie name or pattern such as '_ga_*', found {name!r}")
        where = f"{source}: {key}[{index}] ({name})"
        unknown = set(entry) - {"name", "category", "lifetime", "vendor", "purpose", "service", "domain", "path"}
        if unknown:
            raise CatalogError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        try:
            category = parse_category(entry.get("category"))
        except ValueError as error:
            raise CatalogError(f"{where}.category: {error}") from None
        try:
            lifetime = parse_lifetime(entry.get("lifetime", "session"))
        except ValueError as error:
            raise CatalogError(f"{where}.lifetime: {error}") from None
        texts = {}
        for text_key in ("vendor", "purpose", "service", "domain", "path"):
            value = entry.get(text_key)
            if value is not None and not isinstance(value, str):
                raise CatalogError(f"{where}.{text_key}: expected a string, found {value!r}")
            texts[text_key] = value
        rules.append(
            make_rule(
                name,
                category,
                lifetime,
                vendor=texts["vendor"] or "",
                purpose=texts["purpose"] or "",
                service=texts["service"] or None,
                domain=texts["domain"],
                path=texts["path"] or "/",
                source=source,
            )
        )
    return rules


def load_rules(path: Path) -> list[CookieRule]:
    """Read a rules file: ``[[cookie]]`` tables (the catalog and imported rule files)."""
    return rules_from_entries(read_table_array(path, "cookie", CatalogError), source=str(path))
