"""The ingestion pipeline: an ordered tuple of small named steps.

privacy gate -> noise (bots, prefetch, ignored networks) -> referrer spam and traffic
source -> enrichment (user agent, geo, screen) -> anonymisation. Each step returns the
draft or a ``Dropped`` with its reason; the raw IP address and user agent live only in
the draft, in memory, and never reach the ``AnonymousEvent`` that is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.ingest.bots import IgnoreList, detect_noise
from gateway.ingest.event import Dropped, DropReason, IncomingEvent
from gateway.ingest.geo import NO_GEO, Geo, GeoLookup
from gateway.ingest.referrer import TrafficSource, classify_source, is_referrer_spam
from gateway.ingest.scrub import scrub_props, scrub_repeated
from gateway.ingest.useragent import UAInfo, parse_user_agent
from gateway.ingest.visitor import DailySalts, visitor_id
from gateway.settings import SiteSettings
from gateway.storage.records import AnonymousEvent


@dataclass(frozen=True, slots=True)
class PipelineContext:
    """What the steps need besides the event; built once per site (salts per day)."""

    site: SiteSettings
    geo: GeoLookup
    salts: DailySalts
    ignore: IgnoreList


@dataclass(slots=True)
class Draft:
    incoming: IncomingEvent
    source: TrafficSource | None = None
    agent: UAInfo | None = None
    geo: Geo = field(default=NO_GEO)


Step = Callable[[Draft, PipelineContext], "Draft | Dropped"]


def privacy_gate(draft: Draft, context: PipelineContext) -> Draft | Dropped:
    """Where a site requires consent for analytics, count only visitors who gave it; GPC (and
    DNT where honoured) then counts as a refusal. Cookieless sites count everyone anonymously."""
    if context.site.analytics_consent != "required":
        return draft
    event = draft.incoming
    if event.gpc or (event.dnt and context.site.honour_dnt):
        if event.consent is None or "analytics" not in event.consent:
            return Dropped(DropReason.GPC)
    if event.consent is None or "analytics" not in event.consent:
        return Dropped(DropReason.NO_CONSENT)
    return draft


def drop_noise(draft: Draft, context: PipelineContext) -> Draft | Dropped:
    event = draft.incoming
    reason = detect_noise(event.user_agent, event.prefetch_headers, event.client_ip, context.ignore)
    return draft if reason is None else Dropped(DropReason(reason.value))


def classify_traffic(draft: Draft, context: PipelineContext) -> Draft | Dropped:
    """Referrer and UTM -> source and channel; referrer spam is dropped. Click ids are never kept."""
    event = draft.incoming
    source = classify_source(event.page_url, event.referrer, own_hosts=context.site.own_hosts)
    if is_referrer_spam(source.referrer_host):
        return Dropped(DropReason.REFERRER_SPAM)
    draft.source = source
    return draft


def enrich(draft: Draft, context: PipelineContext) -> Draft | Dropped:
    """Browser, OS and device from the user agent; country, region and city from the full IP, in memory."""
    draft.agent = parse_user_agent(draft.incoming.user_agent)
    draft.geo = context.geo.lookup(draft.incoming.client_ip) if draft.incoming.client_ip else NO_GEO
    return draft


STEPS: tuple[Step, ...] = (privacy_gate, drop_noise, classify_traffic, enrich)


def screen_class(width: int | None) -> str | None:
    """Plausible's size classes: the width itself could help fingerprint a visitor."""
    if width is None:
        return None
    if width < 576:
        return "mobile"
    if width < 992:
        return "tablet"
    if width < 1440:
        return "laptop"
    return "desktop"


def anonymise(draft: Draft, context: PipelineContext) -> AnonymousEvent:
    """The stored (and forwarded) event: the visitor as keyed hashes, the IP address and user agent
    forgotten, and emails, phone numbers and tokens scrubbed from the name, path and props."""
    event, source, agent, geo = draft.incoming, draft.source, draft.agent, draft.geo
    assert source is not None and agent is not None  # noqa: S101 - set by the steps above
    ip = event.client_ip or ""
    salts = context.salts
    previous = visitor_id(salts.previous, event.site_id, ip, event.user_agent) if salts.previous else None
    utm = source.utm
    return AnonymousEvent(
        site_id=event.site_id,
        ts=event.received_at,
        name=scrub_repeated(event.name),
        visitor_id=visitor_id(salts.current, event.site_id, ip, event.user_agent),
        previous_visitor_id=previous,
        hostname=event.hostname,
        pathname=scrub_repeated(event.pathname),  # payload scrubbed it; the server-side path too
        referrer_host=source.referrer_host,
        source=source.source,
        channel=source.channel,
        utm_source=utm.source,
        utm_medium=utm.medium,
        utm_campaign=utm.campaign,
        utm_content=utm.content,
        utm_term=utm.term,
        country=geo.country,
        region=geo.region,
        city=geo.city,
        browser=agent.browser,
        browser_version=agent.browser_version,
        os=agent.os,
        os_version=agent.os_version,
        device=agent.device,
        screen=screen_class(event.screen_width),
        props=scrub_props(event.props),
        consent=event.consent or frozenset(),
    )


def run_pipeline(event: IncomingEvent, context: PipelineContext) -> AnonymousEvent | Dropped:
    draft: Draft | Dropped = Draft(event)
    for step in STEPS:
        draft = step(draft, context)  # type: ignore[arg-type]
        if isinstance(draft, Dropped):
            return draft
    assert isinstance(draft, Draft)  # noqa: S101 - the loop returned every Dropped
    return anonymise(draft, context)
