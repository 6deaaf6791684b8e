"""The README documents every setting, endpoint and command a user can meet."""

from __future__ import annotations

import re

import pytest
import yaml
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


# docker-compose.yml cannot run here (no Docker engine): these read it as Compose would and check
# that it says what the README's "Scaling out" promises, with the settings the gateway really reads.
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
CADDYFILE = (REPO / "deploy" / "Caddyfile").read_text(encoding="utf-8")
NODES = ("gateway-1", "gateway-2")
#: Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} (the only forms the file uses).
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def _interpolate(value: str, dotenv: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, kind, text = match.groups()
        if dotenv.get(name):
            return dotenv[name]
        assert kind == "-", f"{name} is required by docker-compose.yml but missing from the test's .env"
        return text

    return _INTERPOLATION.sub(substitute, value)


def test_compose_runs_two_nodes_on_postgres_behind_a_proxy() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", *NODES, "proxy"}
    assert services["gateway-1"] == services["gateway-2"], "both nodes run the same image and settings"
    node = services["gateway-1"]
    assert node["build"] == "." and node["command"] == ["consent-gateway", "serve"]
    assert node["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["proxy"]["depends_on"] == {name: {"condition": "service_healthy"} for name in NODES}
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert re.fullmatch(r"postgres:1[5-9]", services["postgres"]["image"])
    assert any(volume.startswith("pg-data:") for volume in services["postgres"]["volumes"]), "a named volume"
    assert all(service["restart"] == "unless-stopped" for service in services.values())
    assert node["user"] not in ("0", "root") and not node["user"].startswith("0:")
    assert services["postgres"]["user"] == "postgres"
    assert [name for name, service in services.items() if "ports" in service] == ["proxy"]
    caddy = re.fullmatch(r"caddy:2\.(\d+)", services["proxy"]["image"])
    assert caddy is not None and int(caddy[1]) >= 11, "Caddy 2.11.2 retries a POST refused by one node on the other"
    subnets = [entry["subnet"] for entry in COMPOSE["networks"]["front"]["ipam"]["config"]]
    assert node["environment"]["FORWARDED_ALLOW_IPS"] in subnets, "the nodes trust the proxy's network only"
    assert COMPOSE["networks"]["back"]["internal"] is True and services["postgres"]["networks"] == ["back"]


def test_compose_environment_is_read_by_the_gateway() -> None:
    from gateway.settings import load_settings
    from gateway.storage.location import PostgresUrl, parse_database

    dotenv = {
        "POSTGRES_PASSWORD": "pg-secret",
        "CONSENT_GATEWAY_SECRET_KEYS": "old-key-0123456789,new-key-0123456789",
        "CONSENT_GATEWAY_VISITOR_KEY": "v" * 32,
    }
    environ = {
        name: _interpolate(str(value), dotenv)
        for name, value in COMPOSE["services"]["gateway-1"]["environment"].items()
    }
    for name in environ:
        if name.startswith("CONSENT_GATEWAY_") and name != "CONSENT_GATEWAY_CONFIG":
            assert name.removeprefix("CONSENT_GATEWAY_").lower() in _TOP_KEYS, name
    assert "./deploy/gateway.toml:/config/gateway.toml:ro" in COMPOSE["services"]["gateway-1"]["volumes"]
    assert environ["CONSENT_GATEWAY_CONFIG"] == "/config/gateway.toml"
    settings = load_settings(REPO / "deploy" / "gateway.toml", environ=environ)
    assert [key.value for key in settings.secret_keys] == ["old-key-0123456789", "new-key-0123456789"]
    assert settings.sites and settings.port == 8000
    assert settings.host == "0.0.0.0"  # noqa: S104 - inside its container, reached through compose networks only
    location = parse_database(environ["CONSENT_GATEWAY_DATABASE"])
    assert isinstance(location, PostgresUrl) and "pg-secret" not in location.url, "the password goes as PGPASSWORD"
    assert environ["PGPASSWORD"] == "pg-secret"


def test_caddy_balances_both_nodes_on_the_health_endpoint(tmp_path: object) -> None:
    port = COMPOSE["services"]["gateway-1"]["environment"]["CONSENT_GATEWAY_PORT"]
    assert f"reverse_proxy {' '.join(f'{name}:{port}' for name in NODES)} {{" in CADDYFILE
    health = re.search(r"^\s*health_uri (\S+)$", CADDYFILE, re.MULTILINE)
    assert health is not None
    app = create_app(make_settings(tmp_path))  # type: ignore[arg-type]
    assert health[1] in {route.path for route in app.routes if isinstance(route, Route)}
    assert f"/{health[1].lstrip('/')}'" in (REPO / "Dockerfile").read_text(encoding="utf-8"), "the image checks it too"


def test_readme_explains_scaling_out() -> None:
    section = README.split("\n## Scaling out\n", 1)[1].split("\n## ", 1)[0]
    for needle in (
        "docker-compose.yml",
        "CONSENT_GATEWAY_DATABASE",
        "consent-gateway migrate-store --from",
        "(#benchmarks)",
    ):
        assert needle in section, needle
