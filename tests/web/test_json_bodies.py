"""Request bodies are read by orjson where it agrees with ``json``, and by ``json`` everywhere else:
what is accepted, the values and every error message must be exactly ``json``'s (gateway/web/errors.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.web.errors import ClientError, decode_json_object


def decoded_by_json_alone(body: bytes) -> tuple[str, Any]:
    """What ``decode_json_object`` answered before orjson: ("ok", value) or ("error", status and message)."""
    if not body:
        return "error", (400, "the body is empty: expected a JSON object")
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return "error", (400, "the body is not valid UTF-8")
    except json.JSONDecodeError as error:
        return "error", (400, f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}")
    except RecursionError:
        return "error", (400, "the body is not valid JSON: nested too deeply")
    except ValueError as error:
        return "error", (400, f"the body is not valid JSON: {error}")
    if not isinstance(value, dict):
        return "error", (400, f"expected a JSON object, found {type(value).__name__}")
    return "ok", value


def decoded(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode_json_object(body)
    except ClientError as error:
        return "error", (error.status, error.message)


def same(left: Any, right: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0 here), NaN equal to NaN."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return bool(left == right)


def assert_as_json_reads_it(body: bytes) -> None:
    expected, got = decoded_by_json_alone(body), decoded(body)
    assert got[0] == expected[0], (body, got, expected)
    if expected[0] == "error":
        assert got == expected
    else:
        assert same(got[1], expected[1]), (body, got, expected)


EDGE_CASES = [
    b'{"s": "shop", "n": "pageview", "u": "https://shop.example.com/"}',
    b'{"a": 1, "a": 2}',  # the last of duplicate keys
    b'{"w": 123456789012345678901234567890}',  # past 64 bits: orjson would give a float
    b'{"w": 18446744073709551615}',  # 2**64 - 1
    b'{"w": 18446744073709551616}',
    b'{"w": -9223372036854775809}',
    b'{"w": 1e400}',  # infinity for json, an error for orjson
    b'{"w": -0}',
    b'{"w": -0.0}',
    b'{"w": 1.5e-310}',
    b'{"w": NaN}',
    b'{"w": Infinity}',
    b'{"n": "\\ud800"}',  # a lone surrogate: json accepts it (parse_event then refuses it)
    b'{"n": "\\udc00\\ud800"}',
    b'\xef\xbb\xbf{"s": "shop"}',  # a byte order mark
    b'{"n": "caf\xc3\xa9"}',
    b'{"n": "\xff"}',  # not UTF-8
    b'{"n": "a\x01b"}',  # a raw control character
    b'{"s": "shop",',
    b"[1, 2]",
    b'"text"',
    b"  {}  ",
    b"{} x",
    b"",
    b" ",
    b"[" * 30_000 + b"]" * 30_000,
    b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"a": ' + b"[" * 1100 + b"]" * 1100 + b"}",  # past orjson's depth limit
    b'{"r": ' + b"9" * 5000 + b"}",
    b'{"p": {"n": 12345678901234567890}}',
    b'{"p": {"n": 1234567890123456789}}',
    b'{"p": {"n": 0.1000000000000000055511151231257827}}',
]


@pytest.mark.parametrize("body", EDGE_CASES)
def test_a_body_is_read_as_json_reads_it(body: bytes) -> None:
    assert_as_json_reads_it(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400)
@given(json_values, st.sampled_from([None, 0, 2]), st.booleans())
def test_any_json_document_is_read_as_json_reads_it(value: Any, indent: int | None, ascii_only: bool) -> None:
    body = json.dumps({"v": value}, indent=indent, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert_as_json_reads_it(body)


@settings(max_examples=400)
@given(
    st.binary(max_size=40)
    | st.text(alphabet='{}[]",:0123456789.eE+-tfnul \\\x00\x1fé\ud800').map(
        lambda text: text.encode("utf-8", "surrogatepass")
    )
)
def test_any_bytes_are_read_as_json_reads_them(body: bytes) -> None:
    assert_as_json_reads_it(body)
