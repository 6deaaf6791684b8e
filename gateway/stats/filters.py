"""Filters as they travel in URLs: ``f=country==DE``, ``f=page!=/cart``, ``f=source~=goo``.

Repeated ``f`` parameters combine (all must hold). ``==`` is "is", ``!=`` "is not" and ``~=``
"contains" (case-insensitive). An empty value means "(none)": ``f=referrer==`` keeps the visits
without a referrer. Custom properties are ``prop:KEY``. The syntax is Plausible's (v1 API), so a
bookmarked view reads the same way to people who know it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gateway.storage.aggregates import Condition, Operator, is_dimension

MAX_FILTERS = 10
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"
#: Dimensions that can be a filter (``hour`` cannot; ``prop:KEY`` can).
_NOT_FILTERABLE = {"all", "hour"}
_OPERATORS: dict[str, Operator] = {"==": "is", "!=": "is_not", "~=": "contains"}
_SYMBOLS = {operator: symbol for symbol, operator in _OPERATORS.items()}
_FILTER_RE = re.compile(
    r"(?P<dimension>[a-z_]+(?::[^=!~\x00-\x1f]{1,100})?)(?P<symbol>==|!=|~=)(?P<value>.*)", re.DOTALL
)


class FilterError(ValueError):
    """A filter that cannot be applied, worded for the person who asked."""


def parse_filter(text: str) -> Condition:
    match = _FILTER_RE.fullmatch(text)
    if match is None:
        raise FilterError(f"a filter reads like 'country==DE', 'page!=/cart' or 'source~=goo', found {text[:80]!r}")
    dimension, value = match["dimension"], match["value"]
    if dimension in _NOT_FILTERABLE or not is_dimension(dimension):
        raise FilterError(f"cannot filter by {dimension[:80]!r}")
    if len(value) > 2000 or any(ord(char) < 0x20 for char in value):
        raise FilterError("a filter value is at most 2,000 characters, without control characters")
    return Condition(dimension, _OPERATORS[match["symbol"]], value)


def parse_filters(texts: Iterable[str]) -> tuple[Condition, ...]:
    conditions = tuple(parse_filter(text) for text in texts)
    if len(conditions) > MAX_FILTERS:
        raise FilterError(f"at most {MAX_FILTERS} filters at once")
    return conditions


def filter_text(condition: Condition) -> str:
    """A condition back in its URL form."""
    return f"{condition.dimension}{_SYMBOLS[condition.operator]}{condition.value}"


def describe(condition: Condition) -> str:
    """A filter chip's words: ``country is DE``."""
    words = {"is": "is", "is_not": "is not", "contains": "contains"}[condition.operator]
    return f"{condition.dimension.replace('_', ' ')} {words} {condition.value or NONE_LABEL}"


def with_filter(conditions: Sequence[Condition], added: Condition) -> tuple[Condition, ...]:
    """The filters with ``added`` replacing any on the same dimension (a row's link)."""
    return (*(c for c in conditions if c.dimension != added.dimension), added)


def without_filter(conditions: Sequence[Condition], removed: Condition) -> tuple[Condition, ...]:
    return tuple(c for c in conditions if c != removed)
