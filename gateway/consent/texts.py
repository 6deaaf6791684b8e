"""The banner's texts: English built in, eight more languages shipped, any text overridable per site.

Files live in ``consent_ui/i18n/<lang>.json`` (flat keys such as ``button.accept_all``); a site's
``[sites.ID.banner.texts.<lang>]`` table replaces single texts. The language is the visitor's
primary subtag when we ship it, else English.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from gateway.resources import resource_dir

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "lt")


@cache
def shipped_texts(language: str) -> Mapping[str, str]:
    """The shipped texts of ``language`` (one of ``LANGUAGES``), English filling any gap."""
    path = resource_dir("consent_ui") / "i18n" / f"{language}.json"
    texts: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    if language != DEFAULT_LANGUAGE:
        texts = {**shipped_texts(DEFAULT_LANGUAGE), **texts}
    return MappingProxyType(texts)


def text_keys() -> frozenset[str]:
    return frozenset(shipped_texts(DEFAULT_LANGUAGE))


def pick_language(requested: str | None) -> str:
    """``de-AT`` -> ``de``; anything we do not ship -> English."""
    primary = (requested or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def texts_for(language: str, overrides: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The texts a visitor sees: shipped ones for ``language`` with the site's overrides applied."""
    return {**shipped_texts(language), **overrides.get(language, {})}
