"""Structured log lines for ``consent-gateway serve``: one JSON object a line, never an IP address.

Every record becomes ``{"ts", "level", "logger", "message", ...extra fields, "error"?}``. Any
client address that reaches a message anyway (a library quoting a client) is cut to its network
(IPv4 /24, IPv6 /48) before the line is written, as storage does: followed by a dot or a comma,
as ``ip:port``, ``[v6]:port`` or IPv4-mapped IPv6 alike. Not scrubbed: loopback and unspecified
addresses (the machine itself, never a visitor) and uvicorn's "Uvicorn running on ..." line, which
names the address the server listens on, not a client.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from gateway.anonymise import truncate_ip

# One pass, most specific first: IPv4-mapped IPv6 (::ffff:1.2.3.4), IPv6, then IPv4. An IPv4
# address may be followed by a dot ("from 81.2.69.142.") but not by ".digit" (a longer dotted number).
_ADDRESS = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,6}(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)"
    r"|(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
    r"|(?<![\w])(?<!\d\.)(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)(?![A-Za-z_])"
)
#: uvicorn's start-up line names the server's own listening address (uvicorn/server.py).
_LISTENING = "Uvicorn running on "
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def scrub_addresses(text: str) -> str:
    """``"client 203.0.113.7 said"`` -> ``"client 203.0.113.0/24 said"``; other text untouched."""
    return _ADDRESS.sub(_network, text)


def _network(match: re.Match[str]) -> str:
    candidate = match.group(0)
    if ":" not in candidate:  # IPv4; 010.001.002.003 (leading zeros) is an address to a reader too
        octets = [int(part) for part in candidate.split(".")]
        if any(octet > 255 for octet in octets):
            return candidate  # a version number, not an address
        candidate = ".".join(map(str, octets))
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return match.group(0)  # a time or a hex word, not an address
    if address.is_loopback or address.is_unspecified:
        return match.group(0)  # the machine itself: no visitor's address
    return truncate_ip(candidate) or candidate


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = scrub_addresses(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = scrub_addresses(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    if record.name.startswith("uvicorn") and isinstance(record.msg, str) and record.msg.startswith(_LISTENING):
        return message  # the address the server listens on, not a client's
    return scrub_addresses(message)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (and uvicorn ``log_config``) writing JSON lines to stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "gateway.logs.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},  # it logs client IPs
            "gateway": {"handlers": ["json"], "level": level, "propagate": False},
        },
    }
