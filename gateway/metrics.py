"""Counters for ``/metrics`` in the Prometheus text format (per process: scrape each worker).

A deliberately small registry instead of prometheus_client: a handful of counters and
gauges, no global default registry, one instance per app.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

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
}


class Metrics:
    def __init__(self) -> None:
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

    def render(self) -> str:
        lines: list[str] = []
        values = dict(self._values)
        for name, read in self._gauges.items():
            values[(name, ())] = read()
        for name, (kind, text) in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            samples = sorted((labels, v) for (n, labels), v in values.items() if n == name)
            if not samples:
                samples = [((), 0.0)]
            for labels, value in samples:
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        return "\n".join(lines) + "\n"
