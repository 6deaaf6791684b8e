"""Where a pageview came from: source names, channels, UTM tags, click ids, referrer spam."""

from __future__ import annotations

from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.referrer import (
    DIRECT,
    FIELD_LIMIT,
    SourceTable,
    TrafficSource,
    Utm,
    classify_source,
    is_referrer_spam,
    parse_spam_list,
    source_table,
    strip_tracking,
)
from tests.conftest import REPO

OWN = frozenset({"example.com", "shop.example.com:8443"})
PAGE = "https://example.com/pricing"
AD_CLICK_IDS = ("gclid", "fbclid", "msclkid", "dclid", "gbraid", "wbraid", "ttclid", "li_fat_id", "twclid", "yclid")
NO_UTM = Utm(None, None, None, None, None)


def classify(page_url: str, referrer: str | None) -> TrafficSource:
    return classify_source(page_url, referrer, own_hosts=OWN)


# (page URL, referrer) -> (source, channel, referrer_host)
SOURCES = [
    # direct
    pytest.param(PAGE, None, (DIRECT, "direct", None), id="no referrer and no tags is direct"),
    pytest.param(PAGE, "", (DIRECT, "direct", None), id="an empty referrer is direct"),
    pytest.param(PAGE, "about:blank", (DIRECT, "direct", None), id="about:blank is direct"),
    pytest.param(PAGE, "google.com", (DIRECT, "direct", None), id="a referrer without a scheme is not a URL"),
    pytest.param(PAGE, "file:///home/me/page.html", (DIRECT, "direct", None), id="a file: referrer is direct"),
    pytest.param(PAGE + "?utm_campaign=spring", None, (DIRECT, "direct", None), id="a campaign alone is direct"),
    # internal
    pytest.param(PAGE, "https://example.com/blog", (DIRECT, "internal", None), id="own host is internal"),
    pytest.param(PAGE, "https://www.example.com/", (DIRECT, "internal", None), id="own host with www is internal"),
    pytest.param(PAGE, "https://EXAMPLE.COM./x", (DIRECT, "internal", None), id="own host uppercase trailing dot"),
    pytest.param(
        PAGE, "http://shop.example.com:8443/cart", (DIRECT, "internal", None), id="own host with a port is internal"
    ),
    pytest.param(
        "https://staging.example.net/a",
        "https://staging.example.net/b",
        (DIRECT, "internal", None),
        id="the page's own host is internal even when not configured",
    ),
    pytest.param(
        PAGE + "?utm_source=footer",
        "https://example.com/",
        ("footer", "internal", None),
        id="tags on an internal link keep the channel internal",
    ),
    # search
    pytest.param(PAGE, "https://www.google.com/", ("Google", "search", "google.com"), id="google.com"),
    pytest.param(PAGE, "https://www.google.co.uk/", ("Google", "search", "google.co.uk"), id="google on co.uk"),
    pytest.param(PAGE, "https://www.google.de/search?q=x", ("Google", "search", "google.de"), id="google on de"),
    pytest.param(PAGE, "https://www.google.com.au/", ("Google", "search", "google.com.au"), id="google on com.au"),
    pytest.param(PAGE, "https://images.google.fr/", ("Google", "search", "images.google.fr"), id="google subdomain"),
    pytest.param(PAGE, "https://www.bing.com/", ("Bing", "search", "bing.com"), id="Bing"),
    pytest.param(PAGE, "https://duckduckgo.com/", ("DuckDuckGo", "search", "duckduckgo.com"), id="DuckDuckGo"),
    pytest.param(PAGE, "https://search.yahoo.com/", ("Yahoo", "search", "search.yahoo.com"), id="Yahoo"),
    pytest.param(PAGE, "https://yandex.ru/search", ("Yandex", "search", "yandex.ru"), id="Yandex"),
    pytest.param(PAGE, "https://www.baidu.com/", ("Baidu", "search", "baidu.com"), id="Baidu"),
    pytest.param(PAGE, "https://www.ecosia.org/", ("Ecosia", "search", "ecosia.org"), id="Ecosia"),
    pytest.param(PAGE, "https://www.qwant.com/", ("Qwant", "search", "qwant.com"), id="Qwant"),
    pytest.param(PAGE, "https://www.startpage.com/", ("Startpage", "search", "startpage.com"), id="Startpage"),
    pytest.param(PAGE, "https://search.brave.com/", ("Brave Search", "search", "search.brave.com"), id="Brave Search"),
    pytest.param(PAGE, "https://search.naver.com/", ("Naver", "search", "search.naver.com"), id="Naver"),
    pytest.param(PAGE, "https://search.seznam.cz/", ("Seznam", "search", "search.seznam.cz"), id="Seznam"),
    pytest.param(
        PAGE, "https://search.yahoo.co.jp/", ("Yahoo Japan", "search", "search.yahoo.co.jp"), id="Yahoo Japan"
    ),
    pytest.param(PAGE, "https://www.sogou.com/", ("Sogou", "search", "sogou.com"), id="Sogou"),
    pytest.param(
        PAGE,
        "android-app://com.google.android.googlequicksearchbox/https/www.google.com",
        ("Google", "search", "com.google.android.googlequicksearchbox"),
        id="the Google Android app is search",
    ),
    # social
    pytest.param(PAGE, "https://l.facebook.com/", ("Facebook", "social", "l.facebook.com"), id="l.facebook.com"),
    pytest.param(PAGE, "https://m.facebook.com/", ("Facebook", "social", "m.facebook.com"), id="m.facebook.com"),
    pytest.param(PAGE, "https://lm.facebook.com/", ("Facebook", "social", "lm.facebook.com"), id="lm.facebook.com"),
    pytest.param(PAGE, "https://t.co/abc", ("X (Twitter)", "social", "t.co"), id="t.co is X"),
    pytest.param(PAGE, "https://twitter.com/", ("X (Twitter)", "social", "twitter.com"), id="twitter.com is X"),
    pytest.param(PAGE, "https://lnkd.in/x", ("LinkedIn", "social", "lnkd.in"), id="lnkd.in is LinkedIn"),
    pytest.param(PAGE, "https://www.linkedin.com/feed", ("LinkedIn", "social", "linkedin.com"), id="LinkedIn"),
    pytest.param(PAGE, "https://old.reddit.com/r/python", ("Reddit", "social", "old.reddit.com"), id="old.reddit"),
    pytest.param(
        PAGE,
        "https://news.ycombinator.com/item?id=1",
        ("Hacker News", "social", "news.ycombinator.com"),
        id="Hacker News",
    ),
    pytest.param(PAGE, "https://bsky.app/profile/x", ("Bluesky", "social", "bsky.app"), id="Bluesky"),
    pytest.param(PAGE, "https://www.youtube.com/", ("YouTube", "social", "youtube.com"), id="YouTube"),
    pytest.param(PAGE, "https://www.instagram.com/", ("Instagram", "social", "instagram.com"), id="Instagram"),
    pytest.param(PAGE, "https://www.tiktok.com/", ("TikTok", "social", "tiktok.com"), id="TikTok"),
    pytest.param(PAGE, "https://www.pinterest.de/", ("Pinterest", "social", "pinterest.de"), id="Pinterest on de"),
    pytest.param(PAGE, "https://www.threads.net/", ("Threads", "social", "threads.net"), id="Threads"),
    pytest.param(PAGE, "https://web.whatsapp.com/", ("WhatsApp", "social", "web.whatsapp.com"), id="WhatsApp"),
    pytest.param(PAGE, "https://t.me/channel", ("Telegram", "social", "t.me"), id="Telegram"),
    pytest.param(PAGE, "android-app://com.Slack", ("Slack", "social", "com.slack"), id="the Slack app is social"),
    pytest.param(
        PAGE, "android-app://com.facebook.katana/", ("Facebook", "social", "com.facebook.katana"), id="Facebook app"
    ),
    # email
    pytest.param(
        PAGE, "https://mail.google.com/mail/u/0/", ("Gmail", "email", "mail.google.com"), id="Gmail over Google"
    ),
    pytest.param(PAGE, "https://outlook.live.com/", ("Outlook", "email", "outlook.live.com"), id="Outlook"),
    pytest.param(
        PAGE, "https://mail.yahoo.com/", ("Yahoo Mail", "email", "mail.yahoo.com"), id="Yahoo Mail over Yahoo"
    ),
    pytest.param(
        PAGE, "android-app://com.google.android.gm/", ("Gmail", "email", "com.google.android.gm"), id="the Gmail app"
    ),
    pytest.param(PAGE + "?utm_source=spring&utm_medium=email", None, ("spring", "email", None), id="utm_medium email"),
    pytest.param(
        PAGE + "?utm_source=spring&utm_medium=E-Mail", None, ("spring", "email", None), id="utm_medium e-mail"
    ),
    pytest.param(
        PAGE + "?utm_source=weekly-newsletter",
        None,
        ("weekly-newsletter", "email", None),
        id="a utm_source naming a newsletter is email",
    ),
    pytest.param(
        PAGE + "?utm_source=mailchimp&utm_medium=blast", None, ("mailchimp", "email", None), id="a mailing service"
    ),
    pytest.param(
        PAGE + "?utm_medium=email",
        "https://www.google.com/",
        ("Google", "email", "google.com"),
        id="an email medium beats the referrer",
    ),
    # paid
    pytest.param(PAGE + "?gclid=abc", None, ("Google", "paid", None), id="gclid alone is a paid Google click"),
    pytest.param(
        PAGE + "?gclid=abc", "https://www.google.com/", ("Google", "paid", "google.com"), id="gclid beats search"
    ),
    pytest.param(PAGE + "?msclkid=abc", "https://www.bing.com/", ("Bing", "paid", "bing.com"), id="msclkid"),
    pytest.param(PAGE + "?ttclid=abc", None, ("TikTok", "paid", None), id="ttclid is a paid TikTok click"),
    pytest.param(
        PAGE + "?utm_source=facebook&utm_medium=paid_social",
        "https://l.facebook.com/",
        ("Facebook", "paid", "l.facebook.com"),
        id="paid_social beats social",
    ),
    pytest.param(
        PAGE + "?utm_source=google&utm_medium=cpc", None, ("Google", "paid", None), id="cpc names the known source"
    ),
    pytest.param(PAGE + "?utm_source=adnet&utm_medium=display", None, ("adnet", "paid", None), id="display"),
    pytest.param(PAGE + "?utm_source=adnet&utm_medium=PPC", None, ("adnet", "paid", None), id="ppc any case"),
    pytest.param(PAGE + "?utm_source=adnet&utm_medium=retargeting", None, ("adnet", "paid", None), id="retargeting"),
    pytest.param(PAGE + "?gclid=abc", "https://example.com/", ("Google", "paid", None), id="a click id beats internal"),
    pytest.param(PAGE + "?fbclid=abc", None, ("Facebook", "social", None), id="fbclid alone is Facebook but not paid"),
    pytest.param(
        PAGE + "?fbclid=abc",
        "https://l.facebook.com/",
        ("Facebook", "social", "l.facebook.com"),
        id="fbclid from Facebook stays social",
    ),
    # referral
    pytest.param(
        PAGE, "https://news.example.org/story", ("news.example.org", "referral", "news.example.org"), id="other host"
    ),
    pytest.param(
        PAGE,
        "https://user:secret@blog.example.net:8080/post",
        ("blog.example.net", "referral", "blog.example.net"),
        id="userinfo and port are dropped from the host",
    ),
    pytest.param(PAGE, "http://[2001:db8::1]:8080/", ("2001:db8::1", "referral", "2001:db8::1"), id="an IPv6 referrer"),
    pytest.param(PAGE, "http://192.0.2.7/", ("192.0.2.7", "referral", "192.0.2.7"), id="an IPv4 referrer"),
    pytest.param(
        PAGE,
        "https://google.com.evil.example/",
        ("google.com.evil.example", "referral", "google.com.evil.example"),
        id="google inside another domain is not Google",
    ),
    pytest.param(
        PAGE,
        "https://notgoogle.com/",
        ("notgoogle.com", "referral", "notgoogle.com"),
        id="a longer label is not Google",
    ),
    pytest.param(
        PAGE,
        "android-app://com.unknown.reader/",
        ("com.unknown.reader", "referral", "com.unknown.reader"),
        id="an unknown app is a referral named by its package",
    ),
    pytest.param(PAGE, "https://github.com/a/b", ("GitHub", "referral", "github.com"), id="a named referral"),
    pytest.param(
        PAGE, "https://docs.google.com/d/1", ("Google Docs", "referral", "docs.google.com"), id="Google Docs not search"
    ),
    # tags without (or beside) a referrer
    pytest.param(PAGE + "?utm_source=partner-blog", None, ("partner-blog", "referral", None), id="unknown utm_source"),
    pytest.param(PAGE + "?utm_source=twitter", None, ("X (Twitter)", "social", None), id="utm_source alias"),
    pytest.param(PAGE + "?utm_source=l.facebook.com", None, ("Facebook", "social", None), id="utm_source as a host"),
    pytest.param(PAGE + "?ref=producthunt", None, ("Product Hunt", "social", None), id="ref names the source"),
    pytest.param(PAGE + "?source=podcast", None, ("podcast", "referral", None), id="source names the source"),
    pytest.param(
        PAGE + "?utm_source=google&utm_medium=organic", None, ("Google", "search", None), id="utm_medium organic"
    ),
    pytest.param(
        PAGE + "?utm_source=club&utm_medium=organic_social", None, ("club", "social", None), id="organic_social"
    ),
    pytest.param(
        PAGE + "?utm_medium=social",
        "https://fosstodon.org/@me",
        ("fosstodon.org", "social", "fosstodon.org"),
        id="utm_medium social beats an unknown host",
    ),
    pytest.param(
        PAGE + "?utm_source=fb&utm_medium=social",
        "https://www.google.com/",
        ("Facebook", "search", "google.com"),
        id="a known referrer beats utm_medium",
    ),
]


@pytest.mark.parametrize(("page_url", "referrer", "expected"), SOURCES)
def test_source_channel_and_host(page_url: str, referrer: str | None, expected: tuple[str, str, str | None]) -> None:
    result = classify(page_url, referrer)
    assert (result.source, result.channel, result.referrer_host) == expected


UTM_VALUES = [
    pytest.param(
        "?utm_source=a&utm_medium=b&utm_campaign=c&utm_content=d&utm_term=e",
        Utm("a", "b", "c", "d", "e"),
        id="all five tags",
    ),
    pytest.param("?utm_source=%20%20Newsletter%20", Utm("Newsletter", None, None, None, None), id="values are trimmed"),
    pytest.param("?utm_campaign=spring+sale", Utm(None, None, "spring sale", None, None), id="plus is a space"),
    pytest.param("?utm_campaign=%E2%82%AC5", Utm(None, None, "€5", None, None), id="percent-escapes are decoded"),
    pytest.param("?utm_term=a%zzb", Utm(None, None, None, None, "a%zzb"), id="an invalid escape stays literal"),
    pytest.param("?utm_source=", NO_UTM, id="an empty value is None"),
    pytest.param("?utm_source=%20%09", NO_UTM, id="a blank value is None"),
    pytest.param("?utm_source=a%00b%1b%7Fc", Utm("abc", None, None, None, None), id="control characters removed"),
    pytest.param("?utm_source=%E2%80%AEevil", Utm("evil", None, None, None, None), id="bidi override removed"),
    pytest.param("?utm_source=" + "x" * 500, Utm("x" * FIELD_LIMIT, None, None, None, None), id="cut at 200"),
    pytest.param("?utm_source=&utm_source=a&utm_source=b", Utm("a", None, None, None, None), id="first non-empty"),
    pytest.param("?UTM_Source=a", Utm("a", None, None, None, None), id="tag names ignore case"),
    pytest.param("?ref=r&source=s&utm_source=u", Utm("u", None, None, None, None), id="utm_source before source/ref"),
    pytest.param("?ref=r&source=s", Utm("s", None, None, None, None), id="source before ref as in Plausible"),
    pytest.param("#?utm_source=a", NO_UTM, id="tags after the fragment are not tags"),
    pytest.param("?ref=alice%40example.com", Utm("[email]", None, None, None, None), id="an email in ref is scrubbed"),
    pytest.param(
        "?utm_source=news&utm_content=%2B33+6+12+34+56+78&utm_term=bob@example.org&utm_campaign=2026-03-10",
        Utm("news", None, "2026-03-10", "[phone]", "[email]"),
        id="phone and email in any tag are scrubbed, dates stay",
    ),
    pytest.param(
        "?utm_source=" + "x" * 195 + "+alice@example.com",
        Utm("x" * 195 + " [ema", None, None, None, None),
        id="scrubbed before the cut at 200",
    ),
]


@pytest.mark.parametrize(("query", "expected"), UTM_VALUES)
def test_utm_tags(query: str, expected: Utm) -> None:
    assert classify(PAGE + query, None).utm == expected


@given(
    local=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,29}", fullmatch=True),
    key=st.sampled_from(["ref", "source", "utm_source"]),
)
def test_an_email_in_a_source_tag_never_becomes_the_source(local: str, key: str) -> None:
    result = classify(f"{PAGE}?{key}={local}%40example.com", None)
    assert "example.com" not in repr(result) and result.source == "[email]"


@pytest.mark.parametrize("click_id", [c for c in AD_CLICK_IDS if c != "fbclid"])
def test_an_ad_click_id_marks_a_paid_click(click_id: str) -> None:
    result = classify(f"{PAGE}?{click_id}=Cj0KCQ", None)
    assert result.paid_click
    assert result.channel == "paid"
    assert "Cj0KCQ" not in repr(result)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("?fbclid=IwAR", id="fbclid is added to organic Facebook links too"),
        pytest.param("?gclid=", id="an empty click id is no click"),
        pytest.param("?notgclid=1", id="a longer parameter name is no click id"),
        pytest.param("", id="no parameters"),
    ],
)
def test_not_a_paid_click(query: str) -> None:
    assert not classify(PAGE + query, None).paid_click


STRIPPED = [
    pytest.param("https://e.com/p?a=1&utm_source=x&b=2#top", "https://e.com/p?a=1&b=2", id="utm tags and fragment go"),
    pytest.param("https://e.com/p?utm_source=x&utm_medium=y", "https://e.com/p", id="no query left, no question mark"),
    pytest.param("https://e.com/p", "https://e.com/p", id="no query is unchanged"),
    pytest.param("https://e.com/p#section", "https://e.com/p", id="the fragment goes"),
    pytest.param("https://e.com/?" + "&".join(f"{c}=1" for c in AD_CLICK_IDS), "https://e.com/", id="every click id"),
    pytest.param("https://e.com/?GCLID=1&Fbclid=2", "https://e.com/", id="click ids in any case"),
    pytest.param("https://e.com/?%67clid=1&q=2", "https://e.com/?q=2", id="percent-encoded click id"),
    pytest.param("https://e.com/?utm_id=1&utm_source_platform=2", "https://e.com/", id="any utm_ parameter"),
    pytest.param("https://e.com/?mc_eid=1&_hsenc=2&igshid=3&k=v", "https://e.com/?k=v", id="recipient ids go"),
    pytest.param("https://e.com/?ref=hn&source=x", "https://e.com/?ref=hn&source=x", id="ref and source stay"),
    pytest.param("https://e.com/?q=a%20b+c&utm_term=x", "https://e.com/?q=a%20b+c", id="kept params not re-encoded"),
    pytest.param("https://e.com/?a=1&&b=2&", "https://e.com/?a=1&b=2", id="empty parts dropped"),
    pytest.param("https://e.com/?notgclid=1&gclidx=2", "https://e.com/?notgclid=1&gclidx=2", id="lookalikes stay"),
    pytest.param("https://e.com/gclid?x=1", "https://e.com/gclid?x=1", id="a path segment is no parameter"),
    pytest.param("https://e.com/?who=al%40x.io&n=2", "https://e.com/?who=[email]&n=2", id="an email value is scrubbed"),
    pytest.param("https://e.com/?tel=%2B14155552671", "https://e.com/?tel=[phone]", id="an encoded phone is scrubbed"),
    pytest.param(
        "https://e.com/?d=2026-03-10&p=19.99", "https://e.com/?d=2026-03-10&p=19.99", id="dates and prices stay"
    ),
]


@pytest.mark.parametrize(("url", "expected"), STRIPPED)
def test_strip_tracking(url: str, expected: str) -> None:
    assert strip_tracking(url) == expected


SPAM = [
    pytest.param("semalt.com", True, id="a listed domain"),
    pytest.param("sub.semalt.com", True, id="a subdomain of a listed domain"),
    pytest.param("www.darodar.com", True, id="www is ignored"),
    pytest.param("BUTTONS-FOR-WEBSITE.COM.", True, id="case and a trailing dot are ignored"),
    pytest.param("best-seo-offer.com", True, id="best-seo-offer"),
    pytest.param("example.com", False, id="an ordinary host"),
    pytest.param("notsemalt.com", False, id="a longer label is not the domain"),
    pytest.param("semalt.com.example.org", False, id="the listed domain inside another"),
    pytest.param(None, False, id="no host"),
    pytest.param("", False, id="an empty host"),
]


@pytest.mark.parametrize(("host", "expected"), SPAM)
def test_referrer_spam(host: str | None, expected: bool) -> None:
    assert is_referrer_spam(host) is expected


def test_a_spam_referrer_is_flagged_through_its_classified_host() -> None:
    assert is_referrer_spam(classify(PAGE, "http://www.semalt.semalt.com/crawler.php?u=x").referrer_host)


def test_the_spam_list_reads_domains_and_skips_comments() -> None:
    text = "# a comment\n\nSemalt.com  # trailing note\nwww.darodar.com\n"
    assert parse_spam_list(text) == {"semalt.com", "darodar.com"}
    shipped = parse_spam_list((REPO / "config" / "referrer_spam.txt").read_text(encoding="utf-8"))
    assert len(shipped) >= 30


def test_the_shipped_table_names_at_least_40_search_engines_and_40_social_networks() -> None:
    known = {*source_table().hosts.values(), *source_table().country_hosts.values()}
    assert len({k.name for k in known if k.channel == "search"}) >= 40
    assert len({k.name for k in known if k.channel == "social"}) >= 40


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        pytest.param('[search]\nA = ["a.com"]\n[social]\nB = ["a.com"]', "listed twice", id="a host in two sources"),
        pytest.param('[search]\nA = ["a.com"]\n[social]\na = ["b.com"]', "listed twice", id="a name used twice"),
        pytest.param('[serach]\nA = ["a.com"]', "unknown table", id="a misspelt table"),
        pytest.param('[search]\nA = ["a.co.*"]', "country pattern", id="a country pattern of two labels"),
        pytest.param('[search]\nA = ["<a>.com"]', "not a host", id="a host with markup"),
        pytest.param('[search]\nA = "a.com"', "list of hosts", id="hosts not in a list"),
        pytest.param('[search]\nA = ["a.com"]\n[aliases]\nb = "B"', "not a name", id="an alias to no source"),
        pytest.param('[search]\nA = ["a.com"]\n[android_apps]\n"com.b" = "B"', "not a name", id="an app to no source"),
    ],
)
def test_a_mistake_in_the_source_table_is_refused(toml: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SourceTable.parse(toml)


HOSTILE = [
    pytest.param("<script>alert(1)</script>", id="HTML"),
    pytest.param("' OR 1=1; DROP TABLE events; --", id="SQL"),
    pytest.param("http://<script>/", id="markup as the host"),
    pytest.param("http://exa mple.com/", id="a space in the host"),
    pytest.param("http://%zz%/", id="invalid percent-escapes in the host"),
    pytest.param("http://[::1", id="an unbalanced IPv6 bracket"),
    pytest.param("http://[not-ipv6]/", id="a bracketed non-address"),
    pytest.param("http://example.com:99999999/", id="an impossible port"),
    pytest.param("http://\uff03@example.com/", id="a netloc that normalises into a separator"),
    pytest.param("\x00\x01\x1b[31mhttp://a.com", id="control characters"),
    pytest.param("https://" + "a" * 10_000 + ".com/", id="a 10,000-character host"),
    pytest.param("https://" + "a." * 5_000 + "com/", id="5,000 labels"),
    pytest.param("android-app://" + "x" * 10_000, id="a 10,000-character app id"),
    pytest.param("javascript:alert(1)", id="javascript:"),
    pytest.param("data:text/html,<h1>x</h1>", id="data:"),
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_never_raises_and_stays_bounded(text: str) -> None:
    for page_url, referrer in ((PAGE, text), (text, PAGE), (text, text), (PAGE + "?utm_source=" + text, text)):
        assert_bounded(classify(page_url, referrer))
    strip_tracking(text)


def test_a_long_host_keeps_its_registrable_end() -> None:
    result = classify(PAGE, "https://" + "a." * 300 + "facebook.com/")
    assert (result.source, result.channel) == ("Facebook", "social")
    assert result.referrer_host is not None and result.referrer_host.endswith(".facebook.com")


def assert_bounded(result: TrafficSource) -> None:
    assert result.channel in ("direct", "internal", "search", "social", "email", "paid", "referral")
    fields = (result.source, result.referrer_host, *(getattr(result.utm, name) for name in Utm.__slots__))
    for value in fields:
        assert value is None or len(value) <= FIELD_LIMIT
    assert result.source


URLISH = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["http://", "https://", "android-app://", "ios-app://", "", "//", "javascript:", "HTTP://"]),
        st.text(max_size=60),
        st.sampled_from(["", "/", "?", "?utm_source=", "?gclid=x&utm_medium=", "#", "/?ref="]),
        st.text(max_size=60),
    ),
)
TEXT = st.one_of(st.text(), URLISH)


@settings(max_examples=300)
@given(page_url=TEXT, referrer=st.none() | TEXT, own_hosts=st.frozensets(st.text(max_size=30), max_size=3))
def test_classify_source_never_raises_and_fields_stay_bounded(
    page_url: str, referrer: str | None, own_hosts: frozenset[str]
) -> None:
    assert_bounded(classify_source(page_url, referrer, own_hosts=own_hosts))


PARAM_NAMES = st.sampled_from([*AD_CLICK_IDS, "GCLID", "%67clid", "utm_source", "igshid", "q", "ref", "a"]) | st.text(
    max_size=10
)
QUERY = st.lists(st.tuples(PARAM_NAMES, st.text(max_size=10)), max_size=8).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)
)


@given(prefix=st.text(max_size=40), query=QUERY, fragment=st.text(max_size=20))
def test_strip_tracking_never_keeps_a_click_id_or_utm_parameter(prefix: str, query: str, fragment: str) -> None:
    stripped = strip_tracking(f"{prefix}?{query}#{fragment}")
    assert "#" not in stripped
    kept_query = stripped.partition("?")[2]
    for part in kept_query.split("&"):
        name = unquote_plus(part.partition("=")[0]).strip().lower()
        assert name not in AD_CLICK_IDS
        assert not name.startswith("utm_")
    assert strip_tracking(stripped) == stripped
