-- The proof-of-consent log (GDPR Art. 7(1)): who (pseudonymous id), when, which policy
-- revision and banner, which choices, by which action. Never the raw IP address.
CREATE TABLE consent_records (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    consent_id      TEXT    NOT NULL,
    site_id         TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,  -- ISO 8601, UTC
    method          TEXT    NOT NULL,  -- accept_all | reject_all | custom | gpc | withdraw | erase
    policy_revision INTEGER NOT NULL,
    banner_hash     TEXT    NOT NULL,
    categories      TEXT    NOT NULL,  -- JSON {"functional": true, ...}
    services        TEXT    NOT NULL,  -- JSON {"hotjar": false, ...}
    gpc             INTEGER NOT NULL,
    language        TEXT,
    page_path       TEXT,
    ip_network      TEXT,              -- truncated: IPv4 /24, IPv6 /48
    ua_family       TEXT,
    expires_at      TEXT,
    erased          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX consent_records_by_id ON consent_records (consent_id, seq);
CREATE INDEX consent_records_by_site_time ON consent_records (site_id, recorded_at);

-- Append-only: the one permitted change is an erasure, which blanks the personal parts and
-- unlinks the row from the visitor (a new random id), keeping the anonymous decision.
CREATE TRIGGER consent_records_append_only
BEFORE UPDATE ON consent_records
WHEN NOT (
    NEW.erased = 1 AND OLD.erased = 0
    AND NEW.seq = OLD.seq AND NEW.site_id = OLD.site_id AND NEW.recorded_at = OLD.recorded_at
    AND NEW.method = OLD.method AND NEW.policy_revision = OLD.policy_revision
    AND NEW.banner_hash = OLD.banner_hash AND NEW.categories = OLD.categories
    AND NEW.services = OLD.services AND NEW.gpc = OLD.gpc
    AND NEW.language IS NULL AND NEW.page_path IS NULL
    AND NEW.ip_network IS NULL AND NEW.ua_family IS NULL
    AND NEW.expires_at IS OLD.expires_at
)
BEGIN
    SELECT RAISE(ABORT, 'consent_records is append-only');
END;

-- What the middleware saw of each cookie, per site (the cookie report).
CREATE TABLE cookie_report (
    site_id            TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    category           TEXT,              -- NULL: unknown to the catalog
    times_set          INTEGER NOT NULL,
    times_blocked      INTEGER NOT NULL,
    times_capped       INTEGER NOT NULL,
    longest_asked      INTEGER,           -- seconds; NULL: only session cookies seen
    first_seen         TEXT    NOT NULL,
    last_seen          TEXT    NOT NULL,
    PRIMARY KEY (site_id, name)
);
