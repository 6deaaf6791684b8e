"""consent-gateway: cookie consent enforcement and privacy-first analytics for ASGI sites."""

from gateway.app import create_app
from gateway.consent.middleware import ConsentMiddleware
from gateway.consent.model import ConsentDecision
from gateway.settings import Settings, SiteSettings, load_settings

__all__ = ["ConsentDecision", "ConsentMiddleware", "Settings", "SiteSettings", "create_app", "load_settings"]
