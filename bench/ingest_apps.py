"""The two servers the ingestion benchmark compares, each started by uvicorn in its own process.

``bare`` is the least a ``POST /api/event`` endpoint can do on the same stack: Starlette reads the
body and answers 202. ``gateway`` is the real thing, ``create_app`` with the settings in the JSON
file named by ``CG_BENCH_INGEST_SETTINGS`` (a temp file written by ``bench/ingest.py``): parse,
pipeline, salts, group commit to SQLite by the writer process, 202 after the commit.
(``uvicorn --factory --app-dir bench ingest_apps:bare``)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.settings import Settings, settings_from_dict

SETTINGS_ENV = "CG_BENCH_INGEST_SETTINGS"
#: ``process`` (the default, as ``serve`` runs it) or ``thread``: who writes the events (``--writer``).
WRITER_ENV = "CG_BENCH_INGEST_WRITER"
SITE = "bench"


async def _accept(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


def bare() -> ASGIApp:
    return Starlette(routes=[Route("/api/event", _accept, methods=["POST"])])


def ingest_settings(path: Path) -> Settings:
    return settings_from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))


def gateway() -> ASGIApp:
    settings = ingest_settings(Path(os.environ[SETTINGS_ENV]))
    writer_process = os.environ.get(WRITER_ENV, "process") == "process"
    return create_app(settings, freeze_heap=True, writer_process=writer_process)  # as `serve` runs it
