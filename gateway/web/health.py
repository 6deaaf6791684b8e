"""Operational endpoints: ``/healthz`` for load balancers and Docker, and the GPC support resource.

``/healthz`` answers 503 when the gateway could not keep its promises, naming the check that failed:

- ``database``: a read reaches a table (a missing schema fails it, ``SELECT 1`` did not);
- ``write``: a write transaction commits (one row of the ``health`` table), proved at most once every
  ``WRITE_PROOF_SECONDS`` per worker and the result reused meanwhile, so a load balancer polling every
  second costs one small commit every few seconds; a failure is proved again sooner, so recovery shows;
- ``writer``: the event writer runs (its child process is there) and keeps up: events have not waited
  longer than ``max_writer_lag_seconds`` for a commit and the queue is under 80% of its bound;
- ``disk``: the database's filesystem has at least ``min_free_disk_mb`` free (``os.statvfs``), so the
  operator hears of a filling disk before writes fail.

A read-only file, a full disk, a damaged page or a lost table used to leave it saying ``ok``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.context import GatewayContext
from gateway.ingest.bot_data import shipped_bot_patterns
from gateway.ingest.referrer_data import shipped_referrer_data
from gateway.web.storage_errors import storage_failure

#: When this gateway's GPC handling last changed (the GPC spec's ``lastUpdate``, ISO date).
GPC_LAST_UPDATE = "2026-11-24"
#: Seconds a proved write is trusted before /healthz writes again (bounds its write amplification).
WRITE_PROOF_SECONDS = 5.0
#: Seconds a failed write proof is reused: short, so /healthz turns ok soon after the operator's fix.
FAILED_PROOF_SECONDS = 1.0
#: Seconds /healthz waits for its write: the writer works in order, so a blocked writer blocks it.
WRITE_PROOF_TIMEOUT = 2.0
#: The share of the write queue's bound beyond which the writer counts as lagging.
QUEUE_LAG_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str

    def json(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


class _WriteProof:
    """The latest write proof and when it was made; one proof in flight, shared by concurrent requests.

    Monotonic time, not the injected Clock: this is a rate limit on real work, and tests pin the Clock.
    """

    def __init__(self, context: GatewayContext) -> None:
        self._context = context
        self._result: Check | None = None
        self._proved_at = 0.0
        self._running: asyncio.Task[Check] | None = None

    async def check(self) -> Check:
        result = self._result
        if result is not None:
            reuse = WRITE_PROOF_SECONDS if result.ok else FAILED_PROOF_SECONDS
            if time.monotonic() - self._proved_at < reuse:
                return result
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._prove())
            self._running.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), WRITE_PROOF_TIMEOUT)
        except TimeoutError:
            return Check(False, f"no commit within {WRITE_PROOF_TIMEOUT:g} s: the writer is blocked or far behind")

    async def _prove(self) -> Check:
        try:
            await self._context.database.prove_write(self._context.clock.now().isoformat())
        except Exception as error:  # noqa: BLE001 - every failure is the check's answer
            cause = storage_failure(error)
            return Check(False, cause or f"{type(error).__name__}: {error}")
        return Check(True, "ok")

    def _finished(self, task: asyncio.Task[Check]) -> None:
        self._running = None
        if not task.cancelled():
            self._result, self._proved_at = task.result(), time.monotonic()


def _writer_check(context: GatewayContext) -> Check:
    buffer = context.buffer
    problem = buffer.writer_problem
    if problem is not None:
        return Check(False, problem)
    limit = context.settings.max_writer_lag_seconds
    stalled = buffer.stalled_seconds
    if stalled > limit:
        return Check(False, f"{buffer.depth} events have waited {stalled:.1f} s for a commit (limit {limit} s)")
    if buffer.depth >= buffer.max_queue * QUEUE_LAG_SHARE:
        return Check(False, f"the write queue holds {buffer.depth} of at most {buffer.max_queue} events")
    return Check(True, "ok")


def _disk_check(context: GatewayContext) -> Check:
    location = context.settings.database
    if not isinstance(location, Path):
        return Check(True, "the database is a server (its disk is watched there)")
    folder = location.resolve().parent
    try:
        stats = os.statvfs(folder)
    except OSError as error:
        return Check(False, f"cannot read the free space of {folder}: {error.strerror or error}")
    free_mb = stats.f_bavail * stats.f_frsize // (1024 * 1024)
    minimum = context.settings.min_free_disk_mb
    detail = f"{free_mb} MB free (minimum {minimum} MB)"
    return Check(free_mb >= minimum, detail)


def health_routes(context: GatewayContext, *, maintenance_leader: Callable[[], bool] | None = None) -> list[Route]:
    """``maintenance_leader``: whether this process leads maintenance now (several processes or nodes
    share one store, one of them leads: gateway/storage/leader.py); shown as ``maintenance``."""
    # Read (and compiled) here, when the app is built, so a broken data file stops start-up and the
    # first event does not pay for it; shown so an operator can tell how old the lists are.
    data = {
        "bots": [source.describe() for source in shipped_bot_patterns().sources],
        "referrers": [source.describe() for source in shipped_referrer_data().sources],
    }
    proof = _WriteProof(context)

    async def healthz(request: Request) -> Response:
        database_ok = await context.database.ping()
        checks = {
            "database": Check(database_ok, "ok" if database_ok else "a read of the schema failed"),
            "write": await proof.check(),
            "writer": _writer_check(context),
            "disk": _disk_check(context),  # one statvfs call: no thread needed
        }
        failing = [name for name, check in checks.items() if not check.ok]
        body = {
            "status": "failing" if failing else "ok",
            "failing": failing,
            "checks": {name: check.json() for name, check in checks.items()},
            "database": "ok" if database_ok else "unreachable",
            "writer": checks["writer"].detail,
            "queue": context.buffer.depth,
            "geo": context.geo.describe(),
            "data": data,
        }
        if maintenance_leader is not None:
            body["maintenance"] = "leader" if maintenance_leader() else "follower"
        headers = {"cache-control": "no-store"}
        return JSONResponse(body, status_code=503 if failing else 200, headers=headers)

    async def gpc(request: Request) -> Response:
        # https://privacycg.github.io/gpc-spec/#gpc-support-resource
        return JSONResponse({"gpc": True, "lastUpdate": GPC_LAST_UPDATE})

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/.well-known/gpc.json", gpc, methods=["GET"]),
    ]
