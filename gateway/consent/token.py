"""The consent token: an itsdangerous-signed, compact, versioned payload in ``cg_consent``.

Keys rotate: ``secret_keys`` lists them oldest first, the last signs and all verify
(itsdangerous' own key-rotation rule). Time comes from the injected clock, so expiry is
testable. A bad token is never an error: ``verify`` returns a reason instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from gateway.categories import CONSENT_CATEGORIES, Category
from gateway.clock import Clock
from gateway.consent.model import ConsentMethod, ConsentState, DecisionReason
from gateway.settings import Secret, SiteSettings

TOKEN_VERSION = 1
_SALT = "consent-gateway.consent.v1"
_CATEGORY_BITS: dict[Category, int] = {"functional": 1, "analytics": 2, "advertising": 4}
_METHOD_CODES: dict[ConsentMethod, str] = {
    "accept_all": "A",
    "reject_all": "R",
    "custom": "C",
    "gpc": "G",
    "withdraw": "W",
}
_CODE_METHODS = {code: method for method, code in _METHOD_CODES.items()}
#: Tokens stamped further in the future than this are not trusted (clock skew allowance).
_FUTURE_SKEW = timedelta(minutes=5)


def new_consent_id() -> str:
    """128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class Verified:
    state: ConsentState | None
    reason: DecisionReason


class ConsentTokenCodec:
    def __init__(self, secret_keys: Sequence[Secret], clock: Clock) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed to sign consent tokens (secret_keys)")

        class _ClockSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock.now().timestamp())

        self._clock = clock
        self._serializer = URLSafeTimedSerializer([key.value for key in secret_keys], salt=_SALT, signer=_ClockSigner)
        # Verifying is pure in the token text; the middleware sees the same token on every request.
        self._load = lru_cache(maxsize=4096)(self._load_uncached)

    def sign(self, state: ConsentState) -> str:
        payload: dict[str, Any] = {
            "v": TOKEN_VERSION,
            "i": state.consent_id,
            "s": state.site_id,
            "r": state.revision,
            "c": sum(_CATEGORY_BITS[c] for c in state.allowed),
            "m": _METHOD_CODES[state.method],
        }
        if state.services:
            payload["x"] = {name: int(value) for name, value in sorted(state.services.items())}
        if state.gpc:
            payload["g"] = 1
        return self._serializer.dumps(payload)

    def issue(
        self,
        *,
        consent_id: str,
        site: SiteSettings,
        allowed: frozenset[Category],
        services: Mapping[str, bool],
        method: ConsentMethod,
        gpc: bool,
    ) -> tuple[str, ConsentState]:
        """Make a state stamped now and its token."""
        state = ConsentState(
            consent_id=consent_id,
            site_id=site.id,
            revision=site.policy_revision,
            allowed=allowed,
            services=dict(services),
            method=method,
            gpc=gpc,
            issued_at=self._clock.now().replace(microsecond=0),
        )
        return self.sign(state), state

    def verify(self, token: str, site: SiteSettings) -> Verified:
        """The state behind ``token`` for ``site``, or why there is none."""
        loaded = self._load(token)
        if loaded is None:
            return Verified(None, "tampered")
        state = loaded
        if state.site_id != site.id:
            return Verified(None, "other_site")
        now = self._clock.now()
        if state.issued_at > now + _FUTURE_SKEW:
            return Verified(None, "tampered")
        if now >= expires_at(state, site):
            return Verified(None, "expired")
        if state.revision != site.policy_revision:
            return Verified(None, "revision")
        return Verified(state, "valid")

    def consent_id_of(self, token: str, site: SiteSettings) -> str | None:
        """The consent id of a genuine token for ``site``, even an expired or outdated one:
        a renewed decision keeps the visitor's id so the proof log shows their whole history."""
        state = self._load(token)
        return state.consent_id if state is not None and state.site_id == site.id else None

    def _load_uncached(self, token: str) -> ConsentState | None:
        if not token or len(token) > 1024:
            return None
        try:
            payload, stamped = self._serializer.loads(token, return_timestamp=True)
            return _state_from_payload(payload, stamped)
        except (BadSignature, ValueError, TypeError, KeyError):
            return None


def expires_at(state: ConsentState, site: SiteSettings) -> datetime:
    """An acceptance and a refusal each live as long as the site's setting for them."""
    lifetime = site.consent_lifetime_accept if state.accepted_any else site.consent_lifetime_reject
    return state.issued_at + timedelta(seconds=lifetime.seconds or 0)


def _state_from_payload(payload: Any, stamped: datetime) -> ConsentState:
    if not isinstance(payload, dict) or payload.get("v") != TOKEN_VERSION:
        raise ValueError("unknown token version")
    bits = payload["c"]
    services = payload.get("x", {})
    if not isinstance(bits, int) or not isinstance(services, dict) or not isinstance(payload["r"], int):
        raise ValueError("malformed token payload")
    consent_id, site_id = payload["i"], payload["s"]
    if not isinstance(consent_id, str) or not isinstance(site_id, str):
        raise ValueError("malformed token payload")
    method = _CODE_METHODS[payload["m"]]
    return ConsentState(
        consent_id=consent_id,
        site_id=site_id,
        revision=payload["r"],
        allowed=frozenset(c for c in CONSENT_CATEGORIES if bits & _CATEGORY_BITS[c]),
        services={str(k): bool(v) for k, v in services.items()},
        method=method,
        gpc=bool(payload.get("g")),
        issued_at=stamped.astimezone(UTC),
    )
