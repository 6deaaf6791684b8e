"""The README documents every setting, endpoint and command a user can meet."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from gateway.app import create_app
from gateway.cli import _parser
from gateway.settings import _SITE_KEYS, _TOP_KEYS
from tests.conftest import REPO, make_settings

README = (REPO / "README.md").read_text(encoding="utf-8")
DEFAULTS = (REPO / "config" / "gateway.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("key", sorted(_TOP_KEYS - {"sites"}))
def test_every_global_setting_is_documented(key: str) -> None:
    assert f"`{key}" in README or f"`[{key}]`" in README or f"`[[{key}]]`" in README
    assert re.search(rf"^\[?{key}\b", DEFAULTS, re.MULTILINE), f"{key} missing from config/gateway.toml"


@pytest.mark.parametrize("key", sorted(_SITE_KEYS))
def test_every_site_setting_is_documented(key: str) -> None:
    assert f"`{key}`" in README or f"sites.ID.{key}" in README


def test_every_endpoint_is_documented(tmp_path: object) -> None:
    app = create_app(make_settings(tmp_path))  # type: ignore[arg-type]
    paths = {route.path for route in app.routes if isinstance(route, Route)}
    assert paths
    for path in paths:
        assert f"`{path}" in README or f" {path}`" in README, path


def test_every_command_is_documented() -> None:
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"consent-gateway {name}" in README, name


def test_every_drop_reason_is_documented() -> None:
    from gateway.ingest.event import DropReason

    for reason in DropReason:
        assert f"`{reason.value}`" in README, reason
