"""Server-side pageviews: a site with no JavaScript still gets statistics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.clock import FixedClock
from gateway.consent.middleware import ConsentMiddleware
from gateway.consent.token import ConsentTokenCodec
from gateway.ingest.geo import NullGeo
from gateway.ingest.serverside import PageviewMiddleware, compile_paths
from gateway.settings import Settings
from tests.conftest import LiveServer, make_settings, site_config
from tests.stores import query

pytestmark = pytest.mark.integration
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"


async def page(request: Request) -> Response:
    return HTMLResponse("<h1>hello</h1>")


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def missing(request: Request) -> Response:
    return HTMLResponse("<h1>not found</h1>", status_code=404)


def site_app(settings: Settings, clock: FixedClock, *, with_consent: bool = False) -> Starlette:
    middleware = [Middleware(ConsentMiddleware, settings=settings, site="shop", clock=clock)] if with_consent else []
    middleware.append(Middleware(PageviewMiddleware, settings=settings, site="shop", clock=clock, geo=NullGeo()))
    routes = [Route(p, page, methods=["GET", "POST"]) for p in ("/", "/blog/post", "/admin/users")]
    routes += [Route("/api/data", api), Route("/gone", missing)]
    return Starlette(routes=routes, middleware=middleware)


def stored_paths(settings: Settings) -> list[str]:
    """The recorded pathnames, in order."""
    return [r[0] for r in query(settings.database, "SELECT pathname FROM events ORDER BY id")]


class Visitor:
    """Requests to a site on a real uvicorn; ``leave`` stops it, which settles what the middleware recorded.

    A pageview is recorded after its response, so no moment of waiting proves that a request which
    must not count never will. The server's shutdown does: the middleware finishes every recording in
    flight and writes what is queued before the lifespan completes. After ``leave`` the table is final.
    """

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def __call__(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            return client.request(method, self.server.url + path, headers={"user-agent": BROWSER, **(headers or {})})

    def leave(self) -> None:
        self.server.__exit__()
        assert not self.server.thread.is_alive(), "the site's server did not shut down"


@pytest.fixture
def visit(live_server: Callable[[Any], LiveServer]) -> Callable[..., Visitor]:
    def start(settings: Settings, clock: FixedClock, **kwargs: Any) -> Visitor:
        return Visitor(live_server(site_app(settings, clock, **kwargs)))

    return start


def test_html_gets_on_matching_paths_are_counted_and_nothing_else(
    tmp_path: Path, clock: FixedClock, visit: Callable[..., Visitor]
) -> None:
    settings = make_settings(tmp_path, site=site_config(pageview_exclude=["/admin/*"]))
    get = visit(settings, clock)
    get("/", headers={"referer": "https://www.google.com/"})
    get("/blog/post?utm_source=newsletter&utm_medium=email")
    get("/admin/users")  # excluded
    get("/api/data")  # JSON
    get("/gone")  # 404
    get("/", method="POST")  # not a GET
    get("/", headers={"user-agent": "curl/8.4.0"})  # a bot
    get("/", headers={"sec-purpose": "prefetch"})  # a prefetch
    get.leave()
    assert stored_paths(settings) == ["/", "/blog/post"]
    rows = query(settings.database, "SELECT source, channel, utm_source, browser, device FROM events ORDER BY id")
    assert rows == [
        ("Google", "search", None, "Chrome", "desktop"),
        ("newsletter", "email", "newsletter", "Chrome", "desktop"),
    ]


def test_a_site_that_requires_consent_counts_only_visitors_who_gave_it(
    tmp_path: Path, clock: FixedClock, visit: Callable[..., Visitor]
) -> None:
    settings = make_settings(tmp_path, site=site_config(analytics_consent="required"))
    get = visit(settings, clock, with_consent=True)
    codec = ConsentTokenCodec(settings.secret_keys, clock)
    allowed, _ = codec.issue(
        consent_id="v1",
        site=settings.sites["shop"],
        allowed=frozenset({"analytics"}),
        services={},
        method="custom",
        gpc=False,
    )
    refused, _ = codec.issue(
        consent_id="v2", site=settings.sites["shop"], allowed=frozenset(), services={}, method="reject_all", gpc=False
    )
    get("/", headers={"cookie": f"cg_consent={refused}"})
    get("/blog/post")  # no decision
    get("/", headers={"cookie": f"cg_consent={allowed}"})
    get.leave()
    assert stored_paths(settings) == ["/"]


@pytest.mark.parametrize(
    ("patterns", "path", "matches"),
    [
        pytest.param(["/*"], "/anything/at/all", True, id="everything"),
        pytest.param(["/blog/*"], "/blog/post", True, id="prefix"),
        pytest.param(["/blog/*"], "/about", False, id="other-prefix"),
        pytest.param(["/a.b"], "/aXb", False, id="dot-is-literal"),
        pytest.param([], "/", False, id="no-pattern-nothing"),
    ],
)
def test_path_patterns(patterns: list[str], path: str, matches: bool) -> None:
    compiled = compile_paths(patterns)
    assert (compiled is not None and compiled.fullmatch(path) is not None) == matches
