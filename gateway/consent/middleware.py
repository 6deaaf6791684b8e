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
from datetime import UTC, datetime, timedelta
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
_FOREVER = datetime.max.replace(tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)


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


# "ignored": a header that stores nothing (no name and no value, or a nameless cookie browsers refuse): dropped.
Verdict = Literal["deletion", "blocked", "kept", "capped", "ignored"]


class _Outcome:
    """The judgement of one kind of ``Set-Cookie`` (name and attributes) under one decision.

    Outcomes are cached for one clock second and count their own uses; the counts reach the
    cookie report when the second's table is retired, so the hot path is one lookup and one add.
    """

    __slots__ = ("asked", "attributes", "category", "label", "name", "uses", "verdict")

    def __init__(
        self, name: str, verdict: Verdict, policy: _CookiePolicy, asked: int | None, attributes: bytes = b""
    ) -> None:
        self.name = name
        self.verdict = verdict
        self.category = policy.category
        self.label = f"{policy.label}:{policy.lifetime}" if verdict == "capped" else policy.label
        self.asked = asked
        self.attributes = attributes
        self.uses = 0


class _RequestView:
    """What the middleware reads from a request: its decision, host and the deletions it owes."""

    __slots__ = ("decision", "deletions", "hostname", "until")

    def __init__(
        self,
        decision: ConsentDecision,
        hostname: str,
        deletions: tuple[tuple[str, bytes], ...],
        until: datetime,
    ) -> None:
        self.decision = decision
        self.hostname = hostname
        self.deletions = deletions
        self.until = until


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


def _nameless_key(pair: bytes) -> bytes | None:
    """The name to judge a pair without one by: b"", or None when the browser ignores the header.

    ``foo`` and ``=foo`` are nameless cookies (RFC 6265bis 5.6); ``=``, ``=a=b`` are not, as
    ``parse_set_cookie`` says. Only pairs without a name come here, so the common path stays a slice.
    """
    return b"" if parse_set_cookie(pair.decode("latin-1")) is not None else None


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
        self._outcomes: dict[tuple[bytes | None, bytes, tuple[object, ...], str], _Outcome] = {}
        self._outcomes_until = datetime.min.replace(tzinfo=UTC)
        self._outcomes_since = self._outcomes_until
        self._request_views: dict[tuple[bytes, bytes, bool], _RequestView] = {}
        self._deletions: dict[tuple[tuple[str, ...], tuple[object, ...], str], tuple[tuple[str, bytes], ...]] = {}
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

        cookie_header = b""
        host = b""
        gpc = False
        for key, value in scope["headers"]:
            if key == b"cookie":
                cookie_header = cookie_header + b"; " + value if cookie_header else value
            elif key == b"host":
                host = value
            elif key == b"sec-gpc" or (key == b"dnt" and self._honour_dnt):
                gpc = gpc or value.strip() == b"1"
        now = self.clock.now()
        view = self._request_views.get((cookie_header, host, gpc))
        if view is None or not now < view.until:
            view = self._view(cookie_header, host, gpc, now)
        decision = view.decision
        scope[SCOPE_KEY] = decision

        async def send_with_consent(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._enforce(
                    message.get("headers", []), decision, view.hostname, view.deletions, now
                )
            await send(message)

        await self.app(scope, receive, send_with_consent)

    def _view(self, cookie_header: bytes, host: bytes, gpc: bool, now: datetime) -> _RequestView:
        """Read a request's cookies and host once; the same visitor sends the same headers again.

        Views are kept in memory only (bounded, never written) until the decision behind them expires.
        """
        request_cookies = parse_cookie_header(cookie_header.decode("latin-1")) if cookie_header else []
        decision, until = self._decide_until(request_cookies, gpc=gpc, now=now)
        hostname = _hostname(host.decode("latin-1"))
        deletions = self._deletions_for(request_cookies, decision, hostname) if request_cookies else ()
        view = _RequestView(decision, hostname, deletions, until or now)
        if until is not None:
            if len(self._request_views) >= 4096:
                self._request_views.clear()
            self._request_views[(cookie_header, host, gpc)] = view
        return view

    def decide(
        self, request_cookies: Iterable[tuple[str, str]], *, gpc: bool, now: datetime | None = None
    ) -> ConsentDecision:
        """The decision behind the request's consent cookie (the last one wins, as browsers order them)."""
        return self._decide_until(request_cookies, gpc=gpc, now=now or self.clock.now())[0]

    def _decide_until(
        self, request_cookies: Iterable[tuple[str, str]], *, gpc: bool, now: datetime
    ) -> tuple[ConsentDecision, datetime | None]:
        """The decision and until when it holds (None: do not keep it, a bad token is checked each time).

        Decisions are cached by token and GPC signal until the token expires: the same visitor
        sends the same token on every request.
        """
        token = None
        for name, value in request_cookies:
            if name == self.cookie_name:
                token = value
        if token is None:
            return self._no_decision[gpc], _FOREVER
        cached = self._decisions.get((token, gpc))
        if cached is not None and now < cached[1]:
            return cached
        verified = self.codec.verify(token, self.site)
        decision = make_decision(verified.state, verified.reason, gpc=gpc, service_categories=self._service_categories)
        if verified.state is None:
            return decision, None
        if len(self._decisions) >= 4096:
            self._decisions.clear()
        self._decisions[(token, gpc)] = cached = (decision, expires_at(verified.state, self.site))
        return cached

    def policy(self, name: str, domain: str | None) -> _CookiePolicy:
        policy = self._policies.get((name, domain))
        if policy is None:
            if len(self._policies) >= 8192:
                self._policies.clear()
            policy = _CookiePolicy(self.catalog.classify(name, domain), self.site, self._service_categories)
            self._policies[(name, domain)] = policy
        return policy

    def _judge(
        self, name: str | None, attributes: str, decision: ConsentDecision, hostname: str, now: datetime
    ) -> _Outcome:
        """What becomes of a ``Set-Cookie`` with this name and these attributes under ``decision``.

        ``name`` is "" for a nameless cookie, judged like any other unknown one (a browser stores it),
        and None for a header the browser ignores.
        """
        parsed = _attributes(attributes)
        if name is None:
            return _Outcome("", "ignored", self.policy("", parsed.domain or hostname), None)
        policy = self.policy(name, parsed.domain or hostname)
        if parsed.max_age is not None:
            asked: int | None = parsed.max_age
        elif parsed.expires is not None:
            asked = int((parsed.expires - now).total_seconds())
        else:
            asked = None
        if asked is not None and asked <= 0:
            return _Outcome(name, "deletion", policy, asked)  # deletions always pass untouched
        if not policy.allowed(decision):
            return _Outcome(name, "blocked", policy, asked)
        limit = policy.seconds
        if asked is not None and (limit is None or asked > limit):
            capped = _capped_attributes(attributes, limit, int(now.timestamp()))
            return _Outcome(name, "capped", policy, asked, capped.encode("latin-1"))
        return _Outcome(name, "kept", policy, asked)

    def enforce(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        decision: ConsentDecision,
        request_cookies: list[tuple[str, str]],
        hostname: str,
        *,
        now: datetime | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """The response headers with every ``Set-Cookie`` judged, and deletions appended."""
        deletions = self._deletions_for(request_cookies, decision, hostname) if request_cookies else ()
        return self._enforce(headers, decision, hostname, deletions, now or self.clock.now())

    def _enforce(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        decision: ConsentDecision,
        hostname: str,
        deletions: tuple[tuple[str, bytes], ...],
        now: datetime,
    ) -> list[tuple[bytes, bytes]]:
        """``enforce`` with the deletions worked out.

        This runs for every response, so it works on the raw bytes and caches what repeats:
        the judgement of a name and its attributes (values vary, the verdict does not) for the
        current second, and the deletions owed for a set of request cookie names.
        """
        outcomes = self._outcomes_for(now)
        result: list[tuple[bytes, bytes]] = []
        answered: set[str] | None = set() if deletions else None
        notes: list[str] | None = [] if self.debug else None
        decision_key = decision.key
        for key, value in headers:
            if key != _SET_COOKIE and key.lower() != _SET_COOKIE:
                result.append((key, value))
                continue
            semicolon = value.find(b";")
            pair, attributes = (value, b"") if semicolon < 0 else (value[:semicolon], value[semicolon:])
            equals = pair.find(b"=")
            raw_name: bytes | None = pair[:equals]
            if equals <= 0 or (pair[0] in b" \t" and not pair[:equals].strip(b" \t")):  # rare: no name
                raw_name = _nameless_key(pair)
            cache_key = (raw_name, attributes, decision_key, hostname)
            outcome = outcomes.get(cache_key)
            if outcome is None:
                name = raw_name.decode("latin-1").strip(" \t") if raw_name is not None else None
                outcome = self._judge(name, attributes.decode("latin-1"), decision, hostname, now)
                if len(outcomes) >= 16384:  # many kinds this second: count what is there, start afresh
                    self._report_outcomes(now)
                    outcomes = self._outcomes
                outcomes[cache_key] = outcome
            outcome.uses += 1
            verdict = outcome.verdict
            if verdict == "blocked" or verdict == "ignored":
                if notes is not None:
                    notes.append(f"{outcome.name}={verdict}:{outcome.label}")
                continue
            if answered is not None:
                answered.add(outcome.name)  # kept or deleted by the app: a deletion of a stale copy would undo it
            result.append((key, pair + outcome.attributes) if verdict == "capped" else (key, value))
            if notes is not None:
                notes.append(f"{outcome.name}={verdict}:{outcome.label}")
        if answered is not None:
            for name, deletion in deletions:
                if name not in answered:
                    result.append((_SET_COOKIE, deletion))
                    if notes is not None:
                        notes.append(f"{name}=deleted")
        if notes:
            result.append((_DEBUG_HEADER, ", ".join(notes).encode("latin-1", "replace")))
        return result

    def _outcomes_for(self, now: datetime) -> dict[tuple[bytes | None, bytes, tuple[object, ...], str], _Outcome]:
        """This second's judgement table; the last second's counts go to the cookie report."""
        if now >= self._outcomes_until or now < self._outcomes_since:
            self._report_outcomes(now)
            self._outcomes_since = now
            self._outcomes_until = now.replace(microsecond=0) + _ONE_SECOND
        return self._outcomes

    def _report_outcomes(self, now: datetime) -> None:
        """Hand the counted uses to the cookie report and start an empty table."""
        site_id = self.site.id
        seen = self._outcomes_since  # the second the counted uses happened in
        for outcome in self._outcomes.values():
            if outcome.uses and outcome.verdict != "deletion" and outcome.verdict != "ignored":
                self.report.observe(
                    site_id, outcome.name, outcome.category, outcome.verdict, outcome.asked, seen, outcome.uses
                )
        self._outcomes = {}
        self.report.flush_soon(now)

    def _deletions_for(
        self, request_cookies: list[tuple[str, str]], decision: ConsentDecision, hostname: str
    ) -> tuple[tuple[str, bytes], ...]:
        """The deletions owed for request cookies the decision does not allow (cached: visitors repeat)."""
        names = tuple(name for name, _ in request_cookies)
        key = (names, decision.key, hostname)
        deletions = self._deletions.get(key)
        if deletions is None:
            found: list[tuple[str, bytes]] = []
            seen: set[str] = set()
            for name in names:
                if name == self.cookie_name or name in seen or self.policy(name, hostname).allowed(decision):
                    continue
                seen.add(name)
                path = self._rule_paths.get(name, "/")
                for domain in self._deletion_domains(hostname):
                    found.append((name, deletion_header(name, path=path, domain=domain).encode("latin-1")))
            deletions = tuple(found)
            if len(self._deletions) >= 4096:
                self._deletions.clear()
            self._deletions[key] = deletions
        return deletions

    def _lifespan_send(self, send: Send) -> Send:
        async def send_and_flush(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self._report_outcomes(self.clock.now())
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
