"""Scheduled scans: each site with a ``scan_schedule`` gets a 'scheduled' scan once its latest scan is
older than the interval. The maintenance leader asks on every poll (gateway/maintenance.py), so one
node decides; the queue's one-active-scan-per-site rule makes a second enqueue harmless anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from gateway.settings import Settings, SiteSettings
from gateway.storage.scans import ScanAlreadyActive, enqueue_scan, last_scan_times
from gateway.storage.store import Store

log = logging.getLogger("gateway.scan.schedule")

#: Each schedule's interval. A month is 30 days: "monthly" means "about once a month", not a calendar date.
INTERVALS: Mapping[str, timedelta] = {
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=30),
}


def due_sites(sites: Mapping[str, SiteSettings], last_scans: Mapping[str, datetime], now: datetime) -> list[str]:
    """The ids of the sites whose schedule wants a scan at ``now`` (never scanned, or scanned an interval ago)."""
    due = []
    for site_id, site in sites.items():
        interval = INTERVALS.get(site.scan_schedule)
        if interval is None or not site.scan_url:
            continue
        last = last_scans.get(site_id)
        if last is None or now - last >= interval:
            due.append(site_id)
    return due


async def enqueue_scheduled(store: Store, settings: Settings, now: datetime) -> list[int]:
    """Queue the scans that are due at ``now``; the ids queued (a site with a scan already running is skipped)."""
    if all(site.scan_schedule not in INTERVALS for site in settings.sites.values()):
        return []  # the usual case: no read on every maintenance poll
    queued = []
    for site_id in due_sites(settings.sites, await last_scan_times(store), now):
        site = settings.sites[site_id]
        try:
            queued.append(
                await enqueue_scan(
                    store, site_id, site.scan_url, trigger="scheduled", max_pages=site.scan_pages, now=now
                )
            )
        except ScanAlreadyActive:
            continue
        log.info("queued the %s scan of %s (%s)", site.scan_schedule, site_id, site.scan_url)
    return queued
