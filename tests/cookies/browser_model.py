"""A small RFC 6265 user agent: the storage model of section 5.3 and the retrieval of section 5.4.

It parses with ``gateway.cookies.setcookie.parse_set_cookie``, so running it over the http-state
conformance data checks our parser against what browsers do, and running it over rewritten headers
checks that a rewrite changes only how long a cookie lives. Left out: non-HTTP APIs (every request
here is HTTP), IDNA canonicalisation, and the Public Suffix List, for which a single-label domain
(a TLD such as "org") stands in.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from gateway.cookies.setcookie import parse_set_cookie

_LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(slots=True)
class StoredCookie:
    """One cookie-store entry with the fields of 5.3 that matter to an HTTP request."""

    name: str
    value: str
    domain: str
    path: str
    expiry: datetime
    persistent: bool
    host_only: bool
    secure_only: bool
    http_only: bool
    creation: int  # a sequence number: two cookies never share a creation time


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def domain_match(string: str, domain: str) -> bool:
    """5.1.3: identical, or ``string`` ends with "." + ``domain`` and is a host name, not an IP address."""
    return string == domain or (string.endswith("." + domain) and not _is_ip_address(string))


def default_path(uri_path: str) -> str:
    """5.1.4: the request path up to, not including, its right-most '/' ("/" when there is nothing before)."""
    if not uri_path.startswith("/") or uri_path.count("/") <= 1:
        return "/"
    return uri_path[: uri_path.rindex("/")]


def path_match(request_path: str, cookie_path: str) -> bool:
    """5.1.4: identical, or ``cookie_path`` is a prefix that ends at a '/' of ``request_path``."""
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


def _is_public_suffix(domain: str) -> bool:
    """Stands in for the Public Suffix List (5.3 step 5): a single label such as "org" or "com"."""
    return "." not in domain


@dataclass(slots=True)
class UserAgent:
    """A cookie store fed ``Set-Cookie`` headers and asked which cookies a request carries."""

    now: datetime
    cookies: list[StoredCookie] = field(default_factory=list)
    _clock: itertools.count[int] = field(default_factory=itertools.count)

    def receive(self, request_url: str, header: str) -> None:
        """5.3: store (or replace, or delete) the cookie of one ``Set-Cookie`` header received from ``request_url``."""
        cookie = parse_set_cookie(header)
        if cookie is None:  # 5.2: a header the parser ignores stores nothing
            return
        url = urlsplit(request_url)
        host = (url.hostname or "").lower()
        expiry = cookie.expiry(self.now)  # step 3
        domain = cookie.domain or ""  # step 4
        if domain and _is_public_suffix(domain):  # step 5
            if domain != host:
                return
            domain = ""
        if domain:  # step 6
            if not domain_match(host, domain):
                return
            host_only = False
        else:
            host_only, domain = True, host
        path = cookie.path if cookie.path is not None else default_path(url.path)  # step 7
        creation = next(self._clock)
        for index, old in enumerate(self.cookies):  # step 11
            if (old.name, old.domain, old.path) == (cookie.name, domain, path):
                creation = old.creation
                del self.cookies[index]
                break
        self.cookies.append(
            StoredCookie(
                name=cookie.name,
                value=cookie.value,
                domain=domain,
                path=path,
                expiry=_LATEST if expiry is None else expiry,
                persistent=expiry is not None,
                host_only=host_only,
                secure_only=cookie.secure,
                http_only=cookie.http_only,
                creation=creation,
            )
        )
        self._evict_expired()

    def _evict_expired(self) -> None:
        """5.3, last paragraphs: a cookie whose expiry has come is gone (a header setting one deletes)."""
        self.cookies = [cookie for cookie in self.cookies if cookie.expiry > self.now]

    def cookies_for(self, request_url: str) -> list[tuple[str, str]]:
        """5.4: the (name, value) pairs of the ``Cookie`` header sent to ``request_url``, in order."""
        self._evict_expired()
        url = urlsplit(request_url)
        host = (url.hostname or "").lower()
        secure = url.scheme in ("https", "wss")
        chosen = [
            cookie
            for cookie in self.cookies
            if (cookie.domain == host if cookie.host_only else domain_match(host, cookie.domain))
            and path_match(url.path or "/", cookie.path)
            and (secure or not cookie.secure_only)
        ]
        # Step 2: longer paths first; among equal lengths, earlier creation times first.
        chosen.sort(key=lambda cookie: (-len(cookie.path), cookie.creation))
        return [(cookie.name, cookie.value) for cookie in chosen]
