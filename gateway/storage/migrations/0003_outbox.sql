-- The forwarders' durable outbox. Rows are written in the same transaction as the events
-- they carry, so a committed event is always queued; a row is deleted only once its
-- receiver answered 2xx (delivery is at least once). The payload holds anonymous events
-- only (the AnonymousEvent stored fields), never an IP address or a user agent.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    forwarder       TEXT    NOT NULL,  -- the [[forward]] name
    payload         TEXT    NOT NULL,  -- JSON array of event objects
    event_count     INTEGER NOT NULL,  -- events in payload, so a send can fill a batch without parsing
    created_at      TEXT    NOT NULL,  -- ISO 8601, UTC
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,  -- ISO 8601, UTC; also the lease of a send in progress
    last_error      TEXT               -- a short reason ("HTTP 500", "ConnectError"), never the payload
);
CREATE INDEX outbox_due ON outbox (forwarder, next_attempt_at);
