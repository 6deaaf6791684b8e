"""Where the shipped resource folders (config/, consent_ui/, snippets/) live.

A wheel carries them inside the package (``gateway/_resources``, see pyproject); an editable
install or a checkout reads them from the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder ``name`` (``"config"``, ``"consent_ui"`` or ``"snippets"``)."""
    bundled = _PACKAGE / "_resources" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name
