"""Whitespace out of the snippet's JavaScript, so the served bundle stays inside its size budget.

The sources in ``snippets/`` are written for readability and for this step: every statement ends
with ``;`` (no line break is needed to end one), comments are whole lines (``strip_js`` drops
them first), template literals hold no backtick inside ``${}``. Under those rules whitespace only
matters between two word characters (``var x``), between ``+ +`` or ``- -``, after a number before
``.``, and inside strings, template literals and regular expression literals, which are copied
as written. ``/*!`` comments (what a script sends) are kept on lines of their own; other block
comments go. A ``/`` starts a regular expression after an operator, an opening bracket, ``,``,
``;``, ``{``, ``}`` or a keyword such as ``return``; after a name, a number or ``)`` it divides.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[\w$]")
_REGEX_AFTER_PUNCTUATION = frozenset("(,=:[!&|?{};+-*%<>~^")
_REGEX_AFTER_KEYWORD = re.compile(
    r"(?:^|[^\w$.])(?:return|typeof|case|do|else|in|of|void|delete|throw|new|yield|await)$"
)


class CompactError(ValueError):
    """A source the compactor cannot read safely (an unterminated string, regex or comment)."""


def compact_js(code: str) -> str:
    """``code`` without the whitespace and comments it does not need; strings and regexes unchanged."""
    out: list[str] = []
    tail = ""  # the last few characters written, for deciding what a "/" starts
    i, end = 0, len(code)
    spaced = False
    while i < end:
        char = code[i]
        if char.isspace():
            spaced, i = True, i + 1
            continue
        if code.startswith("/*", i):
            close = code.find("*/", i + 2)
            if close < 0:
                raise CompactError(f"an unterminated comment at character {i}")
            if code.startswith("/*!", i):
                out.append(("\n" if out else "") + code[i : close + 2] + "\n")
                tail = ";"  # a statement starts after it
            i, spaced = close + 2, True
            continue
        if char in "'\"`":
            token = code[i : _string_end(code, i) + 1]
        elif char == "/" and (not tail or tail[-1] in _REGEX_AFTER_PUNCTUATION or _REGEX_AFTER_KEYWORD.search(tail)):
            token = code[i : _regex_end(code, i)]
        else:
            token = char
        if spaced and tail and _needs_space(tail[-1], token[0]):
            out.append(" ")
        out.append(token)
        tail = (tail + token)[-12:]
        spaced = False
        i += len(token)
    return "".join(out)


def _needs_space(before: str, after: str) -> bool:
    if _WORD.match(before) and _WORD.match(after):
        return True
    return (before in "+-" and after == before) or (before.isdigit() and after == ".")


def _string_end(code: str, start: int) -> int:
    quote, i = code[start], start + 1
    while i < len(code):
        if code[i] == "\\":
            i += 2
            continue
        if code[i] == quote:
            return i
        if code[i] == "\n" and quote != "`":
            break
        i += 1
    raise CompactError(f"an unterminated string at character {start}")


def _regex_end(code: str, start: int) -> int:
    """The index just past a regular expression literal and its flags."""
    i, in_class = start + 1, False
    while i < len(code) and code[i] != "\n":
        char = code[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "/" and not in_class:
            i += 1
            while i < len(code) and code[i].isalpha():
                i += 1
            return i
        i += 1
    raise CompactError(f"an unterminated regular expression at character {start}")
