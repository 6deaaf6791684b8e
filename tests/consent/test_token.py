"""Consent tokens: compact, signed, rotating keys, expiring by the site's settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clock import FixedClock
from gateway.consent.token import ConsentTokenCodec, new_consent_id
from gateway.settings import Secret
from tests.conftest import make_settings, site_config


def issue(codec: ConsentTokenCodec, site: object, allowed: set[str], **extra: object) -> str:
    token, _ = codec.issue(
        consent_id=new_consent_id(),
        site=site,  # type: ignore[arg-type]
        allowed=frozenset(allowed),  # type: ignore[arg-type]
        services=extra.get("services", {}),  # type: ignore[arg-type]
        method="custom",
        gpc=bool(extra.get("gpc", False)),
    )
    return token


def test_a_token_round_trips_and_fits_comfortably_in_a_cookie(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(tmp_path)
    codec = ConsentTokenCodec(settings.secret_keys, clock)
    site = settings.sites["shop"]
    token = issue(codec, site, {"analytics", "functional"}, services={"hotjar": False, "google-analytics": True})
    assert len(token) < 300
    verified = codec.verify(token, site)
    assert verified.reason == "valid" and verified.state is not None
    assert verified.state.allowed == {"analytics", "functional"}
    assert verified.state.services == {"hotjar": False, "google-analytics": True}
    assert verified.state.issued_at == clock.now()
    assert len(verified.state.consent_id) == 22  # 128 random bits, URL-safe


@pytest.mark.parametrize(
    ("allowed", "days_valid"),
    [
        pytest.param({"analytics"}, 30, id="acceptance-lives-30-days"),
        pytest.param(set(), 60, id="refusal-lives-60-days"),
    ],
)
def test_acceptance_and_refusal_expire_by_their_own_settings(
    tmp_path: Path, clock: FixedClock, allowed: set[str], days_valid: int
) -> None:
    settings = make_settings(tmp_path, site=site_config(consent_lifetime_accept="30d", consent_lifetime_reject="60d"))
    codec = ConsentTokenCodec(settings.secret_keys, clock)
    site = settings.sites["shop"]
    token = issue(codec, site, allowed)
    clock.advance(timedelta(days=days_valid) - timedelta(seconds=1))
    assert codec.verify(token, site).reason == "valid"
    clock.advance(timedelta(seconds=1))
    assert codec.verify(token, site).reason == "expired"


def test_keys_rotate_the_newest_signs_and_all_verify(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(tmp_path)
    site = settings.sites["shop"]
    old_only = ConsentTokenCodec([Secret("test-secret-key-old")], clock)
    rotated = ConsentTokenCodec(settings.secret_keys, clock)  # old, new
    new_only = ConsentTokenCodec([Secret("test-secret-key-new")], clock)
    old_token = issue(old_only, site, {"analytics"})
    assert rotated.verify(old_token, site).reason == "valid"
    assert new_only.verify(issue(rotated, site, {"analytics"}), site).reason == "valid"
    assert new_only.verify(old_token, site).reason == "tampered"  # the old key was dropped


def test_a_token_from_another_site_or_the_future_is_not_trusted(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(tmp_path)
    raw = {"shop": site_config(), "blog": site_config()}
    from gateway.settings import settings_from_dict

    two = settings_from_dict({"secret_keys": ["k"], "sites": raw})
    codec = ConsentTokenCodec(two.secret_keys, clock)
    assert codec.verify(issue(codec, two.sites["blog"], set()), two.sites["shop"]).reason == "other_site"
    future = ConsentTokenCodec(two.secret_keys, FixedClock(clock.now() + timedelta(hours=1)))
    assert codec.verify(issue(future, two.sites["shop"], set()), two.sites["shop"]).reason == "tampered"
    assert settings.sites["shop"]


def test_no_keys_is_a_clear_error(clock: FixedClock) -> None:
    with pytest.raises(ValueError, match="secret key"):
        ConsentTokenCodec([], clock)


@given(st.text(max_size=400))
def test_any_text_verifies_as_a_reason_never_an_exception(text: str) -> None:
    from gateway.settings import settings_from_dict

    settings = settings_from_dict({"secret_keys": ["k"], "sites": {"shop": {}}})
    verified = ConsentTokenCodec(settings.secret_keys, FixedClock()).verify(text, settings.sites["shop"])
    assert verified.state is None and verified.reason == "tampered"
