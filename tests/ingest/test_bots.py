"""Which requests are noise: bots, headless browsers, prefetches, empty user agents, the operator's own network."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from gateway.ingest.bots import USER_AGENT_LIMIT, IgnoreList, NoiseReason, detect_noise

NO_HEADERS: dict[str, str] = {}
NOTHING_IGNORED = IgnoreList.parse([])
CHROME_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

BOT = NoiseReason.BOT
HEADLESS = NoiseReason.HEADLESS

USER_AGENTS = [
    # search engines
    pytest.param(GOOGLEBOT, BOT, id="Googlebot desktop"),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
        "+http://www.google.com/bot.html)",
        BOT,
        id="Googlebot smartphone dressed as Chrome",
    ),
    pytest.param(
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
        "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        BOT,
        id="bingbot",
    ),
    pytest.param("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", BOT, id="YandexBot"),
    pytest.param(
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", BOT, id="Baiduspider"
    ),
    pytest.param("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", BOT, id="DuckDuckBot"),
    pytest.param(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        BOT,
        id="Applebot dressed as Safari",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 "
        "(compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
        BOT,
        id="PetalBot",
    ),
    # SEO tools
    pytest.param("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", BOT, id="AhrefsBot"),
    pytest.param("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", BOT, id="SemrushBot"),
    pytest.param("Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)", BOT, id="MJ12bot"),
    pytest.param(
        "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)", BOT, id="DotBot"
    ),
    # link previews
    pytest.param(
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", BOT, id="Facebook link preview"
    ),
    pytest.param("Twitterbot/1.0", BOT, id="Twitterbot"),
    pytest.param(
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", BOT, id="LinkedInBot"
    ),
    pytest.param("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", BOT, id="Slackbot"),
    pytest.param("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", BOT, id="Discordbot"),
    pytest.param("WhatsApp/2.23.20.0 A", BOT, id="WhatsApp link preview"),
    pytest.param("TelegramBot (like TwitterBot)", BOT, id="TelegramBot"),
    # AI crawlers and agents
    pytest.param(
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; +https://openai.com/gptbot",
        BOT,
        id="GPTBot",
    ),
    pytest.param(
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        BOT,
        id="ChatGPT-User",
    ),
    pytest.param(
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        BOT,
        id="ClaudeBot",
    ),
    pytest.param("anthropic-ai", BOT, id="anthropic-ai"),
    pytest.param("CCBot/2.0 (https://commoncrawl.org/faq/)", BOT, id="CCBot"),
    pytest.param(
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; "
        "+https://perplexity.ai/perplexitybot)",
        BOT,
        id="PerplexityBot",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 "
        "(compatible; Bytespider; spider-feedback@bytedance.com)",
        BOT,
        id="Bytespider that user_agents calls a phone",
    ),
    pytest.param(
        "Mozilla/5.0 (compatible; Amazonbot/0.1; +https://developer.amazon.com/support/amazonbot)", BOT, id="Amazonbot"
    ),
    # uptime and synthetic monitoring
    pytest.param("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", BOT, id="UptimeRobot"),
    pytest.param("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", BOT, id="Pingdom"),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/91.0.4472.124 Safari/537.36 StatusCake",
        BOT,
        id="StatusCake dressed as Chrome",
    ),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36 Site24x7",
        BOT,
        id="Site24x7",
    ),
    pytest.param(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 "
        "Safari/537.36 DatadogSynthetics",
        BOT,
        id="Datadog synthetics",
    ),
    pytest.param("W3C_Validator/1.3 http://validator.w3.org/services", BOT, id="W3C validator"),
    # HTTP libraries and command-line clients
    pytest.param("curl/8.5.0", BOT, id="curl"),
    pytest.param("Wget/1.21.4", BOT, id="Wget"),
    pytest.param("python-requests/2.31.0", BOT, id="python-requests"),
    pytest.param("python-httpx/0.27.0", BOT, id="python-httpx, unknown to user_agents"),
    pytest.param("Python/3.12 aiohttp/3.9.5", BOT, id="aiohttp"),
    pytest.param("Go-http-client/2.0", BOT, id="Go-http-client"),
    pytest.param("okhttp/4.12.0", BOT, id="okhttp"),
    pytest.param("Java/17.0.2", BOT, id="Java HttpURLConnection"),
    pytest.param("libwww-perl/6.72", BOT, id="libwww-perl"),
    pytest.param("Scrapy/2.11.1 (+https://scrapy.org)", BOT, id="Scrapy"),
    pytest.param("axios/1.6.8", BOT, id="axios"),
    pytest.param("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", BOT, id="node-fetch"),
    pytest.param("PostmanRuntime/7.37.3", BOT, id="Postman"),
    # user_agents' own list catches what ours does not name
    pytest.param("Xenu Link Sleuth/1.3.8", BOT, id="Xenu, known only to user_agents"),
    pytest.param(
        "Mozilla/5.0 (compatible; archive.org_bot; Wayback Machine Live Record)",
        BOT,
        id="archive.org_bot, known only to user_agents",
    ),
    # headless and automated real browsers
    pytest.param(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 "
        "Safari/537.36",
        HEADLESS,
        id="HeadlessChrome (Puppeteer/Playwright default)",
    ),
    pytest.param(
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        HEADLESS,
        id="PhantomJS",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        HEADLESS,
        id="Lighthouse and PageSpeed Insights",
    ),
    pytest.param(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/58.0.3029.110 "
        "Safari/537.36 (compatible; Google Page Speed Insights)",
        HEADLESS,
        id="old PageSpeed Insights",
    ),
    pytest.param(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0.0.0 "
        "Safari/537.36 GTmetrix",
        HEADLESS,
        id="GTmetrix",
    ),
    pytest.param(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "my-scraper/1.0.0 Chrome/120.0.6099.291 Electron/28.3.3 Safari/537.36",
        HEADLESS,
        id="Electron scraper",
    ),
    pytest.param("Mozilla/5.0 (linux) AppleWebKit/537.36 (KHTML, like Gecko) jsdom/24.0.0", HEADLESS, id="jsdom"),
    # people in real browsers
    pytest.param(CHROME_DESKTOP, None, id="Chrome on Windows"),
    pytest.param(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        None,
        id="Chrome on macOS",
    ),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        None,
        id="Firefox on Windows",
    ),
    pytest.param(
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", None, id="Firefox on Ubuntu"
    ),
    pytest.param("Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0", None, id="Firefox on Android"),
    pytest.param(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4.1 Safari/605.1.15",
        None,
        id="Safari on macOS",
    ),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
        "Safari/537.36 Edg/124.0.0.0",
        None,
        id="Edge on Windows",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4.1 Mobile/15E148 Safari/604.1",
        None,
        id="Safari on iPhone",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        None,
        id="Chrome on iPhone",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile "
        "Safari/537.36",
        None,
        id="Chrome on Android",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
        None,
        id="Chrome on a Cubot phone is not a bot",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        None,
        id="Samsung Internet",
    ),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 "
        "Safari/537.36 OPR/109.0.0.0",
        None,
        id="Opera",
    ),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 "
        "YaBrowser/24.4.0.0 Safari/537.36",
        None,
        id="Yandex Browser is not YandexBot",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.0.0 "
        "Mobile DuckDuckGo/5 Safari/537.36",
        None,
        id="DuckDuckGo browser is not DuckDuckBot",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "GSA/313.0.624487495 Mobile/15E148 Safari/604.1",
        None,
        id="Google app on iPhone is not Googlebot",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 Instagram 329.0.3.29.99 (iPhone14,5; iOS 17_4; en_US; en; scale=3.00; 1170x2532; "
        "599139364)",
        None,
        id="Instagram in-app on iPhone",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240405.002; wv) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Version/4.0 Chrome/124.0.6367.54 Mobile Safari/537.36 Instagram 327.0.0.42.89 Android (34/14; "
        "420dpi; 1080x2205; Google/google; Pixel 8; shiba; shiba; en_US; 587654321)",
        None,
        id="Instagram in-app on Android",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 "
        "[FBAN/FBIOS;FBAV/452.0.0.39.110;FBBV/574193014;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.3.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/575669420]",
        None,
        id="Facebook in-app on iPhone is not facebookexternalhit",
    ),
    pytest.param(
        "Mozilla/5.0 (Linux; Android 13; SM-S918B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Version/4.0 Chrome/122.0.6261.105 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/454.0.0.44.108;]",
        None,
        id="Facebook in-app on Android",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 [LinkedInApp]/9.29.8424",
        None,
        id="LinkedIn in-app is not LinkedInBot",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 musical_ly_34.1.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US "
        "ByteFullLocale/en WKWebView/1 BytedanceWebview/d8a21c6",
        None,
        id="TikTok in-app is not Bytespider",
    ),
    pytest.param(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 Snapchat/13.2.0.37 (like Safari/8617.2.4.10.8, panda)",
        None,
        id="Snapchat in-app",
    ),
]


@pytest.mark.parametrize(("user_agent", "expected"), USER_AGENTS)
def test_user_agent_verdict(user_agent: str, expected: NoiseReason | None) -> None:
    assert detect_noise(user_agent, NO_HEADERS, "203.0.113.9", NOTHING_IGNORED) is expected


def test_the_table_covers_enough_of_each_kind() -> None:
    expected = [param.values[1] for param in USER_AGENTS]
    assert sum(reason is not None for reason in expected) >= 25
    assert expected.count(None) >= 15


@pytest.mark.parametrize(
    "user_agent",
    [
        pytest.param(None, id="header missing"),
        pytest.param("", id="header empty"),
        pytest.param("   \t", id="only whitespace"),
        pytest.param("-", id="dash that proxies log for a missing header"),
    ],
)
def test_a_request_without_a_user_agent_is_noise(user_agent: str | None) -> None:
    assert detect_noise(user_agent, NO_HEADERS, None, NOTHING_IGNORED) is NoiseReason.EMPTY_USER_AGENT


def test_only_the_first_512_characters_are_read() -> None:
    padding = " " * (USER_AGENT_LIMIT - len(CHROME_DESKTOP))
    late_token = CHROME_DESKTOP + padding + " Googlebot/2.1"
    early_token = CHROME_DESKTOP + " Googlebot/2.1" + padding
    assert detect_noise(late_token, NO_HEADERS, None, NOTHING_IGNORED) is None
    assert detect_noise(early_token, NO_HEADERS, None, NOTHING_IGNORED) is NoiseReason.BOT


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {"Purpose": "prefetch"}, NoiseReason.PREFETCH, id="Purpose prefetch (Chrome before speculation rules)"
        ),
        pytest.param({"Sec-Purpose": "prefetch"}, NoiseReason.PREFETCH, id="Sec-Purpose prefetch"),
        pytest.param({"Sec-Purpose": "prefetch;prerender"}, NoiseReason.PREFETCH, id="Sec-Purpose prerender"),
        pytest.param(
            {"Sec-Purpose": "prefetch;anonymous-client-ip"}, NoiseReason.PREFETCH, id="Sec-Purpose private prefetch"
        ),
        pytest.param({"sec-purpose": " Prefetch "}, NoiseReason.PREFETCH, id="value case and spaces do not matter"),
        pytest.param({"X-Moz": "prefetch"}, NoiseReason.PREFETCH, id="Firefox X-Moz prefetch"),
        pytest.param({"X-Purpose": "preview"}, NoiseReason.PREFETCH, id="Safari Top Sites X-Purpose preview"),
        pytest.param({}, None, id="no purpose header is a view"),
        pytest.param({"Sec-Purpose": ""}, None, id="empty Sec-Purpose is a view"),
        pytest.param({"Sec-Purpose": "unknown-purpose"}, None, id="an unknown purpose is a view"),
        pytest.param({"X-Moz": "livebookmarks"}, None, id="X-Moz other than prefetch is a view"),
        pytest.param({"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}, None, id="a navigation is a view"),
    ],
)
def test_prefetch_headers(headers: dict[str, str], expected: NoiseReason | None) -> None:
    starlette_headers = Headers(headers=headers)
    lowercase_dict = {name.lower(): value for name, value in headers.items()}
    for given_headers in (starlette_headers, lowercase_dict):
        assert detect_noise(CHROME_DESKTOP, given_headers, None, NOTHING_IGNORED) is expected


OFFICE = IgnoreList.parse(["203.0.113.0/24", "198.51.100.7", "2001:db8:cafe::/48", "2001:db8::1", "::ffff:192.0.2.1"])


@pytest.mark.parametrize(
    ("address", "ignored"),
    [
        pytest.param("203.0.113.200", True, id="IPv4 inside a listed CIDR"),
        pytest.param("203.0.114.1", False, id="IPv4 just outside the CIDR"),
        pytest.param("198.51.100.7", True, id="IPv4 listed alone"),
        pytest.param("198.51.100.8", False, id="the neighbour of a single address"),
        pytest.param("2001:db8:cafe:1::42", True, id="IPv6 inside a listed CIDR"),
        pytest.param("2001:db8:caff::1", False, id="IPv6 outside the CIDR"),
        pytest.param("2001:db8::1", True, id="IPv6 listed alone"),
        pytest.param("2001:DB8:0:0:0:0:0:1", True, id="IPv6 written long and uppercase"),
        pytest.param("::ffff:203.0.113.5", True, id="IPv4-mapped IPv6 client matches an IPv4 CIDR"),
        pytest.param("192.0.2.1", True, id="IPv4 client matches an IPv4-mapped entry"),
        pytest.param(" 198.51.100.7 ", True, id="surrounding spaces are tolerated"),
        pytest.param(None, False, id="no client address"),
        pytest.param("", False, id="empty client address"),
        pytest.param("testclient", False, id="a hostname is not an address"),
        pytest.param("203.0.113.999", False, id="garbage that looks like IPv4"),
        pytest.param("203.0.113.0/24", False, id="a network is not a client address"),
    ],
)
def test_ignore_list_contains(address: str | None, ignored: bool) -> None:
    assert OFFICE.contains(address) is ignored


def test_an_ignored_network_wins_over_every_other_reason() -> None:
    reason = detect_noise(GOOGLEBOT, {"sec-purpose": "prefetch"}, "203.0.113.9", OFFICE)
    assert reason is NoiseReason.IGNORED_NETWORK


def test_a_prefetch_is_reported_before_who_sent_it() -> None:
    assert detect_noise(None, {"sec-purpose": "prefetch"}, "192.0.2.99", OFFICE) is NoiseReason.PREFETCH


def test_an_empty_ignore_list_ignores_nobody() -> None:
    assert IgnoreList.parse([]).contains("203.0.113.9") is False
    assert detect_noise(CHROME_DESKTOP, NO_HEADERS, "203.0.113.9", IgnoreList.parse([])) is None


def test_ignore_list_entries_are_normalised() -> None:
    parsed = IgnoreList.parse([" 10.0.0.0/8 ", "::ffff:192.0.2.0/120", "2001:db8::/32"])
    assert [str(network) for network in parsed.networks] == ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("entry", "detail"),
    [
        pytest.param("office", "found 'office'", id="a word"),
        pytest.param("", "found ''", id="an empty entry"),
        pytest.param("203.0.113.0/33", "found '203.0.113.0/33'", id="IPv4 prefix longer than 32"),
        pytest.param("2001:db8::/129", "found '2001:db8::/129'", id="IPv6 prefix longer than 128"),
        pytest.param("203.0.113.256", "found '203.0.113.256'", id="octet out of range"),
        pytest.param("10.0.0.0/8 # office", "found '10.0.0.0/8 # office'", id="a trailing comment"),
        pytest.param("203.0.113.7/24", "write 203.0.113.0/24 for the whole network", id="host bits set"),
    ],
)
def test_a_bad_ignore_list_entry_is_named(entry: str, detail: str) -> None:
    with pytest.raises(ValueError, match="expected an IP address or CIDR such as 203.0.113.0/24") as raised:
        IgnoreList.parse(["10.0.0.0/8", entry])
    assert detail in str(raised.value)


@given(st.ip_addresses())
def test_every_listed_address_is_ignored_in_every_spelling(address: IPv4Address | IPv6Address) -> None:
    ignore = IgnoreList.parse([str(address)])
    assert ignore.contains(str(address))
    assert ignore.contains(f" {address} ")
    if address.version == 4:
        assert ignore.contains(f"::ffff:{address}")


@given(st.text())
def test_parsing_any_entry_succeeds_or_names_it(entry: str) -> None:
    try:
        IgnoreList.parse([entry])
    except ValueError as error:
        assert repr(entry) in str(error)


HEADER_NAMES = st.sampled_from(["purpose", "sec-purpose", "x-moz", "x-purpose", "user-agent"]) | st.text(max_size=20)


@settings(deadline=None)  # a never-seen user agent costs a cold user_agents parse (about 1 ms, more on first use)
@given(
    user_agent=st.none() | st.text(),
    headers=st.dictionaries(HEADER_NAMES, st.text(), max_size=4),
    client_ip=st.none() | st.text() | st.ip_addresses().map(str),
)
def test_detect_noise_never_raises(user_agent: str | None, headers: Mapping[str, str], client_ip: str | None) -> None:
    reason = detect_noise(user_agent, headers, client_ip, OFFICE)
    assert reason is None or isinstance(reason, NoiseReason)
