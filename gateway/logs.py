"""Structured log lines for ``consent-gateway serve``: one JSON object a line, never an IP address.

Every record becomes ``{"ts", "level", "logger", "message", ...extra fields, "error"?}``. Any
IP address that reaches a message anyway (a library quoting a client) is cut to its network
(IPv4 /24, IPv6 /48) before the line is written, as storage does.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from gateway.anonymise import truncate_ip

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def scrub_addresses(text: str) -> str:
    """``"client 203.0.113.7 said"`` -> ``"client 203.0.113.0/24 said"``; other text untouched."""
    return _IPV6.sub(_network, _IPV4.sub(_network, text))


def _network(match: re.Match[str]) -> str:
    candidate = match.group(0)
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return candidate  # a version number or a time, not an address
    return truncate_ip(candidate) or candidate


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub_addresses(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = scrub_addresses(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = scrub_addresses(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


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
