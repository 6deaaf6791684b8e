"""A small shop to scan: one uvicorn on 127.0.0.1, reached under several host names through Chromium's
``--host-resolver-rules`` (``MAP *.test 127.0.0.1``), and an app that answers by Host header.

- ``www.shop.test`` — the site, behind ``ConsentMiddleware``: ``/`` embeds our banner from the gateway,
  sets the essential ``shop_session`` by header, loads a tracker from ``tracker.test`` BEFORE consent
  (the deliberate violation: a script cookie ``_tracker_id`` and a call to ``/collect``), sets the
  functional ``shop_theme`` and the localStorage key ``shop_recent`` by script once functional is
  allowed, sets the analytics ``shop_ab`` by an inline script only while there is no decision (the
  middleware deletes it again: a cookie of before the decision only), and embeds an iframe from ``frame.test``.
  ``/sitemap.xml`` is an index of ``/sitemap-pages.xml``; ``/robots.txt`` disallows ``/private`` for
  consent-gateway-scanner only.
- ``consent.shop.test`` — the gateway (banner, ``/consent``).
- ``tracker.test`` — the third party: ``/t.js`` and ``/collect``.
- ``frame.test`` — an embedded widget that tries to keep ``widget_seen`` in its localStorage (a
  third-party frame: Chromium refuses it, so nothing is stored).

``EXPECTED`` is what the site does, state by state: the scanner must find exactly that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.consent.middleware import ConsentMiddleware
from gateway.settings import Settings
from tests.conftest import LiveServer, make_settings, site_config

SITE_ID = "shop"
#: Chromium flag: every *.test host is this machine (the servers listen on 127.0.0.1).
RESOLVER_RULES = "--host-resolver-rules=MAP *.test 127.0.0.1"

_TRACKER_JS = """document.cookie = "_tracker_id=t-" + Math.random().toString(36).slice(2) + "; Max-Age=63072000";
new Image().src = "{origin}/collect?p=" + encodeURIComponent(location.pathname);
"""
#: Chromium refuses storage to a third-party frame (as it refuses it cookies): the widget's try stores nothing.
_WIDGET = """<!doctype html><title>widget</title><p>A widget.</p>
<script>try { localStorage.setItem("widget_seen", "1"); } catch (e) {}</script>"""


def _page(title: str, body: str, *, gateway: str | None) -> str:
    snippet = f'<script src="{gateway}/c.js" data-site="{SITE_ID}" defer></script>' if gateway else ""
    head = f"<meta charset='utf-8'><title>{title}</title>{snippet}"
    return f"<!doctype html><html lang='en'><head>{head}</head><body>{body}</body></html>"


class ShopSite:
    """The four hosts on one port; ``url`` is the site's home page."""

    def __init__(self, tmp_path: Path) -> None:
        self.server = LiveServer(self)
        port = self.server.port
        self.origin = f"http://www.shop.test:{port}"
        self.gateway_origin = f"http://consent.shop.test:{port}"
        self.tracker_origin = f"http://tracker.test:{port}"
        self.frame_origin = f"http://frame.test:{port}"
        self.settings: Settings = make_settings(
            tmp_path,
            site=site_config(
                origins=[self.origin],
                cookies=[
                    {"name": "shop_session", "category": "essential", "lifetime": "session", "vendor": "Shop"},
                    {"name": "shop_theme", "category": "functional", "lifetime": "1y", "vendor": "Shop"},
                    {"name": "shop_ab", "category": "analytics", "lifetime": "1d", "vendor": "Shop"},
                ],
            ),
            public_url=self.gateway_origin,
        )
        self.gateway = create_app(self.settings)
        self.site = ConsentMiddleware(self._site_app(), settings=self.settings, site=SITE_ID)
        self.tracker = Starlette(
            routes=[
                Route(
                    "/t.js",
                    lambda r: Response(_TRACKER_JS.format(origin=self.tracker_origin), media_type="text/javascript"),
                ),
                Route("/collect", lambda r: Response(status_code=204)),
                Route("/", lambda r: HTMLResponse(_page("Tracker Inc.", "<p>We track.</p>", gateway=None))),
            ]
        )
        self.frame = Starlette(routes=[Route("/widget", lambda r: HTMLResponse(_WIDGET))])

    @property
    def url(self) -> str:
        return self.origin + "/"

    def __enter__(self) -> ShopSite:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.gateway(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").split(":")[0]
        app = {"consent.shop.test": self.gateway, "tracker.test": self.tracker, "frame.test": self.frame}.get(
            host, self.site
        )
        await app(scope, receive, send)

    def _site_app(self) -> Starlette:
        gateway = self.gateway_origin

        async def home(request: Request) -> Response:
            body = f"""<h1>Shop</h1>
<script src="{self.tracker_origin}/t.js"></script>
<script>if (!/cg_consent=/.test(document.cookie)) document.cookie = "shop_ab=b; Max-Age=86400; Path=/";</script>
<script type="text/plain" data-category="functional">
  document.cookie = "shop_theme=dark; Max-Age=31536000; Path=/; SameSite=Lax";
  localStorage.setItem("shop_recent", "[]");
</script>
<iframe title="widget" src="{self.frame_origin}/widget"></iframe>
<a href="/about">About</a> <a href="/about#team">Team</a> <a href="#top">Top</a>
<a href="/private/account">Account</a> <a href="/files/terms.pdf">Terms</a>
<a href="https://example.org/">Elsewhere</a> <a href="{self.tracker_origin}/">Tracker Inc.</a>
<a href="mailto:shop@example.org">Mail</a>"""
            response = HTMLResponse(_page("Shop", body, gateway=gateway))
            response.set_cookie("shop_session", "s1", httponly=True, samesite="lax")
            return response

        async def about(request: Request) -> Response:
            return HTMLResponse(_page("About", '<h1>About</h1><a href="/">Home</a>', gateway=gateway))

        async def products(request: Request) -> Response:
            """Listed only in the nested sitemap, and without our banner."""
            return HTMLResponse(_page("Products", "<h1>Products</h1>", gateway=None))

        async def private(request: Request) -> Response:
            return HTMLResponse(_page("Account", "<h1>Private</h1>", gateway=gateway))

        async def robots(request: Request) -> Response:
            return PlainTextResponse(
                "User-agent: consent-gateway-scanner\nDisallow: /private\n\nUser-agent: *\nDisallow:\n"
            )

        async def sitemap_index(request: Request) -> Response:
            return Response(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<sitemap><loc>{self.origin}/sitemap-pages.xml</loc></sitemap></sitemapindex>",
                media_type="application/xml",
            )

        async def sitemap_pages(request: Request) -> Response:
            locations = "".join(
                f"<url><loc>{self.origin}{path}</loc></url>" for path in ("/", "/products", "/private/hidden")
            )
            return Response(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locations}</urlset>',
                media_type="application/xml",
            )

        return Starlette(
            routes=[
                Route("/", home),
                Route("/about", about),
                Route("/products", products),
                Route("/private/{rest:path}", private),
                Route("/robots.txt", robots),
                Route("/sitemap.xml", sitemap_index),
                Route("/sitemap-pages.xml", sitemap_pages),
                Route("/favicon.ico", lambda r: Response(status_code=204)),
            ]
        )
