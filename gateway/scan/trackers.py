"""Known tracker hosts (``config/trackers.toml``): which category a third-party request belongs to.

A request is judged by its host alone, matched against host suffixes on label boundaries
(``www.google-analytics.com`` is ``google-analytics.com``; ``notgoogle-analytics.com`` is not), the
longest suffix winning so a specific host (``connect.facebook.net``) can differ from its domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.categories import Category, parse_category
from gateway.resources import read_table_array, resource_dir

_HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


class TrackerListError(ValueError):
    """A tracker file that cannot be read; the message names the file, the entry and the key."""


@dataclass(frozen=True, slots=True)
class Tracker:
    host: str  # the suffix that matched: "google-analytics.com"
    category: Category
    vendor: str


class TrackerList:
    """An immutable host-suffix lookup."""

    def __init__(self, trackers: Iterable[Tracker]) -> None:
        self._by_host: dict[str, Tracker] = {tracker.host: tracker for tracker in trackers}

    def __len__(self) -> int:
        return len(self._by_host)

    def classify(self, host: str) -> Tracker | None:
        """The tracker entry for ``host`` or its nearest listed parent domain; None when unlisted."""
        labels = host.strip().rstrip(".").lower().split(".")
        for start in range(len(labels) - 1):  # longest suffix first; a bare TLD never matches
            found = self._by_host.get(".".join(labels[start:]))
            if found is not None:
                return found
        return None


def default_trackers_path() -> Path:
    return resource_dir("config") / "trackers.toml"


def load_trackers(path: Path | None = None) -> TrackerList:
    """Read ``[[tracker]]`` tables (the shipped list by default), naming the entry and key of a mistake."""
    path = path or default_trackers_path()
    entries = read_table_array(path, "tracker", TrackerListError)
    return TrackerList(_tracker(entry, f"{path}: tracker[{index}]") for index, entry in enumerate(entries))


def _tracker(entry: Mapping[str, Any] | object, where: str) -> Tracker:
    if not isinstance(entry, Mapping):
        raise TrackerListError(f"{where}: expected a table with host, category and vendor, found {entry!r}")
    unknown = set(entry) - {"host", "category", "vendor"}
    if unknown:
        raise TrackerListError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    host = entry.get("host")
    if not isinstance(host, str) or not _HOST_RE.fullmatch(host):
        raise TrackerListError(f"{where}.host: expected a lower-case host name such as 'hotjar.com', found {host!r}")
    try:
        category = parse_category(entry.get("category"))
    except ValueError as error:
        raise TrackerListError(f"{where}.category: {error}") from None
    vendor = entry.get("vendor", "")
    if not isinstance(vendor, str):
        raise TrackerListError(f"{where}.vendor: expected a string, found {vendor!r}")
    return Tracker(host, category, vendor)
