"""The four cookie categories and which of them need the visitor's consent."""

from __future__ import annotations

from typing import Literal, get_args

Category = Literal["essential", "functional", "analytics", "advertising"]

CATEGORIES: tuple[Category, ...] = get_args(Category)
#: Every category but ``essential`` needs consent (ePrivacy Directive art. 5(3)).
CONSENT_CATEGORIES: tuple[Category, ...] = ("functional", "analytics", "advertising")


def parse_category(text: object) -> Category:
    """Validate a category name, raising ``ValueError`` that lists the accepted ones."""
    if isinstance(text, str) and text in CATEGORIES:
        return text
    raise ValueError(f"expected one of {', '.join(CATEGORIES)}, found {text!r}")
