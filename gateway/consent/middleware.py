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
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clock import Clock, SystemClock
from gateway.consent.model import ConsentDecision, make_decision
from gateway.consent.report import CookieReport
from gateway.consent.token import ConsentTokenCodec
from gateway.cookies.catalog import Classification, CookieCatalog, load_rules
from gateway.cookies.lifetimes import SESSION, Lifetime, shorter
from gateway.cookies.setcookie import cap_lifetime, deletion_header, parse_cookie_header, parse_set_cookie
from gateway.settings import Settings, SiteSettings

CONSENT_COOKIE = "cg_consent"
SCOPE_KEY = "gateway.consent"
_SET_COOKIE = b"set-cookie"
_DEBUG_HEADER = b"x-consent-gateway-cookies"


@dataclass(frozen=True, slots=True)
class _Verdict:
    allowed: bool
    lifetime: Lifetime
    label: str


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
        """The decision behind the request's consent cookie (the last one wins, as browsers order them)."""
        token = None
        for name, value in request_cookies:
            if name == self.cookie_name:
                token = value
        if token is None:
            return make_decision(None, "missing", gpc=gpc, service_categories=self._service_categories)
        verified = self.codec.verify(token, self.site)
        return make_decision(verified.state, verified.reason, gpc=gpc, service_categories=self._service_categories)

    def verdict(self, classification: Classification, decision: ConsentDecision) -> _Verdict:
        """May this cookie exist, and for how long at most."""
        rule = classification.rule
        if rule is None:
            return _Verdict(self.site.unknown_cookies == "allow", SESSION, "unknown")
        cap = self.site.cap_for(rule.category)
        lifetime = rule.lifetime if cap is None else shorter(rule.lifetime, cap)
        allowed = decision.allows(rule.category)
        if allowed and rule.service is not None and rule.service in self._service_categories:
            allowed = decision.allows(rule.service)
        return _Verdict(allowed, lifetime, rule.category)

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
        notes: list[str] = []
        for key, value in headers:
            if key.lower() != _SET_COOKIE:
                result.append((key, value))
                continue
            raw = value.decode("latin-1")
            cookie = parse_set_cookie(raw)
            name = cookie.name if cookie is not None else ""
            classification = self.catalog.classify(name, (cookie.domain if cookie else None) or hostname)
            verdict = self.verdict(classification, decision)
            expiry = cookie.expiry(now) if cookie is not None else None
            asked = int((expiry - now).total_seconds()) if expiry is not None else None
            if cookie is not None and cookie.is_deletion(now):
                result.append((key, value))  # deletions always pass untouched
                answered.add(name)
                continue
            if not verdict.allowed:
                self.report.observe(
                    self.site.id, name, classification.category, blocked=True, capped=False, asked=asked, now=now
                )
                notes.append(f"{name}=blocked:{verdict.label}")
                continue
            answered.add(name)  # kept: a deletion for a stale copy would undo it
            capped = cap_lifetime(cookie, verdict.lifetime, now) if cookie is not None else None
            self.report.observe(
                self.site.id,
                name,
                classification.category,
                blocked=False,
                capped=capped is not None,
                asked=asked,
                now=now,
            )
            if capped is None:
                result.append((key, value))
                notes.append(f"{name}=kept:{verdict.label}")
            else:
                result.append((key, capped.encode("latin-1")))
                notes.append(f"{name}=capped:{verdict.label}:{verdict.lifetime}")
        for name, _ in request_cookies:
            if name == self.cookie_name or name in answered:
                continue
            classification = self.catalog.classify(name, hostname)
            if self.verdict(classification, decision).allowed:
                continue
            answered.add(name)
            path = classification.rule.path if classification.rule else "/"
            for domain in self._deletion_domains(hostname):
                result.append((_SET_COOKIE, deletion_header(name, path=path, domain=domain).encode("latin-1")))
            notes.append(f"{name}=deleted")
        self.report.flush_soon(now)
        if self.debug and notes:
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
