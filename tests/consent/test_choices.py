"""Reading a visitor's decision from a ``POST /consent`` body: strict rules, messages that say what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.consent.choices import ChoiceError, ConsentChoice, parse_choice
from gateway.settings import SiteSettings, settings_from_dict
from tests.conftest import site_config

SITE: SiteSettings = settings_from_dict({"sites": {"shop": site_config()}}, source="test").sites["shop"]
EVERYTHING = {"functional": True, "analytics": True, "advertising": True}
NOTHING = {"functional": False, "analytics": False, "advertising": False}


def parse(gpc_header: bool = False, **body: Any) -> ConsentChoice:
    return parse_choice({"site": "shop", "revision": 1, **body}, SITE, gpc_header=gpc_header)


@pytest.mark.parametrize(
    ("body", "gpc_header", "method", "allowed"),
    [
        pytest.param({"choices": EVERYTHING}, False, "accept_all", {"functional", "analytics", "advertising"},
                     id="every category true derives accept_all"),
        pytest.param({"choices": EVERYTHING, "services": {"hotjar": True}}, False, "accept_all",
                     {"functional", "analytics", "advertising"}, id="every category and service true is accept_all"),
        pytest.param({"choices": EVERYTHING, "services": {"hotjar": False}}, False, "custom",
                     {"functional", "analytics", "advertising"}, id="a refused service makes accept_all custom"),
        pytest.param({"choices": NOTHING}, False, "reject_all", set(), id="every category false derives reject_all"),
        pytest.param({}, False, "reject_all", set(), id="no choices at all is a rejection (no pre-ticked boxes)"),
        pytest.param({"choices": {"analytics": True}}, False, "custom", {"analytics"},
                     id="an unmentioned category is refused"),
        pytest.param({"choices": {"essential": True, "functional": True}}, False, "custom", {"functional"},
                     id="essential true is accepted and not a consent category"),
        pytest.param({"services": {"hotjar": True}}, False, "custom", set(),
                     id="one accepted service alone makes a custom decision"),
        pytest.param({"method": "accept_all", "choices": EVERYTHING}, False, "accept_all",
                     {"functional", "analytics", "advertising"}, id="accept_all sent with all true is kept"),
        pytest.param({"method": "custom", "choices": EVERYTHING}, False, "custom",
                     {"functional", "analytics", "advertising"}, id="custom may accept everything"),
        pytest.param({"method": "reject_all", "choices": NOTHING}, False, "reject_all", set(),
                     id="reject_all sent with all false is kept"),
        pytest.param({"method": "gpc"}, True, "gpc", set(), id="gpc with the Sec-GPC header"),
        pytest.param({"method": "gpc", "gpc": True}, False, "gpc", set(), id="gpc with gpc true in the body"),
    ],
)  # fmt: skip
def test_method_is_derived_or_checked(body: dict[str, Any], gpc_header: bool, method: str, allowed: set[str]) -> None:
    choice = parse(gpc_header=gpc_header, **body)
    assert choice.method == method
    assert choice.allowed == frozenset(allowed)


@pytest.mark.parametrize(
    ("body", "gpc_header", "message"),
    [
        pytest.param({"revision": None}, False, "'revision' must be the policy revision", id="revision is required"),
        pytest.param({"revision": "1"}, False, "found '1'", id="revision as text is refused"),
        pytest.param({"revision": True}, False, "found True", id="revision true is not the number 1"),
        pytest.param({"choices": ["analytics"]}, False, "'choices' must be an object", id="choices as a list"),
        pytest.param({"choices": {"analytics": "yes"}}, False, "choices.analytics must be true or false",
                     id="a choice must be a boolean"),
        pytest.param({"choices": {"analytics": 1}}, False, "found 1", id="a choice of 1 is not true"),
        pytest.param({"choices": {"essential": False}}, False, "essential cookies cannot be refused",
                     id="essential cannot be refused"),
        pytest.param({"choices": {"tracking": True}}, False, "unknown category 'tracking'",
                     id="a category the gateway does not have"),
        pytest.param({"services": ["hotjar"]}, False, "'services' must be an object", id="services as a list"),
        pytest.param({"services": {"meta-pixel": True}}, False,
                     "unknown service 'meta-pixel' for site 'shop'; its services: google-analytics, hotjar",
                     id="a service the site does not have"),
        pytest.param({"services": {"hotjar": "no"}}, False, "services.hotjar must be true or false",
                     id="a service choice must be a boolean"),
        pytest.param({"gpc": "1"}, False, "'gpc' must be true or false", id="gpc must be a boolean"),
        pytest.param({"method": "accept_all", "choices": {**EVERYTHING, "advertising": False}}, False,
                     "method 'accept_all' but some choices are false", id="accept_all with a false choice"),
        pytest.param({"method": "accept_all", "choices": EVERYTHING, "services": {"hotjar": False}}, False,
                     "method 'accept_all' but some choices are false", id="accept_all with a refused service"),
        pytest.param({"method": "reject_all", "choices": {"analytics": True}}, False,
                     "method 'reject_all' but some choices are true", id="reject_all with a true choice"),
        pytest.param({"method": "gpc", "choices": {"analytics": True}}, True,
                     "method 'gpc' but some choices are true", id="gpc with a true choice"),
        pytest.param({"method": "gpc"}, False, "needs the Global Privacy Control signal",
                     id="gpc without the GPC signal"),
        pytest.param({"method": "withdraw"}, False, "unknown method 'withdraw'",
                     id="withdraw is not a decision method"),
        pytest.param({"method": "ACCEPT_ALL", "choices": EVERYTHING}, False, "unknown method 'ACCEPT_ALL'",
                     id="methods are case sensitive"),
        pytest.param({"colour": "blue"}, False, "unknown field 'colour'", id="an unknown field is refused"),
    ],
)  # fmt: skip
def test_inconsistent_or_malformed_decisions_are_refused(body: dict[str, Any], gpc_header: bool, message: str) -> None:
    with pytest.raises(ChoiceError) as raised:
        parse(gpc_header=gpc_header, **body)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        pytest.param("en", "en", id="a two-letter language"),
        pytest.param("pt-BR", "pt-BR", id="a language with a region"),
        pytest.param("zh-Hant-TW", "zh-Hant-TW", id="a language with script and region"),
        pytest.param("gsw", "gsw", id="a three-letter language"),
        pytest.param("", None, id="empty means not sent"),
        pytest.param(None, None, id="null means not sent"),
    ],
)
def test_language_tags_are_kept(language: str | None, expected: str | None) -> None:
    assert parse(language=language).language == expected


@pytest.mark.parametrize(
    "language",
    [
        pytest.param("english", id="a word is not a tag"),
        pytest.param("e", id="one letter is too short"),
        pytest.param("en_US", id="underscore is not a tag separator"),
        pytest.param("<b>en</b>", id="html"),
        pytest.param("en'; DROP TABLE consent_records; --", id="sql"),
        pytest.param("en\n", id="a trailing newline"),
        pytest.param("en\x00", id="a NUL character"),
        pytest.param(7, id="a number"),
        pytest.param(["en"], id="a list"),
    ],
)
def test_language_must_be_a_tag(language: object) -> None:
    with pytest.raises(ChoiceError, match="'language' must be a language tag"):
        parse(language=language)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        pytest.param("/checkout", "/checkout", id="a plain path is kept"),
        pytest.param("/search?q=anna@example.com", "/search", id="the query string is dropped"),
        pytest.param("/faq#cookies", "/faq", id="the fragment is dropped"),
        pytest.param("/a#frag?x=1", "/a", id="a fragment before a question mark is dropped too"),
        pytest.param("/?", "/", id="an empty query is dropped"),
        pytest.param("?token=secret", None, id="only a query leaves no path"),
        pytest.param("/" + "a" * 10_000, "/" + "a" * 511, id="a long path is cut to 512 characters"),
        pytest.param("/<script>alert(1)</script>", "/<script>alert(1)</script>", id="html is kept as text"),
        pytest.param("/'; DROP TABLE consent_records; --", "/'; DROP TABLE consent_records; --",
                     id="sql is kept as text"),
        pytest.param("/caf\u00e9/\u65e5\u672c", "/caf\u00e9/\u65e5\u672c", id="non-ascii paths are kept"),
        pytest.param("/ok?\x00", "/ok", id="control characters in the dropped query do not matter"),
        pytest.param("", None, id="empty means not sent"),
        pytest.param(None, None, id="null means not sent"),
    ],
)  # fmt: skip
def test_page_keeps_only_the_path(page: str | None, expected: str | None) -> None:
    assert parse(page=page).page_path == expected


@pytest.mark.parametrize(
    ("page", "message"),
    [
        pytest.param("/a\nb", "'page' contains control characters", id="a newline"),
        pytest.param("/a\x00b", "'page' contains control characters", id="a NUL character"),
        pytest.param("/a\x1b[31m", "'page' contains control characters", id="a terminal escape"),
        pytest.param("/a\x7f", "'page' contains control characters", id="DEL"),
        pytest.param("/a\ud800", "'page' is not valid Unicode", id="a lone surrogate cannot be stored"),
        pytest.param(42, "'page' must be the page's path as text", id="a number"),
        pytest.param({"path": "/"}, "'page' must be the page's path as text", id="an object"),
    ],
)
def test_page_that_cannot_be_a_path_is_refused(page: object, message: str) -> None:
    with pytest.raises(ChoiceError) as raised:
        parse(page=page)
    assert message in str(raised.value)


def test_gpc_is_recorded_from_header_or_body() -> None:
    assert parse(gpc_header=True).gpc is True
    assert parse(gpc=True).gpc is True
    assert parse().gpc is False


def test_services_and_revision_are_carried() -> None:
    choice = parse(revision=3, choices={"analytics": True}, services={"hotjar": False, "google-analytics": True})
    assert choice.revision == 3
    assert dict(choice.services) == {"hotjar": False, "google-analytics": True}


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(["site", "choices", "services", "method", "revision", "language", "page", "gpc", "token"])
_categories = st.sampled_from(["essential", "functional", "analytics", "advertising", "hotjar", "x"])
_bodies = st.dictionaries(_keys | st.text(max_size=8), _json, max_size=8) | st.fixed_dictionaries(
    {
        "revision": st.integers(0, 3) | _json,
        "choices": st.dictionaries(_categories, st.booleans() | _json, max_size=5) | _json,
        "services": st.dictionaries(st.sampled_from(["hotjar", "google-analytics", "x"]), st.booleans()) | _json,
        "method": st.sampled_from(["accept_all", "reject_all", "custom", "gpc", "withdraw"]) | _json,
        "language": st.sampled_from(["en", "pt-BR", ""]) | _json,
        "page": st.text(max_size=30) | _json,
        "gpc": st.booleans() | _json,
    }
)


@given(body=_bodies, gpc_header=st.booleans())
def test_any_json_body_is_a_choice_or_a_choice_error(body: dict[str, Any], gpc_header: bool) -> None:
    try:
        choice = parse_choice(body, SITE, gpc_header=gpc_header)
    except ChoiceError as error:
        assert str(error)
        return
    assert choice.method in ("accept_all", "reject_all", "custom", "gpc")
    assert choice.allowed <= {"functional", "analytics", "advertising"}
    if choice.page_path is not None:
        assert len(choice.page_path) <= 512 and "?" not in choice.page_path and "#" not in choice.page_path
        choice.page_path.encode("utf-8")  # storable
