"""Where the shipped resource folders (config/, consent_ui/, snippets/) live.

A wheel carries them inside the package (``gateway/_resources``, see pyproject); an editable
install or a checkout reads them from the repository root.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder ``name`` (``"config"``, ``"consent_ui"`` or ``"snippets"``)."""
    bundled = _PACKAGE / "_resources" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name


def read_table_array(path: Path, key: str, error: type[ValueError]) -> list[Any]:
    """The ``[[key]]`` tables of the TOML file at ``path`` (the cookie catalog, the tracker list); a file
    that cannot be read, is not TOML or holds something else under ``key`` raises ``error`` naming it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as problem:
        raise error(f"{path}: cannot read the file ({problem.strerror})") from None
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{path}: not valid TOML ({problem})") from None
    entries = data.get(key, [])
    if not isinstance(entries, list):
        raise error(f"{path}: '{key}' must be an array of tables ([[{key}]])")
    return entries
