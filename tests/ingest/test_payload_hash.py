"""Hash routes (``"h": true``, a tag with ``data-hash``): the fragment is part of the page, else dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.ingest.payload import PayloadError, parse_event

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def pathname(url: str, **flag: object) -> str:
    raw = {"s": "shop", "n": "pageview", "u": url, **flag}
    return parse_event(raw, received_at=NOW, client_ip=None, user_agent="UA", headers={}).pathname


@pytest.mark.parametrize(
    ("url", "flag", "expected"),
    [
        pytest.param("https://s.example/app#/settings", {"h": True}, "/app#/settings", id="hash-route-is-the-page"),
        pytest.param("https://s.example/app?x=1#!/home", {"h": True}, "/app#!/home", id="query-dropped-route-kept"),
        pytest.param("https://s.example/app#", {"h": True}, "/app", id="empty-fragment-is-no-route"),
        pytest.param("https://s.example/#cg_consent=ab.cd", {"h": True}, "/", id="handed-back-token-never-stored"),
        pytest.param("https://s.example/app#/settings", {"h": False}, "/app", id="without-data-hash-dropped"),
        pytest.param("https://s.example/app#/settings", {}, "/app", id="older-snippets-dropped"),
    ],
)
def test_the_fragment_is_kept_only_for_hash_routes(url: str, flag: dict[str, object], expected: str) -> None:
    assert pathname(url, **flag) == expected


def test_the_same_url_with_and_without_the_flag_is_read_twice_not_from_one_cache_entry() -> None:
    url = "https://s.example/cached#/route"
    assert (pathname(url, h=True), pathname(url), pathname(url, h=True)) == (
        "/cached#/route",
        "/cached",
        "/cached#/route",
    )


@pytest.mark.parametrize("value", [1, "true", None, []])
def test_the_flag_is_true_or_false(value: object) -> None:
    with pytest.raises(PayloadError, match="'h' \\(hash routing\\) must be true or false"):
        pathname("https://s.example/app#/x", h=value)
