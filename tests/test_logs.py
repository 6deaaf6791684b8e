"""Log lines are JSON objects and never carry a raw IP address."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from gateway.logs import JsonFormatter, scrub_addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("client 203.0.113.7 refused", "client 203.0.113.0/24 refused"),
        ("from 2001:db8:85a3::8a2e:370:7334 now", "from 2001:db8:85a3::/48 now"),
        ("('198.51.100.23', 51234) - connection", "('198.51.100.0/24', 51234) - connection"),
        ("uvicorn 0.30.1 at 12:30:45 on Python 3.11.7", "uvicorn 0.30.1 at 12:30:45 on Python 3.11.7"),
        ("999.1.1.1 is no address", "999.1.1.1 is no address"),
    ],
)
def test_addresses_become_networks_and_nothing_else_changes(text: str, expected: str) -> None:
    assert scrub_addresses(text) == expected


def test_a_record_is_one_json_line_with_its_extra_fields_and_error() -> None:
    try:
        raise RuntimeError("peer 192.0.2.55 hung up")
    except RuntimeError:
        record = logging.getLogger("gateway.test").makeRecord(
            "gateway.test",
            logging.ERROR,
            __file__,
            1,
            "batch of %d failed",
            (3,),
            sys.exc_info(),
            extra={"site": "shop"},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "error" and parsed["logger"] == "gateway.test"
    assert parsed["message"] == "batch of 3 failed" and parsed["site"] == "shop"
    assert "192.0.2.0/24" in parsed["error"] and "192.0.2.55" not in line
    assert parsed["ts"].endswith("+00:00")
