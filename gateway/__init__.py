"""consent-gateway: cookie consent enforcement and privacy-first analytics for ASGI sites.

The public names are imported on first use, so ``import gateway.clock`` (or mounting only the
middleware) does not load the whole service.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.app import create_app
    from gateway.consent.middleware import ConsentMiddleware
    from gateway.consent.model import ConsentDecision
    from gateway.settings import Settings, SiteSettings, load_settings

__all__ = ["ConsentDecision", "ConsentMiddleware", "Settings", "SiteSettings", "create_app", "load_settings"]
_HOMES = {
    "create_app": "gateway.app",
    "ConsentMiddleware": "gateway.consent.middleware",
    "ConsentDecision": "gateway.consent.model",
    "Settings": "gateway.settings",
    "SiteSettings": "gateway.settings",
    "load_settings": "gateway.settings",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
