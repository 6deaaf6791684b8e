"""The proof-of-consent record: what GDPR Art. 7(1) asks a controller to demonstrate.

Who (a pseudonymous consent id), when, under which policy revision and banner (a hash of
the configuration and texts shown), which choices per category and service, by which
action, whether GPC was sent, in which language and on which page. The network is kept
truncated; the raw IP address never reaches a record. Country and device class feed the
consent report. An erasure keeps only a tombstone: the decision, under a new random id, with
its day but not its instant, and no language, page, network, browser, country or device
(gateway/storage/consent_log.py). What the banner showed is kept once per distinct banner (a
``PolicyRevision`` stored under that hash when a record first answers it), so "which text did
this visitor accept?" has an answer, not only a hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.categories import CONSENT_CATEGORIES, Category
from gateway.consent.model import ConsentMethod
from gateway.cookies.catalog import CookieCatalog
from gateway.settings import SiteSettings

RecordMethod = ConsentMethod | str  # "erase" marks an anonymous tombstone


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    consent_id: str
    site_id: str
    recorded_at: datetime
    method: RecordMethod
    policy_revision: int
    banner_hash: str
    categories: Mapping[Category, bool]
    services: Mapping[str, bool]
    gpc: bool
    language: str | None = None
    page_path: str | None = None
    ip_network: str | None = None
    ua_family: str | None = None
    expires_at: datetime | None = None
    erased: bool = False
    country: str | None = None  # ISO 3166-1 alpha-2, looked up from the full address in memory
    device: str | None = None  # "desktop", "mobile", "tablet", "bot" or "other"
    #: The stored ``PolicyRevision`` this record answered (its ``content_hash``); None for records made
    #: before revisions were stored: their ``banner_hash`` proves which banner, but its text was not kept.
    revision_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "site": self.site_id,
            "recorded_at": self.recorded_at.isoformat(),
            "method": self.method,
            "policy_revision": self.policy_revision,
            "banner_hash": self.banner_hash,
            "categories": dict(self.categories),
            "services": dict(self.services),
            "gpc": self.gpc,
            "language": self.language,
            "page_path": self.page_path,
            "ip_network": self.ip_network,
            "ua_family": self.ua_family,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "erased": self.erased,
            "country": self.country,
            "device": self.device,
            "revision": self.revision_hash,
        }


@dataclass(frozen=True, slots=True)
class PolicyRevision:
    """One banner as visitors saw it: ``content`` is the JSON ``banner_fingerprint`` hashed.

    ``content_hash`` is the ``banner_hash`` of every record that answered it, so a revision
    proves itself: ``sha256(content) == content_hash``.
    """

    content_hash: str
    site_id: str
    revision: int
    language: str
    content: str

    def shown(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.content)
        return loaded


def category_choices(allowed: frozenset[Category]) -> dict[Category, bool]:
    return {category: category in allowed for category in CONSENT_CATEGORIES}


def banner_fingerprint(
    site: SiteSettings, catalog: CookieCatalog, language: str, texts: Mapping[str, str] | None = None
) -> str:
    """A SHA-256 over what the visitor was shown, so a record proves which banner it answered."""
    return policy_revision(site, catalog, language, texts).content_hash


def policy_revision(
    site: SiteSettings, catalog: CookieCatalog, language: str, texts: Mapping[str, str] | None = None
) -> PolicyRevision:
    """What the visitor was shown, as the JSON that ``banner_fingerprint`` hashes (stored once per hash)."""
    shown = {
        "site": site.id,
        "revision": site.policy_revision,
        "policy_url": site.policy_url,
        "language": language,
        "services": [[s.id, s.name, s.category, s.description] for s in site.services],
        "cookies": sorted([r.name, r.category, str(r.lifetime), r.vendor, r.purpose] for r in catalog.rules),
        "texts": dict(sorted((texts or {}).items())),
    }
    content = json.dumps(shown, sort_keys=True)
    return PolicyRevision(
        content_hash=hashlib.sha256(content.encode()).hexdigest(),
        site_id=site.id,
        revision=site.policy_revision,
        language=language,
        content=content,
    )
