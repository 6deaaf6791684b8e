"""Counters for ``/metrics`` in the Prometheus text format, summed over every worker process.

A deliberately small registry instead of prometheus_client: a handful of counters and
gauges, no global default registry, one instance per app. With ``serve --workers N`` each
process publishes a snapshot of its own values to the database every few seconds
(``MetricsPublisher``) and ``/metrics`` adds the other live workers' latest snapshots to its
own live values, so any worker answering a scrape shows the whole server.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta

from gateway.clock import Clock
from gateway.periodic import Periodic
from gateway.storage.db import Database
from gateway.storage.worker_metrics import Sample, forget_workers_before, other_workers_samples, publish_samples

log = logging.getLogger("gateway.metrics")
#: A worker that has not published for this long is gone (stopped or killed).
WORKER_GONE = timedelta(seconds=60)

_HELP = {
    "consent_gateway_events_accepted_total": ("counter", "Events stored (answered 202 after commit)."),
    "consent_gateway_events_dropped_total": ("counter", "Events answered 202 but not counted, by reason."),
    "consent_gateway_events_rejected_total": ("counter", "Events refused (4xx/503), by status."),
    "consent_gateway_write_batches_total": ("counter", "Write transactions committed by the event writer."),
    "consent_gateway_write_batch_events_total": ("counter", "Events written in those batches (sum of batch sizes)."),
    "consent_gateway_commit_seconds_total": ("counter", "Time spent in event write transactions."),
    "consent_gateway_commit_seconds_max": ("gauge", "The slowest event write transaction so far."),
    "consent_gateway_write_queue_depth": ("gauge", "Events waiting for the writer."),
    "consent_gateway_consent_decisions_total": ("counter", "Consent decisions recorded, by method."),
    "consent_gateway_client_disconnects_total": ("counter", "Requests whose client left before its body was read."),
}


class Metrics:
    def __init__(self) -> None:
        self.worker = secrets.token_hex(6)  # this process, among the workers sharing the database
        self._values: defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._values[(name, tuple(sorted(labels.items())))] += amount

    def set_max(self, name: str, value: float) -> None:
        key = (name, ())
        if value > self._values[key]:
            self._values[key] = value

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self._gauges[name] = read

    def value(self, name: str, **labels: str) -> float:
        return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def samples(self) -> list[Sample]:
        """Every value of this process now, gauges read."""
        values = dict(self._values)
        for name, read in self._gauges.items():
            values[(name, ())] = read()
        return [(name, labels, value) for (name, labels), value in values.items()]

    def render(self, others: Iterable[Sample] = ()) -> str:
        """The text format: this process's values plus ``others`` (other workers' snapshots);
        maxima are merged by max, everything else by sum."""
        values: defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        for name, labels, value in [*self.samples(), *others]:
            key = (name, labels)
            values[key] = max(values[key], value) if name.endswith("_max") else values[key] + value
        lines: list[str] = []
        for name, (kind, text) in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            samples = sorted((labels, v) for (n, labels), v in values.items() if n == name)
            if not samples:
                samples = [((), 0.0)]
            for labels, value in samples:
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


class MetricsPublisher:
    """Publishes this process's metrics every ``interval``; ``render`` adds the other workers'."""

    def __init__(
        self, database: Database, metrics: Metrics, clock: Clock, *, interval: timedelta = timedelta(seconds=5)
    ) -> None:
        self._database, self._metrics, self._clock, self._interval = database, metrics, clock, interval
        self._periodic = Periodic("publishing metrics", self.publish, interval.total_seconds(), log)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def publish(self) -> None:
        now = self._clock.now()
        await publish_samples(self._database, self._metrics.worker, self._metrics.samples(), now=now)
        await forget_workers_before(self._database, now - 10 * WORKER_GONE)

    async def render(self) -> str:
        since = self._clock.now() - WORKER_GONE
        others = await other_workers_samples(self._database, self._metrics.worker, seen_since=since)
        return self._metrics.render(sample for _, sample in others)
