"""Reading a visitor's decision from a ``POST /consent`` body: strict, with messages that say what is wrong.

Rules: essential cannot be refused; a category or service the site does not have is an
error, not silently ignored; the method, when sent, must agree with the choices (an
"accept_all" that refuses something is not an acceptance of all); no pre-ticked boxes, so
a category that is not mentioned is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.categories import CONSENT_CATEGORIES, Category
from gateway.consent.model import ConsentMethod
from gateway.settings import SiteSettings

_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}")
_MAX_PATH = 512
_KNOWN_KEYS = {"site", "choices", "services", "method", "revision", "language", "page", "gpc", "token"}


class ChoiceError(ValueError):
    """The body does not describe a valid decision (answered as 400)."""


@dataclass(frozen=True, slots=True)
class ConsentChoice:
    allowed: frozenset[Category]
    services: Mapping[str, bool]
    method: ConsentMethod
    revision: int
    gpc: bool
    language: str | None
    page_path: str | None


def parse_choice(body: Mapping[str, Any], site: SiteSettings, *, gpc_header: bool) -> ConsentChoice:
    unknown = sorted(set(body) - _KNOWN_KEYS)
    if unknown:
        raise ChoiceError(f"unknown field {unknown[0]!r}; expected {', '.join(sorted(_KNOWN_KEYS))}")
    revision = body.get("revision")
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise ChoiceError(f"'revision' must be the policy revision the banner showed (a number), found {revision!r}")
    choices = body.get("choices", {})
    if not isinstance(choices, Mapping):
        raise ChoiceError('\'choices\' must be an object such as {"analytics": true, "advertising": false}')
    allowed: set[Category] = set()
    for name, value in choices.items():
        if not isinstance(value, bool):
            raise ChoiceError(f"choices.{name} must be true or false, found {value!r}")
        if name == "essential":
            if not value:
                raise ChoiceError("essential cookies cannot be refused (they need no consent)")
            continue
        if name not in CONSENT_CATEGORIES:
            raise ChoiceError(f"unknown category {name!r}; expected {', '.join(CONSENT_CATEGORIES)}")
        if value:
            allowed.add(name)
    services_raw = body.get("services", {})
    if not isinstance(services_raw, Mapping):
        raise ChoiceError("'services' must be an object such as {\"hotjar\": false}")
    services: dict[str, bool] = {}
    for name, value in services_raw.items():
        if site.service(name) is None:
            known = ", ".join(s.id for s in site.services) or "none"
            raise ChoiceError(f"unknown service {name!r} for site {site.id!r}; its services: {known}")
        if not isinstance(value, bool):
            raise ChoiceError(f"services.{name} must be true or false, found {value!r}")
        services[name] = value
    gpc_body = body.get("gpc", False)
    if not isinstance(gpc_body, bool):
        raise ChoiceError(f"'gpc' must be true or false, found {gpc_body!r}")
    method = _method(body.get("method"), allowed, services, gpc=gpc_header or gpc_body)
    return ConsentChoice(
        allowed=frozenset(allowed),
        services=services,
        method=method,
        revision=revision,
        gpc=gpc_header or gpc_body,
        language=_language(body.get("language")),
        page_path=parse_page_path(body.get("page")),
    )


def _method(sent: object, allowed: set[Category], services: Mapping[str, bool], *, gpc: bool) -> ConsentMethod:
    everything = allowed == set(CONSENT_CATEGORIES) and all(services.values())
    nothing = not allowed and not any(services.values())
    if sent is None:
        return "accept_all" if everything else "reject_all" if nothing else "custom"
    if sent == "accept_all" and not everything:
        raise ChoiceError("method 'accept_all' but some choices are false")
    if sent in ("reject_all", "gpc") and not nothing:
        raise ChoiceError(f"method {sent!r} but some choices are true")
    if sent == "gpc" and not gpc:
        raise ChoiceError("method 'gpc' needs the Global Privacy Control signal (Sec-GPC: 1 or \"gpc\": true)")
    if sent in ("accept_all", "reject_all", "custom", "gpc"):
        return sent
    raise ChoiceError(f"unknown method {sent!r}; expected accept_all, reject_all, custom or gpc")


def _language(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _LANGUAGE_RE.fullmatch(value):  # fullmatch: "$" allows a final "\n"
        raise ChoiceError(f"'language' must be a language tag such as 'en' or 'pt-BR', found {value!r}")
    return value


def parse_page_path(value: object) -> str | None:
    """Keep only the path: a query string can carry personal data (emails, tokens)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ChoiceError(f"'page' must be the page's path as text, found {value!r}")
    path = value.split("?", 1)[0].split("#", 1)[0]
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ChoiceError("'page' contains control characters")
    if not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in JSON) cannot be stored as text
            raise ChoiceError("'page' is not valid Unicode (it holds a lone surrogate)") from None
    return path[:_MAX_PATH] or None
