"""What the endpoints share: the wiring ``create_app`` builds once (no globals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.accounts.passwords import PasswordHasher
from gateway.clock import Clock
from gateway.consent.token import ConsentTokenCodec
from gateway.cookies.catalog import CookieCatalog
from gateway.ingest.bots import IgnoreList
from gateway.ingest.buffer import WriteBuffer
from gateway.ingest.geo import GeoLookup
from gateway.ingest.visitor import SaltKeeper
from gateway.metrics import Metrics
from gateway.settings import Settings, SiteSettings
from gateway.storage.store import Store


@dataclass(frozen=True, slots=True)
class GatewayContext:
    settings: Settings
    clock: Clock
    database: Store
    codec: ConsentTokenCodec
    #: Each site's catalog: the shipped rules plus the site's own.
    catalogs: Mapping[str, CookieCatalog]
    metrics: Metrics
    geo: GeoLookup
    salts: SaltKeeper
    buffer: WriteBuffer
    ignore_lists: Mapping[str, IgnoreList]
    #: scrypt for logins and passwords, a bounded number at once (memory).
    passwords: PasswordHasher

    def site(self, site_id: object) -> SiteSettings | None:
        return self.settings.site(site_id) if isinstance(site_id, str) else None
