-- Anonymous analytics. No raw IP address and no full user agent is ever stored: visitors
-- are keyed hashes under a daily salt that is deleted once its visits are over.

-- The daily salts. The previous day's row lives only until its visits can no longer
-- continue (30 minutes after midnight UTC), then it is deleted for good.
CREATE TABLE salts (
    day        TEXT PRIMARY KEY,  -- the UTC date (YYYY-MM-DD) the salt serves
    salt       BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- A visit ends after 30 minutes without an event.
CREATE TABLE visits (
    id         INTEGER PRIMARY KEY,
    site_id    TEXT    NOT NULL,
    visitor_id TEXT    NOT NULL,
    started_at TEXT    NOT NULL,
    last_seen  TEXT    NOT NULL,
    entry_page TEXT    NOT NULL,
    exit_page  TEXT    NOT NULL,
    pageviews  INTEGER NOT NULL,
    events     INTEGER NOT NULL
);
CREATE INDEX visits_open ON visits (site_id, visitor_id, last_seen);
CREATE INDEX visits_site_started ON visits (site_id, started_at);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    site_id         TEXT    NOT NULL,
    ts              TEXT    NOT NULL,  -- ISO 8601, UTC
    name            TEXT    NOT NULL,  -- "pageview" or a custom event name
    visitor_id      TEXT    NOT NULL,
    visit_id        INTEGER NOT NULL,
    hostname        TEXT    NOT NULL,
    pathname        TEXT    NOT NULL,
    referrer_host   TEXT,
    source          TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    utm_source      TEXT,
    utm_medium      TEXT,
    utm_campaign    TEXT,
    utm_content     TEXT,
    utm_term        TEXT,
    country         TEXT,
    region          TEXT,
    city            TEXT,
    browser         TEXT    NOT NULL,
    browser_version TEXT    NOT NULL,
    os              TEXT    NOT NULL,
    os_version      TEXT    NOT NULL,
    device          TEXT    NOT NULL,
    screen          TEXT,              -- size class: mobile, tablet, laptop, desktop
    props           TEXT    NOT NULL,  -- JSON object of strings
    consent         TEXT    NOT NULL   -- categories the visitor allowed, comma-separated ("" none / unknown)
);
CREATE INDEX events_site_ts ON events (site_id, ts);
CREATE INDEX events_visit ON events (visit_id);

-- Daily rollups per site, dimension and value (dimension "all" holds the totals).
CREATE TABLE rollups (
    site_id   TEXT    NOT NULL,
    day       TEXT    NOT NULL,  -- YYYY-MM-DD, UTC
    dimension TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    visitors  INTEGER NOT NULL,
    visits    INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    bounces   INTEGER NOT NULL,
    duration  INTEGER NOT NULL,  -- seconds, summed over visits
    PRIMARY KEY (site_id, day, dimension, value)
);

-- Days whose rollups must be recomputed (events arrived since the last rollup).
CREATE TABLE rollup_dirty (
    site_id TEXT NOT NULL,
    day     TEXT NOT NULL,
    PRIMARY KEY (site_id, day)
);
