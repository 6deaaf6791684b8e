"""The stats API described as an OpenAPI 3.1 document, built from the same constants the API checks.

The enumerations (periods, intervals, dimensions, sort keys) come from the modules that parse them,
so the document cannot drift from what ``gateway/web/stats_api.py`` accepts. OpenAPI 3.1 schemas
are JSON Schema 2020-12: a value that may be withheld is ``"type": [..., "null"]``, not the 3.0
``nullable``.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from gateway.consent.export import CSV_COLUMNS, FORMATS
from gateway.consent.export import MAX_DAYS as EXPORT_MAX_DAYS
from gateway.stats.period import INTERVALS, MAX_DAYS, PERIODS
from gateway.stats.query import SORT_KEYS
from gateway.storage.aggregates import DIMENSIONS

OPENAPI_PATH = "/api/v1/openapi.json"
STATS_PREFIX = "/api/v1/stats"
CONSENT_LOG_PATH = "/api/v1/sites/{site_id}/consent-log"
#: Dimensions a breakdown can be asked for (``all`` is the top line, ``hour`` the hourly series).
BREAKDOWN_DIMENSIONS: tuple[str, ...] = tuple(name for name in DIMENSIONS if name not in ("all", "hour"))
#: ``prop:KEY``: a custom property's key, as the filter syntax bounds it (1 to 100 characters, no controls).
PROPERTY_PATTERN = r"^prop:[^\x00-\x1f]{1,100}$"
#: One ``f`` filter, exactly as ``gateway.stats.filters.parse_filter`` reads it: a filterable dimension
#: (``prop:*``, every property at once, is not one), an operator, a value of at most 2,000 characters
#: without controls (empty: "(none)"). No lookahead: ECMA-262 and Python read this pattern alike.
FILTER_PATTERN = (
    r"^(?:"
    + "|".join(name for name in DIMENSIONS if name not in ("all", "hour"))
    + r"|prop:(?:\*[^=!~\x00-\x1f]{1,99}|[^*=!~\x00-\x1f][^=!~\x00-\x1f]{0,99}))(?:==|!=|~=)[^\x00-\x1f]{0,2000}$"
)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_PAGE = 1_000_000
METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration")
ROW_FIGURES = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration")
_FIGURE_WORDS = {
    "visitors": "Unique visitors (a new visitor each day: daily salts).",
    "visits": "Visits.",
    "pageviews": "Pageviews.",
    "events": "Events, pageviews included.",
    "views_per_visit": "Pageviews per visit.",
    "bounce_rate": "Percent of visits with at most one pageview.",
    "visit_duration": "Mean visit duration in seconds.",
}


def openapi_document() -> dict[str, Any]:
    """The whole document (a fresh copy); ``stats_api_routes`` builds and serialises it once per app."""
    return deepcopy(_document())


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "consent-gateway stats API",
            "version": "1.0.0",
            "description": (
                "Privacy-first statistics of one site, read with a per-site API key "
                "(`consent-gateway apikey create --site ID --name NAME`). Every figure stands for at "
                "least the site's `min_visitors` (k) visitors: smaller top lines and buckets, zero "
                "included, are null with `withheld: true` (withheld and zero read the same), smaller "
                "breakdown rows are folded into `other`, and `other` is null unless it stands for at "
                "least k visitors. A key created with the `consent_log` permission also exports the site's "
                "proof-of-consent log. Requests with a filter (`f`) are limited per API key "
                "(`filtered_query_limit` per 10 minutes, default 60): beyond, 429 with `Retry-After`. "
                "A parameter left out takes its default; an empty one (`period=`) is a 400."
            ),
        },
        "security": [{"bearerKey": []}],
        "paths": {
            f"{STATS_PREFIX}/aggregate": _operation(
                "statsAggregate",
                "The top line of the period, with the previous period of the same length for comparison.",
                [],
                "Aggregate",
            ),
            f"{STATS_PREFIX}/timeseries": _operation(
                "statsTimeseries",
                "The figures per hour, day or month of the period, in the site's time zone.",
                [_INTERVAL],
                "Timeseries",
            ),
            f"{STATS_PREFIX}/breakdown": _operation(
                "statsBreakdown",
                "The figures per value of one dimension; values under k visitors are folded into `other`.",
                [_PROPERTY, _SORT, _ORDER, _LIMIT, _PAGE],
                "Breakdown",
            ),
            CONSENT_LOG_PATH: _consent_log_operation(),
        },
        "components": {"securitySchemes": _SECURITY_SCHEMES, "schemas": _schemas()},
    }


def _operation(operation_id: str, summary: str, extra: list[dict[str, Any]], schema: str) -> dict[str, Any]:
    errors = {
        "400": "A parameter is missing or invalid (period, filter, interval, property, sort, order, limit, page).",
        "401": "No API key, or one that is malformed, unknown or revoked (`WWW-Authenticate: Bearer`).",
        "403": "The key belongs to another site than `site_id`.",
        "404": "There is no site `site_id`.",
        "405": "Only GET and HEAD are allowed.",
        "429": "Too many filtered requests (`f`) for this API key: wait the seconds `Retry-After` gives.",
    }
    responses: dict[str, Any] = {
        "200": {"description": "The statistics.", "content": _json(schema)},
        **{status: {"description": words, "content": _json("Error")} for status, words in errors.items()},
    }
    responses["429"]["headers"] = {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}
    }
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["stats"],
            "parameters": [*_COMMON, *extra],
            "responses": responses,
        }
    }


def _consent_log_operation() -> dict[str, Any]:
    errors = {
        "400": f"A parameter is missing or invalid: `from` or `to` not a day, `to` before `from`, more than "
        f"{EXPORT_MAX_DAYS} days, an unknown `format`, `revisions=1` with CSV.",
        "401": "No API key, or one that is malformed, unknown or revoked (`WWW-Authenticate: Bearer`).",
        "403": "The key belongs to another site, or lacks the `consent_log` permission.",
        "404": "There is no site `site_id`.",
        "405": "Only GET and HEAD are allowed.",
    }
    day = {"type": "string", "format": "date"}
    return {
        "get": {
            "operationId": "consentLogExport",
            "summary": "The site's proof-of-consent records of a range of days, streamed as CSV or JSON.",
            "description": (
                "Every record (who: a pseudonymous consent id; when; which policy revision and banner; which "
                "choices; by which action) recorded from the start of `from` to the end of `to` in the site's "
                "time zone, in the order written. Needs a key with the `consent_log` permission "
                "(`consent-gateway apikey create --site ID --name NAME --permission consent_log`). CSV cells "
                "starting with `=`, `+`, `-` or `@` get a leading `'`. A record's `revision` names the stored "
                "banner it answered; null for records made before banners were stored."
            ),
            "tags": ["consent"],
            "parameters": [
                {
                    "name": "site_id",
                    "in": "path",
                    "required": True,
                    "description": "The site, as configured under `[sites.ID]`.",
                    "schema": {"type": "string", "minLength": 1},
                },
                _query("from", "The first day (included), `YYYY-MM-DD`, in the site's time zone.", day, required=True),
                _query(
                    "to",
                    f"The last day (included), `YYYY-MM-DD`, not before `from`; at most {EXPORT_MAX_DAYS} days.",
                    day,
                    required=True,
                ),
                _query("format", "CSV (with a header row) or JSON.", {"type": "string", "enum": list(FORMATS)}),
                _query(
                    "revisions",
                    "`1`: the JSON export ends with the banners its records answered (`revisions`).",
                    {"type": "string", "enum": ["0", "1"], "default": "0"},
                ),
            ],
            "responses": {
                "200": {
                    "description": "The records, sent as they are read.",
                    "headers": {
                        "Content-Disposition": {
                            "description": '`attachment; filename="consent-log-SITE-FROM-TO.csv"`',
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "text/csv": {
                            "schema": {"type": "string", "description": "Columns: " + ", ".join(CSV_COLUMNS) + "."}
                        },
                        **_json("ConsentLog"),
                    },
                },
                **{status: {"description": words, "content": _json("Error")} for status, words in errors.items()},
            },
        }
    }


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_COMMON = [
    _query("site_id", "The site, as configured under `[sites.ID]`.", {"type": "string", "minLength": 1}, required=True),
    _query(
        "period",
        "The period in the site's time zone; `7d` and `30d` include today. `custom` needs `from` and `to` (else "
        "400), and its comparison period (as many days just before `from`) must start after 0001-01-01 and `to` "
        "be before 9999-12-31 (else 400).",
        {"type": "string", "enum": list(PERIODS), "default": "30d"},
    ),
    _query(
        "from",
        "First day of a custom period (included), `YYYY-MM-DD`; read only with `period=custom`, but a value that "
        "is not such a day is a 400 with any period.",
        {"type": "string", "format": "date"},
    ),
    _query(
        "to",
        f"Last day of a custom period (included), `YYYY-MM-DD`, not before `from`; at most {MAX_DAYS} days. Read "
        "only with `period=custom`, but a value that is not such a day is a 400 with any period.",
        {"type": "string", "format": "date"},
    ),
    {
        **_query(
            "f",
            "A filter, repeatable (all must hold): `country==DE` (is), `page!=/cart` (is not), `source~=goo` "
            "(contains, any case); an empty value means none (`referrer==`); custom properties as `prop:KEY`. "
            "At most 10 filters, values of at most 2,000 characters without control characters. An empty "
            "`f=`, an unknown dimension or a missing operator is a 400.",
            {"type": "array", "items": {"type": "string", "pattern": FILTER_PATTERN}, "maxItems": 10},
        ),
        "style": "form",
        "explode": True,
    },
]
_INTERVAL = _query(
    "interval",
    "Bucket size; by default hours for one day, days up to 93 days, months beyond. `hour` with a period of "
    "more than 7 days is a 400.",
    {"type": "string", "enum": list(INTERVALS)},
)
_PROPERTY = _query(
    "property",
    "The dimension to break down by: a fixed one, or `prop:KEY` for a custom property.",
    {"type": "string", "anyOf": [{"enum": list(BREAKDOWN_DIMENSIONS)}, {"pattern": PROPERTY_PATTERN}]},
    required=True,
)
_SORT = _query("sort", "The column to sort by.", {"type": "string", "enum": list(SORT_KEYS), "default": "visitors"})
_ORDER = _query("order", "Sort direction.", {"type": "string", "enum": ["asc", "desc"], "default": "desc"})
_LIMIT = _query(
    "limit",
    "Rows per page.",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
)
_PAGE = _query("page", "Page number, from 1.", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1})
_SECURITY_SCHEMES = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A site's API key, `cg_` and 43 URL-safe characters.",
    }
}


def _schemas() -> dict[str, Any]:
    nullable_number = {"type": ["number", "null"]}
    metric = {
        "type": "object",
        "required": ["value", "previous", "change"],
        "properties": {
            "value": {**nullable_number, "description": "Null when withheld (under k visitors, zero included)."},
            "previous": {
                **nullable_number,
                "description": "The previous period's; null when it stood for under k visitors (zero included).",
            },
            "change": {**nullable_number, "description": "Percent change; null when either side is null or 0."},
        },
    }
    row_properties: dict[str, Any] = {
        "value": {"type": "string", "description": "The dimension's value; an empty string is (none)."},
        **{name: {"type": "number", "description": _FIGURE_WORDS[name]} for name in ROW_FIGURES},
    }
    bucket_figures = ("visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration")
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "description": "What went wrong, for a person to read."}},
        },
        "Period": {
            "type": "object",
            "required": ["name", "from", "to", "timezone"],
            "properties": {
                "name": {"type": "string", "enum": list(PERIODS)},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "timezone": {"type": "string", "description": "The site's IANA time zone."},
            },
        },
        "Metric": metric,
        "Aggregate": {
            "type": "object",
            "required": ["site_id", "period", "withheld", "results"],
            "properties": {
                "site_id": {"type": "string"},
                "period": {"$ref": "#/components/schemas/Period"},
                "withheld": {
                    "type": "boolean",
                    "description": "True when the period had fewer than k visitors, none included: then every "
                    "`value` is null.",
                },
                "results": {
                    "type": "object",
                    "required": list(METRICS),
                    "properties": {name: {"$ref": "#/components/schemas/Metric"} for name in METRICS},
                },
            },
        },
        "Bucket": {
            "type": "object",
            "required": ["bucket", "start", "withheld", *bucket_figures],
            "properties": {
                "bucket": {"type": "string", "description": "`2026-03-10`, `2026-03` or `2026-03-10 14:00` (local)."},
                "start": {"type": "string", "format": "date-time", "description": "The local start, with offset."},
                "withheld": {
                    "type": "boolean",
                    "description": "True under k visitors, none included: its figures are null.",
                },
                **{
                    name: {"type": ["number", "null"], "description": f"{_FIGURE_WORDS[name]} Null when withheld."}
                    for name in bucket_figures
                },
            },
        },
        "Timeseries": {
            "type": "object",
            "required": ["site_id", "period", "interval", "results"],
            "properties": {
                "site_id": {"type": "string"},
                "period": {"$ref": "#/components/schemas/Period"},
                "interval": {"type": "string", "enum": list(INTERVALS)},
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Bucket"}},
            },
        },
        "BreakdownRow": {"type": "object", "required": list(row_properties), "properties": row_properties},
        "ConsentLog": {
            "type": "object",
            "required": ["site", "from", "to", "timezone", "note", "records"],
            "properties": {
                "site": {"type": "string"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "timezone": {"type": "string", "description": "The site's IANA time zone: the days' zone."},
                "note": {"type": "string"},
                "records": {"type": "array", "items": {"type": "object"}},
                "revisions": {
                    "type": "object",
                    "description": "With `revisions=1`: each banner the records answered, by its hash "
                    "(`banner_hash`, the SHA-256 of `content`): revision, language, what was shown.",
                },
            },
        },
        "Breakdown": {
            "type": "object",
            "required": ["site_id", "period", "property", "results", "other", "total_rows"],
            "properties": {
                "site_id": {"type": "string"},
                "period": {"$ref": "#/components/schemas/Period"},
                "property": {"type": "string"},
                "sort": {"type": "string", "enum": list(SORT_KEYS)},
                "order": {"type": "string", "enum": ["asc", "desc"]},
                "limit": {"type": "integer"},
                "page": {"type": "integer"},
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/BreakdownRow"}},
                "other": {
                    "description": "The rows under k visitors added up (value `(other)`), on every page; null "
                    "unless they stand for at least k visitors.",
                    "oneOf": [{"$ref": "#/components/schemas/BreakdownRow"}, {"type": "null"}],
                },
                "total_rows": {"type": "integer", "description": "Rows of at least k visitors, over all pages."},
            },
        },
    }
