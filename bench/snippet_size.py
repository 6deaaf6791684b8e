"""Gzipped size of what a visitor downloads for our snippets, beside popular peers, in one run.

What is measured, for us:

* ``tracker``: ``t.js``, the cookieless tracker alone;
* ``total``: ``c.js``, the consent loader + banner UI + tracker with the CSS and the English texts
  inlined, i.e. everything a first-time visitor downloads.

Both come from ``gateway.web.snippets.build_bundles()`` (attributes ``tracker_bundle`` and
``consent_bundle``), so the bench measures exactly the bytes the gateway serves. Only when that
import fails, a stand-in is built from the sources: ``snippets/consent.js``, ``snippets/ui.js``,
``snippets/tracker.js``, ``consent_ui/banner.css`` and ``consent_ui/i18n/en.json`` with every line's
leading whitespace stripped and blank lines and whole-line ``//`` comments (JavaScript only)
dropped, concatenated in that order (the tracker alone for ``tracker``); the run then says
"(fallback: gateway.web.snippets not found)".

Peers are installed from the npm registry into a temporary folder that is removed afterwards
(``npm install --no-audit --no-fund --ignore-scripts --prefix TMP ...``):

* ``vanilla-cookieconsent`` 3: ``dist/cookieconsent.umd.js`` + ``dist/cookieconsent.css``;
* ``klaro``: ``dist/klaro.js``, the bundle with CSS (and all translations) built in;
* ``osano-cookieconsent`` (npm ``cookieconsent`` 3): ``build/cookieconsent.min.js`` + ``.min.css``;
* ``plausible-tracker``: its single-file browser build if the package has one (``unpkg``,
  ``jsdelivr`` or ``browser`` field, or a ``*.min.js`` / ``*.umd.js`` / ``*.iife.js`` in ``build/`` or
  ``dist/``); otherwise the ES module build (the ``module`` entry plus the relative modules it
  imports), which is what a site's bundler ships to the browser.

Every figure is the gzip (level 9, mtime 0) of the files of one item concatenated, in bytes and
KB (1024 bytes, one decimal). Whole-line ``//# sourceMappingURL=`` comments are dropped from peer
files (plausible-tracker inlines base64 source maps that no production build ships); nothing
else is minified or stripped. The files measured and the package versions are printed.

Budgets: ``tracker`` <= 1536 bytes, ``total`` <= 8192 bytes; the run says whether each is met but
exits 0 either way (the test suite enforces them). Exit status 2 if our own files are missing.
If npm is missing or the install fails, the run says so and reports the peers as null. The last
line printed is JSON: ``{"tracker_gz", "total_gz", "tracker_budget", "total_budget", "peers"}``.

    .venv/bin/python bench/snippet_size.py [--no-peers]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TRACKER_BUDGET = 1536
TOTAL_BUDGET = 8192
NPM_TIMEOUT_SECONDS = 300
NPM_SPECS = ("vanilla-cookieconsent@3", "klaro", "cookieconsent", "plausible-tracker")
FALLBACK_NOTE = "(fallback: gateway.web.snippets not found)"
#: Order of the fallback's concatenation: consent + UI + CSS + English texts + tracker.
FALLBACK_TOTAL = (
    "snippets/consent.js",
    "snippets/ui.js",
    "consent_ui/banner.css",
    "consent_ui/i18n/en.json",
    "snippets/tracker.js",
)
FALLBACK_TRACKER = "snippets/tracker.js"
_SOURCE_MAP_LINE = re.compile(rb"^[ \t]*//[#@] sourceMappingURL=[^\n]*\n?", re.MULTILINE)
_RELATIVE_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["'](\.{1,2}/[^"']+)["']""")
_BROWSER_BUILD_NAMES = ("*.min.js", "*.umd.js", "*.iife.js", "*.browser.js")


class OwnFilesMissing(Exception):
    """Our snippet sources are not there, so there is nothing to measure (exit status 2)."""


@dataclass(frozen=True, slots=True)
class OwnSizes:
    tracker_gz: int
    total_gz: int
    source: str


@dataclass(frozen=True, slots=True)
class PeerSize:
    key: str
    package: str
    version: str
    files: tuple[str, ...]
    gz: int
    note: str = ""


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


# --- ours ----------------------------------------------------------------------------------------


def own_sizes() -> OwnSizes:
    """Our two figures, from the gateway's bundle builder or, if it cannot be imported, the sources."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # measure this checkout, whatever the venv's editable install points at
    try:
        from gateway.web.snippets import build_bundles  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        # Only the builder itself being absent means "fall back"; a broken import inside it must show.
        if exc.name not in {"gateway.web.snippets", "gateway.web", "gateway"}:
            raise
        print(FALLBACK_NOTE)
        if not isinstance(exc, ModuleNotFoundError):
            print(f"  ({exc})")  # the module exists but has no build_bundles yet
        return _fallback_sizes()
    try:
        bundles = build_bundles()
    except FileNotFoundError as exc:
        missing = exc.filename or exc
        raise OwnFilesMissing(f"our snippet files are missing: {missing} (read by gateway.web.snippets)") from exc
    consent, tracker = bundles.consent_bundle, bundles.tracker_bundle
    if not isinstance(consent, bytes) or not isinstance(tracker, bytes):
        raise TypeError("build_bundles() must return consent_bundle and tracker_bundle as bytes")
    return OwnSizes(tracker_gz=gzip_size(tracker), total_gz=gzip_size(consent), source="gateway.web.snippets")


def _squeeze(path: Path) -> bytes:
    """The fallback's light minification: no leading whitespace, no blank or whole-line ``//`` lines."""
    is_js = path.suffix == ".js"
    kept: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        if not stripped or (is_js and stripped.startswith("//")):
            continue
        kept.append(stripped)
    return ("\n".join(kept) + "\n").encode("utf-8")


def _fallback_sizes() -> OwnSizes:
    missing = [name for name in FALLBACK_TOTAL if not (REPO / name).is_file()]
    if missing:
        raise OwnFilesMissing("our snippet files are missing: " + ", ".join(missing))
    total = b"".join(_squeeze(REPO / name) for name in FALLBACK_TOTAL)
    tracker = _squeeze(REPO / FALLBACK_TRACKER)
    return OwnSizes(tracker_gz=gzip_size(tracker), total_gz=gzip_size(total), source="fallback (sources)")


# --- peers ---------------------------------------------------------------------------------------


def _fixed(*files: str) -> Callable[[Path], tuple[list[str], str]]:
    def pick(package_dir: Path) -> tuple[list[str], str]:
        return list(files), ""

    return pick


def _pick_klaro(package_dir: Path) -> tuple[list[str], str]:
    """``dist/klaro.js`` (CSS built in); else the first ``dist/klaro*.js`` that does not leave the CSS out."""
    if (package_dir / "dist/klaro.js").is_file():
        return ["dist/klaro.js"], ""
    for candidate in sorted((package_dir / "dist").glob("klaro*.js")):
        if "no-css" not in candidate.name:
            return [f"dist/{candidate.name}"], "dist/klaro.js is absent; used the closest bundle with CSS"
    return ["dist/klaro.js"], ""


def _package_json(package_dir: Path) -> dict[str, object]:
    data = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _module_closure(package_dir: Path, entry: str) -> list[str]:
    """``entry`` plus the relative modules it imports, transitively, as paths inside the package."""
    seen: list[str] = []
    pending = [(package_dir / entry).resolve()]
    while pending:
        path = pending.pop(0)
        if not path.is_file():
            for candidate in (path.with_name(path.name + ".js"), path / "index.js"):
                if candidate.is_file():
                    path = candidate
                    break
            else:
                continue
        relative = path.relative_to(package_dir.resolve()).as_posix()
        if relative in seen:
            continue
        seen.append(relative)
        for spec in _RELATIVE_IMPORT.findall(path.read_text(encoding="utf-8")):
            pending.append((path.parent / spec).resolve())
    return seen


def _pick_plausible(package_dir: Path) -> tuple[list[str], str]:
    manifest = _package_json(package_dir)
    for field in ("unpkg", "jsdelivr", "browser"):
        value = manifest.get(field)
        if isinstance(value, str) and (package_dir / value).is_file():
            return [Path(value).as_posix().removeprefix("./")], f'the package.json "{field}" file'
    for folder in ("dist", "build"):
        for pattern in _BROWSER_BUILD_NAMES:
            found = sorted((package_dir / folder).glob(pattern))
            if found:
                return [f"{folder}/{found[0].name}"], "a single-file browser build"
    module = manifest.get("module")
    if isinstance(module, str):
        files = _module_closure(package_dir, module)
        if files:
            return files, "no single-file browser build in the package: its ES module build, as a bundler ships it"
    raise FileNotFoundError("no browser build found in build/ or dist/")


@dataclass(frozen=True, slots=True)
class Peer:
    key: str
    package: str
    pick: Callable[[Path], tuple[list[str], str]]


PEERS = (
    Peer(
        "vanilla-cookieconsent", "vanilla-cookieconsent", _fixed("dist/cookieconsent.umd.js", "dist/cookieconsent.css")
    ),
    Peer("klaro", "klaro", _pick_klaro),
    Peer(
        "osano-cookieconsent",
        "cookieconsent",
        _fixed("build/cookieconsent.min.js", "build/cookieconsent.min.css"),
    ),
    Peer("plausible-tracker", "plausible-tracker", _pick_plausible),
)


def _npm_install(prefix: Path) -> bool:
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found on PATH: peers are reported as null")
        return False
    command = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(prefix), *NPM_SPECS]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"npm install failed ({exc}): peers are reported as null")
        return False
    if done.returncode != 0:
        said = [line for line in (done.stderr or done.stdout).splitlines() if line.strip() not in ("", "npm error")]
        errors = [line for line in said if line.startswith("npm error")] or said
        print(f"npm install failed (exit {done.returncode}): peers are reported as null; npm said:")
        for line in errors[:3]:
            print(f"  {line}")
        return False
    return True


def _measure_peer(peer: Peer, node_modules: Path) -> PeerSize:
    package_dir = node_modules / peer.package
    version = str(_package_json(package_dir).get("version", "?"))
    files, note = peer.pick(package_dir)
    data = b""
    for name in files:
        data += _SOURCE_MAP_LINE.sub(b"", (package_dir / name).read_bytes())
        if not data.endswith(b"\n"):
            data += b"\n"
    return PeerSize(peer.key, peer.package, version, tuple(files), gzip_size(data), note)


def peer_sizes() -> dict[str, PeerSize | None]:
    """Install the peers into a temporary folder and measure each; ``None`` for any that fails."""
    sizes: dict[str, PeerSize | None] = {peer.key: None for peer in PEERS}
    with tempfile.TemporaryDirectory(prefix="snippet-size-npm-") as tmp:
        print(f"installing peers from npm: {' '.join(NPM_SPECS)} ...")
        if not _npm_install(Path(tmp)):
            return sizes
        for peer in PEERS:
            try:
                sizes[peer.key] = _measure_peer(peer, Path(tmp) / "node_modules")
            except (OSError, ValueError) as exc:
                print(f"  {peer.key}: could not measure ({exc}); reported as null")
    return sizes


# --- report --------------------------------------------------------------------------------------


def _budget_line(label: str, size: int, budget: int) -> str:
    verdict = "met" if size <= budget else f"MISSED by {size - budget} B"
    return f"  {label:<48}{size:>7} B {kb(size):>9}   budget {budget} B: {verdict}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--no-peers", action="store_true", help="skip the npm install and report peers as null")
    options = parser.parse_args(argv)

    print("snippet sizes, gzip -9 (bytes, KB = 1024 B)")
    try:
        ours = own_sizes()
    except OwnFilesMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"ours ({ours.source}):")
    print(_budget_line("tracker (t.js)", ours.tracker_gz, TRACKER_BUDGET))
    print(_budget_line("consent + UI + CSS + en texts + tracker (c.js)", ours.total_gz, TOTAL_BUDGET))

    peers: dict[str, PeerSize | None] = {peer.key: None for peer in PEERS}
    if options.no_peers:
        print("peers: skipped (--no-peers)")
    else:
        peers = peer_sizes()
        print("peers (compare consent managers with c.js, plausible-tracker with t.js):")
        for key, size in peers.items():
            if size is None:
                print(f"  {key:<48}   null")
                continue
            label = f"{key} {size.version}" + ("" if key == size.package else f" (npm {size.package})")
            print(f"  {label:<48}{size.gz:>7} B {kb(size.gz):>9}   {' + '.join(size.files)}")
            if size.note:
                print(f"  {'':<48}  ({size.note})")

    summary = {
        "tracker_gz": ours.tracker_gz,
        "total_gz": ours.total_gz,
        "tracker_budget": TRACKER_BUDGET,
        "total_budget": TOTAL_BUDGET,
        "peers": {key: (size.gz if size is not None else None) for key, size in peers.items()},
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
