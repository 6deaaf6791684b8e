"""Security headers for the pages people log in to: the dashboard, the admin pages, shared links.

A strict Content-Security-Policy (OWASP's "strict CSP"): scripts only with this response's
nonce, styles only from the gateway's own stylesheet (no ``'unsafe-inline'``, so templates
never use ``style=""``), forms only back to the gateway, never framed (clickjacking), and no
Referer leaving the dashboard (its URLs name sites and filters). ``no-store`` because the
pages show private figures that a shared computer's cache must not keep.
"""

from __future__ import annotations

import secrets
from typing import TypeVar

from starlette.responses import Response

R = TypeVar("R", bound=Response)


def new_nonce() -> str:
    """A fresh CSP nonce (128 random bits): one per response, never reused."""
    return secrets.token_urlsafe(16)


def security_headers(nonce: str) -> dict[str, str]:
    """The headers every dashboard, admin, login and shared-link response carries."""
    return {
        "content-security-policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
    }


def apply_security_headers(response: R, nonce: str | None = None, *, replace: bool = True) -> R:
    """Set the security headers on ``response`` (a new nonce unless given); the same response back.

    ``replace=False`` keeps headers the endpoint chose itself (a CSV download's own
    Cache-Control, a page that rendered with its own nonce).
    """
    for name, value in security_headers(nonce or new_nonce()).items():
        if replace or name not in response.headers:
            response.headers[name] = value
    return response
