"""The sample site the middleware benchmark serves, bare and behind ``ConsentMiddleware``.

Each response sets the four cookies of a typical shop page, one per category: an essential
session id, a functional ``is_returning`` (5 years), Google Analytics' ``_ga`` (2 years) and
Meta's ``_fbp`` (90 days). uvicorn starts the factories below in a subprocess
(``--factory --app-dir bench apps:bare``); the wrapped one reads the benchmark's settings from
the JSON file named by ``CG_BENCH_SETTINGS`` (a temp file written by ``bench/middleware.py``).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.consent.middleware import ConsentMiddleware, load_catalog
from gateway.settings import Settings, settings_from_dict

SETTINGS_ENV = "CG_BENCH_SETTINGS"
SITE = "bench"
FIVE_YEARS = 5 * 31556952
TWO_YEARS = 2 * 31556952
NINETY_DAYS = 90 * 86400
_PAGE = "<!doctype html><title>Shop</title><h1>Welcome back</h1><p>Today's offers.</p>"


async def _home(request: Request) -> Response:
    response = HTMLResponse(_PAGE)
    response.set_cookie("PHPSESSID", secrets.token_hex(16), httponly=True)
    response.set_cookie("is_returning", "1", max_age=FIVE_YEARS)
    response.set_cookie("_ga", "GA1.1.1234567890.1767225600", max_age=TWO_YEARS)
    response.set_cookie("_fbp", "fb.1.1767225600000.1234567890", max_age=NINETY_DAYS)
    return response


def sample_app() -> Starlette:
    return Starlette(routes=[Route("/", _home)])


def bench_settings(path: Path) -> Settings:
    return settings_from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))


def bare() -> ASGIApp:
    return sample_app()


def with_middleware() -> ASGIApp:
    settings = bench_settings(Path(os.environ[SETTINGS_ENV]))
    return ConsentMiddleware(sample_app(), settings=settings, site=SITE, catalog=load_catalog(settings))
