"""Import the Open Cookie Database (jkwakman/Open-Cookie-Database, CSV) into a site rules file.

The database is community-edited free text, so every row either becomes a rule or is reported
as skipped with its line and reason: nothing is guessed silently, and a reviewer can read the
report before the generated ``[[cookie]]`` file is used.

Decisions, so that the import is predictable:

* Categories follow the database's README: Functional, Security and Necessary are
  ``essential``; Personalization is ``functional``; Analytics is ``analytics``; Marketing is
  ``advertising``. Any other category skips the row.
* Retention texts become lifetimes only where they state one duration (see ``parse_retention``).
* A row's Domain binds the rule to that domain, because a third party's rule must never
  classify a site's own first-party cookie (Instagram's ``sessionid`` is not Django's). A
  leading placeholder label (``ads-[account].adhese.com``) binds to the rest (``adhese.com``),
  which covers every such subdomain. A Domain naming several domains ("a or b") or no valid
  host skips the row: dropping the binding would let a third party's rule classify anyone's cookie.
* Wildcard match = 1 makes the name a prefix pattern (``_ga_`` -> ``_ga_*``); ``<id>``,
  ``%ID%`` and (in wildcard rows) ``xxx`` placeholders become ``*``.
* Surrounding whitespace and invisible characters are stripped from every field; a name still
  holding whitespace, ``;``, ``,``, ``=``, control or invisible characters is skipped.
* The first row for a (name, domain) pair wins; later ones are skipped as duplicates.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.categories import Category
from gateway.cookies.catalog import CatalogError, CookieRule, make_rule
from gateway.cookies.lifetimes import SESSION, Lifetime, parse_lifetime

NAME = "Cookie / Data Key name"
PLATFORM = "Platform"
CATEGORY = "Category"
DOMAIN = "Domain"
DESCRIPTION = "Description"
RETENTION = "Retention period"
CONTROLLER = "Data Controller"
WILDCARD = "Wildcard match"
#: The columns the import reads (ID and the privacy portal are not needed).
REQUIRED_COLUMNS: tuple[str, ...] = (PLATFORM, CATEGORY, NAME, DOMAIN, DESCRIPTION, RETENTION, CONTROLLER, WILDCARD)

#: The database's categories (lower case), by its README.
CATEGORY_MAP: Mapping[str, Category] = {
    "functional": "essential",
    "security": "essential",
    "necessary": "essential",
    "personalization": "functional",
    "analytics": "analytics",
    "marketing": "advertising",
}

PURPOSE_LIMIT = 200

_SECOND, _MINUTE, _HOUR, _DAY = 1, 60, 3600, 86400
_UNITS: dict[str, int] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), _SECOND),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), _MINUTE),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), _HOUR),
    **dict.fromkeys(("d", "day", "days"), _DAY),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 7 * _DAY),
    **dict.fromkeys(("mo", "month", "months"), 2629746),  # the Gregorian average, as in lifetimes.py
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 31556952),
}
_NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_COUNT = r"\d{1,6}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_UNIT = "|".join(sorted(_UNITS, key=len, reverse=True))
_DURATION = rf"(?:{_COUNT}) ?(?:{_UNIT})"
_DURATION_RE = re.compile(rf"^({_COUNT}) ?({_UNIT})$")
# Qualifiers that say when the clock starts or who may change it, not how long it runs.
_QUALIFIED_RE = re.compile(
    rf"^({_DURATION})(?:,? (?:after (?:the )?last (?:activity|visit|update)|from (?:set|last update|set ?/ ?update)"
    r"|by default(?:,? modifiable)?))$"
)
_RANGE_RE = re.compile(rf"^({_DURATION}|session) ?(?:to|till|until|-|–) ?({_DURATION})$")
_SESSION_RE = re.compile(
    r"^(?:(?:end of (?:the )?)?(?:browser )?sessions?(?: cookie)?(?: \(browser\))?"
    r"|(?:until|till|when) (?:the )?browser (?:is )?(?:close[sd]?|closing|quit)"
    r"|seesion)$"  # "Seesion": a misspelling in the database whose meaning is not in doubt
)
_IMMEDIATE_RE = re.compile(r"^(?:immediately|instantly) (?:removed|deleted|expired?)$")
_UNKNOWN = {"", "unknown", "varies", "various", "variable", "undefined", "n/a", "na", "none", "-", "?", "tbd"}
_ENDLESS = {"forever", "unlimited", "persistent", "permanent", "no expiration", "no expiry", "never", "never expires"}
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE_RE = re.compile(
    rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b|\b(?:{_MONTHS})\b\.? ?\d|\d\.? (?:{_MONTHS})\b"
)
_OPEN_ENDED_RE = re.compile(r"\bor (?:longer|more)\b|\bmay be longer\b|\bat least\b|\bor above\b")
_CONDITIONAL_RE = re.compile(r"\bif\b|\botherwise\b|\bdepending\b|\bdepends\b|\bwhen\b|\bor\b")


def parse_retention(text: str) -> Lifetime:
    """Read one of the database's free-form retention texts as a lifetime.

    Accepted: session forms ("Session", "End of session (browser)", "browser session"), one
    duration ("13 months", "30 mins", "one year", "3w"), a duration qualified by when its clock
    starts ("2 years after last activity", "6 months by default, modifiable"), an explicit range
    ("1 week to 1 year", read as its longer end, so a cap is never understated) and
    "Immediately removed" (zero seconds). Anything else raises ``ValueError`` naming why, so
    the row is reported rather than given an invented lifetime.
    """
    normal = " ".join(text.split()).lower().rstrip(".")
    if _SESSION_RE.match(normal):
        return SESSION
    if _IMMEDIATE_RE.match(normal):
        return Lifetime(0)
    if match := _DURATION_RE.match(normal) or _QUALIFIED_RE.match(normal):
        return _duration(match.group(0) if match.re is _DURATION_RE else match.group(1), text)
    if match := _RANGE_RE.match(normal):
        ends = [SESSION if end == "session" else _duration(end, text) for end in match.groups()]
        durations = [end.seconds for end in ends if end.seconds is not None]
        return Lifetime(max(durations))
    raise ValueError(_why_not(normal, text))


def _duration(normal: str, text: str) -> Lifetime:
    match = _DURATION_RE.match(normal)
    if match is None:  # pragma: no cover - callers pass text matched by _DURATION
        raise ValueError(f"not a duration: {text!r}")
    count_text, unit = match.groups()
    count = int(count_text) if count_text.isdigit() else _NUMBER_WORDS[count_text]
    if count == 0:
        raise ValueError(
            f"a zero duration ({text.strip()!r}), likely a lifetime under one {unit.rstrip('s')} rounded down"
        )
    return Lifetime(count * _UNITS[unit])


def _why_not(normal: str, text: str) -> str:
    shown = repr(text.strip())
    if normal in _UNKNOWN:
        return "no retention period given" if not normal else f"no duration given ({shown})"
    if normal in _ENDLESS:
        return f"no finite lifetime ({shown}): the catalog records durations, not 'never expires'"
    if "local storage" in normal or "localstorage" in normal:
        return f"web storage, not a cookie lifetime ({shown})"
    if _OPEN_ENDED_RE.search(normal):
        return f"an open-ended duration ({shown})"
    if _DATE_RE.search(normal):
        return f"a fixed expiry date, not a duration ({shown})"
    if re.match(r"(?:deleted|removed|cleared|expires?|until|till) ", normal):
        return f"ends on an event, not after a duration ({shown})"
    if _CONDITIONAL_RE.search(normal) and re.search(r"\d", normal):
        return f"several durations depending on conditions ({shown})"
    if re.search(rf"\b(?:{_UNIT})\b", normal) or re.search(r"\d", normal):
        return f"not one recognised duration ({shown})"
    return f"not a retention period ({shown})"


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row that did not become a rule, with its CSV line (the header is line 1) and why."""

    line: int
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Every data row is accounted for: ``rows == len(rules) + len(skipped)``."""

    rules: tuple[CookieRule, ...]
    skipped: tuple[SkippedRow, ...]
    rows: int


class _Skip(Exception):
    """A row-level reason; caught per row and turned into a ``SkippedRow``."""


def import_open_cookie_database(path: Path) -> ImportResult:
    """Read the database CSV; raise ``CatalogError`` only when the file as a whole is unusable."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the file ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise CatalogError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}); save the CSV as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise CatalogError(f"{path}: empty file, expected a header row with {', '.join(REQUIRED_COLUMNS)}")
        columns = _columns(path, header)
        rules: list[CookieRule] = []
        skipped: list[SkippedRow] = []
        first_line: dict[tuple[str, str | None], int] = {}
        rows = 0
        previous_end = reader.line_num
        for record in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if not any(field.strip() for field in record):
                continue  # a blank line is not a row
            rows += 1
            raw_name = _clean(record[columns[NAME]]) if columns[NAME] < len(record) else ""
            try:
                rule = _rule(record, columns, len(header), source=f"{path.name}:{line}")
                key = (rule.name, rule.domain)
                if key in first_line:
                    raise _Skip(f"duplicate of line {first_line[key]} (same name and domain)")
            except _Skip as skip:
                skipped.append(SkippedRow(line, raw_name, str(skip)))
                continue
            first_line[key] = line
            rules.append(rule)
    except csv.Error as error:
        raise CatalogError(f"{path}: not valid CSV near line {reader.line_num} ({error})") from None
    return ImportResult(tuple(rules), tuple(skipped), rows)


def _columns(path: Path, header: Sequence[str]) -> dict[str, int]:
    names = [_clean(name) for name in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        found = ", ".join(repr(name) for name in names) or "none"
        raise CatalogError(
            f"{path}: missing column {missing[0]!r} (also needed: {missing[1:] or 'none'}; found {found})"
        )
    return {column: names.index(column) for column in REQUIRED_COLUMNS}


def _rule(record: Sequence[str], columns: Mapping[str, int], width: int, *, source: str) -> CookieRule:
    if len(record) != width:
        raise _Skip(f"expected {width} fields, found {len(record)} (a stray comma or quote?)")
    field = {column: _clean(record[index]) for column, index in columns.items()}
    name = _pattern(field[NAME], field[WILDCARD])
    category_text = field[CATEGORY]
    category = CATEGORY_MAP.get(category_text.lower())
    if category is None:
        raise _Skip(f"category {category_text!r} has no mapping (expected one of {', '.join(sorted(CATEGORY_MAP))})")
    try:
        lifetime = parse_retention(field[RETENTION])
    except ValueError as error:
        raise _Skip(f"retention period: {error}") from None
    platform = " ".join(field[PLATFORM].split())
    return make_rule(
        name,
        category,
        lifetime,
        vendor=" ".join(field[CONTROLLER].split()) or platform,
        purpose=_one_line(field[DESCRIPTION]),
        service=_slug(platform),
        domain=_domain(field[DOMAIN]),
        source=source,
    )


def _clean(text: str) -> str:
    """Strip whitespace and invisible format characters (zero-width space, BOM) from both ends."""
    start, end = 0, len(text)
    while start < end and _blank(text[start]):
        start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    return text[start:end]


def _blank(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cf"


_PLACEHOLDER_RE = re.compile(r"<[^<>]*>|%[A-Za-z0-9_]+%|\{[A-Za-z0-9_]*\}")
_XXX_RE = re.compile(r"[xX]{3,}")


def _pattern(name: str, wildcard: str) -> str:
    """The rule name: the cookie name, or a ``*`` pattern for wildcard rows and placeholders."""
    if not name:
        raise _Skip("empty cookie name")
    bad = next((c for c in name if c in ";,=" or _blank(c) or unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise _Skip(f"not a valid cookie name: contains {_describe(bad)}")
    if wildcard not in ("0", "1", ""):
        raise _Skip(f"wildcard match {wildcard!r} is neither 0 nor 1")
    pattern = _PLACEHOLDER_RE.sub("*", name)
    if wildcard == "1":
        pattern = _XXX_RE.sub("*", pattern)
        if "*" not in pattern:
            pattern += "*"
    pattern = re.sub(r"\*+", "*", pattern)
    if not pattern.replace("*", ""):
        raise _Skip(f"pattern {pattern!r} would match every cookie")
    return pattern


def _describe(char: str) -> str:
    if char in ";,=":
        return repr(char)
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


_PARTY_RE = re.compile(r"\s*\((?:1st|3rd|first|third)[ -]party\)\s*$", re.IGNORECASE)
_LABEL_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_PLACEHOLDER_LABEL_RE = re.compile(r"[\[\]<>{}*%]")


def _domain(text: str) -> str | None:
    """The domain a rule binds to, or ``None`` for an empty column; ``_Skip`` for unusable text."""
    domain = _PARTY_RE.sub("", _clean(text).strip("\"'")).strip().strip("\"'").lstrip(".").lower()
    if not domain:
        return None
    if re.search(r"\s(?:or|and)\b|^(?:or|and)\s|[,;]", domain):
        raise _Skip(f"domain {text.strip()!r} names several domains; a rule binds to one")
    labels = domain.rstrip(".").split(".")
    while labels and _PLACEHOLDER_LABEL_RE.search(labels[0]):
        labels.pop(0)  # "ads-[account].adhese.com" -> "adhese.com", which covers every account
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise _Skip(f"domain {text.strip()!r} is not a host name")
    return ".".join(labels)


def _one_line(text: str) -> str:
    collapsed = " ".join(text.split())
    if len(collapsed) <= PURPOSE_LIMIT:
        return collapsed
    cut = collapsed[: PURPOSE_LIMIT - 1]
    if " " in cut[PURPOSE_LIMIT // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _slug(text: str) -> str | None:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or None


def rules_to_toml(rules: Iterable[CookieRule], *, header: str) -> str:
    """Write rules as ``[[cookie]]`` tables that ``load_rules`` reads back unchanged.

    ``header`` becomes comment lines (source, date, counts). Strings are JSON strings, which
    are TOML basic strings, except that DEL must be escaped in TOML.
    """
    lines = [line if line.startswith("#") else f"# {line}".rstrip() for line in header.splitlines()]
    for rule in rules:
        lifetime = str(rule.lifetime)
        if parse_lifetime(lifetime) != rule.lifetime:
            raise ValueError(f"{rule.name}: lifetime {rule.lifetime!r} cannot be written as a lifetime string")
        lines += ["", "[[cookie]]", f"name = {_string(rule.name)}", f"category = {_string(rule.category)}"]
        lines.append(f"lifetime = {_string(lifetime)}")
        for key, value in (
            ("vendor", rule.vendor),
            ("purpose", rule.purpose),
            ("service", rule.service),
            ("domain", rule.domain),
        ):
            if value:
                lines.append(f"{key} = {_string(value)}")
        if rule.path != "/":
            lines.append(f"path = {_string(rule.path)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
