"""``ConsentMiddleware``: no cookie reaches the browser without the consent its category needs.

Pure ASGI (never ``BaseHTTPMiddleware``): the consent token is read from the request once,
the decision is published on ``scope["gateway.consent"]``, and only the header list of
``http.response.start`` is changed — each ``Set-Cookie`` is classified, dropped when its
category (or service) lacks consent, capped to min(declared lifetime, the site's category
cap), and deletions are appended for request cookies the visitor does not (or no longer)
allow. Bodies stream through untouched; websockets pass through; lifespan flushes the
cookie report at shutdown.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.categories import Category
from gateway.clock import Clock, SystemClock
from gateway.consent.model import ConsentDecision, make_decision
from gateway.consent.report import CookieReport
from gateway.consent.token import ConsentTokenCodec, expires_at
from gateway.cookies.catalog import Classification, CookieCatalog, load_rules
from gateway.cookies.lifetimes import SESSION, Lifetime, shorter
from gateway.cookies.setcookie import cap_lifetime, deletion_header, parse_cookie_header, parse_set_cookie
from gateway.settings import Settings, SiteSettings

CONSENT_COOKIE = "cg_consent"
SCOPE_KEY = "gateway.consent"
_SET_COOKIE = b"set-cookie"
_DEBUG_HEADER = b"x-consent-gateway-cookies"


class _CookiePolicy:
    """What the catalog and the site say of one cookie name on one domain, worked out once."""

    __slots__ = ("category", "label", "lifetime", "seconds", "service", "unconditional")

    def __init__(self, classification: Classification, site: SiteSettings, services: Mapping[str, Category]) -> None:
        rule = classification.rule
        self.category: Category | None = rule.category if rule else None
        self.label = rule.category if rule else "unknown"
        if rule is None:
            self.lifetime = SESSION  # an unknown cookie that is let through lives for the session only
            self.unconditional: bool | None = site.unknown_cookies == "allow"
        else:
            cap = site.cap_for(rule.category)
            self.lifetime = rule.lifetime if cap is None else shorter(rule.lifetime, cap)
            self.unconditional = True if rule.category == "essential" else None  # None: ask the decision
        self.seconds = self.lifetime.seconds
        self.service = rule.service if rule and rule.service in services else None

    def allowed(self, decision: ConsentDecision) -> bool:
        if self.unconditional is not None:
            return self.unconditional
        if self.category is None or self.category not in decision.allowed:
            return False
        return self.service is None or decision.services.get(self.service, False)


Verdict = Literal["deletion", "blocked", "kept", "capped"]


class _Outcome:
    __slots__ = ("asked", "attributes", "category", "label", "verdict")

    def __init__(self, verdict: Verdict, policy: _CookiePolicy, asked: int | None, attributes: str = "") -> None:
        self.verdict = verdict
        self.category = policy.category
        self.label = f"{policy.label}:{policy.lifetime}" if verdict == "capped" else policy.label
        self.asked = asked
        self.attributes = attributes


class _Attributes:
    """The lifetime and domain attributes of a Set-Cookie, read by the RFC 6265 parser."""

    __slots__ = ("domain", "expires", "max_age")

    def __init__(self, attributes: str) -> None:
        cookie = parse_set_cookie("x=y" + attributes)
        self.max_age = cookie.max_age if cookie else None
        self.expires = cookie.expires if cookie else None
        self.domain = cookie.domain if cookie else None


@lru_cache(maxsize=4096)
def _attributes(attributes: str) -> _Attributes:
    """Attributes repeat per cookie kind while values vary, so their reading is cached."""
    return _Attributes(attributes)


@lru_cache(maxsize=1024)
def _capped_attributes(attributes: str, seconds: int | None, now_second: int) -> str:
    """The attributes capped to ``seconds`` (None: session) at a whole second (so Expires repeats)."""
    cookie = parse_set_cookie("x=y" + attributes)
    assert cookie is not None  # noqa: S101 - "x=y" always parses
    now = datetime.fromtimestamp(now_second, UTC)
    capped = cap_lifetime(cookie, Lifetime(seconds), now)
    return attributes if capped is None else capped[3:]


def load_catalog(settings: Settings) -> CookieCatalog:
    """The catalog file named by the settings (the shipped ``config/cookies.toml`` by default)."""
    return CookieCatalog(load_rules(settings.catalog))


class ConsentMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        site: str,
        catalog: CookieCatalog | None = None,
        clock: Clock | None = None,
        report: CookieReport | None = None,
        cookie_name: str = CONSENT_COOKIE,
    ) -> None:
        site_settings = settings.site(site)
        if site_settings is None:
            known = ", ".join(sorted(settings.sites)) or "none"
            raise ValueError(f"ConsentMiddleware: unknown site {site!r} (configured sites: {known})")
        self.app = app
        self.site: SiteSettings = site_settings
        self.catalog = (catalog or load_catalog(settings)).with_rules(site_settings.cookie_rules)
        self.clock = clock or SystemClock()
        self.codec = ConsentTokenCodec(settings.secret_keys, self.clock)
        self.report = report if report is not None else CookieReport(settings.database)
        self.cookie_name = cookie_name
        self.debug = settings.debug
        self._service_categories = {service.id: service.category for service in site_settings.services}
        self._honour_dnt = site_settings.honour_dnt
        self._deletion_domains = lru_cache(maxsize=256)(_deletion_domains)
        self._policies: dict[tuple[str, str | None], _CookiePolicy] = {}
        self._outcomes: dict[tuple[str, str, tuple[object, ...], str, int], _Outcome] = {}
        self._decisions: dict[tuple[str, bool], tuple[ConsentDecision, datetime]] = {}
        self._no_decision = {
            gpc: make_decision(None, "missing", gpc=gpc, service_categories=self._service_categories)
            for gpc in (False, True)
        }
        self._rule_paths = {rule.name: rule.path for rule in self.catalog.rules if not rule.is_pattern}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        cookie_header = ""
        host = ""
        gpc = False
        for key, value in scope["headers"]:
            if key == b"cookie":
                cookie_header = (
                    f"{cookie_header}; {value.decode('latin-1')}" if cookie_header else value.decode("latin-1")
                )
            elif key == b"host":
                host = value.decode("latin-1")
            elif key == b"sec-gpc" or (key == b"dnt" and self._honour_dnt):
                gpc = gpc or value.strip() == b"1"
        request_cookies = parse_cookie_header(cookie_header) if cookie_header else []
        decision = self.decide(request_cookies, gpc=gpc)
        scope[SCOPE_KEY] = decision
        hostname = _hostname(host)

        async def send_with_consent(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.enforce(message.get("headers", []), decision, request_cookies, hostname)
            await send(message)

        await self.app(scope, receive, send_with_consent)

    def decide(self, request_cookies: Iterable[tuple[str, str]], *, gpc: bool) -> ConsentDecision:
        """The decision behind the request's consent cookie (the last one wins, as browsers order them).

        Decisions are cached by token and GPC signal until the token expires: the same visitor
        sends the same token on every request.
        """
        token = None
        for name, value in request_cookies:
            if name == self.cookie_name:
                token = value
        if token is None:
            return self._no_decision[gpc]
        cached = self._decisions.get((token, gpc))
        now = self.clock.now()
        if cached is not None and now < cached[1]:
            return cached[0]
        verified = self.codec.verify(token, self.site)
        decision = make_decision(verified.state, verified.reason, gpc=gpc, service_categories=self._service_categories)
        if verified.state is not None:
            if len(self._decisions) >= 4096:
                self._decisions.clear()
            self._decisions[(token, gpc)] = (decision, expires_at(verified.state, self.site))
        return decision

    def policy(self, name: str, domain: str | None) -> _CookiePolicy:
        policy = self._policies.get((name, domain))
        if policy is None:
            if len(self._policies) >= 8192:
                self._policies.clear()
            policy = _CookiePolicy(self.catalog.classify(name, domain), self.site, self._service_categories)
            self._policies[(name, domain)] = policy
        return policy

    def _judge(self, name: str, attributes: str, decision: ConsentDecision, hostname: str, now: datetime) -> _Outcome:
        """What becomes of a ``Set-Cookie`` with this name and these attributes under ``decision``."""
        parsed = _attributes(attributes)
        policy = self.policy(name, parsed.domain or hostname)
        if parsed.max_age is not None:
            asked: int | None = parsed.max_age
        elif parsed.expires is not None:
            asked = int((parsed.expires - now).total_seconds())
        else:
            asked = None
        if name and asked is not None and asked <= 0:
            return _Outcome("deletion", policy, asked)  # deletions always pass untouched
        if not name or not policy.allowed(decision):
            return _Outcome("blocked", policy, asked)
        limit = policy.seconds
        if asked is not None and (limit is None or asked > limit):
            capped = _capped_attributes(attributes, limit, int(now.timestamp()))
            return _Outcome("capped", policy, asked, capped)
        return _Outcome("kept", policy, asked)

    def enforce(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        decision: ConsentDecision,
        request_cookies: list[tuple[str, str]],
        hostname: str,
    ) -> list[tuple[bytes, bytes]]:
        """The response headers with every ``Set-Cookie`` judged, and deletions appended."""
        now = self.clock.now()
        result: list[tuple[bytes, bytes]] = []
        answered: set[str] = set()
        notes: list[str] | None = [] if self.debug else None
        site_id = self.site.id
        now_second = int(now.timestamp())
        outcomes = self._outcomes
        for key, value in headers:
            if key != _SET_COOKIE and key.lower() != _SET_COOKIE:
                result.append((key, value))
                continue
            raw = value.decode("latin-1")
            semicolon = raw.find(";")
            pair, attributes = (raw, "") if semicolon < 0 else (raw[:semicolon], raw[semicolon:])
            equals = pair.find("=")
            name = pair[:equals].strip(" \t") if equals >= 0 else ""  # no "=": browsers ignore it (5.2)
            # The judgement depends on the name and attributes, not the value: cached per second.
            cache_key = (name, attributes, decision.key, hostname, now_second)
            outcome = outcomes.get(cache_key)
            if outcome is None:
                if len(outcomes) >= 16384:
                    outcomes.clear()
                outcome = outcomes[cache_key] = self._judge(name, attributes, decision, hostname, now)
            if outcome.verdict != "deletion":
                self.report.observe(site_id, name, outcome.category, outcome.verdict, outcome.asked, now)
            if outcome.verdict == "blocked":
                if notes is not None:
                    notes.append(f"{name}=blocked:{outcome.label}")
                continue
            answered.add(name)  # kept or deleted by the app: a deletion of a stale copy would undo it
            if outcome.verdict == "capped":
                result.append((key, (pair + outcome.attributes).encode("latin-1")))
            else:
                result.append((key, value))
            if notes is not None:
                notes.append(f"{name}={outcome.verdict}:{outcome.label}")
        for name, _ in request_cookies:
            if name == self.cookie_name or name in answered:
                continue
            policy = self.policy(name, hostname)
            if policy.allowed(decision):
                continue
            answered.add(name)
            path = self._rule_paths.get(name, "/")
            for domain in self._deletion_domains(hostname):
                result.append((_SET_COOKIE, deletion_header(name, path=path, domain=domain).encode("latin-1")))
            if notes is not None:
                notes.append(f"{name}=deleted")
        self.report.flush_soon(now)
        if notes:
            result.append((_DEBUG_HEADER, ", ".join(notes).encode("latin-1", "replace")))
        return result

    def _lifespan_send(self, send: Send) -> Send:
        async def send_and_flush(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.report.close()
            await send(message)

        return send_and_flush


def _hostname(host: str) -> str:
    """The Host header without its port (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _deletion_domains(hostname: str) -> tuple[str | None, ...]:
    """Host-only, then the host and each parent domain: a cookie set by a script on
    ``.example.com`` (Google Analytics' default) is only deleted with that Domain attribute."""
    if not hostname or "." not in hostname:
        return (None,)
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        labels = hostname.split(".")
        return (None, *(".".join(labels[i:]) for i in range(len(labels) - 1)))
    return (None,)
