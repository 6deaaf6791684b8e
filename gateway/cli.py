"""The ``consent-gateway``: serve, demo, snippet, classify, import-cookies, consent, user, apikey, share, rollup, purge,
scan.

Every failure a user can cause ends as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import logging.config
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeVar

from gateway.accounts.api_keys import PERMISSIONS, ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from gateway.accounts.shared_links import SharedLink, SharedLinkError, SharedLinks
from gateway.cookies.catalog import CatalogError
from gateway.scan.command import add_scan_command
from gateway.settings import Settings, SettingsError, load_settings
from gateway.storage.location import DatabaseLocation, PostgresUrl, parse_database
from gateway.storage.store import Store, check_store, error_dialect, failure_cause, is_store_error, open_store
from gateway.storage.users import ROLES, UserError, add_user, grant, list_users, remove_user, set_password

T = TypeVar("T")


class CommandError(Exception):
    """A mistake the user can fix; printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except (CommandError, SettingsError, CatalogError) as error:
        print(f"consent-gateway: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consent-gateway", description="Cookie consent enforcement and privacy-first analytics."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway", description="Run the gateway (uvicorn).")
    _config_option(serve)
    serve.add_argument("--host", help="address to listen on (default: the config's host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: the config's port)")
    serve.add_argument("--workers", type=int, help="worker processes of this node, sharing its database")
    serve.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        help="proxies trusted for X-Forwarded-For/Proto (default: 127.0.0.1)",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo", help="run the gateway with a demo site", description="Run the gateway and a demo site using it."
    )
    demo.add_argument("--host", default="127.0.0.1", help="address for both servers (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="the gateway's port (default: 8000)")
    demo.add_argument("--site-port", type=int, default=8001, help="the demo site's port (default: 8001)")
    demo.add_argument("--data", type=Path, default=Path("data"), help="folder for the database and key (./data)")
    demo.add_argument(
        "--no-sample-data",
        dest="sample_data",
        action="store_false",
        help="on the first start, do not write the labelled sample data (60 days of made-up traffic and consent)",
    )
    demo.set_defaults(run=_demo)

    classify = commands.add_parser(
        "classify", help="explain how a cookie is classified", description="Classify a cookie name."
    )
    classify.add_argument("name", help="the cookie name, e.g. _ga_ABC123")
    classify.add_argument("--site", help="apply this site's own rules, caps and unknown-cookie policy")
    classify.add_argument("--domain", help="the domain the cookie belongs to (third-party rules)")
    _config_option(classify)
    classify.set_defaults(run=_classify)

    importer = commands.add_parser(
        "import-cookies",
        help="turn an Open Cookie Database CSV into a rules file",
        description="Import the Open Cookie Database CSV format into a site rules file ([[cookie]] tables).",
    )
    importer.add_argument("csv", type=Path, help="the CSV file")
    importer.add_argument("--output", "-o", type=Path, help="rules file to write (default: standard output)")
    importer.set_defaults(run=_import_cookies)

    consent = commands.add_parser(
        "consent", help="data-subject requests on the proof log", description="Export or erase consent records."
    )
    consent_commands = consent.add_subparsers(required=True, metavar="ACTION")
    _add_consent_export(consent_commands)
    erase = consent_commands.add_parser("erase", help="erase a consent id", description="Erase a consent id.")
    erase.add_argument("--id", required=True, dest="consent_id", help="the consent id (from the visitor's token)")
    _config_option(erase)
    erase.set_defaults(run=_consent_erase)

    rollup = commands.add_parser(
        "rollup",
        help="roll up the statistics now",
        description="Roll up the days that received events since the last rollup (the gateway does this "
        "every rollup_interval); with --rebuild, every day that still has events.",
    )
    rollup.add_argument("--rebuild", action="store_true", help="rebuild every day from the raw events")
    rollup.add_argument("--site", help="with --rebuild: only this site")
    _config_option(rollup)
    rollup.set_defaults(run=_rollup)

    snippet = commands.add_parser(
        "snippet",
        help="print the script tag for a site",
        description="Print the <script> tag a site pastes, pinned to this version with Subresource Integrity, "
        "and the Content-Security-Policy directives the site needs.",
    )
    snippet.add_argument("--site", required=True, help="the site id")
    snippet.add_argument("--url", required=True, help="where the gateway answers, e.g. https://consent.example.com")
    _config_option(snippet)
    snippet.set_defaults(run=_snippet)

    user = commands.add_parser(
        "user",
        help="dashboard accounts",
        description="Add, remove and list dashboard users, set passwords and grant roles per site.",
    )
    user_commands = user.add_subparsers(required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="add a user", description="Add a user; the password is asked for.")
    add.add_argument("name", help="the login name (letters, digits, . _ @ -)")
    add.add_argument("--admin", action="store_true", help="the instance admin: every site and user management")
    add.add_argument("--site", help="grant a role on this site at once")
    add.add_argument("--role", choices=ROLES, default="viewer", help="the role on --site (default: viewer)")
    passwd = user_commands.add_parser("passwd", help="set a user's password", description="Set a user's password.")
    passwd.add_argument("name")
    for sub in (add, passwd):
        sub.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove = user_commands.add_parser("remove", help="remove a user", description="Remove a user and their roles.")
    remove.add_argument("name")
    grant_parser = user_commands.add_parser(
        "grant", help="give a user a role on a site", description="Give a user a role on a site, or take it away."
    )
    grant_parser.add_argument("name")
    grant_parser.add_argument("--site", required=True, help="the site id")
    grant_parser.add_argument("--role", choices=(*ROLES, "none"), required=True, help="owner, viewer or none")
    listing = user_commands.add_parser("list", help="list users and their roles", description="List users.")
    for sub, run in ((add, _user_add), (passwd, _user_passwd), (remove, _user_remove), (grant_parser, _user_grant)):
        _config_option(sub)
        sub.set_defaults(run=run)
    _config_option(listing)
    listing.set_defaults(run=_user_list)

    _add_key_commands(commands)
    _add_share_commands(commands)
    add_scan_command(commands, _config_option)  # gateway/scan/command.py: Playwright is imported only by a scan

    migrate = commands.add_parser(
        "migrate-store",
        help="copy a SQLite database into an empty PostgreSQL database",
        description="Copy every table of a SQLite database into an empty PostgreSQL database, then check that "
        "every site's dashboard shows the same figures on both. Stop the gateway first.",
    )
    _config_option(migrate)
    migrate.add_argument("--from", dest="source", type=Path, required=True, metavar="SQLITE_PATH")
    migrate.add_argument("--to", dest="target", required=True, metavar="POSTGRES_URL")
    migrate.set_defaults(run=_migrate_store)

    purge = commands.add_parser(
        "purge",
        help="delete what is past its retention",
        description="Delete events, visits, rollups and consent records past the [retention] settings "
        "(the gateway does this once a day).",
    )
    _config_option(purge)
    purge.set_defaults(run=_purge)
    return parser


def _add_consent_export(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="export records: a consent id's (JSON), or a site's over a range of days (CSV or JSON)",
        description="Print every record of a consent id as JSON (--id), or a site's proof-of-consent log over "
        "a range of its days, both included, as CSV or JSON (--site --from --to), streamed.",
    )
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="consent_id", help="the consent id (from the visitor's token)")
    which.add_argument("--site", help="the site id: export its log from --from to --to")
    export.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help="the first day (the site's time zone)")
    export.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="the last day, included")
    export.add_argument("--format", help="csv (default) or json")
    export.add_argument("--revisions", action="store_true", help="include the banners the records answered (JSON)")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    _config_option(export)
    export.set_defaults(run=_consent_export)


def _add_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apikey = commands.add_parser(
        "apikey",
        help="API keys of a site",
        description="Create, list and revoke a site's keys for the JSON stats API.",
    )
    actions = apikey.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a key", description="Create a key; it is printed once and cannot be shown again."
    )
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'weekly report'")
    create.add_argument(
        "--permission",
        action="append",
        default=[],
        choices=sorted(PERMISSIONS),
        help="also allow this, besides the statistics: "
        + "; ".join(f"{name}: {what}" for name, what in PERMISSIONS.items()),
    )
    listing = actions.add_parser("list", help="list the site's keys", description="List the site's keys.")
    revoke = actions.add_parser("revoke", help="revoke a key", description="Revoke a key for good.")
    revoke.add_argument("id", type=int, help="the key's id (from apikey list)")
    for sub, run in ((create, _apikey_create), (listing, _apikey_list), (revoke, _apikey_revoke)):
        sub.add_argument("--site", required=True, help="the site id")
        _config_option(sub)
        sub.set_defaults(run=run)


def _add_share_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    share = commands.add_parser(
        "share",
        help="read-only links to a site's dashboard",
        description="Create, list and revoke read-only links to a site's dashboard.",
    )
    actions = share.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a link", description="Create a link and print its path.")
    create.add_argument("--label", default="", help="who or what the link is for")
    create.add_argument("--expires", metavar="LIFETIME", help="the link ends after this long, e.g. 30d or 6mo")
    create.add_argument("--password", action="store_true", help="ask for a password the link will require")
    create.add_argument("--password-stdin", action="store_true", help="the same, reading it from standard input")
    listing = actions.add_parser("list", help="list the site's links", description="List the site's links.")
    revoke = actions.add_parser("revoke", help="revoke a link", description="Revoke a link for good.")
    revoke.add_argument("id", type=int, help="the link's id (from share list)")
    for sub, run in ((create, _share_create), (listing, _share_list), (revoke, _share_revoke)):
        sub.add_argument("--site", required=True, help="the site id")
        _config_option(sub)
        sub.set_defaults(run=run)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="settings file (default: $CONSENT_GATEWAY_CONFIG)")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _serve(args: argparse.Namespace) -> int:
    from gateway.logs import log_config
    from gateway.serving import FILES_RESERVED, ServingLimits, raise_open_file_limit, run_server

    settings = _settings(args)
    if not settings.secret_keys:
        raise CommandError("no secret key: set secret_keys in your config file or CONSENT_GATEWAY_SECRET_KEYS")
    _check_database(settings.database)  # here, not in the lifespan: uvicorn would print a traceback and exit 3
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    workers = args.workers or settings.workers
    common = {
        "host": host,
        "port": port,
        "proxy_headers": True,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "access_log": False,  # uvicorn's access log prints the client address: never log a raw IP
        "log_config": log_config(),  # JSON lines, addresses cut to their network
    }
    limits = ServingLimits(
        head_timeout=settings.head_timeout_seconds,
        max_head_bytes=settings.max_head_bytes,
        max_connections=settings.max_connections,
    )
    logging.config.dictConfig(log_config())
    log = logging.getLogger("gateway")
    log.info("serving", extra={"sites": sorted(settings.sites), "port": port, "workers": workers})
    before, files, hard = raise_open_file_limit()  # the workers inherit it
    log.info(
        f"open file limit {files} (was {before}, hard limit {hard})",
        extra={"open_files": files, "open_files_before": before, "open_files_hard": hard},
    )
    if files < settings.max_connections + FILES_RESERVED:
        log.warning(
            f"open file limit {files} is below max_connections + {FILES_RESERVED}: raise the hard limit "
            "(ulimit -Hn, systemd LimitNOFILE) or lower max_connections",
            extra={"open_files": files, "max_connections": settings.max_connections},
        )
    if workers > 1:
        if args.config:
            os.environ["CONSENT_GATEWAY_CONFIG"] = str(args.config.resolve())
        from gateway.metrics import NODE_ENVIRONMENT, new_node_id

        os.environ[NODE_ENVIRONMENT] = new_node_id()  # the workers' /metrics add up to this node
        run_server("gateway.app:app_from_environment", limits=limits, factory=True, workers=workers, **common)
    else:
        from gateway.app import create_app

        run_server(create_app(settings, freeze_heap=True, writer_process=True), limits=limits, **common)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    # The demo's own file, unless CONSENT_GATEWAY_DATABASE names another store (make demo-postgres).
    chosen = os.environ.get("CONSENT_GATEWAY_DATABASE")
    try:
        database = parse_database(chosen) if chosen else args.data / "demo.sqlite3"
    except ValueError as error:
        raise CommandError(f"CONSENT_GATEWAY_DATABASE {error}") from None
    if not isinstance(database, Path) or database.exists():
        _check_database(database)
    asyncio.run(
        run_demo(
            host=args.host,
            gateway_port=args.port,
            site_port=args.site_port,
            data=args.data,
            database=chosen,
            sample_data=args.sample_data,
        )
    )
    return 0


def _classify(args: argparse.Namespace) -> int:
    from gateway.consent.middleware import load_catalog
    from gateway.cookies.lifetimes import shorter

    settings = _settings(args)
    catalog = load_catalog(settings)
    site = None
    if args.site:
        site = settings.site(args.site)
        if site is None:
            raise CommandError(f"unknown site {args.site!r} (configured: {', '.join(settings.sites) or 'none'})")
        catalog = catalog.with_rules(site.cookie_rules)
    found = catalog.classify(args.name, args.domain)
    rule = found.rule
    if rule is None:
        policy = site.unknown_cookies if site else "block"
        print(f"name:      {args.name}\ncategory:  unknown")
        print(f"policy:    {'blocked until classified' if policy == 'block' else 'allowed as a session cookie'}")
        print(f"rule:      {found.explain()}")
        return 0
    print(f"name:      {args.name}\ncategory:  {rule.category}\nvendor:    {rule.vendor or '-'}")
    if rule.service:
        print(f"service:   {rule.service}")
    print(f"declared:  {rule.lifetime.describe()} ({rule.lifetime})")
    if site is not None:
        cap = site.cap_for(rule.category)
        allowed = rule.lifetime if cap is None else shorter(rule.lifetime, cap)
        source = f"capped by site {site.id}'s {rule.category} cap" if allowed != rule.lifetime else "as declared"
        print(f"allowed:   {allowed.describe()} ({source})")
    if rule.purpose:
        print(f"purpose:   {rule.purpose}")
    print(f"rule:      {found.explain()}")
    return 0


def _import_cookies(args: argparse.Namespace) -> int:
    from gateway.cookies.opencookiedb import import_open_cookie_database, rules_to_toml

    result = import_open_cookie_database(args.csv)
    header = (
        f"Imported from {args.csv.name} (Open Cookie Database format): {len(result.rules)} rules "
        f"from {result.rows} rows, {len(result.skipped)} skipped."
    )
    text = rules_to_toml(result.rules, header=header)
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot write {args.output}: {error.strerror or error}") from None
    else:
        sys.stdout.write(text)
    print(header, file=sys.stderr)
    for row in result.skipped:
        print(f"  skipped line {row.line} ({row.name!r}): {row.reason}", file=sys.stderr)
    return 0


def _consent_export(args: argparse.Namespace) -> int:
    from gateway.storage.consent_log import records_for

    if args.site is not None:
        return _consent_export_site(args)
    given = [
        option
        for option, value in (
            ("--from", args.first),
            ("--to", args.last),
            ("--format", args.format),
            ("--revisions", args.revisions),
            ("--output", args.output),
        )
        if value
    ]
    if given:
        raise CommandError(f"{given[0]} works with --site only (--id prints the consent id's records as JSON)")

    async def export() -> list[dict[str, object]]:
        async with _open_database(_settings(args)) as db:
            return [record.to_json() for record in await records_for(db, args.consent_id)]

    records = asyncio.run(export())
    if not records:
        raise CommandError(f"no consent records for id {args.consent_id!r}")
    print(json.dumps({"consent_id": args.consent_id, "records": records}, indent=2))
    return 0


def _consent_export_site(args: argparse.Namespace) -> int:
    """A site's log over a range of days, chunk by chunk as the pages are read (never held whole)."""
    from gateway.consent.export import ExportError, export_consent_log, parse_export

    settings = _settings(args)
    site = settings.site(_known_site(settings, args.site))
    assert site is not None  # noqa: S101 - _known_site refused an unknown one
    try:
        request = parse_export(site, args.first, args.last, args.format, revisions=args.revisions)
    except ExportError as error:
        raise CommandError(str(error)) from None

    async def export(out: TextIO) -> None:
        async with _open_database(settings) as db:
            async for chunk in export_consent_log(db, request):
                out.write(chunk)

    if args.output is None:
        asyncio.run(export(sys.stdout))
        return 0
    try:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            asyncio.run(export(out))
    except OSError as error:
        raise CommandError(f"cannot write {args.output}: {error.strerror or error}") from None
    return 0


def _consent_erase(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock
    from gateway.storage.consent_log import erase_records

    async def erase() -> int:
        settings = _settings(args)
        async with _open_database(settings) as db:
            return await erase_records(db, args.consent_id, now=SystemClock().now(), zones=settings.zones)

    erased = asyncio.run(erase())
    if not erased:
        raise CommandError(f"no consent records for id {args.consent_id!r}")
    print(f"erased {erased} record(s) of {args.consent_id}; an anonymous tombstone remains")
    return 0


def _snippet(args: argparse.Namespace) -> int:
    from gateway.web.snippets import build_bundles, script_tag

    settings = _settings(args)
    if settings.site(args.site) is None:
        raise CommandError(
            f"unknown site {args.site!r}; configured sites: {', '.join(sorted(settings.sites)) or 'none'}"
        )
    url = args.url.rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise CommandError(f"--url must start with https:// or http://, found {args.url!r}")
    print(script_tag(build_bundles(), url, args.site))
    origin = "/".join(url.split("/")[:3])
    print(
        f"\nContent-Security-Policy needs: script-src {origin} (or 'nonce-...': put nonce=\"...\" on the tag); "
        f"connect-src {origin}; frame-src for the iframes you block."
    )
    return 0


_USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def _read_password(args: argparse.Namespace) -> str:
    from gateway.accounts.passwords import PasswordError, check_new_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the two passwords differ")
    try:
        check_new_password(password)
    except PasswordError as error:
        raise CommandError(str(error)) from None
    return password


async def _accounts(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` on the database, creating it (and its tables) on first use."""
    location = settings.database
    if isinstance(location, Path) and not location.parent.is_dir():
        raise CommandError(f"the folder {location.parent} does not exist")
    db = open_store(location)
    try:
        await asyncio.to_thread(check_store, location)  # a damaged file: one line, not a traceback
        await db.open()
    except Exception as error:
        await db.close()
        raise _database_error(location, error) from None
    try:
        return await work(db)
    except (UserError, ApiKeyError, SharedLinkError) as error:
        raise CommandError(str(error)) from None
    except Exception as error:  # a damaged page met halfway, a full disk
        raise _database_error(location, error) from None
    finally:
        await db.close()


def _known_site(settings: Settings, site: str) -> str:
    if settings.site(site) is None:
        raise CommandError(f"unknown site {site!r}; configured sites: {', '.join(sorted(settings.sites)) or 'none'}")
    return site


def _user_add(args: argparse.Namespace) -> int:
    from gateway.accounts.passwords import hash_password
    from gateway.clock import SystemClock

    settings = _settings(args)
    if not _USER_NAME.fullmatch(args.name):
        raise CommandError(f"a user name is 1 to 64 letters, digits or . _ @ -, found {args.name!r}")
    site = _known_site(settings, args.site) if args.site else None
    password_hash = hash_password(_read_password(args))

    async def work(db: Store) -> None:
        await add_user(db, args.name, password_hash, is_admin=args.admin, now=SystemClock().now())
        if site:
            await grant(db, args.name, site, args.role)

    asyncio.run(_accounts(settings, work))
    granted = f", {args.role} of {site}" if site else ""
    print(f"added {args.name}{' (admin)' if args.admin else ''}{granted}")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    from gateway.accounts.passwords import hash_password
    from gateway.clock import SystemClock

    settings = _settings(args)
    password_hash = hash_password(_read_password(args))
    asyncio.run(_accounts(settings, lambda db: set_password(db, args.name, password_hash, now=SystemClock().now())))
    print(f"password of {args.name} changed")
    return 0


def _user_remove(args: argparse.Namespace) -> int:
    asyncio.run(_accounts(_settings(args), lambda db: remove_user(db, args.name)))
    print(f"removed {args.name}")
    return 0


def _user_grant(args: argparse.Namespace) -> int:
    settings = _settings(args)
    site = _known_site(settings, args.site)
    role = None if args.role == "none" else args.role
    asyncio.run(_accounts(settings, lambda db: grant(db, args.name, site, role)))
    print(f"{args.name}: {args.role} of {site}" if role else f"{args.name}: no role on {site}")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    users = asyncio.run(_accounts(_settings(args), list_users))
    if not users:
        print("no users yet: consent-gateway user add NAME --admin")
    for user in users:
        roles = ", ".join(f"{role} of {site}" for site, role in user.roles.items()) or "no site"
        print(f"{user.name}{' (admin)' if user.is_admin else ''}: {roles}")
    return 0


def _apikey_create(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock

    settings = _settings(args)
    site = _known_site(settings, args.site)
    key, plaintext = asyncio.run(
        _accounts(
            settings,
            lambda db: create_api_key(
                db, site, args.name, now=SystemClock().now(), permissions=frozenset(args.permission)
            ),
        )
    )
    print(plaintext)  # alone on standard output, so a script can capture it
    print(
        f"created API key {key.id} ({key.name}) of {site}. Copy it now: it cannot be shown again "
        "(only its hash is stored).",
        file=sys.stderr,
    )
    return 0


def _apikey_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    site = _known_site(settings, args.site)
    keys = asyncio.run(_accounts(settings, lambda db: list_api_keys(db, site)))
    if not keys:
        print(f"no API keys for {site} yet: consent-gateway apikey create --site {site} --name NAME")
        return 0
    rows = [
        (
            str(k.id),
            k.name,
            k.prefix + "...",
            " ".join(sorted(k.permissions)) or "stats",
            _when(k.created_at),
            _when(k.last_used_at, "never"),
            _when(k.revoked_at),
        )
        for k in keys
    ]
    print(_table(("id", "name", "prefix", "may read", "created", "last used", "revoked"), rows))
    return 0


def _apikey_revoke(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock

    settings = _settings(args)
    site = _known_site(settings, args.site)
    if not asyncio.run(_accounts(settings, lambda db: revoke_api_key(db, site, args.id, now=SystemClock().now()))):
        raise CommandError(f"{site} has no API key {args.id} (see: consent-gateway apikey list --site {site})")
    print(f"revoked API key {args.id} of {site}")
    return 0


def _shared_links(settings: Settings, db: Store) -> SharedLinks:
    _require_secret_keys(settings)
    return SharedLinks(db, settings.secret_keys)


def _require_secret_keys(settings: Settings) -> None:
    """Links are signed: without a key none could be made (or opened by the server later)."""
    if not settings.secret_keys:
        raise CommandError("no secret key: set secret_keys in your config file or CONSENT_GATEWAY_SECRET_KEYS")


def _share_create(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gateway.clock import SystemClock
    from gateway.cookies.lifetimes import parse_lifetime

    settings = _settings(args)
    site = _known_site(settings, args.site)
    _require_secret_keys(settings)  # before asking for a password
    now = SystemClock().now()
    expires_at = None
    if args.expires is not None:
        try:
            lifetime = parse_lifetime(args.expires)
        except ValueError as error:
            raise CommandError(f"--expires: {error}") from None
        if lifetime.seconds is None:
            raise CommandError("--expires takes a duration such as 30d or 6mo, not 'session'")
        expires_at = now + timedelta(seconds=lifetime.seconds)
    password = _read_password(args) if args.password or args.password_stdin else None

    async def create(db: Store) -> tuple[SharedLink, str]:
        return await _shared_links(settings, db).create(
            site, label=args.label, expires_at=expires_at, password=password, now=now
        )

    link, token = asyncio.run(_accounts(settings, create))
    print(f"/share/{token}")
    until = f"until {_when(link.expires_at)} UTC" if link.expires_at else "until revoked"
    print(
        f"created shared link {link.id} of {site}, {until}{', with a password' if link.has_password else ''}; "
        "append the path to the gateway's URL",
        file=sys.stderr,
    )
    return 0


def _share_list(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock

    settings = _settings(args)
    site = _known_site(settings, args.site)
    now = SystemClock().now()

    async def listing(db: Store) -> list[tuple[str, ...]]:
        links = _shared_links(settings, db)
        rows: list[tuple[str, ...]] = []
        for link in await links.list(site):
            if link.revoked_at is not None:
                state, path = f"revoked {_when(link.revoked_at)}", "-"
            elif link.expires_at is not None and link.expires_at <= now:
                state, path = f"expired {_when(link.expires_at)}", "-"
            else:
                state = f"until {_when(link.expires_at)}" if link.expires_at else "active"
                path = f"/share/{links.token_for(link)}"
            password = "yes" if link.has_password else "no"
            rows.append((str(link.id), link.label or "-", _when(link.created_at), state, password, path))
        return rows

    rows = asyncio.run(_accounts(settings, listing))
    if not rows:
        print(f"no shared links for {site} yet: consent-gateway share create --site {site}")
        return 0
    print(_table(("id", "label", "created", "state", "password", "path"), rows))
    return 0


def _share_revoke(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock

    settings = _settings(args)
    site = _known_site(settings, args.site)

    async def revoke(db: Store) -> bool:
        return await _shared_links(settings, db).revoke(site, args.id, now=SystemClock().now())

    if not asyncio.run(_accounts(settings, revoke)):
        raise CommandError(f"{site} has no shared link {args.id} (see: consent-gateway share list --site {site})")
    print(f"revoked shared link {args.id} of {site}; its path no longer opens")
    return 0


def _when(moment: datetime | None, missing: str = "-") -> str:
    """Minutes in UTC: enough to tell keys and links apart in a listing."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment is not None else missing


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in (headers, *rows)]
    return "\n".join(line.rstrip() for line in lines)


def _rollup(args: argparse.Namespace) -> int:
    from gateway.maintenance import floors, roll_up
    from gateway.storage.upkeep import rebuild_rollups

    settings = _settings(args)
    if args.site is not None and not args.rebuild:
        raise CommandError("--site works with --rebuild only (a rollup of the dirty days covers every site)")
    if args.site is not None and settings.site(args.site) is None:
        raise CommandError(f"unknown site {args.site!r} (configured: {', '.join(settings.sites) or 'none'})")

    async def rebuild() -> int:
        async with _open_database(settings) as db:
            return await rebuild_rollups(db, site_id=args.site, zones=settings.zones, floors=floors(settings))

    async def dirty() -> int:
        async with _open_database(settings) as db:
            return len(await roll_up(db, settings.zones, floors=floors(settings)))

    if args.rebuild:
        print(f"rebuilt {asyncio.run(rebuild())} day(s)")
    else:
        print(f"rolled up {asyncio.run(dirty())} day(s)")
    return 0


def _purge(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock
    from gateway.maintenance import purge_expired

    settings = _settings(args)

    async def run() -> str:
        async with _open_database(settings) as db:
            counts = await purge_expired(db, settings, SystemClock().now())
            return counts.describe()

    print(asyncio.run(run()))
    return 0


def _migrate_store(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock
    from gateway.migrate_store import check_figures, copy_with_progress
    from gateway.storage.location import parse_database
    from gateway.storage.migrate import MigrationRefused

    settings = _settings(args)
    try:
        target = parse_database(args.target)
    except ValueError as error:
        raise CommandError(f"--to {error}") from None
    if not isinstance(target, PostgresUrl):
        raise CommandError("--to must be a postgresql://user@host:5432/database URL")
    try:
        copy_with_progress(args.source, target, print)
        agree = asyncio.run(check_figures(args.source, target, SystemClock(), settings.sites, print))
    except MigrationRefused as refused:
        raise CommandError(str(refused)) from None
    except Exception as error:  # an unreachable server, a damaged file: one line naming the store
        failed = target if failure_cause(error) is not None and error_dialect(error) != "sqlite" else args.source
        raise _database_error(failed, error) from None
    if not agree:
        print("consent-gateway: error: the copy does not show the same figures; keep using SQLite", file=sys.stderr)
        return 1
    print(f"done: {args.source} is copied to {target.redacted}; set database = the URL and start the gateway")
    return 0


@asynccontextmanager
async def _open_database(settings: Settings) -> AsyncIterator[Store]:
    location = settings.database
    if isinstance(location, Path) and not location.exists():
        raise CommandError(f"the database {location} does not exist")
    db = open_store(location)
    try:
        await asyncio.to_thread(check_store, location)  # a damaged file: one line, not a traceback
        await db.open()
    except Exception as error:  # not an SQLite file, a folder, no permission, no server
        await db.close()
        raise _database_error(location, error) from None
    try:
        yield db
    except Exception as error:  # a damaged page met halfway, a full disk
        raise _database_error(location, error) from None
    finally:
        await db.close()


def _check_database(location: DatabaseLocation) -> None:
    """Refuse to start on a database that cannot be opened, read or migrated: one line naming it."""
    if isinstance(location, Path) and location.is_dir():
        raise CommandError(f"cannot open the database {location}: it is a folder, not a file")
    try:
        check_store(location)
    except OSError as error:  # the folder cannot be created
        raise CommandError(f"cannot open the database {location}: {error.strerror or error}") from None
    except Exception as error:
        raise _database_error(location, error) from None


def _database_error(location: DatabaseLocation, error: BaseException) -> CommandError:
    """One line naming the database (a URL without its password) and what is wrong with it;
    an error that is not the store's (a bug) is raised as it is."""
    cause = failure_cause(error)
    if cause is None and not is_store_error(error):
        raise error
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(location, PostgresUrl):
        detail = detail.replace(location.url, location.redacted)
    return CommandError(f"cannot open the database {location}: {f'{cause} ({detail})' if cause else detail}")


if __name__ == "__main__":
    raise SystemExit(main())
