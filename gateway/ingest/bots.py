"""Deciding whether a request is noise that must not be counted as a visit.

Plausible and GoatCounter both drop bots, headless browsers, prefetches and the operator's own
addresses before anything is stored: a dashboard that counts ``curl`` or an uptime monitor
every minute tells the site owner nothing. Who is a bot comes from maintained public lists
(config/data/bots.json, compiled once at start-up by :mod:`gateway.ingest.bot_data`); per event
this module is pure (no I/O, no clock), and the user-agent verdict is cached (bounded, in memory;
the data only changes with a release, so an entry never goes stale) because the same few hundred
strings repeat, as in :mod:`gateway.ingest.useragent`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from gateway.ingest.bot_data import shipped_bot_patterns

# Regex cost grows with input length; no real browser sends more than a few hundred characters.
USER_AGENT_LIMIT = 512


class NoiseReason(StrEnum):
    """Why a request was not counted; the value is what a debug header and the drop counters show."""

    BOT = "bot"  # a crawler, monitor, scanner, feed reader or HTTP library (config/data/bots.json)
    HEADLESS = "headless"  # a real browser engine driven by a program (HeadlessChrome, Lighthouse)
    PREFETCH = "prefetch"  # the browser fetched speculatively; nobody has seen the page yet
    EMPTY_USER_AGENT = "empty_user_agent"  # every browser sends one; only scripts omit it
    IGNORED_NETWORK = "ignored_network"  # the client address is in the site's ignore list


# Real browser engines driven by a program: page renderers, performance testers and automation
# defaults. Electron is here on purpose: apps built on it (Slack, Teams, VS Code) open links in
# the system browser, so a page view carrying ``Electron/`` is far likelier a scraper than a reader.
# Puppeteer's and Playwright's new headless mode send an ordinary Chrome UA; the snippet's
# ``navigator.webdriver`` check catches those, a UA test cannot. Matched before the bot data (which
# knows several of these too) because "headless" is the more useful reason. Tokens are lowercased
# once and matched as plain substrings of the lowercased UA.
_HEADLESS_TOKENS = (
    "HeadlessChrome",
    "PhantomJS",
    "SlimerJS",
    "Puppeteer",
    "Playwright",
    "Electron/",
    "HtmlUnit",
    "jsdom/",
    "Lighthouse",  # also Chrome-Lighthouse, PageSpeed Insights' current UA
    "PageSpeed",
    "Page Speed",  # "Google Page Speed Insights", the older UA
    "GTmetrix",
)
_HEADLESS = re.compile("|".join(re.escape(token.lower()) for token in _HEADLESS_TOKENS))

# Bots are recognised by the maintained pattern lists in config/data/bots.json (gateway/ingest/
# bot_data.py). What those lists miss and a test here shows is added below, and nothing else:
# Dart's HTTP client (Flutter apps' API calls) and Better Uptime's browser-dressed check.
_LOCAL_BOT_PREFIXES = ("dart/",)
_LOCAL_BOT_TOKENS = re.compile(re.escape("betteruptime"))

# Speculative loads announced by the browser; a page that is only prefetched was not seen.
# Sec-Purpose is a structured-field item (``prefetch;prerender``): only its first token counts.
_PREFETCH_PURPOSES = frozenset({"prefetch", "prerender"})
_PREFETCH_HEADER_NAMES = frozenset({"sec-purpose", "purpose", "x-moz", "x-purpose"})


@dataclass(frozen=True, slots=True)
class IgnoreList:
    """A site's IP/CIDR ignore list, parsed once at configuration time and matched in memory."""

    networks: tuple[IPv4Network | IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> IgnoreList:
        """Reject a bad entry at start-up rather than let it silently ignore nothing (or everything)."""
        return cls(tuple(_parse_network(entry) for entry in entries))

    def contains(self, address: str | None) -> bool:
        """True when ``address`` lies in a listed network; an address we cannot read is not ignored."""
        if not self.networks or not address:
            return False
        parsed = _parse_address(address)
        if parsed is None:
            return False
        return any(parsed.version == network.version and parsed in network for network in self.networks)


def detect_noise(
    user_agent: str | None,
    headers: Mapping[str, str],
    client_ip: str | None,
    ignore: IgnoreList,
) -> NoiseReason | None:
    """Say why a request must not be counted, or ``None`` when it is a visit.

    The operator's own ignore list is checked first because it is the explanation they can act
    on; then the request's nature (prefetch); then who sent it. ``headers`` may be Starlette's
    case-insensitive ``Headers`` or a plain mapping with lowercase keys.
    """
    if ignore.contains(client_ip):
        return NoiseReason.IGNORED_NETWORK
    if _is_prefetch(headers):
        return NoiseReason.PREFETCH
    if user_agent is None:
        return NoiseReason.EMPTY_USER_AGENT
    return _classify_user_agent(user_agent[:USER_AGENT_LIMIT])


@lru_cache(maxsize=4096)
def _classify_user_agent(text: str) -> NoiseReason | None:
    stripped = text.strip()
    # "-" is what proxies and log replayers write for a missing header.
    if stripped in ("", "-"):
        return NoiseReason.EMPTY_USER_AGENT
    lowered = stripped.lower()
    if _HEADLESS.search(lowered):
        return NoiseReason.HEADLESS
    if shipped_bot_patterns().matches(stripped):
        return NoiseReason.BOT
    if lowered.startswith(_LOCAL_BOT_PREFIXES) or _LOCAL_BOT_TOKENS.search(lowered):
        return NoiseReason.BOT
    return None


def _is_prefetch(headers: Mapping[str, str]) -> bool:
    # One pass over the names first: Starlette's ``Headers.get`` scans every raw header per call
    # and almost no request carries any of these.
    if _PREFETCH_HEADER_NAMES.isdisjoint(headers.keys()):
        return False
    for name in ("sec-purpose", "purpose"):
        value = headers.get(name)
        if value and value.split(";", 1)[0].strip().lower() in _PREFETCH_PURPOSES:
            return True
    if (value := headers.get("x-moz")) and value.strip().lower() == "prefetch":
        return True
    # Safari's Top Sites thumbnails.
    return bool((value := headers.get("x-purpose")) and value.strip().lower() == "preview")


def _parse_network(entry: str) -> IPv4Network | IPv6Network:
    text = entry.strip()
    try:
        network = ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"expected an IP address or CIDR such as 203.0.113.0/24, found {entry!r}") from None
    if network.network_address != ip_address(text.split("/", 1)[0]):
        # 203.0.113.7/24 probably meant 203.0.113.7 alone; ignoring 255 neighbours by accident is worse.
        raise ValueError(
            f"expected an IP address or CIDR such as 203.0.113.0/24, found {entry!r} "
            f"(host bits set: write {network} for the whole network or the address alone)"
        )
    if isinstance(network, IPv6Network) and network.network_address.ipv4_mapped is not None and network.prefixlen >= 96:
        return IPv4Network((network.network_address.ipv4_mapped, network.prefixlen - 96))
    return network


def _parse_address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
