"""Counters for ``/metrics`` in the Prometheus text format, summed over the worker processes of one node.

A deliberately small registry instead of prometheus_client: a handful of counters and
gauges, no global default registry, one instance per app. With ``serve --workers N`` each
process publishes a snapshot of its own values to the database every few seconds
(``MetricsPublisher``) and ``/metrics`` adds the other live workers' latest snapshots to its
own live values, so any worker answering a scrape shows the whole node.

A node is one ``serve`` (its workers share the node id it hands them in ``NODE_ENVIRONMENT``).
Several nodes may share one PostgreSQL database; each node's ``/metrics`` shows that node only,
so a Prometheus that scrapes every node and sums (``sum(...)`` over instances) counts each node
once, and a node that is down is missing from the sum rather than counted by the others.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from gateway.clock import Clock
from gateway.periodic import Periodic
from gateway.storage.store import Store
from gateway.storage.worker_metrics import Sample, forget_workers_before, publish_samples, sibling_samples

log = logging.getLogger("gateway.metrics")
#: A worker that has not published for this long is gone (stopped or killed).
WORKER_GONE = timedelta(seconds=60)
#: The environment variable through which ``serve --workers N`` gives its workers one node id.
#: Not ``CONSENT_GATEWAY_*``: it is no setting (settings read every variable of that prefix).
NODE_ENVIRONMENT = "_CONSENT_GATEWAY_NODE"


def new_node_id() -> str:
    """A node id: the machine's name, for an operator reading the table, and random bits, so two
    ``serve`` on one machine (or two containers with one hostname) are two nodes."""
    return f"{socket.gethostname()[:64]}/{secrets.token_hex(8)}"


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
    def __init__(self, *, node: str | None = None) -> None:
        #: The node this process belongs to (``NODE_ENVIRONMENT`` under ``serve --workers N``); its own otherwise.
        self.node = node or new_node_id()
        self.worker = secrets.token_hex(8)  # this process, among the workers sharing the database
        self._values: defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._values[(name, tuple(sorted(labels.items())) if labels else ())] += amount

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
        """The text format: this process's values plus ``others`` (its sibling workers' snapshots);
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


MetricsVerdict = Literal["allowed", "unauthorized", "forbidden"]


@dataclass(frozen=True, slots=True)
class MetricsAccess:
    """Who may read ``/metrics``: a bearer token from anywhere, or a client in ``networks`` without it.

    The counters say how busy a site is, which consent choices its visitors make and how the
    gateway fails: nothing for the open internet. The client address is uvicorn's (behind a
    proxy, from ``--forwarded-allow-ips``), never a header read here.
    """

    token: str | None
    networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]

    def check(self, authorization: str | None, client_host: str | None) -> MetricsVerdict:
        """Answers "allowed", "unauthorized" (401: a token would open it) or "forbidden" (403: nothing would).

        A presented token is judged on its own, even from an allowed network, so a wrong token never
        goes unnoticed. The comparison hashes both sides first: it takes the same time whatever the
        length or the first wrong character of the guess (RFC 6750 section 5.3, timing attacks).
        """
        if authorization is not None and authorization.strip():
            scheme, _, presented = authorization.strip().partition(" ")
            if self.token is not None and scheme.lower() == "bearer" and _same_secret(presented.strip(), self.token):
                return "allowed"
            return "unauthorized" if self.token is not None else "forbidden"
        if _address_in(client_host, self.networks):
            return "allowed"
        return "unauthorized" if self.token is not None else "forbidden"


def _same_secret(presented: str, expected: str) -> bool:
    digest = hashlib.sha256
    return hmac.compare_digest(
        digest(presented.encode("utf-8", "replace")).digest(), digest(expected.encode("utf-8")).digest()
    )


def _address_in(host: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not host:
        return False  # a Unix socket or a transport without a peer address
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack socket is 127.0.0.1
    return any(address in network for network in networks)


class MetricsPublisher:
    """Publishes this process's metrics every ``interval``; ``render`` adds its node's other workers'."""

    def __init__(
        self, database: Store, metrics: Metrics, clock: Clock, *, interval: timedelta = timedelta(seconds=5)
    ) -> None:
        self._database, self._metrics, self._clock, self._interval = database, metrics, clock, interval
        self._periodic = Periodic("publishing metrics", self.publish, interval.total_seconds(), log)

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def publish(self) -> None:
        now = self._clock.now()
        metrics = self._metrics
        await publish_samples(self._database, metrics.node, metrics.worker, metrics.samples(), now=now)
        await forget_workers_before(self._database, now - 10 * WORKER_GONE)

    async def render(self) -> str:
        since = self._clock.now() - WORKER_GONE
        metrics = self._metrics
        others = await sibling_samples(self._database, metrics.node, metrics.worker, seen_since=since)
        return self._metrics.render(sample for _, sample in others)
