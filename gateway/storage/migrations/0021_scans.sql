-- Compliance scans of a site (issue 13; gateway/storage/scans.py, gateway/scan/jobs.py). A scan is
-- queued by the dashboard or the schedule, claimed by one node (its lease_until renewed while it
-- runs, so a killed node's scan is failed once the lease runs out), and keeps its report's JSON.
-- At most one queued or running scan per site: the partial unique index refuses a second one.
CREATE TABLE scans (
    id            INTEGER PRIMARY KEY,
    site_id       TEXT    NOT NULL,
    url           TEXT    NOT NULL,                 -- the start URL
    trigger       TEXT    NOT NULL CHECK (trigger IN ('manual', 'scheduled', 'demo')),
    status        TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    max_pages     INTEGER NOT NULL,
    queued_at     TEXT    NOT NULL,                 -- ISO 8601, UTC, fixed width (text order is time order)
    started_at    TEXT,
    finished_at   TEXT,
    pages_done    INTEGER NOT NULL DEFAULT 0,
    pages_total   INTEGER NOT NULL DEFAULT 0,
    current_url   TEXT,
    report        TEXT,                             -- the report's JSON (format consent-gateway-scan/1)
    violations    INTEGER,
    error         TEXT,
    lease_until   TEXT,
    node          TEXT
);
CREATE UNIQUE INDEX scans_one_active ON scans (site_id) WHERE status IN ('queued', 'running');
CREATE INDEX scans_site ON scans (site_id, id);
CREATE INDEX scans_queue ON scans (status, queued_at, id);
