"""What a visitor decided, and what that decision allows on one request.

GPC (``Sec-GPC: 1``) is an opt-out of analytics and advertising (CCPA regulations
§7025; the GPC spec) unless the visitor opted in explicitly while sending it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from gateway.categories import CONSENT_CATEGORIES, Category

ConsentMethod = Literal["accept_all", "reject_all", "custom", "gpc", "withdraw"]
CONSENT_METHODS: tuple[ConsentMethod, ...] = ("accept_all", "reject_all", "custom", "gpc", "withdraw")
#: Why a request has (or lacks) a usable decision; every reason but "valid" means "ask again".
DecisionReason = Literal["valid", "missing", "tampered", "expired", "revision", "other_site"]
GPC_OPT_OUT: frozenset[Category] = frozenset({"analytics", "advertising"})


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The content of a consent token: one decision of one visitor on one site."""

    consent_id: str
    site_id: str
    revision: int
    allowed: frozenset[Category]
    services: Mapping[str, bool]
    method: ConsentMethod
    gpc: bool
    issued_at: datetime

    @property
    def accepted_any(self) -> bool:
        return bool(self.allowed) or any(self.services.values())


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """What one request may do: published on ``scope["gateway.consent"]`` for the app."""

    state: ConsentState | None
    reason: DecisionReason
    gpc: bool
    allowed: frozenset[Category]
    services: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    #: Equal for decisions that allow the same things (what the middleware's caches key on).
    key: tuple[object, ...] = ()

    @property
    def has_decision(self) -> bool:
        """False means the banner must be shown (no, tampered, expired or outdated token)."""
        return self.state is not None

    def allows(self, name: str) -> bool:
        """Whether a category (``"analytics"``) or a site's service (``"hotjar"``) may run."""
        if name == "essential":
            return True
        if name in CONSENT_CATEGORIES:
            return name in self.allowed
        return self.services.get(name, False)


def make_decision(
    state: ConsentState | None,
    reason: DecisionReason,
    *,
    gpc: bool,
    service_categories: Mapping[str, Category],
) -> ConsentDecision:
    """Apply GPC to a verified state and resolve every service of the site to allowed or not.

    A service follows its own choice where the visitor made one, else its category's.
    """
    if state is None:
        allowed: frozenset[Category] = frozenset()
        chosen: Mapping[str, bool] = {}
    else:
        allowed = state.allowed
        chosen = state.services
        if gpc and not state.gpc:  # the signal is newer than the decision: it wins
            allowed = allowed - GPC_OPT_OUT
            chosen = {k: v and service_categories.get(k) not in GPC_OPT_OUT for k, v in chosen.items()}
    services = {
        service: (
            chosen.get(service, category in allowed)
            and not (gpc and category in GPC_OPT_OUT and state is not None and not state.gpc)
        )
        for service, category in service_categories.items()
    }
    key = (allowed, tuple(sorted(services.items())))
    return ConsentDecision(state, reason, gpc, allowed, MappingProxyType(services), key)
